//! One upload on a blocking socket: the request head, a body generated from one fixed
//! buffer written again and again (a 1 GiB upload holds 256 KiB), as `Content-Length`
//! or `Transfer-Encoding: chunked`, then the response read and counted (interim 1xx
//! skipped; `Content-Length`, chunked or close-delimited bodies), never kept whole.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How much a write hands the kernel at once.
const WRITE: usize = 256 << 10;
/// How much of a response body is kept (to check a byte count the app answers).
const KEEP: usize = 64;
/// Long enough that only a stuck server trips it (64 uploads share the machine).
pub const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// Where uploads go: `http://host[:port][/path]`.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// The Host header.
    pub authority: String,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("{url:?}: give an http:// URL (https is not supported), e.g. http://127.0.0.1:8000/")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url:?} names no host"));
        }
        let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url:?}: cannot resolve {authority:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url:?}: {authority:?} resolves to no address"))?;
        Ok(Target { addr, authority: authority.to_string(), path: path.to_string() })
    }

    /// The same server, another path.
    pub fn with_path(&self, path: &str) -> Target {
        Target { path: path.to_string(), ..self.clone() }
    }
}

/// Why an upload did not succeed, short enough for a judge line (`failed(413)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server answered this non-2xx status (before or after the whole body), with
    /// the first bytes of its body.
    Status(u16, String),
    /// It answered 2xx before the body was all sent.
    Early(u16),
    /// The app's byte count (or the echo's length) is not what was sent.
    Short { sent: u64, got: u64 },
    /// The connection failed: refused, reset, closed mid-response, timed out.
    Io(String),
    /// The response was not HTTP/1.1 this client understands.
    Malformed(String),
}

impl Failure {
    /// A word for a judge line: `413`, `reset`, `short`.
    pub fn tag(&self) -> String {
        match self {
            Failure::Status(s, _) => s.to_string(),
            Failure::Early(s) => format!("early-{s}"),
            Failure::Short { .. } => "short".into(),
            Failure::Io(e) if e.contains("reset") => "reset".into(),
            Failure::Io(e) if e.contains("timed out") || e.contains("would block") => "timeout".into(),
            Failure::Io(e) if e.contains("refused") => "refused".into(),
            Failure::Io(_) => "closed".into(),
            Failure::Malformed(_) => "malformed".into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(s, text) if text.is_empty() => write!(f, "the server answered {s}"),
            Failure::Status(s, text) => write!(f, "the server answered {s}: {text:?}"),
            Failure::Early(s) => write!(f, "the server answered {s} before the whole body was sent"),
            Failure::Short { sent, got } => write!(f, "sent {sent} bytes but the app saw {got}"),
            Failure::Io(e) => write!(f, "connection failed: {e}"),
            Failure::Malformed(e) => write!(f, "malformed response: {e}"),
        }
    }
}

fn io(e: io::Error) -> Failure {
    Failure::Io(e.to_string())
}

/// What one request sends.
#[derive(Clone, Debug)]
pub struct Upload {
    pub method: &'static str,
    pub size: u64,
    /// `Some(n)`: `Transfer-Encoding: chunked`, `n`-byte chunks; `None`: `Content-Length`.
    pub chunk: Option<usize>,
    /// The reply must be `size` bytes long (an echo).
    pub expect_echo: bool,
    /// The reply must be the decimal number `size` (an app that counts what it read).
    pub expect_count: bool,
}

/// The bytes written for a body: the fixed buffer, or prebuilt chunk frames.
pub struct BodyWriter {
    head: Vec<u8>,
    /// Content-Length: `WRITE` bytes of `x`. Chunked: as many whole frames of `chunk` as fit.
    block: Vec<u8>,
    /// Body bytes one `block` carries.
    per_block: u64,
    /// Chunked: the last frame (if the size is not a multiple) and the terminating `0`.
    tail: Vec<u8>,
    size: u64,
    chunk: Option<usize>,
}

