//! `Http1`: HTTP/1.1 and 1.0 requests parsed with `httparse`.
//!
//! Keep-alive by default on 1.1 (`Connection: close` ends it), off on 1.0 unless
//! `Connection: keep-alive`; pipelined requests are decoded one after another; bodies by
//! `Content-Length` or `Transfer-Encoding: chunked`; `Expect: 100-continue` is answered
//! once the head is in and the body is still to come. Bad input is answered and the
//! connection closed: `400` malformed, `413` body over `max_frame`, `431` head over
//! `max_header`, `501` a transfer coding other than chunked. A request carrying both
//! `Content-Length` and `Transfer-Encoding` is refused (`400`): that ambiguity is how
//! requests are smuggled past proxies.

use std::ops::Range;

use super::body::{BodyDecoder, BodyError, BodyFraming, Step};
use super::{Decoded, Payload, Protocol, Reject, ReplyCtx};
use crate::config::Limits;

const MAX_HEADERS: usize = 96;

/// The interim reply to `Expect: 100-continue`.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A parsed request. The head is kept as received; accessors return views into it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    head: Vec<u8>,
    method: Range<usize>,
    path: Range<usize>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    minor_version: u8,
    body: Vec<u8>,
}

impl HttpRequest {
    fn view(&self, r: &Range<usize>) -> &str {
        // httparse only yields tokens (method, header names) and visible ASCII paths.
        std::str::from_utf8(&self.head[r.clone()]).unwrap_or("")
    }
    pub fn method(&self) -> &str {
        self.view(&self.method)
    }
    /// The request target as sent (path and query).
    pub fn path(&self) -> &str {
        self.view(&self.path)
    }
    /// The path without the query string.
    pub fn path_only(&self) -> &str {
        let p = self.path();
        p.split_once('?').map_or(p, |(a, _)| a)
    }
    /// The value of query parameter `name`, if present.
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, q) = self.path().split_once('?')?;
        q.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then_some(v)
        })
    }
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }
    /// Headers in the order received (names as sent).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers.iter().map(|(n, v)| (self.view(n), &self.head[v.clone()]))
    }
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }
    pub fn body(&self) -> &[u8] {
        &self.body
    }
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// An HTTP response built by a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }
    pub(crate) fn into_body(self) -> Vec<u8> {
        self.body
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// How a reply's body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `content-length`: exactly this many bytes follow.
    Length(u64),
    /// `transfer-encoding: chunked` (HTTP/1.1, length not known in advance).
    Chunked,
    /// HTTP/1.0 with no length: the body ends when the connection closes.
    UntilClose,
    /// No body is sent: a `HEAD` request, or a 1xx/204/304 status.
    Empty,
}

/// True for statuses whose responses never carry a body (RFC 9110 6.4.1).
fn bodiless(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// Writes the status line and headers of `r` (its body is not looked at), and how the
/// body that follows is framed: `length` when the handler knows it, otherwise chunked
/// (HTTP/1.1) or until the connection closes (HTTP/1.0, which then says `connection:
/// close`). `content-length`, `transfer-encoding`, `connection`, `keep-alive` and `date`
/// headers from the handler are replaced by the engine's own, which match what it does.
pub(crate) fn encode_head(r: &Response, ctx: &ReplyCtx, length: Option<u64>, out: &mut Vec<u8>) -> Framing {
    use std::io::Write;
    let status = if (100..=999).contains(&r.status) { r.status } else { 500 };
    let _ = write!(out, "HTTP/1.{} {} {}\r\n", if ctx.http10 { 0 } else { 1 }, status, reason(status));
    for (n, v) in &r.headers {
        let skip = ["content-length", "transfer-encoding", "connection", "keep-alive", "date"]
            .iter()
            .any(|h| n.eq_ignore_ascii_case(h));
        // A CR or LF in a name or value would let a handler's input split the response.
        let clean = !n.is_empty() && !n.bytes().chain(v.bytes()).any(|b| b == b'\r' || b == b'\n');
        if !skip && clean {
            let _ = write!(out, "{n}: {v}\r\n");
        }
    }
    let framing = match length {
        _ if bodiless(status) => Framing::Empty,
        Some(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
            Framing::Length(n)
        }
        None if ctx.http10 => Framing::UntilClose,
        None => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            Framing::Chunked
        }
    };
    super::date::append_date_header(out);
    if ctx.close || framing == Framing::UntilClose {
        out.extend_from_slice(b"connection: close\r\n");
    } else if ctx.http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if ctx.head {
        Framing::Empty
    } else {
        framing
    }
}

/// Appends one chunk of a chunked body (an empty `data` appends nothing: the empty
/// chunk is the end, written by [`end_chunked`]).
pub(crate) fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    use std::io::Write;
    if !data.is_empty() {
        let _ = write!(out, "{:x}\r\n", data.len());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
}

