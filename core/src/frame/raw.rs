//! `Raw`: whatever has arrived is one request.

use super::{Decoded, Payload, Protocol, ReplyCtx};

pub(super) fn decode(buf: &[u8]) -> Decoded {
    if buf.is_empty() {
        return Decoded::NeedMore { expect_continue: false };
    }
    Decoded::Frame {
        used: buf.len(),
        payload: Payload::Bytes(buf.to_vec()),
        ctx: ReplyCtx { protocol: Protocol::Raw, ..Default::default() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_everything() {
        match decode(b"abc") {
            Decoded::Frame { used, payload: Payload::Bytes(b), .. } => {
                assert_eq!(used, 3);
                assert_eq!(b, b"abc");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(decode(b""), Decoded::NeedMore { expect_continue: false }));
    }
}