fn frame(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
    out.resize(out.len() + n, b'x');
    out.extend_from_slice(b"\r\n");
}

impl BodyWriter {
    pub fn new(target: &Target, up: &Upload) -> BodyWriter {
        let framing = match up.chunk {
            Some(_) => "Transfer-Encoding: chunked".to_string(),
            None => format!("Content-Length: {}", up.size),
        };
        let head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\n{framing}\r\n\r\n",
            up.method, target.path, target.authority
        )
        .into_bytes();
        let (block, per_block, tail) = match up.chunk {
            None => (vec![b'x'; WRITE], WRITE as u64, Vec::new()),
            Some(c) => {
                let c = c.max(1);
                let frames = ((WRITE / c).max(1) as u64).min(up.size / c as u64);
                let mut block = Vec::new();
                for _ in 0..frames {
                    frame(&mut block, c);
                }
                let per_block = frames * c as u64;
                let mut tail = Vec::new();
                let rest = if per_block == 0 { up.size } else { up.size % c as u64 };
                if rest > 0 {
                    frame(&mut tail, rest as usize);
                }
                tail.extend_from_slice(b"0\r\n\r\n");
                (block, per_block, tail)
            }
        };
        BodyWriter { head, block, per_block, tail, size: up.size, chunk: up.chunk }
    }

    fn write(&self, s: &mut TcpStream) -> io::Result<()> {
        s.write_all(&self.head)?;
        match self.chunk {
            None => {
                let mut left = self.size;
                while left > 0 {
                    let n = left.min(self.per_block) as usize;
                    s.write_all(&self.block[..n])?;
                    left -= n as u64;
                }
            }
            Some(c) => {
                // Whole blocks of frames, then the frames that do not fill a block.
                // (No whole frame fits: `per_block` is 0 and the tail holds the body.)
                let whole = self.size.checked_div(self.per_block).unwrap_or(0);
                for _ in 0..whole {
                    s.write_all(&self.block)?;
                }
                let frame_len = self.block.len() / (self.per_block / c as u64).max(1) as usize;
                let left_frames = self.size.checked_rem(self.per_block).unwrap_or(0) / c as u64;
                if left_frames > 0 {
                    s.write_all(&self.block[..frame_len * left_frames as usize])?;
                }
                s.write_all(&self.tail)?;
            }
        }
        Ok(())
    }
}

/// A read buffer over the socket.
struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Reader {
    fn new() -> Reader {
        Reader { buf: vec![0; 64 << 10], start: 0, end: 0 }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more; `Ok(false)` at the end of the stream.
    fn fill(&mut self, s: &mut TcpStream) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = s.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n > 0)
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
    }

    /// One CRLF-terminated line, without the CRLF.
    fn line(&mut self, s: &mut TcpStream) -> Result<String, Failure> {
        loop {
            if let Some(i) = self.data().windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.data()[..i]).into_owned();
                self.consume(i + 2);
                return Ok(line);
            }
            if self.data().len() > 16 << 10 {
                return Err(Failure::Malformed("a chunk-size or trailer line over 16 KiB".into()));
            }
            if !self.fill(s).map_err(io)? {
                return Err(Failure::Io("the server closed the connection mid-response".into()));
            }
        }
    }

    /// Takes `n` bytes, keeping the first `KEEP` of what `keep` holds so far.
    fn skip(&mut self, s: &mut TcpStream, mut n: u64, keep: &mut Vec<u8>) -> Result<(), Failure> {
        while n > 0 {
            if self.data().is_empty() && !self.fill(s).map_err(io)? {
                return Err(Failure::Io("the server closed the connection mid-response".into()));
            }
            let take = (self.data().len() as u64).min(n) as usize;
            let room = KEEP.saturating_sub(keep.len()).min(take);
            keep.extend_from_slice(&self.data()[..room]);
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }
}

