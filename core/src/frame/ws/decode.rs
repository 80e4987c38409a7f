//! The frame decoder: a client's bytes in, messages and control frames out, with every
//! check RFC 6455 asks of a server (masking, reserved bits, opcodes, control frame
//! rules, fragmentation, UTF-8 as it arrives, close codes, the message limit) and
//! permessage-deflate's inflation.

use super::{Deflate, Kind};

/// What the decoder delivers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A whole data message (fragments joined, inflated, text checked).
    Message {
        kind: Kind,
        data: Vec<u8>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The client's close frame: its code (`None`: no payload, which the app sees as
    /// 1005) and reason (checked UTF-8).
    Close {
        code: Option<u16>,
        reason: String,
    },
}

/// A protocol failure: the close code to send (1002 protocol error, 1007 bad UTF-8,
/// 1009 over the limit) and a short reason for the close frame and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fail {
    pub code: u16,
    pub reason: &'static str,
}

/// The decoder of one connection.
pub(crate) struct Decoder {}

impl Decoder {
    /// `max_message`: the largest message (after inflation) in bytes (over it: 1009).
    /// `deflate`: the permessage-deflate parameters agreed, if any.
    pub fn new(max_message: usize, deflate: Option<Deflate>) -> Decoder {
        let _ = (max_message, deflate);
        todo!()
    }

    /// Consumes what it can of `buf` (the bytes not yet consumed) and returns how many
    /// bytes it used and at most one event; `(0, None)` (or `(n, None)`) means it needs
    /// more bytes. Payloads of data frames are consumed as they arrive, even part of a
    /// frame (unmasked, inflated and UTF-8-checked on the way), so invalid text fails
    /// before its message ends and nothing but the frame header waits for more bytes.
    /// After an `Err` or a `Close` event the decoder must not be fed again.
    pub fn decode(&mut self, buf: &[u8]) -> Result<(usize, Option<Event>), Fail> {
        let _ = buf;
        todo!()
    }

    /// Bytes held in an unfinished message (for memory accounting).
    pub fn buffered(&self) -> usize {
        todo!()
    }

    /// Between messages: gives back buffers and (without context takeover) the
    /// inflater, so an idle socket holds no more than the decoder itself.
    pub fn shrink(&mut self) {
        todo!()
    }
}