/// The end of a chunked body (no trailers).
pub(crate) const END_CHUNKED: &[u8] = b"0\r\n\r\n";

/// Writes a whole response: head, then the body with its length.
pub(crate) fn encode(r: Response, ctx: &ReplyCtx) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + r.body.len() + r.headers.len() * 32);
    if encode_head(&r, ctx, Some(r.body.len() as u64), &mut out) != Framing::Empty {
        out.extend_from_slice(&r.body);
    }
    out
}

fn reject(status: u16, reason: &'static str) -> Decoded {
    Decoded::Reject(rejection(status, reason))
}

/// The answer to bad input: a plain-text reply with `status`, then the connection closes.
fn rejection(status: u16, reason: &'static str) -> Reject {
    let ctx = ReplyCtx { protocol: Protocol::Http1, close: true, ..Default::default() };
    let body = format!("{reason}\n");
    let reply = encode(Response::new(status).header("content-type", "text/plain").body(body), &ctx);
    Reject { reply, reason, status }
}

fn offset(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

enum Body {
    None,
    Length(usize),
    Chunked,
}

/// Decodes one request from `buf`. `stream`: the handler streams bodies, so a body that
/// is not in whole, or is over `body_window`, makes a [`Decoded::Head`] and follows as a
/// stream (limited by `max_body`); otherwise bodies come whole (limited by `max_frame`).
pub(super) fn decode(buf: &[u8], limits: &Limits, stream: bool) -> Decoded {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > limits.max_header {
                return reject(431, "request head larger than max_header");
            }
            return Decoded::NeedMore { expect_continue: false };
        }
        Err(httparse::Error::TooManyHeaders) => return reject(431, "too many request headers"),
        Err(_) => return reject(400, "malformed request"),
    };
    if head_len > limits.max_header {
        return reject(431, "request head larger than max_header");
    }
    let minor = req.version.unwrap_or(1);
    let (mut close, mut keep_alive, mut expect_continue) = (false, false, false);
    let mut length: Option<usize> = None;
    let mut te: Option<&[u8]> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(h.value).ok().and_then(|s| s.trim().parse::<usize>().ok()) else {
                return reject(400, "invalid content-length");
            };
            if length.is_some_and(|l| l != n) {
                return reject(400, "conflicting content-length headers");
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if te.is_some() {
                return reject(400, "repeated transfer-encoding header");
            }
            te = Some(h.value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= has_token(h.value, "close");
            keep_alive |= has_token(h.value, "keep-alive");
        } else if h.name.eq_ignore_ascii_case("expect") {
            if !h.value.eq_ignore_ascii_case(b"100-continue") {
                return reject(417, "unsupported expectation");
            }
            expect_continue = true;
        }
    }
    let body = match (te, length) {
        (Some(_), Some(_)) => return reject(400, "both content-length and transfer-encoding"),
        (Some(v), None) if v.trim_ascii().eq_ignore_ascii_case(b"chunked") => Body::Chunked,
        (Some(_), None) => return reject(501, "unsupported transfer-encoding"),
        (None, Some(n)) if stream && n as u64 > limits.max_body => {
            return reject(413, "request body larger than max_body")
        }
        (None, Some(n)) if !stream && n > limits.max_frame => return reject(413, "request body larger than max_frame"),
        (None, Some(n)) => Body::Length(n),
        (None, None) => Body::None,
    };
    let close = if minor == 0 { !keep_alive || close } else { close };
    let expect_continue = expect_continue && minor >= 1;
    let parts = |body: Vec<u8>| {
        let method = req.method.map(|m| offset(buf, m.as_bytes())).unwrap_or(0..0);
        let path = req.path.map(|p| offset(buf, p.as_bytes())).unwrap_or(0..0);
        let headers = req.headers.iter().map(|h| (offset(buf, h.name.as_bytes()), offset(buf, h.value))).collect();
        let head = req.method == Some("HEAD");
        let request = HttpRequest { head: buf[..head_len].to_vec(), method, path, headers, minor_version: minor, body };
        (Payload::Http(request), ReplyCtx { protocol: Protocol::Http1, close, http10: minor == 0, head })
    };
    let streamed = |framing: BodyFraming| {
        let (payload, ctx) = parts(Vec::new());
        Decoded::Head { used: head_len, payload, ctx, body: framing, expect_continue }
    };
    let (body, used) = match body {
        Body::None => (Vec::new(), head_len),
        Body::Length(n) if stream && (n > limits.body_window || buf.len() - head_len < n) => {
            return streamed(BodyFraming::Length(n as u64))
        }
        Body::Length(n) => match buf.get(head_len..head_len + n) {
            Some(b) => (b.to_vec(), head_len + n),
            None => return Decoded::NeedMore { expect_continue },
        },
        Body::Chunked if stream => match whole_chunked(&buf[head_len..], limits) {
            Ok(Some((b, n))) => (b, head_len + n),
            Ok(None) => return streamed(BodyFraming::Chunked),
            Err(r) => return Decoded::Reject(r),
        },
        Body::Chunked => match dechunk(&buf[head_len..], limits) {
            Ok(Some((b, n))) => (b, head_len + n),
            Ok(None) => return Decoded::NeedMore { expect_continue },
            Err(r) => return Decoded::Reject(r),
        },
    };
    let (payload, ctx) = parts(body);
    Decoded::Frame { used, payload, ctx }
}

