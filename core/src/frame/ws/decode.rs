//! The frame decoder: a client's bytes in, messages and control frames out, with every
//! check RFC 6455 asks of a server (masking, reserved bits, opcodes, control frame
//! rules, fragmentation, UTF-8 as it arrives, close codes, the message limit) and
//! permessage-deflate's inflation.
//!
//! Invariants: a data frame's payload is consumed as it arrives (unmasked into the
//! message, or inflated into it), so only a frame header, or a control frame (at most
//! 139 bytes), ever waits in the caller's buffer; the message never holds more than
//! `max_message` bytes; `data[..valid]` of a text message is checked UTF-8 and what
//! follows it is at most an unfinished character. Each call returns at most one event,
//! and the events do not depend on how the stream was split into calls.

use super::deflate::{InflateError, Inflater};
use super::{valid_close_code, Deflate, Kind, OpCode};

/// What the decoder delivers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A whole data message (fragments joined, inflated, text checked).
    Message {
        kind: Kind,
        data: Vec<u8>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The client's close frame: its code (`None`: no payload, which the app sees as
    /// 1005) and reason (checked UTF-8).
    Close {
        code: Option<u16>,
        reason: String,
    },
}

/// A protocol failure: the close code to send (1002 protocol error, 1007 bad UTF-8,
/// 1009 over the limit) and a short reason for the close frame and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fail {
    pub code: u16,
    pub reason: &'static str,
}

const fn protocol(reason: &'static str) -> Fail {
    Fail { code: 1002, reason }
}
const BAD_UTF8: Fail = Fail { code: 1007, reason: "text message is not valid UTF-8" };
const TOO_BIG: Fail = Fail { code: 1009, reason: "message too big" };

/// The most bytes the decoder leaves unconsumed while it waits for more: a control
/// frame (6 header bytes and 125 of payload) less one byte.
pub(crate) const MOST_WAITING: usize = 6 + 125 - 1;

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV23: u8 = 0x30;
const MASKED: u8 = 0x80;

/// The data frame whose payload is arriving.
struct Frame {
    /// Payload bytes still to come.
    left: u64,
    /// The mask, rotated so that `mask[0]` applies to the next payload byte.
    mask: [u8; 4],
    fin: bool,
}

/// The decoder of one connection.
pub(crate) struct Decoder {
    max_message: usize,
    /// The message being received, unmasked and inflated; taken when it is delivered.
    data: Vec<u8>,
    /// `data[..valid]` is checked UTF-8 (text messages).
    valid: usize,
    frame: Option<Frame>,
    /// Made on the first compressed message, boxed to keep idle decoders small.
    inflater: Option<Box<Inflater>>,
    deflate: Option<Deflate>,
    /// The message in progress (its first frame is in).
    kind: Option<Kind>,
    compressed: bool,
}

impl Decoder {
    /// `max_message`: the largest message (after inflation) in bytes (over it: 1009).
    /// `deflate`: the permessage-deflate parameters agreed, if any.
    pub fn new(max_message: usize, deflate: Option<Deflate>) -> Decoder {
        Decoder {
            max_message,
            data: Vec::new(),
            valid: 0,
            frame: None,
            inflater: None,
            deflate,
            kind: None,
            compressed: false,
        }
    }

    /// Consumes what it can of `buf` (the bytes not yet consumed) and returns how many
    /// bytes it used and at most one event; `(0, None)` (or `(n, None)`) means it needs
    /// more bytes. Payloads of data frames are consumed as they arrive, even part of a
    /// frame (unmasked, inflated and UTF-8-checked on the way), so invalid text fails
    /// before its message ends and nothing but the frame header waits for more bytes.
    /// After an `Err` or a `Close` event the decoder must not be fed again.
    pub fn decode(&mut self, buf: &[u8]) -> Result<(usize, Option<Event>), Fail> {
        let mut used = 0;
        loop {
            if let Some(f) = &self.frame {
                let n = (buf.len() - used).min(usize::try_from(f.left).unwrap_or(usize::MAX));
                if n == 0 && f.left > 0 {
                    return Ok((used, None));
                }
                self.payload(&buf[used..used + n])?;
                used += n;
                match self.frame.take() {
                    Some(f) if f.left > 0 => {
                        self.frame = Some(f);
                        return Ok((used, None));
                    }
                    Some(Frame { fin: true, .. }) => return Ok((used, Some(self.end_message()?))),
                    _ => continue,
                }
            }
            match self.header(&buf[used..])? {
                None => return Ok((used, None)),
                Some((n, event)) => {
                    used += n;
                    if event.is_some() {
                        return Ok((used, event));
                    }
                }
            }
        }
    }

