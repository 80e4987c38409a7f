//! Streamed replies: a [`Responder`](super::Responder) turned into a [`Stream`] sends
//! the response head now and the body in parts, from any thread, with back-pressure.
//!
//! The body is framed by what the handler knows: a length it declared
//! (`content-length`; more than that is cut off, less closes the connection), else
//! chunked encoding (HTTP/1.1), else — HTTP/1.0 — the connection closes at its end.
//! Parts wait in the request's reply slot until the replies before it are written, so
//! per-connection order holds for streams too. A stream dropped unfinished closes the
//! connection once what was sent is written: the client sees a cut-off body (the
//! framing shows it), never a reply that looks whole.

use std::sync::Arc;

use crate::conn::Conn;
use crate::frame::{encode_chunk, encode_head, Framing, ReplyCtx, Response, END_CHUNKED};

/// What [`Stream::send`] says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// Room for more.
    Ready,
    /// The write backlog is at `write_high_water`: wait for [`Stream::when_writable`]
    /// before sending more (sending anyway buffers it, without bound).
    Full,
}

/// Why a stream could not go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    /// The connection is closed (the client left, a write failed, or shutdown), or the
    /// reply deadline answered in the handler's place: nothing more is sent.
    Gone,
    /// `finish` with fewer bytes sent than the declared length: the connection was
    /// closed, so the client sees a cut-off body.
    Short { missing: u64 },
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Gone => {
                f.write_str("the connection is closed (the client left, or the server is shutting down)")
            }
            StreamError::Short { missing } => {
                write!(
                    f,
                    "the body ended {missing} bytes short of its declared content-length; the connection was closed"
                )
            }
        }
    }
}

impl std::error::Error for StreamError {}

/// A reply being streamed. Dropping it unfinished closes the connection.
pub struct Stream {
    conn: Option<Arc<Conn>>,
    seq: u64,
    framing: Framing,
    /// The connection closes after this reply.
    close: bool,
}

impl Stream {
    pub(crate) fn start(conn: Arc<Conn>, seq: u64, ctx: &ReplyCtx, head: &Response, length: Option<u64>) -> Stream {
        let mut bytes = Vec::with_capacity(128 + head.headers.len() * 32);
        let framing = encode_head(head, ctx, length, &mut bytes);
        let close = ctx.close || framing == Framing::UntilClose;
        let ok = conn.append(seq, bytes);
        Stream { conn: ok.then_some(conn), seq, framing, close }
    }

    /// Sends one part of the body. `Full` asks the caller to wait for
    /// [`Stream::when_writable`]; bytes past a declared length are dropped.
    pub fn send(&mut self, data: &[u8]) -> Result<Sent, StreamError> {
        let conn = self.conn.as_ref().ok_or(StreamError::Gone)?;
        let bytes = match &mut self.framing {
            Framing::Empty => Vec::new(),
            Framing::UntilClose => data.to_vec(),
            Framing::Length(left) => {
                let n = data.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                data[..n].to_vec()
            }
            Framing::Chunked => {
                let mut b = Vec::with_capacity(data.len() + 12);
                encode_chunk(data, &mut b);
                b
            }
        };
        if !bytes.is_empty() && !conn.append(self.seq, bytes) {
            self.conn = None;
            return Err(StreamError::Gone);
        }
        if conn.is_closed() {
            self.conn = None;
            return Err(StreamError::Gone);
        }
        Ok(if conn.backlog_full() { Sent::Full } else { Sent::Ready })
    }

    /// Ends the body; the connection goes on to the next request (or closes, if this
    /// reply said so).
    pub fn finish(mut self) -> Result<(), StreamError> {
        let conn = self.conn.take().ok_or(StreamError::Gone)?;
        let (end, result) = match self.framing {
            Framing::Chunked => (Some(END_CHUNKED.to_vec()), Ok(())),
            Framing::Length(0) | Framing::Empty => (Some(Vec::new()), Ok(())),
            Framing::Length(missing) => (None, Err(StreamError::Short { missing })),
            Framing::UntilClose => (Some(Vec::new()), Ok(())),
        };
        let gone = conn.is_closed();
        conn.complete(self.seq, end, self.close, false);
        if gone {
            return Err(StreamError::Gone);
        }
        result
    }

    /// Gives up on the reply: the connection closes once what was sent is written.
    pub fn abort(mut self) {
        if let Some(conn) = self.conn.take() {
            conn.complete(self.seq, None, true, true);
        }
    }

    /// Calls `f` once there is room to send again (the backlog is down to half of
    /// `write_high_water`) or the connection closed, at once if that is already so. `f`
    /// runs on whichever thread sees it (an I/O worker, usually): it must be quick and
    /// must not block; it should only wake the producer.
    pub fn when_writable(&self, f: impl FnOnce() + Send + 'static) {
        match &self.conn {
            Some(c) => c.when_writable(Box::new(f)),
            None => f(),
        }
    }

    /// Calls `f` once the client has finished sending or the connection closed (see
    /// [`Responder::when_gone`](super::Responder::when_gone)).
    pub fn when_gone(&self, f: impl FnOnce() + Send + 'static) {
        super::watch_gone(self.conn.as_ref(), self.seq, f)
    }

    /// True once the connection is closed.
    pub fn is_gone(&self) -> bool {
        super::conn_gone(self.conn.as_ref())
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.complete(self.seq, None, true, true);
        }
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("seq", &self.seq).field("framing", &self.framing).finish()
    }
}
