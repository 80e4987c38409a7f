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