/// A chunked body that is already in whole and within `body_window`: `Ok(Some((body,
/// bytes used)))`; `Ok(None)` when it is not (it is then streamed).
fn whole_chunked(buf: &[u8], limits: &Limits) -> Result<Option<(Vec<u8>, usize)>, Reject> {
    let mut d = BodyDecoder::new(BodyFraming::Chunked, limits.max_body, limits.max_header);
    let (mut body, mut pos) = (Vec::new(), 0);
    loop {
        let room = limits.body_window.saturating_sub(body.len());
        if room == 0 {
            return Ok(None);
        }
        match d.step(&buf[pos..], room) {
            Ok(Step::Data { used, data }) => {
                body.extend_from_slice(&buf[pos..][data]);
                pos += used;
            }
            Ok(Step::NeedMore) => return Ok(None),
            Ok(Step::Done { used, .. }) => return Ok(Some((body, pos + used))),
            Err(e) => return Err(body_reject(&e)),
        }
    }
}

/// The reply to a body that cannot be read: its status and the reason.
pub(crate) fn body_reject(e: &BodyError) -> Reject {
    match e {
        BodyError::TooLarge { .. } => rejection(413, "request body larger than max_body"),
        BodyError::Malformed(why) => rejection(400, why),
        BodyError::TooSlow => rejection(408, "request body sent too slowly"),
        BodyError::Closed => Reject { reply: Vec::new(), reason: "connection closed", status: 0 },
    }
}

/// The most bytes a chunked body's encoding may take before it is complete: twice
/// `max_frame` (chunk-size lines, extensions and CRLFs may double a body sent in small
/// chunks) plus `max_header` for trailers. Without it, 1-byte chunks with 1 KiB chunk
/// extensions would make the server buffer a thousand times `max_frame`.
pub(super) fn max_chunked_encoding(l: &Limits) -> usize {
    l.max_frame.saturating_mul(2).saturating_add(l.max_header)
}

