//! Encoders for what the server sends: data messages (compressed when agreed and worth
//! it), control frames, close frames. Server frames are never masked, always final
//! (FIN set: the server sends every message as one frame) and use the shortest length
//! encoding.

use super::deflate;
use super::{Kind, OpCode};

/// How a message may be compressed for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// No permessage-deflate on this socket.
    Off,
    /// Compress (each message on its own) with at most this window (9..=15).
    Deflate { window_bits: u8 },
}

/// Payloads shorter than this go uncompressed: DEFLATE's block overhead and the cost of
/// a compressor call outweigh what a few dozen bytes could save.
pub(crate) const COMPRESS_MIN: usize = 64;

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
/// The longest control frame payload (RFC 6455 section 5.5).
const MAX_CONTROL: usize = 125;

/// Appends one data message as a single unfragmented frame. With `Deflate`, a payload
/// of at least a small threshold is compressed (a thread-local compressor, reset per
/// message, the trailing `00 00 ff ff` removed, RSV1 set) if that makes it smaller;
/// otherwise it goes uncompressed, which permessage-deflate always allows. True when it
/// was compressed.
pub(crate) fn encode_message(out: &mut Vec<u8>, kind: Kind, payload: &[u8], compression: Compression) -> bool {
    let op = match kind {
        Kind::Text => OpCode::Text,
        Kind::Binary => OpCode::Binary,
    } as u8;
    if let Compression::Deflate { window_bits: bits @ 9.. } = compression {
        if payload.len() >= COMPRESS_MIN && encode_compressed(out, op, payload, bits) {
            return true;
        }
    }
    head(out, FIN | op, payload.len());
    out.extend_from_slice(payload);
    false
}

/// Compresses after a gap as long as the longest header, then writes the header and
/// moves the compressed bytes up to it: the compressed length is not known before.
fn encode_compressed(out: &mut Vec<u8>, op: u8, payload: &[u8], bits: u8) -> bool {
    const GAP: usize = 10;
    let start = out.len();
    out.resize(start + GAP, 0);
    if !deflate::compress(payload, bits, out, payload.len() - 1) {
        out.truncate(start);
        return false;
    }
    let len = out.len() - start - GAP;
    let mut h = Vec::with_capacity(GAP);
    head(&mut h, FIN | RSV1 | op, len);
    out.copy_within(start + GAP.., start + h.len());
    out[start..start + h.len()].copy_from_slice(&h);
    out.truncate(start + h.len() + len);
    true
}

/// Appends a ping or pong (payload at most 125 bytes; longer is cut).
pub(crate) fn encode_control(out: &mut Vec<u8>, op: OpCode, payload: &[u8]) {
    let payload = &payload[..payload.len().min(MAX_CONTROL)];
    head(out, FIN | op as u8, payload.len());
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` (cut at a char boundary to fit 123
/// bytes). Code 1005 means "no code": an empty close frame.
pub(crate) fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    if code == 1005 {
        head(out, FIN | OpCode::Close as u8, 0);
        return;
    }
    let mut cut = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    head(out, FIN | OpCode::Close as u8, 2 + cut);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&reason.as_bytes()[..cut]);
}

/// Whether `code` may be sent in a close frame (RFC 6455 section 7.4: 1000-1003,
/// 1007-1014, 3000-4999) — used for both the client's codes and the app's.
pub(crate) fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What a client would send for one frame made here: the same frame masked with
/// `mask`. For the tests and the fuzz target, which feed the encoders' output back
/// through the (server-side) decoder. `frame` must be one whole frame from this module.
pub(crate) fn to_client_frame(frame: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let at = match frame[1] {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..at]);
    out[1] |= 0x80;
    out.extend_from_slice(&mask);
    out.extend(frame[at..].iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// An unmasked frame header: first byte, then the length in its shortest form.
fn head(out: &mut Vec<u8>, first: u8, len: usize) {
    out.push(first);
    if len <= MAX_CONTROL {
        out.push(len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        for (len, want) in [(0, vec![0x82, 0]), (125, vec![0x82, 125]), (126, vec![0x82, 126, 0, 126])] {
            let mut out = Vec::new();
            encode_message(&mut out, Kind::Binary, &vec![1; len], Compression::Off);
            assert_eq!(&out[..want.len()], &want[..]);
            assert_eq!(out.len(), want.len() + len);
        }
        let mut out = Vec::new();
        encode_message(&mut out, Kind::Text, &[b'a'; 65536], Compression::Off);
        assert_eq!(&out[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
        out.clear();
        encode_message(&mut out, Kind::Text, &[b'a'; 65535], Compression::Off);
        assert_eq!(&out[..4], &[0x81, 126, 0xff, 0xff]);
    }

    #[test]
    fn deflate_compresses_what_is_worth_it() {
        let text = "hello websocket ".repeat(20);
        let mut out = vec![9];
        encode_message(&mut out, Kind::Text, text.as_bytes(), Compression::Deflate { window_bits: 15 });
        assert_eq!(out[0], 9, "what was in `out` stays");
        assert_eq!(out[1], 0x80 | 0x40 | 1, "FIN, RSV1, text");
        assert_eq!(out[2] as usize, out.len() - 3);
        assert!(out.len() < text.len() / 2);
        // Short payloads, incompressible ones and windows under 9 go plain.
        for (payload, bits) in [(b"short".to_vec(), 15), (text.clone().into_bytes(), 8)] {
            let mut out = Vec::new();
            encode_message(&mut out, Kind::Binary, &payload, Compression::Deflate { window_bits: bits });
            assert_eq!(out[0], 0x82);
            assert_eq!(&out[out.len() - payload.len()..], &payload[..]);
        }
        let noise: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut out = Vec::new();
        encode_message(&mut out, Kind::Binary, &noise, Compression::Deflate { window_bits: 9 });
        assert!(out[0] == 0x82 || out.len() < noise.len() + 4, "compressed only if smaller");
    }

    #[test]
    fn control_and_close_frames() {
        let mut out = Vec::new();
        encode_control(&mut out, OpCode::Ping, &[1; 200]);
        assert_eq!(&out[..2], &[0x89, 125]);
        assert_eq!(out.len(), 127);
        out.clear();
        encode_close(&mut out, 1005, "ignored");
        assert_eq!(out, [0x88, 0]);
        out.clear();
        encode_close(&mut out, 1000, "bye");
        assert_eq!(out, [0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']);
        out.clear();
        // 61 two-byte chars are 122 bytes; the 62nd would cross 123.
        let long = "é".repeat(80);
        encode_close(&mut out, 4000, &long);
        assert_eq!(out[1], 2 + 122);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }

    #[test]
    fn close_codes() {
        for ok in [1000, 1001, 1002, 1003, 1007, 1010, 1011, 1014, 3000, 4999] {
            assert!(valid_close_code(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535] {
            assert!(!valid_close_code(bad), "{bad}");
        }
    }
}
