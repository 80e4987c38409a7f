//! A request body read as a stream: the sans-IO decoder the connection feeds while a
//! streamed request's body arrives (`Content-Length` or `Transfer-Encoding: chunked`,
//! trailers included), one step at a time, never more than the room it is given.
//!
//! Like the framers it keeps no buffer: each step looks at the connection's unread
//! bytes, says how many it used and which of them are body data, and keeps only the
//! few numbers it needs between steps (bytes left, where it is in a chunk). So the
//! stream may be split anywhere and the data comes out the same.

use std::ops::Range;

/// How a streamed body is delimited on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// `Content-Length`: exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`, ended by the zero-size chunk and the trailers.
    Chunked,
}

/// Why a body could not be read to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The body is over `max_body`: answered `413`, the connection closes.
    TooLarge { limit: u64 },
    /// The chunked encoding is broken: answered `400`, the connection closes.
    Malformed(&'static str),
    /// The client sent too slowly (`body_timeout`, `min_body_rate`): answered `408`,
    /// the connection closes.
    TooSlow,
    /// The connection closed before the body's end (the client left, or shutdown).
    Closed,
}

impl BodyError {
    /// The error's code, the same in every front: Node's `err.code`, and the C status
    /// `CORRAL_STATUS_` + the part after `CORRAL_` (`CORRAL_STATUS_BODY_TOO_LARGE`).
    pub fn code(&self) -> &'static str {
        match self {
            BodyError::TooLarge { .. } => "CORRAL_BODY_TOO_LARGE",
            BodyError::Malformed(_) => "CORRAL_BODY_MALFORMED",
            BodyError::TooSlow => "CORRAL_BODY_TOO_SLOW",
            BodyError::Closed => "CORRAL_BODY_CLOSED",
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge { limit } => {
                write!(f, "the request body is larger than max_body ({limit} bytes); raise max_body to accept it")
            }
            BodyError::Malformed(why) => write!(f, "the request body's chunked encoding is malformed: {why}"),
            BodyError::TooSlow => f.write_str(
                "the client sent the request body slower than min_body_rate for longer than body_timeout; \
                 the request was cut with 408",
            ),
            BodyError::Closed => f.write_str("the connection closed before the request body ended"),
        }
    }
}

impl std::error::Error for BodyError {}

/// One step of [`BodyDecoder::step`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// `used` bytes were consumed; `data` (a range of the input, inside `..used`) is
    /// body data, possibly empty (a chunk-size line).
    Data { used: usize, data: Range<usize> },
    /// More input is needed before anything can be consumed.
    NeedMore,
    /// The body ended: `used` bytes consumed (the last CRLFs and the trailers).
    Done { used: usize, trailers: Vec<(String, Vec<u8>)> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data: this many bytes left.
    Data(u64),
    /// After a chunk's data: expecting CRLF.
    DataEnd,
}

/// Decodes a body incrementally. See the module doc.
#[derive(Debug)]
pub(crate) struct BodyDecoder {
    framing: BodyFraming,
    /// Length: bytes still to come. Chunked: where the decoder is.
    left: u64,
    chunk: Chunk,
    /// Body bytes decoded so far.
    total: u64,
    max_body: u64,
    max_header: usize,
}

/// A chunk-size line longer than this is refused (extensions included).
const MAX_SIZE_LINE: usize = 1024;

impl BodyDecoder {
    pub fn new(framing: BodyFraming, max_body: u64, max_header: usize) -> BodyDecoder {
        let left = match framing {
            BodyFraming::Length(n) => n,
            BodyFraming::Chunked => 0,
        };
        BodyDecoder { framing, left, chunk: Chunk::Size, total: 0, max_body, max_header }
    }

    /// Body bytes decoded so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The body's length when it was declared (`Content-Length`).
    pub fn length(&self) -> Option<u64> {
        match self.framing {
            BodyFraming::Length(n) => Some(n),
            BodyFraming::Chunked => None,
        }
    }