    /// Bytes held in an unfinished message (for memory accounting).
    pub fn buffered(&self) -> usize {
        self.data.len()
    }

    /// Between messages: gives back buffers and (without context takeover) the
    /// inflater, so an idle socket holds no more than the decoder itself. In the middle
    /// of a message it keeps what the message needs.
    pub fn shrink(&mut self) {
        if self.kind.is_some() {
            return;
        }
        self.data = Vec::new();
        if self.deflate.map_or(true, |d| d.client_no_context_takeover) {
            self.inflater = None;
        }
    }

    /// Reads a frame header at the start of `buf`: `None` until it is all there (and,
    /// for a control frame, its payload too). A data frame becomes `self.frame`, and
    /// its header's length is returned with no event; a control frame is returned
    /// whole. Each check runs as soon as its byte is in.
    fn header(&mut self, buf: &[u8]) -> Result<Option<(usize, Option<Event>)>, Fail> {
        let Some(&b0) = buf.first() else { return Ok(None) };
        let (fin, rsv1) = (b0 & FIN != 0, b0 & RSV1 != 0);
        if b0 & RSV23 != 0 {
            return Err(protocol("reserved bits RSV2/RSV3 set"));
        }
        let op = opcode(b0 & 0x0f).ok_or(protocol("reserved opcode"))?;
        match op {
            OpCode::Continuation if self.kind.is_none() => {
                return Err(protocol("continuation frame without a message to continue"))
            }
            OpCode::Text | OpCode::Binary if self.kind.is_some() => {
                return Err(protocol("new data frame inside a fragmented message"))
            }
            _ => {}
        }
        let control = matches!(op, OpCode::Close | OpCode::Ping | OpCode::Pong);
        if control && !fin {
            return Err(protocol("fragmented control frame"));
        }
        if rsv1 && (self.deflate.is_none() || op == OpCode::Continuation || control) {
            return Err(protocol("RSV1 set without a compressed message starting"));
        }
        let Some(&b1) = buf.get(1) else { return Ok(None) };
        if b1 & MASKED == 0 {
            return Err(protocol("client frames must be masked"));
        }
        let (len, at) = match b1 & 0x7f {
            n if control && n > 125 => return Err(protocol("control frame payload over 125 bytes")),
            126 => match buf.get(2..4) {
                Some(b) => (u16::from_be_bytes([b[0], b[1]]) as u64, 4),
                None => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(b) => (u64::from_be_bytes(b.try_into().expect("8 bytes")), 10),
                None => return Ok(None),
            },
            n => (n as u64, 2),
        };
        if len >> 63 != 0 {
            return Err(protocol("payload length with the top bit set"));
        }
        let Some(m) = buf.get(at..at + 4) else { return Ok(None) };
        let mask: [u8; 4] = m.try_into().expect("4 bytes");
        let at = at + 4;
        if control {
            let Some(p) = buf.get(at..at + len as usize) else { return Ok(None) };
            let mut payload = p.to_vec();
            unmask(&mut payload, mask);
            return Ok(Some((at + payload.len(), Some(control_event(op, payload)?))));
        }
        if op != OpCode::Continuation {
            self.kind = Some(if op == OpCode::Text { Kind::Text } else { Kind::Binary });
            self.compressed = rsv1;
            self.valid = 0;
        }
        if !self.compressed && (self.data.len() as u64).saturating_add(len) > self.max_message as u64 {
            return Err(TOO_BIG);
        }
        self.frame = Some(Frame { left: len, mask, fin });
        Ok(Some((at, None)))
    }

    /// Takes in part of a data frame's payload (at most what is left of the frame).
    fn payload(&mut self, chunk: &[u8]) -> Result<(), Fail> {
        let f = self.frame.as_mut().expect("a data frame is open");
        f.left -= chunk.len() as u64;
        let mask = f.mask;
        f.mask.rotate_left(chunk.len() % 4);
        if self.compressed {
            self.inflate(chunk, mask)?;
        } else {
            let start = self.data.len();
            self.data.extend_from_slice(chunk);
            unmask(&mut self.data[start..], mask);
        }
        self.check_utf8(false)
    }

