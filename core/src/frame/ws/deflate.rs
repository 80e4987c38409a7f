//! permessage-deflate's raw DEFLATE streams (flate2 over zlib-rs): the inflater a
//! decoder keeps and the thread-local compressor the encoder uses.
//!
//! Invariants: the inflater never appends more than the caller's limit to a message
//! (output goes through a fixed stack buffer and is cut at the limit, so a deflate bomb
//! costs at most the limit); on failure, what was inflated before it is appended; the compressor is reset before every message,
//! so what it sends never refers to an earlier message (no context takeover out).

use std::cell::RefCell;

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

/// RFC 7692 section 7.2.1: a sync flush ends every message with these four bytes,
/// which the sender removes and the receiver puts back before it inflates the end.
pub(super) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// zlib's smallest window. A peer that asked for 8 bits is inflated with 9 (a larger
/// window reads anything a smaller one wrote), and the server never compresses with 8.
const MIN_BITS: u8 = 9;

/// The compression level out: messages are compressed one by one without context, and
/// the fast level keeps most of the gain on the small messages websockets carry.
const LEVEL: u32 = 1;

/// Why inflating failed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum InflateError {
    /// Not a valid DEFLATE stream.
    Corrupt,
    /// The message grew past the limit.
    TooBig,
}

/// A decoder's inflater: one raw DEFLATE stream whose window carries over between
/// messages unless the client compresses without context takeover.
pub(super) struct Inflater {
    z: Decompress,
    /// The client ended its stream with a final block: what follows in this message
    /// is ignored, and the stream starts afresh with the next one.
    ended: bool,
    /// Some of this message's compressed bytes were inflated.
    fed: bool,
}

impl Inflater {
    pub fn new(window_bits: u8) -> Inflater {
        Inflater {
            z: Decompress::new_with_window_bits(false, window_bits.clamp(MIN_BITS, 15)),
            ended: false,
            fed: false,
        }
    }

    /// Inflates part of a message's compressed bytes onto `out`, which may not grow
    /// past `limit` bytes. On an error, `out` holds what was inflated before it.
    pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
        self.fed |= !input.is_empty();
        self.run(input, out, limit, FlushDecompress::None)
    }

    /// Ends a message: inflates the removed tail with a sync flush, so every byte of
    /// the message is out, and starts a fresh stream if `reset` (no context takeover)
    /// or if the client's stream ended. A message with no compressed bytes at all is
    /// empty, and its tail is not inflated: alone it would leave the stream inside a
    /// stored block.
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize, reset: bool) -> Result<(), InflateError> {
        if std::mem::take(&mut self.fed) {
            self.run(&TAIL, out, limit, FlushDecompress::Sync)?;
        }
        if reset || self.ended {
            self.z.reset(false);
            self.ended = false;
        }
        Ok(())
    }

    fn run(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        flush: FlushDecompress,
    ) -> Result<(), InflateError> {
        let mut chunk = [0u8; 8192];
        while !self.ended {
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self.z.decompress(input, &mut chunk, flush);
            let used = (self.z.total_in() - in0) as usize;
            let made = (self.z.total_out() - out0) as usize;
            input = &input[used..];
            // What came out before a failure is kept (up to the limit), so the caller
            // can check it first: the failure found first in byte order wins, however
            // the input was split.
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&chunk[..made.min(room)]);
            if made > room {
                return Err(InflateError::TooBig);
            }
            self.ended = status.map_err(|_| InflateError::Corrupt)? == Status::StreamEnd;
            // Done when the input is in and the output did not fill the chunk (inflate
            // only stops short of a full chunk when it has nothing more to give), or
            // when no progress is possible.
            if (input.is_empty() && made < chunk.len()) || (used == 0 && made == 0) {
                break;
            }
        }
        Ok(())
    }
}

thread_local! {
    /// One compressor per window size used on this thread (index: bits - 9), made on
    /// first use and reset per message. Each holds a few hundred KiB at 15 bits; a
    /// thread rarely sees more than one size.
    static COMPRESSORS: RefCell<[Option<Compress>; 7]> = const { RefCell::new([None, None, None, None, None, None, None]) };
}

/// Appends `payload` compressed as one permessage-deflate message (sync-flushed, the
/// trailing `00 00 ff ff` removed) to `out`, unless that would take more than `most`
/// bytes: then `out` is left as it was and `false` returned. `window_bits`: 9..=15.
pub(super) fn compress(payload: &[u8], window_bits: u8, out: &mut Vec<u8>, most: usize) -> bool {
    let bits = window_bits.clamp(MIN_BITS, 15);
    COMPRESSORS.with(|c| {
        let mut all = c.borrow_mut();
        let z = all[(bits - MIN_BITS) as usize]
            .get_or_insert_with(|| Compress::new_with_window_bits(flate2::Compression::new(LEVEL), false, bits));
        z.reset();
        let ok = compress_with(z, payload, out, most);
        if !ok {
            // A partial stream is left behind: the next message resets it anyway.
            z.reset();
        }
        ok
    })
}

fn compress_with(z: &mut Compress, payload: &[u8], out: &mut Vec<u8>, most: usize) -> bool {
    let start = out.len();
    out.reserve(payload.len().min(most) + 16);
    let mut input = payload;
    loop {
        let in0 = z.total_in();
        if z.compress_vec(input, out, FlushCompress::Sync).is_err() {
            out.truncate(start);
            return false;
        }
        input = &input[(z.total_in() - in0) as usize..];
        // The tail is still on: allow for it in the size check.
        if out.len() - start > most + TAIL.len() {
            out.truncate(start);
            return false;
        }
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
        out.reserve(4096);
    }
    if !out.ends_with(&TAIL) {
        out.truncate(start);
        return false;
    }
    out.truncate(out.len() - TAIL.len());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_text_inflates_back() {
        let text = "the quick brown fox jumps over the lazy dog; ".repeat(50);
        let mut packed = Vec::new();
        assert!(compress(text.as_bytes(), 15, &mut packed, text.len()));
        assert!(packed.len() < text.len() / 5, "{} bytes", packed.len());
        let mut inf = Inflater::new(15);
        let mut out = Vec::new();
        inf.inflate(&packed, &mut out, 1 << 20).unwrap();
        inf.finish(&mut out, 1 << 20, false).unwrap();
        assert_eq!(out, text.as_bytes());
    }

    #[test]
    fn incompressible_data_over_the_budget_is_refused() {
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut out = vec![7u8];
        assert!(!compress(&noise, 12, &mut out, noise.len() - 1));
        assert_eq!(out, [7]);
    }

    #[test]
    fn inflating_stops_at_the_limit() {
        let zeros = vec![0u8; 1 << 20];
        let mut packed = Vec::new();
        assert!(compress(&zeros, 15, &mut packed, zeros.len()));
        let mut inf = Inflater::new(15);
        let mut out = Vec::new();
        let r = inf.inflate(&packed, &mut out, 100_000).and_then(|_| inf.finish(&mut out, 100_000, true));
        assert_eq!(r, Err(InflateError::TooBig));
        assert!(out.len() <= 100_000);
    }

    #[test]
    fn garbage_is_corrupt() {
        let mut inf = Inflater::new(15);
        let mut out = Vec::new();
        let r = inf.inflate(&[0xff; 32], &mut out, 1 << 20).and_then(|_| inf.finish(&mut out, 1 << 20, true));
        assert_eq!(r, Err(InflateError::Corrupt));
    }
}
