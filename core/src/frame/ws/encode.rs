//! Encoders for what the server sends: data messages (compressed when agreed and worth
//! it), control frames, close frames. Server frames are never masked.

use super::{Kind, OpCode};

/// How a message may be compressed for one recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// No permessage-deflate on this socket.
    Off,
    /// Compress (each message on its own) with at most this window (9..=15).
    Deflate { window_bits: u8 },
}

/// Appends one data message as a single unfragmented frame. With `Deflate`, a payload
/// of at least a small threshold is compressed (a thread-local compressor, reset per
/// message, the trailing `00 00 ff ff` removed, RSV1 set) if that makes it smaller;
/// otherwise it goes uncompressed, which permessage-deflate always allows.
pub(crate) fn encode_message(out: &mut Vec<u8>, kind: Kind, payload: &[u8], compression: Compression) {
    let _ = (out, kind, payload, compression);
    todo!()
}

/// Appends a ping or pong (payload at most 125 bytes; longer is cut).
pub(crate) fn encode_control(out: &mut Vec<u8>, op: OpCode, payload: &[u8]) {
    let _ = (out, op, payload);
    todo!()
}

/// Appends a close frame with `code` and `reason` (cut at a char boundary to fit 123
/// bytes). Code 1005 means "no code": an empty close frame.
pub(crate) fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let _ = (out, code, reason);
    todo!()
}

/// Whether `code` may be sent in a close frame (RFC 6455 section 7.4: 1000-1003,
/// 1007-1014, 3000-4999) — used for both the client's codes and the app's.
pub(crate) fn valid_close_code(code: u16) -> bool {
    let _ = code;
    todo!()
}