    /// One step over `buf` (the connection's unread bytes), handing out at most `room`
    /// bytes of data (`room` > 0).
    pub fn step(&mut self, buf: &[u8], room: usize) -> Result<Step, BodyError> {
        match self.framing {
            BodyFraming::Length(_) => {
                if self.left == 0 {
                    return Ok(Step::Done { used: 0, trailers: Vec::new() });
                }
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = (buf.len() as u64).min(self.left).min(room as u64) as usize;
                self.left -= n as u64;
                self.total += n as u64;
                Ok(Step::Data { used: n, data: 0..n })
            }
            BodyFraming::Chunked => self.step_chunked(buf, room),
        }
    }

    fn step_chunked(&mut self, buf: &[u8], room: usize) -> Result<Step, BodyError> {
        match self.chunk {
            Chunk::Size => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, 0))) => self.trailers(buf, used),
                Ok(httparse::Status::Complete((used, size))) => {
                    if self.total.saturating_add(size) > self.max_body {
                        return Err(BodyError::TooLarge { limit: self.max_body });
                    }
                    self.chunk = Chunk::Data(size);
                    Ok(Step::Data { used, data: used..used })
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_SIZE_LINE => {
                    Err(BodyError::Malformed("chunk size line too long"))
                }
                Ok(httparse::Status::Partial) => Ok(Step::NeedMore),
                Err(_) => Err(BodyError::Malformed("invalid chunk size")),
            },
            Chunk::Data(left) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = (buf.len() as u64).min(left).min(room as u64) as usize;
                self.total += n as u64;
                self.chunk = if left == n as u64 { Chunk::DataEnd } else { Chunk::Data(left - n as u64) };
                Ok(Step::Data { used: n, data: 0..n })
            }
            Chunk::DataEnd => match buf.get(..2) {
                Some(b"\r\n") => {
                    self.chunk = Chunk::Size;
                    Ok(Step::Data { used: 2, data: 2..2 })
                }
                Some(_) => Err(BodyError::Malformed("chunk not followed by CRLF")),
                None if buf.first().is_some_and(|&b| b != b'\r') => {
                    Err(BodyError::Malformed("chunk not followed by CRLF"))
                }
                None => Ok(Step::NeedMore),
            },
        }
    }

    /// After the zero-size chunk (`start` bytes of `buf`): trailer fields, then an
    /// empty line. Done only once all of them are in.
    fn trailers(&mut self, buf: &[u8], start: usize) -> Result<Step, BodyError> {
        let rest = &buf[start..];
        if rest.starts_with(b"\r\n") {
            return Ok(Step::Done { used: start + 2, trailers: Vec::new() });
        }
        let mut storage = [httparse::EMPTY_HEADER; 32];
        match httparse::parse_headers(rest, &mut storage) {
            Ok(httparse::Status::Complete((used, fields))) => {
                let trailers = fields
                    .iter()
                    .filter(|h| !h.name.is_empty())
                    .map(|h| (h.name.to_string(), h.value.to_vec()))
                    .collect();
                Ok(Step::Done { used: start + used, trailers })
            }
            Ok(httparse::Status::Partial) if rest.len() > self.max_header => {
                Err(BodyError::Malformed("trailers larger than max_header"))
            }
            Ok(httparse::Status::Partial) => Ok(Step::NeedMore),
            Err(_) => Err(BodyError::Malformed("invalid trailer field")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A decoded body: its bytes, its trailers, and the wire bytes used.
    type Decoded = (Vec<u8>, Vec<(String, Vec<u8>)>, usize);

    /// Feeds `wire` split at `cuts`, with at most `room` bytes of data per step, as a
    /// connection would; returns the body and trailers, or the error.
    fn run(framing: BodyFraming, wire: &[u8], cuts: &[usize], room: usize) -> Result<Decoded, BodyError> {
        let mut d = BodyDecoder::new(framing, 1 << 20, 8192);
        let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < wire.len()).collect();
        bounds.sort();
        bounds.push(wire.len());
        let (mut have, mut pos, mut body) = (0usize, 0usize, Vec::new());
        for b in bounds {
            have = b;
            loop {
                match d.step(&wire[pos..have], room)? {
                    Step::Data { used, data } => {
                        body.extend_from_slice(&wire[pos..have][data]);
                        pos += used;
                        if used == 0 {
                            break;
                        }
                    }
                    Step::NeedMore => break,
                    Step::Done { used, trailers } => return Ok((body, trailers, pos + used)),
                }
            }
        }
        let _ = have;
        Err(BodyError::Closed)
    }

    fn chunked(body: &[u8], sizes: &[usize], trailer: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = body;
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes.get(i).copied().unwrap_or(7).clamp(1, rest.len());
            out.extend_from_slice(format!("{n:x};ext=1\r\n").as_bytes());
            out.extend_from_slice(&rest[..n]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[n..];
            i += 1;
        }
        out.extend_from_slice(format!("0\r\n{trailer}\r\n").as_bytes());
        out
    }

    #[test]
    fn length_bodies_end_at_their_length() {
        let (body, trailers, used) = run(BodyFraming::Length(5), b"helloGET /", &[2], 3).unwrap();
        assert_eq!((body.as_slice(), trailers.len(), used), (&b"hello"[..], 0, 5));
    }

    #[test]
    fn chunked_bodies_carry_their_trailers() {
        let wire = chunked(b"hello world", &[5, 6], "Digest: x\r\nExpires: y\r\n");
        let (body, trailers, used) = run(BodyFraming::Chunked, &wire, &[], 4).unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(trailers, vec![("Digest".into(), b"x".to_vec()), ("Expires".into(), b"y".to_vec())]);
        assert_eq!(used, wire.len());
    }

    #[test]
    fn bad_chunks_and_big_bodies_are_refused() {
        assert_eq!(
            run(BodyFraming::Chunked, b"zz\r\n", &[], 10).unwrap_err(),
            BodyError::Malformed("invalid chunk size")
        );
        assert_eq!(
            run(BodyFraming::Chunked, b"3\r\nabcX", &[], 10).unwrap_err(),
            BodyError::Malformed("chunk not followed by CRLF")
        );
        let mut d = BodyDecoder::new(BodyFraming::Chunked, 10, 8192);
        assert_eq!(d.step(b"b\r\n", 100).unwrap_err(), BodyError::TooLarge { limit: 10 });
        let mut long_ext = b"1;".to_vec();
        long_ext.resize(2000, b'a');
        let mut d = BodyDecoder::new(BodyFraming::Chunked, 10, 8192);
        assert_eq!(d.step(&long_ext, 100).unwrap_err(), BodyError::Malformed("chunk size line too long"));
    }

    proptest! {
        #[test]
        fn any_split_and_room_give_the_same_body(body in proptest::collection::vec(any::<u8>(), 0..600),
                                                 sizes in proptest::collection::vec(1usize..90, 0..20),
                                                 cuts in proptest::collection::vec(0usize..800, 0..12),
                                                 room in 1usize..64) {
            let wire = chunked(&body, &sizes, "T: v\r\n");
            let (got, trailers, used) = run(BodyFraming::Chunked, &wire, &cuts, room).unwrap();
            prop_assert_eq!(&got, &body);
            prop_assert_eq!(trailers.len(), 1);
            prop_assert_eq!(used, wire.len());
            let (got, _, used) = run(BodyFraming::Length(body.len() as u64), &body, &cuts, room).unwrap();
            prop_assert_eq!(got, body.clone());
            prop_assert_eq!(used, body.len());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), room in 1usize..64) {
            let mut d = BodyDecoder::new(BodyFraming::Chunked, 1 << 20, 8192);
            let mut pos = 0;
            for _ in 0..1000 {
                match d.step(&bytes[pos..], room) {
                    Ok(Step::Data { used, .. }) if used > 0 => pos += used,
                    _ => break,
                }
            }
        }
    }
}
