//! The fuzzing entry point, shared by the `cargo fuzz` targets (`fuzz/`) and the stable
//! property tests and corpus replay that `make test` runs (`core/tests/fuzz_corpus.rs`).
//!
//! Bytes in, as a connection would see them: the input is cut into pieces of 1 to 64
//! bytes, at points drawn from a hash of the input (the same input, the same cuts), each piece is appended to a buffer and decoded until
//! the framer wants more. Invariants: no panic; a frame consumes at least one byte and
//! no more than is buffered; and a framer that wants more never holds more than its
//! limits allow (memory stays bounded whatever a client sends). Small limits make the
//! bounds reachable by short inputs.

use super::{Decoded, Framer, Protocol};
use crate::config::Limits;

/// The limits fuzzing runs with.
pub fn limits() -> Limits {
    Limits { max_frame: 256, max_header: 256, ..Limits::default() }
}

/// The most a framer may buffer while it waits for more.
pub fn bound(p: Protocol, l: &Limits) -> usize {
    match p {
        Protocol::Raw => 0,
        Protocol::Lines => l.max_frame + 2,
        Protocol::Length => 4 + l.max_frame,
        // Head, then a chunked body's encoding (its chunk lines and trailers allowed for).
        Protocol::Http1 => l.max_header + super::http1::max_chunked_encoding(l),
    }
}

/// Feeds `data` to `p`'s framer. Returns the number of frames decoded, or what broke.
pub fn feed(p: Protocol, data: &[u8]) -> Result<usize, String> {
    let limits = limits();
    let framer = Framer::new(p);
    let cap = bound(p, &limits);
    // FNV-1a of the input seeds an xorshift that draws the piece lengths.
    let mut x = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)) | 1;
    let mut buf = Vec::new();
    let (mut pos, mut frames) = (0, 0);
    while pos < data.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (x % 64) as usize + 1;
        let end = (pos + n).min(data.len());
        buf.extend_from_slice(&data[pos..end]);
        pos = end;
        loop {
            match framer.decode(&buf, &limits) {
                Decoded::Frame { used, .. } => {
                    if used == 0 || used > buf.len() {
                        return Err(format!("{p:?}: a frame used {used} of {} buffered bytes", buf.len()));
                    }
                    buf.drain(..used);
                    frames += 1;
                }
                // Fuzzing decodes whole bodies (a streaming framer's heads are followed by
                // the body decoder, which has property tests of its own).
                Decoded::Head { .. } => return Err(format!("{p:?}: a head to stream from a whole-body framer")),
                Decoded::Reject(_) => return Ok(frames),
                Decoded::NeedMore { .. } => {
                    if buf.len() > cap {
                        return Err(format!("{p:?}: waits for more with {} bytes buffered (bound {cap})", buf.len()));
                    }
                    break;
                }
            }
        }
    }
    Ok(frames)
}

/// Feeds `data` to the HTTP framer of a handler that streams bodies, as its connection
/// would: heads are decoded by the framer, bodies by the body decoder with a small
/// window (taken at once, as a reader keeping up would). Invariants: no panic; a head or
/// a step uses no more than is buffered; the buffer waiting for more never holds more
/// than a head, a chunk-size line and the trailers allow. Returns the requests decoded.
pub fn feed_streaming(data: &[u8]) -> Result<usize, String> {
    use super::{BodyDecoder, BodyStep};
    let limits = Limits { body_window: 64, max_body: 4096, ..limits() };
    let framer = Framer::new(Protocol::Http1).streaming(true);
    let cap = limits.max_header + 1024 + limits.max_header;
    let mut x = data.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)) | 1;
    let mut buf: Vec<u8> = Vec::new();
    let mut body: Option<BodyDecoder> = None;
    let (mut pos, mut requests) = (0, 0);
    while pos < data.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let end = (pos + (x % 64) as usize + 1).min(data.len());
        buf.extend_from_slice(&data[pos..end]);
        pos = end;
        loop {
            if let Some(d) = body.as_mut() {
                match d.step(&buf, limits.body_window) {
                    Ok(BodyStep::Data { used, data: range }) => {
                        if used > buf.len() || range.end > used {
                            return Err(format!("a body step used {used} ({range:?}) of {} bytes", buf.len()));
                        }
                        buf.drain(..used);
                        if used == 0 {
                            break;
                        }
                    }
                    Ok(BodyStep::Done { used, .. }) => {
                        buf.drain(..used);
                        body = None;
                    }
                    Ok(BodyStep::NeedMore) => {
                        if buf.len() > cap {
                            return Err(format!("the body waits with {} bytes buffered (bound {cap})", buf.len()));
                        }
                        break;
                    }
                    Err(_) => return Ok(requests),
                }
                continue;
            }
            match framer.decode(&buf, &limits) {
                Decoded::Frame { used, .. } => {
                    if used == 0 || used > buf.len() {
                        return Err(format!("a frame used {used} of {} buffered bytes", buf.len()));
                    }
                    buf.drain(..used);
                    requests += 1;
                }
                Decoded::Head { used, body: framing, .. } => {
                    if used == 0 || used > buf.len() {
                        return Err(format!("a head used {used} of {} buffered bytes", buf.len()));
                    }
                    buf.drain(..used);
                    body = Some(BodyDecoder::new(framing, limits.max_body, limits.max_header));
                    requests += 1;
                }
                Decoded::Reject(_) => return Ok(requests),
                Decoded::NeedMore { .. } => {
                    if buf.len() > bound(Protocol::Http1, &limits) {
                        return Err(format!("waits for a head with {} bytes buffered", buf.len()));
                    }
                    break;
                }
            }
        }
    }
    Ok(requests)
}
