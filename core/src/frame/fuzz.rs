//! The fuzzing entry point, shared by the `cargo fuzz` targets (`fuzz/`) and the stable
//! property tests and corpus replay that `make test` runs (`core/tests/fuzz_corpus.rs`).
//!
//! Bytes in, as a connection would see them: the input is cut into pieces of 1 to 64
//! bytes, at points drawn from a hash of the input (the same input, the same cuts), each piece is appended to a buffer and decoded until
//! the framer wants more. Invariants: no panic; a frame consumes at least one byte and
//! no more than is buffered; and a framer that wants more never holds more than its
//! limits allow (memory stays bounded whatever a client sends). Small limits make the
//! bounds reachable by short inputs.

use super::{Decoded, Framer, Protocol};
use crate::config::Limits;

/// The limits fuzzing runs with.
pub fn limits() -> Limits {
    Limits { max_frame: 256, max_header: 256, ..Limits::default() }
}

/// The most a framer may buffer while it waits for more.
pub fn bound(p: Protocol, l: &Limits) -> usize {
    match p {
        Protocol::Raw => 0,
        Protocol::Lines => l.max_frame + 2,
        Protocol::Length => 4 + l.max_frame,
        // Head, then a chunked body's encoding (its chunk lines and trailers allowed for).
        Protocol::Http1 => l.max_header + super::http1::max_chunked_encoding(l),
    }
}

/// Feeds `data` to `p`'s framer. Returns the number of frames decoded, or what broke.
pub fn feed(p: Protocol, data: &[u8]) -> Result<usize, String> {
    let limits = limits();
    let framer = Framer::new(p);
    let cap = bound(p, &limits);
    // FNV-1a of the input seeds an xorshift that draws the piece lengths.
    let mut x = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)) | 1;
    let mut buf = Vec::new();
    let (mut pos, mut frames) = (0, 0);
    while pos < data.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (x % 64) as usize + 1;
        let end = (pos + n).min(data.len());
        buf.extend_from_slice(&data[pos..end]);
        pos = end;
        loop {
            match framer.decode(&buf, &limits) {
                Decoded::Frame { used, .. } => {
                    if used == 0 || used > buf.len() {
                        return Err(format!("{p:?}: a frame used {used} of {} buffered bytes", buf.len()));
                    }
                    buf.drain(..used);
                    frames += 1;
                }
                // Fuzzing decodes whole bodies (a streaming framer's heads are followed by
                // the body decoder, which has property tests of its own).
                Decoded::Head { .. } => return Err(format!("{p:?}: a head to stream from a whole-body framer")),
                Decoded::Reject(_) => return Ok(frames),
                Decoded::NeedMore { .. } => {
                    if buf.len() > cap {
                        return Err(format!("{p:?}: waits for more with {} bytes buffered (bound {cap})", buf.len()));
                    }
                    break;
                }
            }
        }
    }
    Ok(frames)
}