/// A response, counted.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body_len: u64,
    /// The body's first bytes.
    pub prefix: Vec<u8>,
    /// The server closes after it.
    pub close: bool,
}

impl Reply {
    /// The body's first bytes as text, trimmed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.prefix).trim().to_string()
    }
}

/// A keep-alive connection that uploads one body after another.
pub struct Conn {
    stream: TcpStream,
    reader: Reader,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Result<Conn, Failure> {
        let stream = TcpStream::connect(addr).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        Ok(Conn { stream, reader: Reader::new() })
    }

    /// Sends one request with its body and reads the reply; `Ok` only for a 2xx reply
    /// that passes the upload's check.
    pub fn upload(&mut self, body: &BodyWriter, up: &Upload) -> Result<Reply, Failure> {
        if let Err(e) = body.write(&mut self.stream) {
            // The server may have answered (413) and closed: say what it answered.
            let _ = self.stream.set_read_timeout(Some(Duration::from_secs(2)));
            return Err(match self.read_reply(false) {
                Ok(r) if (200..300).contains(&r.status) => Failure::Early(r.status),
                Ok(r) => Failure::Status(r.status, r.text()),
                Err(_) => io(e),
            });
        }
        let reply = self.read_reply(up.method == "HEAD")?;
        if !(200..300).contains(&reply.status) {
            return Err(Failure::Status(reply.status, reply.text()));
        }
        if up.expect_echo && reply.body_len != up.size {
            return Err(Failure::Short { sent: up.size, got: reply.body_len });
        }
        if up.expect_count {
            let got = std::str::from_utf8(&reply.prefix).ok().and_then(|t| t.trim().parse::<u64>().ok());
            match got {
                Some(n) if n == up.size => {}
                Some(n) => return Err(Failure::Short { sent: up.size, got: n }),
                None => {
                    let text = String::from_utf8_lossy(&reply.prefix).into_owned();
                    return Err(Failure::Malformed(format!("the app should answer the byte count, not {text:?}")));
                }
            }
        }
        Ok(reply)
    }

    /// Reads one final response (after any 1xx).
    fn read_reply(&mut self, head_only: bool) -> Result<Reply, Failure> {
        let s = &mut self.stream;
        let r = &mut self.reader;
        loop {
            let (status, head_len, length, chunked, close) = loop {
                let mut headers = [httparse::EMPTY_HEADER; 64];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(r.data()) {
                    Ok(httparse::Status::Complete(n)) => {
                        let (mut length, mut chunked, mut close) = (None, false, false);
                        for h in resp.headers.iter() {
                            let v = std::str::from_utf8(h.value).unwrap_or("").trim();
                            if h.name.eq_ignore_ascii_case("content-length") {
                                length = Some(
                                    v.parse::<u64>()
                                        .map_err(|_| Failure::Malformed(format!("content-length {v:?}")))?,
                                );
                            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                                chunked = v.to_ascii_lowercase().ends_with("chunked");
                            } else if h.name.eq_ignore_ascii_case("connection") {
                                close = v.eq_ignore_ascii_case("close");
                            }
                        }
                        break (resp.code.unwrap_or(0), n, length, chunked, close || resp.version == Some(0));
                    }
                    Ok(httparse::Status::Partial) => {
                        if !r.fill(s).map_err(io)? {
                            return Err(Failure::Io("the server closed the connection without a response".into()));
                        }
                    }
                    Err(e) => return Err(Failure::Malformed(e.to_string())),
                }
            };
            r.consume(head_len);
            if (100..200).contains(&status) {
                continue;
            }
            let mut prefix = Vec::new();
            let mut body_len = 0;
            let bodiless = head_only || status == 204 || status == 304;
            if bodiless {
            } else if chunked {
                loop {
                    let line = r.line(s)?;
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let n =
                        u64::from_str_radix(hex, 16).map_err(|_| Failure::Malformed(format!("chunk size {hex:?}")))?;
                    if n == 0 {
                        while !r.line(s)?.is_empty() {}
                        break;
                    }
                    r.skip(s, n, &mut prefix)?;
                    body_len += n;
                    if !r.line(s)?.is_empty() {
                        return Err(Failure::Malformed("no CRLF after a chunk".into()));
                    }
                }
            } else if let Some(n) = length {
                r.skip(s, n, &mut prefix)?;
                body_len = n;
            } else {
                // Close-delimited.
                loop {
                    let have = r.data().len();
                    r.skip(s, have as u64, &mut prefix)?;
                    body_len += have as u64;
                    if !r.fill(s).map_err(io)? {
                        break;
                    }
                }
                return Ok(Reply { status, body_len, prefix, close: true });
            }
            return Ok(Reply { status, body_len, prefix, close });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(up: &Upload) -> Vec<u8> {
        // What BodyWriter sends, captured through a loopback pair.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let t = Target::parse(&format!("http://{}/up", l.local_addr().unwrap())).unwrap();
        let w = BodyWriter::new(&t, up);
        let reader = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap();
            all
        });
        let mut s = TcpStream::connect(t.addr).unwrap();
        w.write(&mut s).unwrap();
        drop(s);
        reader.join().unwrap()
    }

