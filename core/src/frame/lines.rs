//! `Lines`: one request per line, LF or CRLF terminated; the terminator is removed.
//! A line longer than the limit (without its terminator) is refused and the
//! connection closed.

use super::{Decoded, Payload, Protocol, Reject, ReplyCtx};

pub(super) fn decode(buf: &[u8], max: usize) -> Decoded {
    // Look no further than one byte past the limit (plus CRLF): a longer line is bad
    // whether or not its end has arrived.
    let window = &buf[..buf.len().min(max.saturating_add(2))];
    match window.iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let end = if nl > 0 && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
            if end > max {
                return too_long();
            }
            Decoded::Frame {
                used: nl + 1,
                payload: Payload::Bytes(buf[..end].to_vec()),
                ctx: ReplyCtx { protocol: Protocol::Lines, ..Default::default() },
            }
        }
        None if buf.len() > max.saturating_add(1) => too_long(),
        // A lone trailing CR may still be the first half of the terminator.
        None if buf.len() == max + 1 && buf[max] != b'\r' => too_long(),
        None => Decoded::NeedMore { expect_continue: false },
    }
}

fn too_long() -> Decoded {
    Decoded::Reject(Reject { reply: Vec::new(), reason: "line longer than max_frame", status: 0 })
}

pub(super) fn encode(mut body: Vec<u8>) -> Vec<u8> {
    body.push(b'\n');
    body
}

#[cfg(test)]
mod tests {
    use super::super::testutil::decode_split;
    use super::super::Protocol;
    use crate::config::Limits;
    use proptest::prelude::*;

    fn limits(max: usize) -> Limits {
        Limits { max_frame: max, ..Limits::default() }
    }

    #[test]
    fn lf_and_crlf() {
        let (got, rej) = decode_split(Protocol::Lines, b"a\nbb\r\n\nccc", &[], &limits(10));
        assert_eq!(got, vec!["a", "bb", ""]);
        assert!(rej.is_none(), "ccc is incomplete, not bad");
    }

    #[test]
    fn too_long_is_refused_even_before_its_end() {
        let (got, rej) = decode_split(Protocol::Lines, b"ok\n0123456789X", &[], &limits(10));
        assert_eq!(got, vec!["ok"]);
        assert!(rej.is_some());
        let (got, rej) = decode_split(Protocol::Lines, b"0123456789\r\n", &[], &limits(10));
        assert_eq!(got, vec!["0123456789"], "exactly the limit is fine, CRLF included");
        assert!(rej.is_none());
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_lines(lines in proptest::collection::vec("[a-z]{0,12}", 0..20),
                                          crlf in any::<bool>(),
                                          cuts in proptest::collection::vec(0usize..400, 0..8)) {
            let term = if crlf { "\r\n" } else { "\n" };
            let stream: String = lines.iter().map(|l| format!("{l}{term}")).collect();
            let (got, rej) = decode_split(Protocol::Lines, stream.as_bytes(), &cuts, &limits(12));
            prop_assert!(rej.is_none());
            prop_assert_eq!(got, lines);
        }
    }
}
