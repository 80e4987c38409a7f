//! The load client's own websocket framing (RFC 6455, client side, no extensions): the
//! opening handshake, masked client frames, and the server's unmasked frames. It shares
//! no code with corral's codec on purpose: the instrument must not agree with the
//! server it measures by construction.
//!
//! Every message the client sends carries a 16-byte ASCII tag at its start, the sending
//! connection's number and the message's sequence number in hex, so a received message
//! tells whose it is and which (ASCII keeps text messages valid UTF-8); the rest is filler.

use std::fmt;

/// The tag at the start of every message: 8 hex digits of connection, 8 of sequence.
pub const TAG: usize = 16;
/// The largest message the client accepts from a server (a guard against a bad length).
const MAX_MESSAGE: u64 = 64 << 20;
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// What went wrong with a connection, as the run reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server answered the handshake with something other than 101.
    Refused(u16),
    /// The server broke the protocol (a bad handshake reply or frame).
    Protocol(String),
    /// The server closed the connection (a close frame or end of stream) or it failed.
    Closed(String),
    /// A message came back that is not the one expected (lost, reordered, truncated).
    Mismatch(String),
    Connect(String),
}

impl Failure {
    /// A short tag for a judge's figure: `failed(<tag>)`.
    pub fn tag(&self) -> String {
        match self {
            Failure::Refused(s) => format!("handshake-{s}"),
            Failure::Protocol(_) => "protocol".into(),
            Failure::Closed(_) => "closed".into(),
            Failure::Mismatch(_) => "mismatch".into(),
            Failure::Connect(_) => "connect".into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(s) => {
                write!(f, "the server answered {s} to the websocket handshake (no websocket route?)")
            }
            Failure::Protocol(m) => write!(f, "protocol error: {m}"),
            Failure::Closed(m) => write!(f, "connection closed: {m}"),
            Failure::Mismatch(m) => write!(f, "wrong message: {m}"),
            Failure::Connect(m) => write!(f, "cannot connect: {m}"),
        }
    }
}

/// A small xorshift generator: handshake keys and mask keys need to vary, not to be secret.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Rng((nanos as u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// The opening handshake request and the `Sec-WebSocket-Accept` value it must get back.
pub fn handshake(host: &str, path: &str, rng: &mut Rng) -> (Vec<u8>, String) {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&rng.next().to_le_bytes());
    key[8..].copy_from_slice(&rng.next().to_le_bytes());
    let key = base64(&key);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    (req.into_bytes(), accept_for(&key))
}

/// `base64(sha1(key + GUID))`, the value a server proves it read the key with.
pub fn accept_for(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(GUID);
    base64(&sha1(&input))
}

/// Reads the handshake reply at the start of `buf`: `Ok(Some(len))` once the whole head
/// is there and says 101 with the expected accept value (the bytes after it are frames),
/// `Ok(None)` while it is incomplete.
pub fn handshake_reply(buf: &[u8], accept: &str) -> Result<Option<usize>, Failure> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Failure::Protocol(format!("handshake reply: {e}"))),
    };
    let status = res.code.unwrap_or(0);
    if status != 101 {
        return Err(Failure::Refused(status));
    }
    let header = |name: &str| res.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    match header("sec-websocket-accept") {
        Some(v) if v == accept.as_bytes() => {}
        v => {
            let got = v.map(String::from_utf8_lossy);
            return Err(Failure::Protocol(format!("Sec-WebSocket-Accept {got:?}, expected {accept:?}")));
        }
    }
    if let Some(ext) = header("sec-websocket-extensions") {
        let ext = String::from_utf8_lossy(ext);
        return Err(Failure::Protocol(format!("the server chose extensions nobody offered: {ext}")));
    }
    Ok(Some(len))
}

/// Appends one masked client frame (FIN set) of `payload` to `out`.
pub fn frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: u32) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    let key = mask.to_be_bytes();
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// A message's tag: its connection and sequence numbers.
pub fn tag(conn: u32, seq: u32) -> [u8; TAG] {
    let mut t = [0u8; TAG];
    let s = format!("{conn:08x}{seq:08x}");
    t.copy_from_slice(s.as_bytes());
    t
}

