//! Bytes as a connection's first bytes on a PROXY-protocol listener: no panic, a header
//! never claims more than is there, a prefix of a valid header is never refused, and
//! waiting is bounded (see `corral::fuzz_proxy`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = corral::fuzz_proxy(data) {
        panic!("{e}");
    }
});