/// Feeds `data` to the HTTP framer of a handler that streams bodies, as its connection
/// would: heads are decoded by the framer, bodies by the body decoder with a small
/// window (taken at once, as a reader keeping up would). Invariants: no panic; a head or
/// a step uses no more than is buffered; the buffer waiting for more never holds more
/// than a head, a chunk-size line and the trailers allow. Returns the requests decoded.
pub fn feed_streaming(data: &[u8]) -> Result<usize, String> {
    use super::{BodyDecoder, BodyStep};
    let limits = Limits { body_window: 64, max_body: 4096, ..limits() };
    let framer = Framer::new(Protocol::Http1).streaming(true);
    let cap = limits.max_header + 1024 + limits.max_header;
    let mut x = data.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)) | 1;
    let mut buf: Vec<u8> = Vec::new();
    let mut body: Option<BodyDecoder> = None;
    let (mut pos, mut requests) = (0, 0);
    while pos < data.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let end = (pos + (x % 64) as usize + 1).min(data.len());
        buf.extend_from_slice(&data[pos..end]);
        pos = end;
        loop {
            if let Some(d) = body.as_mut() {
                match d.step(&buf, limits.body_window) {
                    Ok(BodyStep::Data { used, data: range }) => {
                        if used > buf.len() || range.end > used {
                            return Err(format!("a body step used {used} ({range:?}) of {} bytes", buf.len()));
                        }
                        buf.drain(..used);
                        if used == 0 {
                            break;
                        }
                    }
                    Ok(BodyStep::Done { used, .. }) => {
                        buf.drain(..used);
                        body = None;
                    }
                    Ok(BodyStep::NeedMore) => {
                        if buf.len() > cap {
                            return Err(format!("the body waits with {} bytes buffered (bound {cap})", buf.len()));
                        }
                        break;
                    }
                    Err(_) => return Ok(requests),
                }
                continue;
            }
            match framer.decode(&buf, &limits) {
                Decoded::Frame { used, .. } => {
                    if used == 0 || used > buf.len() {
                        return Err(format!("a frame used {used} of {} buffered bytes", buf.len()));
                    }
                    buf.drain(..used);
                    requests += 1;
                }
                Decoded::Head { used, body: framing, .. } => {
                    if used == 0 || used > buf.len() {
                        return Err(format!("a head used {used} of {} buffered bytes", buf.len()));
                    }
                    buf.drain(..used);
                    body = Some(BodyDecoder::new(framing, limits.max_body, limits.max_header));
                    requests += 1;
                }
                Decoded::Reject(_) => return Ok(requests),
                Decoded::NeedMore { .. } => {
                    if buf.len() > bound(Protocol::Http1, &limits) {
                        return Err(format!("waits for a head with {} bytes buffered", buf.len()));
                    }
                    break;
                }
            }
        }
    }
    Ok(requests)
}