/// Decodes a chunked body from `buf`: `Ok(Some((body, bytes used)))` once the last
/// chunk and trailers are in, `Ok(None)` if more is needed.
fn dechunk(buf: &[u8], limits: &Limits) -> Result<Option<(Vec<u8>, usize)>, Reject> {
    let incomplete = || {
        if buf.len() > max_chunked_encoding(limits) {
            Err(rejection(413, "chunked body encoding larger than 2 x max_frame + max_header"))
        } else {
            Ok(None)
        }
    };
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let (start, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete((n, size))) => (pos + n, size),
            Ok(httparse::Status::Partial) => {
                if buf.len() - pos > 1024 {
                    return Err(rejection(400, "chunk size line too long"));
                }
                return incomplete();
            }
            Err(_) => return Err(rejection(400, "invalid chunk size")),
        };
        if size == 0 {
            // Trailer fields, then an empty line; trailers are read and dropped.
            let mut p = start;
            loop {
                let rest = &buf[p..];
                let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                    if rest.len() > limits.max_header {
                        return Err(rejection(431, "trailers larger than max_header"));
                    }
                    return incomplete();
                };
                let line = &rest[..nl];
                p += nl + 1;
                if line.is_empty() || line == b"\r" {
                    return Ok(Some((body, p)));
                }
                if p - start > limits.max_header {
                    return Err(rejection(431, "trailers larger than max_header"));
                }
            }
        }
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if body.len().saturating_add(size) > limits.max_frame {
            return Err(rejection(413, "request body larger than max_frame"));
        }
        let Some(data) = buf.get(start..start.saturating_add(size)) else { return incomplete() };
        let after = start + size;
        match buf.get(after..after + 2) {
            Some(b"\r\n") => {}
            Some(_) => return Err(rejection(400, "chunk not followed by CRLF")),
            None => return incomplete(),
        }
        body.extend_from_slice(data);
        pos = after + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::decode_split;
    use super::super::{Decoded, Framer, Payload, Protocol};
    use super::*;
    use proptest::prelude::*;

    fn status_of(d: &Decoded) -> Option<String> {
        match d {
            Decoded::Reject(r) => Some(String::from_utf8_lossy(&r.reply[..12]).into_owned()),
            _ => None,
        }
    }

    fn one(input: &[u8], limits: &Limits) -> Decoded {
        Framer::new(Protocol::Http1).decode(input, limits)
    }

    #[test]
    fn get_keep_alive_and_close() {
        let l = Limits::default();
        match one(b"GET /a?x=1&us=5 HTTP/1.1\r\nHost: h\r\n\r\n", &l) {
            Decoded::Frame { used, payload: Payload::Http(h), ctx } => {
                assert_eq!(used, 37);
                assert_eq!(h.method(), "GET");
                assert_eq!(h.path_only(), "/a");
                assert_eq!(h.query("us"), Some("5"));
                assert_eq!(h.header("host"), Some(&b"h"[..]));
                assert!(!ctx.close);
            }
            other => panic!("{other:?}"),
        }
        match one(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", &l) {
            Decoded::Frame { ctx, .. } => assert!(ctx.close),
            other => panic!("{other:?}"),
        }
        match one(b"GET / HTTP/1.0\r\n\r\n", &l) {
            Decoded::Frame { ctx, .. } => assert!(ctx.close && ctx.http10),
            other => panic!("{other:?}"),
        }
        match one(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &l) {
            Decoded::Frame { ctx, .. } => assert!(!ctx.close),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_input_gets_its_status() {
        let l = Limits { max_header: 100, max_frame: 10, ..Limits::default() };
        assert_eq!(status_of(&one(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", &l)).unwrap(), "HTTP/1.1 400");
        assert_eq!(status_of(&one(&[b'a'; 101], &l)).unwrap(), "HTTP/1.1 431");
        assert_eq!(status_of(&one(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", &l)).unwrap(), "HTTP/1.1 413");
        assert_eq!(status_of(&one(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", &l)).unwrap(), "HTTP/1.1 501");
        assert_eq!(
            status_of(&one(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", &l)).unwrap(),
            "HTTP/1.1 400"
        );
        assert_eq!(
            status_of(&one(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nB\r\n0123456789A\r\n0\r\n\r\n", &l))
                .unwrap(),
            "HTTP/1.1 413"
        );
    }

    #[test]
    fn expect_continue_is_flagged_until_the_body_is_in() {
        let l = Limits::default();
        let head = b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(one(head, &l), Decoded::NeedMore { expect_continue: true }));
        let mut full = head.to_vec();
        full.extend_from_slice(b"abc");
        assert!(matches!(one(&full, &l), Decoded::Frame { .. }));
        let plain = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
        assert!(matches!(one(plain, &l), Decoded::NeedMore { expect_continue: false }));
    }

    #[test]
    fn encode_head_and_close() {
        let ctx = ReplyCtx { protocol: Protocol::Http1, close: true, http10: false, head: true };
        let out = encode(Response::new(200).header("x", "1").header("Content-Length", "99").body("hello"), &ctx);
        let text = String::from_utf8(out).unwrap();
        let (head, date) = text.split_once("date: ").unwrap();
        assert_eq!(head, "HTTP/1.1 200 OK\r\nx: 1\r\ncontent-length: 5\r\n");
        assert!(date.ends_with(" GMT\r\nconnection: close\r\n\r\n"), "{date}");
    }

    fn request(i: usize, chunked: bool) -> (String, String) {
        let body = "b".repeat(i % 7);
        let req = if body.is_empty() {
            format!("GET /r{i} HTTP/1.1\r\nHost: x\r\n\r\n")
        } else if chunked {
            let (a, b) = body.split_at(body.len() / 2);
            let mut s = format!("POST /r{i} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
            for part in [a, b] {
                if !part.is_empty() {
                    s += &format!("{:x}\r\n{part}\r\n", part.len());
                }
            }
            s + "0\r\nTrailer: t\r\n\r\n"
        } else {
            format!("POST /r{i} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len())
        };
        let method = if body.is_empty() { "GET" } else { "POST" };
        (req, format!("{method} /r{i} {body}"))
    }

    proptest! {
        #[test]
        fn pipelined_requests_survive_any_split(n in 1usize..12, chunked in any::<bool>(),
                                                cuts in proptest::collection::vec(0usize..2000, 0..10)) {
            let (stream, want): (Vec<String>, Vec<String>) = (0..n).map(|i| request(i, chunked)).unzip();
            let stream = stream.concat();
            let (got, rej) = decode_split(Protocol::Http1, stream.as_bytes(), &cuts, &Limits::default());
            prop_assert!(rej.is_none(), "{:?}", rej);
            prop_assert_eq!(got, want);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_split(Protocol::Http1, &bytes, &[], &Limits::default());
        }
    }
}