    /// Unmasks through a stack buffer and inflates onto the message.
    fn inflate(&mut self, chunk: &[u8], mut mask: [u8; 4]) -> Result<(), Fail> {
        let bits = self.deflate.expect("RSV1 is refused without deflate").client_max_window_bits;
        let mut plain = [0u8; 4096];
        for piece in chunk.chunks(plain.len()) {
            let p = &mut plain[..piece.len()];
            p.copy_from_slice(piece);
            unmask(p, mask);
            mask.rotate_left(piece.len() % 4);
            let inflater = self.inflater.get_or_insert_with(|| Box::new(Inflater::new(bits)));
            let inflated = inflater.inflate(p, &mut self.data, self.max_message);
            self.checked(inflated)?;
        }
        Ok(())
    }

    /// Checks the text inflated so far before an inflater's error: the first fault in
    /// the message's bytes is the one reported, however the stream was split.
    fn checked(&mut self, inflated: Result<(), InflateError>) -> Result<(), Fail> {
        self.check_utf8(false)?;
        inflated.map_err(|e| match e {
            InflateError::TooBig => TOO_BIG,
            InflateError::Corrupt => protocol("invalid compressed data"),
        })
    }

    /// The final frame is in: the message is finished, checked and handed over.
    fn end_message(&mut self) -> Result<Event, Fail> {
        // No inflater yet: nothing was compressed in this message, which is then empty.
        if let Some(inflater) = self.inflater.as_mut().filter(|_| self.compressed) {
            let reset = self.deflate.is_some_and(|d| d.client_no_context_takeover);
            let inflated = inflater.finish(&mut self.data, self.max_message, reset);
            self.checked(inflated)?;
        }
        self.check_utf8(true)?;
        let kind = self.kind.take().expect("a message is open");
        self.valid = 0;
        Ok(Event::Message { kind, data: std::mem::take(&mut self.data) })
    }

    /// Checks the text that arrived since the last call; an unfinished character at the
    /// end waits for its next bytes unless the message is `done`.
    fn check_utf8(&mut self, done: bool) -> Result<(), Fail> {
        if self.kind != Some(Kind::Text) {
            return Ok(());
        }
        match std::str::from_utf8(&self.data[self.valid..]) {
            Ok(_) => self.valid = self.data.len(),
            Err(e) if e.error_len().is_none() && !done => self.valid += e.valid_up_to(),
            Err(_) => return Err(BAD_UTF8),
        }
        Ok(())
    }
}

fn opcode(op: u8) -> Option<OpCode> {
    Some(match op {
        0 => OpCode::Continuation,
        1 => OpCode::Text,
        2 => OpCode::Binary,
        8 => OpCode::Close,
        9 => OpCode::Ping,
        10 => OpCode::Pong,
        _ => return None,
    })
}

fn control_event(op: OpCode, payload: Vec<u8>) -> Result<Event, Fail> {
    Ok(match op {
        OpCode::Ping => Event::Ping(payload),
        OpCode::Pong => Event::Pong(payload),
        _ => close_event(&payload)?,
    })
}

fn close_event(p: &[u8]) -> Result<Event, Fail> {
    let Some((code, reason)) = p.split_first_chunk::<2>() else {
        return match p.len() {
            0 => Ok(Event::Close { code: None, reason: String::new() }),
            _ => Err(protocol("close frame with a 1-byte payload")),
        };
    };
    let code = u16::from_be_bytes(*code);
    if !valid_close_code(code) {
        return Err(protocol("invalid close code"));
    }
    let reason = std::str::from_utf8(reason).map_err(|_| Fail { code: 1007, reason: "close reason is not UTF-8" })?;
    Ok(Event::Close { code: Some(code), reason: reason.to_string() })
}