/// Bytes into the websocket codec (the `ws` target in `fuzz/`). The first byte picks the
/// decoder's permessage-deflate parameters; the rest is fed as a client's stream, whole
/// and in pieces drawn from its hash, and both must give the same events. Every
/// message decoded goes back through `encode_message`, masked as a client would, and
/// must decode to itself. The input is also tried as an upgrade request and as a
/// `Sec-WebSocket-Extensions` value. Invariants: no panic (a failed assertion is a
/// bug), a decode step uses no more than it is given, a waiting decoder leaves at most
/// a control frame unconsumed, and a message never holds more than its limit.
pub fn ws(data: &[u8]) {
    use super::ws::{self, Compression, Deflate, OpCode};
    if let Decoded::Frame { payload: super::Payload::Http(req), .. } =
        Framer::new(Protocol::Http1).decode(data, &limits())
    {
        match ws::check(&req) {
            Some(Ok(offer)) => {
                let answer = ws::negotiate_deflate(&offer.extensions).map(|(_, a)| a);
                let protocol = offer.protocols().first().map(String::as_str);
                assert!(ws::accept_response(&offer.key, protocol, answer.as_deref(), &[]).ends_with(b"\r\n\r\n"));
            }
            Some(Err(ws::HandshakeError { status, .. })) => assert!(status == 400 || status == 426),
            None => {}
        }
    }
    if let Some((agreed, answer)) = ws::negotiate_deflate(&String::from_utf8_lossy(data)) {
        assert_eq!(ws::negotiate_deflate(&answer).map(|(d, _)| d), Some(agreed), "an answer negotiates to itself");
    }
    let Some((&flags, stream)) = data.split_first() else { return };
    let deflate = |bits| {
        (flags & 1 != 0).then_some(Deflate {
            client_no_context_takeover: flags & 2 != 0,
            client_max_window_bits: bits,
            server_max_window_bits: 15,
        })
    };
    let max = 1024;
    // zlib lets a distance reach past a small window into the output of the same
    // inflate call, so data that breaks the window the client promised may inflate or
    // fail depending on the split: the small windows are held to the invariants only.
    let _ = ws_decode(stream, deflate(8 + (flags >> 2) % 7), max, true);
    let deflate = deflate(15);
    let whole = ws_decode(stream, deflate, max, false);
    assert_eq!(whole, ws_decode(stream, deflate, max, true), "the same events whatever the split");
    for event in whole.0 {
        if let ws::Event::Message { kind, data } = event {
            let mut frame = Vec::new();
            let compression =
                if flags & 0x80 != 0 { Compression::Off } else { Compression::Deflate { window_bits: 15 } };
            ws::encode_message(&mut frame, kind, &data, compression);
            let back =
                Deflate { client_no_context_takeover: true, client_max_window_bits: 15, server_max_window_bits: 15 };
            let (events, fail) = ws_decode(&ws::to_client_frame(&frame, [1, 2, 3, 4]), Some(back), max, false);
            assert_eq!((events, fail), (vec![ws::Event::Message { kind, data }], None), "a message re-encoded");
        }
    }
    // Control frames out are cut to fit, and decode back as what was cut.
    let code = u16::from_le_bytes([flags, stream.first().copied().unwrap_or(0)]);
    let (mut out, reason) = (Vec::new(), String::from_utf8_lossy(stream));
    ws::encode_close(&mut out, code, &reason);
    let (events, fail) = ws_decode(&ws::to_client_frame(&out, [9, 8, 7, 6]), None, max, false);
    match (code, &events[..], fail) {
        (1005, [ws::Event::Close { code: None, .. }], None) => {}
        (c, [ws::Event::Close { code: Some(got), reason: r }], None) if ws::valid_close_code(c) => {
            assert!(*got == c && reason.starts_with(r.as_str()) && r.len() <= 123)
        }
        (c, [], Some(f)) if !ws::valid_close_code(c) => assert_eq!(f.code, 1002),
        other => panic!("close {code} decoded as {other:?}"),
    }
    let (mut out, cut) = (Vec::new(), stream[..stream.len().min(125)].to_vec());
    let (op, want) =
        if flags & 0x40 != 0 { (OpCode::Ping, ws::Event::Ping(cut)) } else { (OpCode::Pong, ws::Event::Pong(cut)) };
    ws::encode_control(&mut out, op, stream);
    assert_eq!(ws_decode(&ws::to_client_frame(&out, [5, 0, 0, 5]), None, max, false), (vec![want], None));
}

/// Decodes a client's stream whole or in hashed pieces: the events, and the failure
/// that ended it if any.
fn ws_decode(
    stream: &[u8],
    deflate: Option<super::ws::Deflate>,
    max: usize,
    split: bool,
) -> (Vec<super::ws::Event>, Option<super::ws::Fail>) {
    let mut d = super::ws::Decoder::new(max, deflate);
    let mut x = stream.iter().fold(0x2545_f491_4f6c_dd1du64, |h, &b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3)) | 1;
    let (mut buf, mut pos, mut events) = (Vec::new(), 0, Vec::new());
    while pos < stream.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let end = if split { (pos + (x % 64) as usize + 1).min(stream.len()) } else { stream.len() };
        buf.extend_from_slice(&stream[pos..end]);
        pos = end;
        loop {
            let (used, event) = match d.decode(&buf) {
                Ok(step) => step,
                Err(fail) => return (events, Some(fail)),
            };
            assert!(used <= buf.len(), "a decode step used {used} of {} bytes", buf.len());
            assert!(d.buffered() <= max, "a message holds {} bytes over its limit {max}", d.buffered());
            buf.drain(..used);
            match event {
                Some(e @ super::ws::Event::Close { .. }) => {
                    events.push(e);
                    return (events, None);
                }
                Some(e) => {
                    events.push(e);
                    d.shrink();
                }
                None => {
                    assert!(buf.len() <= super::ws::MOST_WAITING, "{} bytes wait for more", buf.len());
                    break;
                }
            }
        }
    }
    (events, None)
}
