//! Bytes into the `Http1` framer of a handler that streams bodies, heads then bodies
//! through the body decoder, as a connection sees them (see
//! `corral::frame::fuzz::feed_streaming`). Its corpus is `http1`'s.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = corral::frame::fuzz::feed_streaming(data) {
        panic!("{e}");
    }
});
