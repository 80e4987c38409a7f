//! The fuzz targets on the stable toolchain: every input kept in `fuzz/corpus/` (seeds,
//! and whatever `cargo fuzz` found worth keeping) is replayed, and property tests feed
//! random and mutated inputs through the same entry point (`corral::frame::fuzz::feed`).

use std::path::Path;

use corral::frame::fuzz::{feed, feed_streaming};
use corral::Protocol;
use proptest::prelude::*;

const TARGETS: [(&str, Protocol); 4] =
    [("http1", Protocol::Http1), ("lines", Protocol::Lines), ("length", Protocol::Length), ("raw", Protocol::Raw)];

#[test]
fn the_kept_corpus_replays_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut replayed = 0;
    for (dir, p) in TARGETS {
        let entries = std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("fuzz/corpus/{dir}: {e}"));
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            if let Err(e) = feed(p, &data) {
                panic!("{}: {e}", path.display());
            }
            if p == Protocol::Http1 {
                if let Err(e) = feed_streaming(&data) {
                    panic!("{} (streaming bodies): {e}", path.display());
                }
            }
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len(), "the corpus has inputs for every target");
}

/// Known-good requests to mutate, so the properties reach past the first parse error.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n".to_vec(),
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        b"line one\nline two\r\n".to_vec(),
        b"\x00\x00\x00\x03abc".to_vec(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_keep_every_invariant(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for (_, p) in TARGETS {
            prop_assert!(feed(p, &data).is_ok(), "{:?}: {:?}", p, feed(p, &data));
        }
        prop_assert!(feed_streaming(&data).is_ok(), "{:?}", feed_streaming(&data));
    }

    #[test]
    fn mutated_requests_keep_every_invariant(
        seed in 0usize..5,
        repeat in 1usize..40,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        splice in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut data: Vec<u8> = seeds()[seed].repeat(repeat);
        for (at, b) in flips {
            let n = data.len();
            data[at % n] = b;
        }
        let mid = data.len() / 2;
        data.splice(mid..mid, splice);
        for (_, p) in TARGETS {
            prop_assert!(feed(p, &data).is_ok(), "{:?}: {:?}", p, feed(p, &data));
        }
        prop_assert!(feed_streaming(&data).is_ok(), "{:?}", feed_streaming(&data));
    }

    /// Chunked bodies of tiny chunks with long extensions: what a client may make the
    /// server buffer stays bounded.
    #[test]
    fn chunk_extensions_cannot_inflate_the_buffer(chunks in 1usize..400, ext in 0usize..1000) {
        let mut data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..chunks {
            data.extend_from_slice(format!("1;{}\r\nX\r\n", "e".repeat(ext)).as_bytes());
        }
        prop_assert!(feed(Protocol::Http1, &data).is_ok(), "{:?}", feed(Protocol::Http1, &data));
        prop_assert!(feed_streaming(&data).is_ok(), "{:?}", feed_streaming(&data));
    }
}

#[test]
fn the_kept_proxy_corpus_replays_clean_and_random_headers_keep_the_invariants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/proxy");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        corral::fuzz_proxy(&std::fs::read(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 2, "the proxy corpus has its seeds");
    proptest!(ProptestConfig::with_cases(2000), |(data in proptest::collection::vec(any::<u8>(), 0..600))| {
        prop_assert!(corral::fuzz_proxy(&data).is_ok(), "{:?}", corral::fuzz_proxy(&data));
    });
}
