//! Bytes into the websocket codec: a client's stream through the decoder (with and
//! without permessage-deflate, whole and split), messages back through the encoder,
//! and the input as an upgrade request and an extensions offer (see
//! `corral::frame::fuzz::ws`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    corral::frame::fuzz::ws(data);
});