/// XORs `data` with `mask` (repeated from `mask[0]`), eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::super::{encode_message, to_client_frame, Compression, MOST_WAITING};
    use super::*;
    use flate2::{Compress, FlushCompress};
    use proptest::prelude::*;

    const TEXT: u8 = 1;
    const BIN: u8 = 2;
    const CLOSE: u8 = 8;
    const PING: u8 = 9;
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: `first` is the whole first byte (FIN, RSV, opcode).
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=65535 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        f
    }

    fn deflate(no_context: bool) -> Option<Deflate> {
        Some(Deflate { client_no_context_takeover: no_context, client_max_window_bits: 15, server_max_window_bits: 15 })
    }

    /// Feeds `pieces` one after the other as a connection would (appending to a buffer
    /// and decoding until the decoder wants more): the events, and the failure if any.
    fn feed<'a>(d: &mut Decoder, pieces: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Event>, Option<Fail>) {
        let (mut buf, mut events) = (Vec::new(), Vec::new());
        for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                match d.decode(&buf) {
                    Err(f) => return (events, Some(f)),
                    Ok((used, event)) => {
                        assert!(used <= buf.len());
                        buf.drain(..used);
                        match event {
                            Some(e) => events.push(e),
                            None => {
                                assert!(buf.len() <= MOST_WAITING, "{} bytes wait for more", buf.len());
                                break;
                            }
                        }
                    }
                }
            }
        }
        (events, None)
    }

    fn run(d: Option<Deflate>, max: usize, bytes: &[u8]) -> (Vec<Event>, Option<Fail>) {
        feed(&mut Decoder::new(max, d), [bytes])
    }

    fn fail_code(d: Option<Deflate>, bytes: &[u8]) -> u16 {
        run(d, 1 << 20, bytes).1.expect("a failure").code
    }

    fn msg(kind: Kind, data: &[u8]) -> Event {
        Event::Message { kind, data: data.to_vec() }
    }

    /// The client's side of permessage-deflate: one message, sync-flushed, tail off.
    fn client_compress(z: &mut Compress, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + 64);
        let start = z.total_in();
        loop {
            out.reserve(4096);
            z.compress_vec(&payload[(z.total_in() - start) as usize..], &mut out, FlushCompress::Sync).unwrap();
            if (z.total_in() - start) as usize == payload.len() && out.len() < out.capacity() {
                break;
            }
        }
        // zlib makes nothing of an empty input right after a flush: like browsers,
        // send an empty stored block's first byte, which the tail completes.
        if out.is_empty() {
            return vec![0];
        }
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }

    fn compressor() -> Compress {
        Compress::new_with_window_bits(flate2::Compression::default(), false, 15)
    }

    #[test]
    fn the_decoder_is_small() {
        // 72 bytes on 64-bit targets today; the inflater is boxed and made lazily.
        assert!(std::mem::size_of::<Decoder>() <= 96, "{}", std::mem::size_of::<Decoder>());
    }

    #[test]
    fn messages_of_every_length_form() {
        for len in [0, 1, 125, 126, 65535, 65536, 1 << 20] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            assert_eq!(run(None, 1 << 20, &frame(0x80 | BIN, &data)), (vec![msg(Kind::Binary, &data)], None), "{len}");
        }
        let text = "héllo wörld ".repeat(5000);
        assert_eq!(run(None, 1 << 20, &frame(0x80 | TEXT, text.as_bytes())).0, [msg(Kind::Text, text.as_bytes())]);
    }

    #[test]
    fn fragments_join_with_a_ping_between() {
        let mut s = frame(TEXT, b"Hel");
        s.extend(frame(0x80 | PING, b"p"));
        s.extend(frame(0, b""));
        s.extend(frame(0x80, b"lo"));
        s.extend(frame(0x80 | 0xa, b""));
        let want = vec![Event::Ping(b"p".to_vec()), msg(Kind::Text, b"Hello"), Event::Pong(vec![])];
        assert_eq!(run(None, 100, &s), (want, None));
    }

    #[test]
    fn frame_rule_failures_are_1002() {
        let unmasked = [0x81, 0x01, b'a'];
        assert_eq!(fail_code(None, &unmasked), 1002);
        assert_eq!(fail_code(None, &frame(0x80 | 0x20 | TEXT, b"a")), 1002, "RSV2");
        assert_eq!(fail_code(None, &frame(0x80 | 0x10 | BIN, b"a")), 1002, "RSV3");
        assert_eq!(fail_code(None, &frame(0x80 | 0x40 | TEXT, b"a")), 1002, "RSV1 without deflate");
        let mut s = frame(0x40 | TEXT, &client_compress(&mut compressor(), b"abc"));
        s.extend(frame(0x80 | 0x40, b"x"));
        assert_eq!(fail_code(deflate(false), &s), 1002, "RSV1 on a continuation");
        assert_eq!(fail_code(deflate(false), &frame(0x80 | 0x40 | PING, b"")), 1002, "RSV1 on a ping");
        for op in (3..=7).chain(11..=15) {
            assert_eq!(fail_code(None, &frame(0x80 | op, b"")), 1002, "opcode {op}");
        }
        assert_eq!(fail_code(None, &frame(0x80 | PING, &[0; 126])), 1002, "long ping");
        assert_eq!(fail_code(None, &frame(PING, b"")), 1002, "fragmented ping");
        assert_eq!(fail_code(None, &frame(0x80, b"a")), 1002, "continuation first");
        let mut s = frame(TEXT, b"a");
        s.extend(frame(0x80 | BIN, b"b"));
        assert_eq!(fail_code(None, &s), 1002, "new message inside one");
        let huge = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(fail_code(None, &huge), 1002, "top bit of a 64-bit length");
    }

    #[test]
    fn bad_frames_fail_on_their_first_bytes() {
        let mut d = Decoder::new(100, None);
        assert_eq!(d.decode(&[0x83]).unwrap_err().code, 1002);
        let mut d = Decoder::new(100, None);
        assert_eq!(d.decode(&[0x81, 0x05]).unwrap_err().code, 1002, "unmasked");
        let mut d = Decoder::new(100, None);
        assert_eq!(d.decode(&[0x81]).unwrap(), (0, None));
        assert_eq!(d.decode(&[0x81, 0x85, 1]).unwrap(), (0, None));
    }

    #[test]
    fn over_the_limit_is_1009_from_the_header() {
        let f = frame(0x80 | BIN, &[0; 101]);
        let mut d = Decoder::new(100, None);
        assert_eq!(d.decode(&f[..8]).unwrap_err().code, 1009, "known before the payload");
        let mut s = frame(BIN, &[0; 60]);
        s.extend(frame(0x80, &[0; 41]));
        assert_eq!(fail_code_with(100, &s), 1009, "across fragments");
        assert_eq!(run(None, 100, &frame(0x80 | BIN, &[0; 100])).1, None, "the limit itself is fine");
    }

    fn fail_code_with(max: usize, bytes: &[u8]) -> u16 {
        run(None, max, bytes).1.unwrap().code
    }

    #[test]
    fn bad_text_fails_fast() {
        let mut payload = b"ab".to_vec();
        payload.push(0xff);
        payload.extend([b'c'; 97]);
        let f = frame(0x80 | TEXT, &payload);
        let mut d = Decoder::new(1000, None);
        assert_eq!(d.decode(&f[..7]).unwrap(), (7, None), "the header and a first byte of payload are in");
        assert_eq!(d.decode(&f[7..9]).unwrap_err().code, 1007, "within the frame, before its end");
        // A character cut between fragments is fine; one the message ends inside is not.
        let euro = "€".as_bytes();
        let mut s = frame(TEXT, &euro[..1]);
        s.extend(frame(0, &euro[1..2]));
        s.extend(frame(0x80, &euro[2..]));
        assert_eq!(run(None, 100, &s).0, [msg(Kind::Text, euro)]);
        assert_eq!(fail_code(None, &frame(0x80 | TEXT, &euro[..2])), 1007);
        let mut s = frame(TEXT, &euro[..2]);
        s.extend(frame(0, b"x"));
        assert_eq!(fail_code(None, &s), 1007, "a cut character that does not go on");
        assert_eq!(fail_code(None, &frame(0x80 | TEXT, &[0xed, 0xa0, 0x80])), 1007, "a surrogate");
        assert_eq!(run(None, 100, &frame(0x80 | BIN, &[0xff])).1, None, "binary is not checked");
    }

    #[test]
    fn close_frames() {
        assert_eq!(run(None, 100, &frame(0x80 | CLOSE, b"")).0, [Event::Close { code: None, reason: String::new() }]);
        let ok = [&[0x03, 0xe8][..], b"bye"].concat();
        assert_eq!(
            run(None, 100, &frame(0x80 | CLOSE, &ok)).0,
            [Event::Close { code: Some(1000), reason: "bye".into() }]
        );
        assert_eq!(fail_code(None, &frame(0x80 | CLOSE, &[3])), 1002, "one byte");
        for bad in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert_eq!(fail_code(None, &frame(0x80 | CLOSE, &bad.to_be_bytes())), 1002, "{bad}");
        }
        assert_eq!(fail_code(None, &frame(0x80 | CLOSE, &[0x03, 0xe8, 0xff])), 1007);
    }

    /// Server frames made by `encode_message`, masked as a client would send them.
    #[test]
    fn compressed_round_trip_through_the_encoder() {
        let text = "{\"user\":\"ann\",\"text\":\"hello hello hello\"} ".repeat(40);
        let mut server = Vec::new();
        encode_message(&mut server, Kind::Text, text.as_bytes(), Compression::Deflate { window_bits: 15 });
        assert_eq!(server[0], 0xc1, "compressed");
        let client = to_client_frame(&server, MASK);
        let mut d = Decoder::new(1 << 20, deflate(true));
        let twice = [client.clone(), client].concat();
        let want = vec![msg(Kind::Text, text.as_bytes()), msg(Kind::Text, text.as_bytes())];
        assert_eq!(feed(&mut d, twice.chunks(7)), (want, None));
        assert!(d.inflater.is_some());
        d.shrink();
        assert!(d.inflater.is_none(), "without context takeover an idle decoder keeps no inflater");
    }

    #[test]
    fn context_takeover_across_messages() {
        let text = "a sentence that the second message repeats in full, so it refers back. ".repeat(4);
        let mut z = compressor();
        let first = client_compress(&mut z, text.as_bytes());
        let second = client_compress(&mut z, text.as_bytes());
        assert!(second.len() < first.len() / 4, "the second refers to the first");
        let mut s = frame(0x80 | 0x40 | TEXT, &first);
        // The second message fragmented, with a plain message after it.
        s.extend(frame(0x40 | TEXT, &second[..3]));
        s.extend(frame(0x80 | PING, b""));
        s.extend(frame(0x80, &second[3..]));
        s.extend(frame(0x80 | BIN, b"plain"));
        let mut d = Decoder::new(1 << 20, deflate(false));
        let (events, fail) = feed(&mut d, [&s[..]]);
        assert_eq!(fail, None);
        let t = msg(Kind::Text, text.as_bytes());
        assert_eq!(events, [t, Event::Ping(vec![]), msg(Kind::Text, text.as_bytes()), msg(Kind::Binary, b"plain")]);
        d.shrink();
        assert!(d.inflater.is_some(), "the window is kept for the next message");
    }

    #[test]
    fn a_final_block_ends_the_stream_and_the_next_message_starts_afresh() {
        let mut out = Vec::with_capacity(256);
        let mut z = compressor();
        z.compress_vec(b"finished stream", &mut out, FlushCompress::Finish).unwrap();
        let mut s = frame(0x80 | 0x40 | BIN, &out);
        s.extend(frame(0x80 | 0x40 | BIN, &client_compress(&mut compressor(), b"next one")));
        let want = vec![msg(Kind::Binary, b"finished stream"), msg(Kind::Binary, b"next one")];
        assert_eq!(run(deflate(false), 1000, &s), (want, None));
    }

    #[test]
    fn empty_compressed_messages() {
        let mut z = compressor();
        let mut s = frame(0x80 | 0x40 | TEXT, b"");
        s.extend(frame(0x80 | 0x40 | TEXT, &client_compress(&mut z, b"some text")));
        s.extend(frame(0x80 | 0x40 | BIN, b""));
        s.extend(frame(0x80 | 0x40 | BIN, &client_compress(&mut z, b"")));
        s.extend(frame(0x80 | 0x40 | TEXT, &client_compress(&mut z, b"some text")));
        let empty = msg(Kind::Binary, b"");
        let want = vec![
            msg(Kind::Text, b""),
            msg(Kind::Text, b"some text"),
            empty,
            msg(Kind::Binary, b""),
            msg(Kind::Text, b"some text"),
        ];
        assert_eq!(run(deflate(false), 100, &s), (want, None));
    }

    #[test]
    fn bombs_stop_at_the_limit_and_garbage_is_1002() {
        let zeros = vec![0u8; 10 << 20];
        let packed = client_compress(&mut compressor(), &zeros);
        assert!(packed.len() < 20_000);
        let mut d = Decoder::new(1 << 20, deflate(true));
        let f = frame(0x80 | 0x40 | BIN, &packed);
        let (_, fail) = feed(&mut d, f.chunks(1000));
        assert_eq!(fail.unwrap().code, 1009);
        assert!(d.buffered() <= 1 << 20);
        assert_eq!(fail_code(deflate(true), &frame(0x80 | 0x40 | BIN, &[0xff; 40])), 1002);
        let bad_text = client_compress(&mut compressor(), &[b'a', 0xc0, b'b']);
        assert_eq!(fail_code(deflate(true), &frame(0x80 | 0x40 | TEXT, &bad_text)), 1007);
    }

    /// One message of a random stream: kind, payload, fragment cut points, compressed.
    fn message() -> impl Strategy<Value = (bool, Vec<u8>, Vec<usize>, bool)> {
        (
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..600),
            prop::collection::vec(0usize..600, 0..4),
            any::<bool>(),
        )
    }

    /// The client's bytes for `messages` (text payloads made valid UTF-8 by lossy
    /// conversion), a ping after every fragment but the last, and the events expected.
    fn stream(messages: &[(bool, Vec<u8>, Vec<usize>, bool)]) -> (Vec<u8>, Vec<Event>) {
        let (mut bytes, mut want, mut z) = (Vec::new(), Vec::new(), compressor());
        for (i, (text, payload, cuts, compress)) in messages.iter().enumerate() {
            let (kind, op, data) = match text {
                true => (Kind::Text, TEXT, String::from_utf8_lossy(payload).into_owned().into_bytes()),
                false => (Kind::Binary, BIN, payload.clone()),
            };
            let wire = if *compress { client_compress(&mut z, &data) } else { data.clone() };
            let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(wire.len())).collect();
            cuts.sort_unstable();
            cuts.push(wire.len());
            let mut from = 0;
            for (j, &to) in cuts.iter().enumerate() {
                let last = j + 1 == cuts.len();
                let first = if j == 0 { op | if *compress { 0x40 } else { 0 } } else { 0 };
                bytes.extend(frame(first | if last { 0x80 } else { 0 }, &wire[from..to]));
                if !last {
                    let ping = vec![i as u8, j as u8];
                    bytes.extend(frame(0x80 | PING, &ping));
                    want.push(Event::Ping(ping));
                }
                from = to;
            }
            want.push(Event::Message { kind, data });
        }
        (bytes, want)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any split of a valid stream gives the events of the whole, and those are
        /// what was sent.
        #[test]
        fn splitting_the_stream_changes_nothing(
            messages in prop::collection::vec(message(), 1..6),
            splits in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        ) {
            let (bytes, want) = stream(&messages);
            let whole = feed(&mut Decoder::new(1 << 20, deflate(false)), [&bytes[..]]);
            prop_assert_eq!(&whole, &(want, None));
            let mut cuts: Vec<usize> = splits.iter().map(|s| s.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.push(bytes.len());
            let mut from = 0;
            let pieces: Vec<&[u8]> = cuts.iter().map(|&to| { let p = &bytes[from..to]; from = to; p }).collect();
            prop_assert_eq!(&feed(&mut Decoder::new(1 << 20, deflate(false)), pieces), &whole);
            prop_assert_eq!(feed(&mut Decoder::new(1 << 20, deflate(false)), bytes.chunks(1)), whole);
        }
    }

    /// Decoding speed, in release: `cargo test --release -p corral --lib
    /// decode_throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn decode_throughput() {
        for size in [64usize, 16 << 10] {
            let one = frame(0x80 | BIN, &vec![b'x'; size]);
            let count = (64 << 20) / size;
            let stream = one.repeat(count.min(100_000));
            let start = std::time::Instant::now();
            let mut d = Decoder::new(1 << 20, None);
            let (mut at, mut n) = (0, 0);
            while at < stream.len() {
                let (used, event) = d.decode(&stream[at..]).unwrap();
                at += used;
                n += event.is_some() as usize;
            }
            let s = start.elapsed().as_secs_f64();
            let msgs = stream.len() / one.len();
            assert_eq!(n, msgs);
            println!(
                "{size} B messages: {:.2} M msg/s, {:.0} MB/s",
                msgs as f64 / s / 1e6,
                (msgs * size) as f64 / s / 1e6
            );
        }
    }
}
