//! `Length`: a big-endian `u32` byte count, then the payload. A frame over the limit
//! is refused as soon as its header arrives, before its payload is buffered.

use super::{Decoded, Payload, Protocol, Reject, ReplyCtx};

pub(super) fn decode(buf: &[u8], max: usize) -> Decoded {
    let Some(hdr) = buf.get(..4) else {
        return Decoded::NeedMore { expect_continue: false };
    };
    let len = u32::from_be_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    if len > max {
        return Decoded::Reject(Reject { reply: Vec::new(), reason: "frame larger than max_frame", status: 0 });
    }
    match buf.get(4..4 + len) {
        Some(body) => Decoded::Frame {
            used: 4 + len,
            payload: Payload::Bytes(body.to_vec()),
            ctx: ReplyCtx { protocol: Protocol::Length, ..Default::default() },
        },
        None => Decoded::NeedMore { expect_continue: false },
    }
}

pub(super) fn encode(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::super::testutil::decode_split;
    use super::super::Protocol;
    use super::encode;
    use crate::config::Limits;
    use proptest::prelude::*;

    fn limits(max: usize) -> Limits {
        Limits { max_frame: max, ..Limits::default() }
    }

    #[test]
    fn oversized_is_refused_from_the_header() {
        let (got, rej) = decode_split(Protocol::Length, &[0, 0, 1, 0], &[], &limits(255));
        assert!(got.is_empty());
        assert_eq!(rej.unwrap().reason, "frame larger than max_frame");
    }

    #[test]
    fn empty_frame() {
        let (got, rej) = decode_split(Protocol::Length, &[0, 0, 0, 0], &[], &limits(4));
        assert_eq!(got, vec![""]);
        assert!(rej.is_none());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_frames(frames in proptest::collection::vec("[ -~]{0,40}", 0..16),
                                           cuts in proptest::collection::vec(0usize..800, 0..8)) {
            let stream: Vec<u8> = frames.iter().flat_map(|f| encode(f.as_bytes().to_vec())).collect();
            let (got, rej) = decode_split(Protocol::Length, &stream, &cuts, &limits(40));
            prop_assert!(rej.is_none());
            prop_assert_eq!(got, frames);
        }
    }
}