/// Reads a tag back; `None` if the bytes are not one.
pub fn parse_tag(t: &[u8]) -> Option<(u32, u32)> {
    let s = std::str::from_utf8(t.get(..TAG)?).ok()?;
    Some((u32::from_str_radix(&s[..8], 16).ok()?, u32::from_str_radix(&s[8..], 16).ok()?))
}

/// One server frame's header.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub fin: bool,
    pub opcode: u8,
    /// Where the payload starts in the buffer.
    pub offset: usize,
    pub len: usize,
}

/// Reads a server frame's header at the start of `buf`: `Ok(None)` until all of it is there.
pub fn frame_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(Failure::Protocol(format!("reserved bits set (0x{b0:02x}) though no extension was agreed")));
    }
    if b1 & 0x80 != 0 {
        return Err(Failure::Protocol("a masked frame from the server".into()));
    }
    let (len, offset) = match b1 & 0x7F {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as u64, 4),
        127 if buf.len() >= 10 => (u64::from_be_bytes(buf[2..10].try_into().expect("8 bytes")), 10),
        126 | 127 => return Ok(None),
        n => (n as u64, 2),
    };
    if len > MAX_MESSAGE {
        return Err(Failure::Protocol(format!("a frame of {len} bytes (more than the client's 64 MiB)")));
    }
    Ok(Some(Head { fin: b0 & 0x80 != 0, opcode: b0 & 0x0F, offset, len: len as usize }))
}

/// SHA-1 (FIPS 180-4), for the handshake's accept value only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, c) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes(c.try_into().expect("4 bytes"));
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (o, x) in out.chunks_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_value_is_the_rfc_example() {
        // RFC 6455 section 1.3.
        assert_eq!(accept_for("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        let h: String = sha1(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(h, "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn handshake_replies_are_checked() {
        let mut rng = Rng::new(1);
        let (req, accept) = handshake("127.0.0.1:80", "/ws", &mut rng);
        assert!(String::from_utf8(req).unwrap().starts_with("GET /ws HTTP/1.1\r\n"));
        let ok = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {accept}\r\n\r\nX"
        );
        assert_eq!(handshake_reply(ok.as_bytes(), &accept), Ok(Some(ok.len() - 1)));
        assert_eq!(handshake_reply(&ok.as_bytes()[..20], &accept), Ok(None));
        assert_eq!(handshake_reply(b"HTTP/1.1 404 Not Found\r\n\r\n", &accept), Err(Failure::Refused(404)));
        let wrong = "HTTP/1.1 101 x\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert!(matches!(handshake_reply(wrong.as_bytes(), &accept), Err(Failure::Protocol(_))));
    }

    /// Unmasks a client frame as a server would.
    fn unmask(f: &[u8]) -> (u8, Vec<u8>) {
        let (n, at) = match f[1] & 0x7F {
            126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
            127 => (u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize, 10),
            n => (n as usize, 2),
        };
        assert_eq!(f[1] & 0x80, 0x80, "client frames are masked");
        let key = &f[at..at + 4];
        (f[0], f[at + 4..at + 4 + n].iter().enumerate().map(|(i, b)| b ^ key[i % 4]).collect())
    }

    #[test]
    fn client_frames_are_masked_at_every_length() {
        for n in [0, 16, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut out = Vec::new();
            frame(&mut out, OP_BINARY, &payload, 0xDEAD_BEEF);
            assert_eq!(unmask(&out), (0x82, payload));
        }
    }

    #[test]
    fn server_heads_and_tags_read_back() {
        assert_eq!(frame_head(&[0x82]), Ok(None));
        assert_eq!(frame_head(&[0x82, 5]), Ok(Some(Head { fin: true, opcode: 2, offset: 2, len: 5 })));
        assert_eq!(frame_head(&[0x01, 126, 1, 0]), Ok(Some(Head { fin: false, opcode: 1, offset: 4, len: 256 })));
        assert_eq!(frame_head(&[0x82, 127, 0, 0]), Ok(None));
        assert!(frame_head(&[0x82, 0x85]).is_err(), "masked");
        assert!(frame_head(&[0xC2, 1]).is_err(), "RSV1 without deflate");
        assert_eq!(parse_tag(&tag(7, 0xABCDEF01)), Some((7, 0xABCDEF01)));
        assert_eq!(parse_tag(b"not a tag at all"), None);
    }
}
