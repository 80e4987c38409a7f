//! Framers: turn a connection's byte stream into requests, and replies into bytes.
//!
//! A framer is handed the unconsumed bytes of its connection and answers with one
//! [`Decoded`]: a request and how many bytes it used, a need for more bytes, or a
//! rejection (with the bytes to send before closing). Framers keep no buffers of their
//! own and no state, so splitting the stream at any point yields the same requests.

mod body;
mod date;
#[doc(hidden)]
pub mod fuzz;
mod http1;
mod length;
mod lines;
mod raw;
pub mod ws;

pub use body::BodyError;
pub(crate) use body::{BodyDecoder, BodyFraming, Step as BodyStep};
pub use http1::{HttpRequest, Response};

use crate::config::Limits;
// An option value, so it is defined in `config`; `corral::frame::Protocol` stays.
pub use crate::config::Protocol;

/// A framed request's content.
#[derive(Debug)]
pub enum Payload {
    Bytes(Vec<u8>),
    Http(HttpRequest),
}

/// A handler's answer to one request.
#[derive(Debug)]
pub enum Reply {
    /// Bytes framed by the connection's protocol (for HTTP: a `200` with this body).
    Bytes(Vec<u8>),
    /// An HTTP response (for other protocols: its body).
    Http(Response),
    /// Close the connection once the replies before this one are written.
    Close,
}

impl From<Vec<u8>> for Reply {
    fn from(v: Vec<u8>) -> Reply {
        Reply::Bytes(v)
    }
}
impl From<&[u8]> for Reply {
    fn from(v: &[u8]) -> Reply {
        Reply::Bytes(v.to_vec())
    }
}
impl From<&str> for Reply {
    fn from(v: &str) -> Reply {
        Reply::Bytes(v.as_bytes().to_vec())
    }
}
impl From<String> for Reply {
    fn from(v: String) -> Reply {
        Reply::Bytes(v.into_bytes())
    }
}
impl From<Response> for Reply {
    fn from(v: Response) -> Reply {
        Reply::Http(v)
    }
}

/// What the framer knows about a request that its reply's encoding needs.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReplyCtx {
    pub protocol: Protocol,
    /// HTTP: the connection closes after this reply (`Connection: close`, or 1.0).
    pub close: bool,
    /// HTTP: answer in HTTP/1.0 form.
    pub http10: bool,
    /// HTTP: a `HEAD` request, so the body is not sent.
    pub head: bool,
}

/// The outcome of one decode step.
#[derive(Debug)]
pub(crate) enum Decoded {
    Frame {
        used: usize,
        payload: Payload,
        ctx: ReplyCtx,
    },
    /// Not a whole request yet. `expect_continue`: the HTTP client waits for
    /// `100 Continue` before it sends the body.
    NeedMore {
        expect_continue: bool,
    },
    /// HTTP, streaming bodies: a request whose head is in and whose body follows
    /// (`used` covers the head only); the connection reads the body as a stream.
    Head {
        used: usize,
        payload: Payload,
        ctx: ReplyCtx,
        body: BodyFraming,
        /// The client waits for `100 Continue` before it sends the body.
        expect_continue: bool,
    },
    Reject(Reject),
}

/// Bad input: what to send (may be empty) before the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reject {
    pub reply: Vec<u8>,
    pub reason: &'static str,
    /// HTTP: the status of the reply (0 for a close without one).
    pub status: u16,
}

pub(crate) use http1::{body_reject, encode_chunk, encode_head, Framing, CONTINUE, END_CHUNKED};

/// Decodes with the framer of one protocol. Framers are stateless: everything they
/// need is in the bytes not yet consumed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Framer {
    protocol: Protocol,
    /// HTTP: a body that is not in whole (or is over `body_window`) makes a `Head`, and
    /// follows as a stream (the handler streams bodies); else bodies come whole.
    stream_bodies: bool,
}

impl Framer {
    pub fn new(p: Protocol) -> Framer {
        Framer { protocol: p, stream_bodies: false }
    }

    /// The framer for a handler that streams request bodies (`Handler::streams_bodies`).
    pub fn streaming(self, on: bool) -> Framer {
        Framer { stream_bodies: on, ..self }
    }

    pub fn decode(&self, buf: &[u8], limits: &Limits) -> Decoded {
        match self.protocol {
            Protocol::Raw => raw::decode(buf),
            Protocol::Lines => lines::decode(buf, limits.max_frame),
            Protocol::Length => length::decode(buf, limits.max_frame),
            Protocol::Http1 => http1::decode(buf, limits, self.stream_bodies),
        }
    }
}

impl Protocol {
    /// Encodes `reply` for this protocol. `None` means "close without replying".
    pub(crate) fn encode(&self, reply: Reply, ctx: &ReplyCtx) -> Option<Vec<u8>> {
        let body = match reply {
            Reply::Close => return None,
            Reply::Http(r) if *self == Protocol::Http1 => return Some(http1::encode(r, ctx)),
            Reply::Http(r) => r.into_body(),
            Reply::Bytes(b) if *self == Protocol::Http1 => return Some(http1::encode(Response::new(200).body(b), ctx)),
            Reply::Bytes(b) => b,
        };
        Some(match self {
            Protocol::Raw => body,
            Protocol::Lines => lines::encode(body),
            Protocol::Length => length::encode(body),
            Protocol::Http1 => unreachable!("handled above"),
        })
    }

    /// The reply sent for a request whose handler failed (panicked, or dropped its
    /// responder): HTTP `500`, for the others nothing (the connection is closed).
    /// The engine's reply for a handler that missed `reply_timeout`: HTTP `504`; the
    /// other protocols have no error form, so the connection is closed.
    pub(crate) fn timeout_reply(&self, ctx: &ReplyCtx) -> Option<Vec<u8>> {
        match self {
            Protocol::Http1 => Some(http1::encode(
                Response::new(504)
                    .header("content-type", "text/plain")
                    .body(b"handler did not reply in time\n".to_vec()),
                ctx,
            )),
            _ => None,
        }
    }

    pub(crate) fn error_reply(&self, ctx: &ReplyCtx) -> Option<Vec<u8>> {
        match self {
            Protocol::Http1 => Some(http1::encode(
                Response::new(500).header("content-type", "text/plain").body(b"internal error\n".to_vec()),
                ctx,
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// Decodes all of `stream` fed in the pieces given by `cuts`, as a connection would.
    pub fn decode_split(p: Protocol, stream: &[u8], cuts: &[usize], limits: &Limits) -> (Vec<String>, Option<Reject>) {
        let f = Framer::new(p);
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < stream.len()).collect();
        bounds.sort();
        bounds.push(stream.len());
        for b in bounds {
            buf.extend_from_slice(&stream[pos..b]);
            pos = b;
            loop {
                match f.decode(&buf, limits) {
                    Decoded::Frame { used, payload, .. } => {
                        buf.drain(..used);
                        out.push(match payload {
                            Payload::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                            Payload::Http(h) => {
                                format!("{} {} {}", h.method(), h.path(), String::from_utf8_lossy(h.body()))
                            }
                        });
                    }
                    Decoded::NeedMore { .. } => break,
                    Decoded::Head { .. } => panic!("decode_split decodes whole bodies"),
                    Decoded::Reject(r) => return (out, Some(r)),
                }
            }
        }
        (out, None)
    }
}