    fn dechunk(mut b: &[u8]) -> (Vec<u8>, usize) {
        let (mut out, mut frames) = (Vec::new(), 0);
        loop {
            let i = b.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap(), 16).unwrap();
            b = &b[i + 2..];
            if n == 0 {
                assert_eq!(b, b"\r\n", "the body ends with 0 CRLF CRLF");
                return (out, frames);
            }
            out.extend_from_slice(&b[..n]);
            assert_eq!(&b[n..n + 2], b"\r\n");
            b = &b[n + 2..];
            frames += 1;
        }
    }

    #[test]
    fn bodies_are_framed_exactly_for_every_size() {
        for size in [0u64, 1, 999, 16 << 10, 100_000, (WRITE as u64) * 3 + 17] {
            let up = Upload { method: "POST", size, chunk: None, expect_echo: false, expect_count: false };
            let all = written(&up);
            let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = String::from_utf8_lossy(&all[..head_end]).into_owned();
            assert!(
                head.starts_with("POST /up HTTP/1.1\r\n") && head.contains(&format!("Content-Length: {size}\r\n")),
                "{head}"
            );
            assert_eq!((all.len() - head_end) as u64, size);
            for chunk in [1000usize, 16 << 10, WRITE * 2] {
                if size > 300_000 && chunk == 1000 {
                    continue;
                }
                let up = Upload { chunk: Some(chunk), ..up.clone() };
                let all = written(&up);
                let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                assert!(String::from_utf8_lossy(&all[..head_end]).contains("Transfer-Encoding: chunked\r\n"));
                let (body, frames) = dechunk(&all[head_end..]);
                assert_eq!(body.len() as u64, size, "size {size} chunk {chunk}");
                assert!(body.iter().all(|&b| b == b'x'));
                assert_eq!(frames as u64, size.div_ceil(chunk as u64), "size {size} chunk {chunk}");
            }
        }
    }

    #[test]
    fn urls_parse_or_say_what_is_wrong() {
        let t = Target::parse("http://127.0.0.1:8080/up?x=1").unwrap();
        assert_eq!((t.addr.port(), t.authority.as_str(), t.path.as_str()), (8080, "127.0.0.1:8080", "/up?x=1"));
        assert_eq!(Target::parse("http://127.0.0.1:9").unwrap().path, "/");
        assert_eq!(Target::parse("http://localhost/").unwrap().addr.port(), 80);
        assert!(Target::parse("https://x/").unwrap_err().contains("http://"));
        assert!(Target::parse("http:///x").unwrap_err().contains("no host"));
    }
}
