//! WebSocket (RFC 6455) with permessage-deflate (RFC 7692), sans-IO: the handshake's
//! checks and answer, a frame decoder that turns a client's bytes into messages and
//! control frames, and the encoders for what the server sends. Like the HTTP/1 framer
//! it never touches a socket; the connection's websocket phase (`conn/ws.rs`) feeds it.
//!
//! Server side only: client frames must be masked, server frames are not. Compression
//! out is always without context takeover (each message compressed on its own), so a
//! published message is compressed once for every recipient and an idle socket keeps no
//! compressor; what the client asks about its own side is honoured.

mod decode;
mod deflate;
mod encode;
mod handshake;

pub(crate) use decode::{Decoder, Event, Fail, MOST_WAITING};
pub(crate) use encode::{encode_close, encode_control, encode_message, to_client_frame, valid_close_code, Compression};
pub use handshake::Offer;
pub(crate) use handshake::{accept_response, check, negotiate_deflate, HandshakeError};

/// What a data message holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// UTF-8 text (checked as it arrives).
    Text,
    Binary,
}

/// Frame opcodes (RFC 6455 section 5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpCode {
    Continuation = 0,
    Text = 1,
    Binary = 2,
    Close = 8,
    Ping = 9,
    Pong = 10,
}

/// permessage-deflate as agreed in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deflate {
    /// The client resets its compressor per message: the server's inflater keeps no
    /// window between messages.
    pub client_no_context_takeover: bool,
    /// The window the client compresses with (8..=15).
    pub client_max_window_bits: u8,
    /// The window the server may compress with (8..=15). Below 9 (zlib's least) the
    /// server sends every message uncompressed, which is always allowed.
    pub server_max_window_bits: u8,
}

#[cfg(test)]
mod tests {
    use crate::frame::fuzz;
    use proptest::prelude::*;

    fn corpus() -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ws");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        entries.map(|e| std::fs::read(e.unwrap().path()).unwrap()).collect()
    }

    /// The fuzz target's seeds (and whatever `cargo fuzz` kept) on stable.
    #[test]
    fn the_kept_corpus_replays_clean() {
        let inputs = corpus();
        assert!(inputs.len() >= 5, "fuzz/corpus/ws has its seeds");
        for data in inputs {
            fuzz::ws(&data);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_keep_the_fuzz_invariants(data in prop::collection::vec(any::<u8>(), 0..1024)) {
            fuzz::ws(&data);
        }

        #[test]
        fn mutated_seeds_keep_the_fuzz_invariants(
            seed in any::<prop::sample::Index>(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        ) {
            let inputs = corpus();
            let mut data = inputs[seed.index(inputs.len())].clone();
            for (at, b) in flips {
                let i = at.index(data.len());
                data[i] = b;
            }
            fuzz::ws(&data);
        }
    }
}
