//! Bytes into the `Raw` framer as a connection sees them: no panic, frames within what
//! was buffered, memory within the limits (see `corral::frame::fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = corral::frame::fuzz::feed(corral::Protocol::Raw, data) {
        panic!("{e}");
    }
});
