//! The opening handshake (RFC 6455 section 4.2): is a request a websocket upgrade, is it
//! a valid one, and the `101` that accepts it (with the subprotocol and
//! permessage-deflate parameters agreed, RFC 7692 section 7.1).
//!
//! Header values are compared as ASCII, case-insensitively where the RFCs say tokens;
//! a value that is not UTF-8 counts as absent.

use super::Deflate;
use crate::frame::HttpRequest;

/// Appended to the client's key before hashing (RFC 6455 section 1.3).
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid websocket upgrade request, as the handler sees it before it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    /// `Sec-WebSocket-Key` as sent (checked: base64 of 16 bytes).
    pub(crate) key: String,
    /// `Sec-WebSocket-Protocol` values offered, in the client's order (all headers).
    pub(crate) protocols: Vec<String>,
    /// `Sec-WebSocket-Extensions` as sent (all headers joined by `, `); empty if none.
    pub(crate) extensions: String,
}

impl Offer {
    /// The subprotocols the client offered, in its order of preference.
    pub fn protocols(&self) -> &[String] {
        &self.protocols
    }
    /// Whether the client offered permessage-deflate in a form this server accepts.
    pub fn offers_deflate(&self) -> bool {
        negotiate_deflate(&self.extensions).is_some()
    }
}

/// Why an upgrade request is refused before the handler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HandshakeError {
    /// 400 (malformed), or 426 for an unsupported `Sec-WebSocket-Version` (sent with
    /// `Sec-WebSocket-Version: 13`).
    pub status: u16,
    /// The reply body: what was wrong and what a client must send instead.
    pub message: &'static str,
}

fn bad(message: &'static str) -> HandshakeError {
    HandshakeError { status: 400, message }
}

/// The values of every header called `name`, as text.
fn values<'a>(req: &'a HttpRequest, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    req.headers().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).filter_map(|(_, v)| std::str::from_utf8(v).ok())
}

/// Whether some `name` header lists `token` (comma-separated, case-insensitive).
fn has_token(req: &HttpRequest, name: &str, token: &str) -> bool {
    values(req, name).flat_map(|v| v.split(',')).any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// `None`: not a websocket upgrade (no `Upgrade: websocket` header): an ordinary
/// request. `Some(Err)`: it asks for a websocket but the handshake is bad (method not
/// GET, HTTP/1.0, `Connection` without the `upgrade` token, key missing or not 16
/// bytes of base64, version not 13). `Some(Ok)`: a valid offer.
pub(crate) fn check(req: &HttpRequest) -> Option<Result<Offer, HandshakeError>> {
    if !has_token(req, "upgrade", "websocket") {
        return None;
    }
    Some(check_upgrade(req))
}

fn check_upgrade(req: &HttpRequest) -> Result<Offer, HandshakeError> {
    if req.method() != "GET" {
        return Err(bad("A websocket upgrade must be a GET request."));
    }
    if req.minor_version() != 1 {
        return Err(bad("A websocket upgrade needs HTTP/1.1: send the request as HTTP/1.1."));
    }
    if !has_token(req, "connection", "upgrade") {
        return Err(bad("A websocket upgrade needs `Connection: Upgrade`."));
    }
    let key = values(req, "sec-websocket-key").next().map(str::trim).unwrap_or("");
    if base64_decoded_len(key) != Some(16) {
        return Err(bad("Sec-WebSocket-Key must be the base64 of 16 random bytes (24 characters)."));
    }
    if values(req, "sec-websocket-version").next().map(str::trim) != Some("13") {
        return Err(HandshakeError {
            status: 426,
            message: "This server speaks websocket version 13 only: send `Sec-WebSocket-Version: 13`.",
        });
    }
    let protocols = values(req, "sec-websocket-protocol")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect();
    let extensions: Vec<&str> =
        values(req, "sec-websocket-extensions").map(str::trim).filter(|e| !e.is_empty()).collect();
    Ok(Offer { key: key.to_string(), protocols, extensions: extensions.join(", ") })
}

/// One parsed permessage-deflate offer: `None` for a field the client left out;
/// `client_max_window_bits` is `Some(None)` when offered without a value.
#[derive(Default)]
struct DeflateOffer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<Option<u8>>,
}

/// Picks the first acceptable permessage-deflate offer in `extensions` (the header
/// value; several offers separated by commas, each with `;` parameters). Returns the
/// agreed parameters and the `Sec-WebSocket-Extensions` value to answer with, which
/// always includes `server_no_context_takeover`. Offers with unknown or malformed
/// parameters, or repeated ones, are skipped; `None` if none is acceptable.
pub(crate) fn negotiate_deflate(extensions: &str) -> Option<(Deflate, String)> {
    let offer = extensions.split(',').find_map(parse_offer)?;
    let mut answer = String::from("permessage-deflate; server_no_context_takeover");
    if offer.client_no_context_takeover {
        answer.push_str("; client_no_context_takeover");
    }
    if let Some(bits) = offer.server_max_window_bits {
        answer.push_str(&format!("; server_max_window_bits={bits}"));
    }
    // Echoing the client's own limit (or nothing, meaning 15) never asks it for a
    // window it did not offer.
    if let Some(Some(bits)) = offer.client_max_window_bits {
        answer.push_str(&format!("; client_max_window_bits={bits}"));
    }
    let deflate = Deflate {
        client_no_context_takeover: offer.client_no_context_takeover,
        client_max_window_bits: offer.client_max_window_bits.flatten().unwrap_or(15),
        server_max_window_bits: offer.server_max_window_bits.unwrap_or(15),
    };
    Some((deflate, answer))
}

/// Parses one offer; `None` unless it is permessage-deflate with valid parameters.
fn parse_offer(offer: &str) -> Option<DeflateOffer> {
    let mut parts = offer.split(';');
    if !parts.next()?.trim().eq_ignore_ascii_case("permessage-deflate") {
        return None;
    }
    let mut o = DeflateOffer::default();
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(unquote(v.trim())?)),
            None => (param.trim(), None),
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() && !o.server_no_context_takeover => {
                o.server_no_context_takeover = true
            }
            "client_no_context_takeover" if value.is_none() && !o.client_no_context_takeover => {
                o.client_no_context_takeover = true
            }
            "server_max_window_bits" if o.server_max_window_bits.is_none() => {
                o.server_max_window_bits = Some(window_bits(value?)?)
            }
            "client_max_window_bits" if o.client_max_window_bits.is_none() => {
                o.client_max_window_bits = Some(match value {
                    Some(v) => Some(window_bits(v)?),
                    None => None,
                })
            }
            _ => return None,
        }
    }
    Some(o)
}

/// A quoted-string value's content (RFC 7692 allows `bits="10"`); bare values as is.
fn unquote(v: &str) -> Option<&str> {
    match v.strip_prefix('"') {
        Some(inner) => inner.strip_suffix('"'),
        None => Some(v),
    }
}

/// 8..=15 as written by RFC 7692 section 7.1.2.1: digits without a leading zero.
fn window_bits(v: &str) -> Option<u8> {
    if v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok().filter(|b| (8..=15).contains(b))
}

/// The `101 Switching Protocols` reply: `Sec-WebSocket-Accept` from `key`, the chosen
/// subprotocol and extension answer if any, and the handler's extra headers.
pub(crate) fn accept_response(
    key: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra: &[(String, String)],
) -> Vec<u8> {
    let mut r = String::with_capacity(160);
    r.push_str(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    r.push_str(&accept_key(key));
    r.push_str("\r\n");
    if let Some(p) = protocol {
        r.push_str(&format!("Sec-WebSocket-Protocol: {p}\r\n"));
    }
    if let Some(e) = extensions {
        r.push_str(&format!("Sec-WebSocket-Extensions: {e}\r\n"));
    }
    for (name, value) in extra {
        r.push_str(&format!("{name}: {value}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// base64(SHA-1(key + GUID)).
fn accept_key(key: &str) -> String {
    let mut h = sha1_smol::Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64(&h.digest().bytes())
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// How many bytes `s` decodes to if it is canonical padded base64 (unused bits zero).
fn base64_decoded_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() % 4 != 0 {
        return None;
    }
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    let body = &b[..b.len() - pad];
    let sextets: Option<Vec<u8>> = body.iter().map(|c| ALPHABET.iter().position(|a| a == c).map(|p| p as u8)).collect();
    let last = *sextets?.last()?;
    // One `=` leaves two spare bits in the last character, two leave four.
    let spare = match pad {
        0 => 0,
        1 => 0b11,
        2 => 0b1111,
        _ => return None,
    };
    (last & spare == 0).then_some(body.len() * 6 / 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Decoded, Framer, Payload, Protocol};

    fn req(head: &str) -> HttpRequest {
        match Framer::new(Protocol::Http1).decode(head.as_bytes(), &Default::default()) {
            Decoded::Frame { payload: Payload::Http(r), .. } => r,
            other => panic!("{other:?}"),
        }
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn upgrade(extra: &str) -> String {
        format!(
            "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
    }

    #[test]
    fn the_rfc_sample_is_accepted() {
        let offer = check(&req(&upgrade(""))).unwrap().unwrap();
        assert_eq!(offer.key, KEY);
        assert!(offer.protocols().is_empty() && offer.extensions.is_empty());
        assert!(!offer.offers_deflate());
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let r = accept_response(KEY, Some("chat"), Some("permessage-deflate"), &[("X-A".into(), "1".into())]);
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\nX-A: 1\r\n\r\n"
        );
    }

    #[test]
    fn protocols_and_extensions_from_every_header() {
        let offer = check(&req(&upgrade(
            "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol:  v2 \r\n\
             Sec-WebSocket-Extensions: foo\r\nSec-WebSocket-Extensions: permessage-deflate\r\n",
        )))
        .unwrap()
        .unwrap();
        assert_eq!(offer.protocols(), ["chat", "superchat", "v2"]);
        assert_eq!(offer.extensions, "foo, permessage-deflate");
        assert!(offer.offers_deflate());
    }

    #[test]
    fn tokens_are_case_insensitive_lists() {
        let r = "GET / HTTP/1.1\r\nUPGRADE: h2c, WebSocket\r\nConnection: keep-alive\r\nconnection: x, UPGRADE\r\n\
                 sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\nsec-websocket-version: 13\r\n\r\n";
        assert!(check(&req(r)).unwrap().is_ok());
    }

    #[test]
    fn not_an_upgrade_is_none() {
        assert!(check(&req("GET / HTTP/1.1\r\nHost: h\r\n\r\n")).is_none());
        assert!(check(&req("GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n")).is_none());
    }

    #[test]
    fn bad_upgrades_say_why() {
        let status = |r: &str| check(&req(r)).unwrap().unwrap_err().status;
        assert_eq!(status(&upgrade("").replace("GET", "POST")), 400);
        assert_eq!(status(&upgrade("").replace("HTTP/1.1", "HTTP/1.0")), 400);
        assert_eq!(status(&upgrade("").replace("Connection: Upgrade", "Connection: keep-alive")), 400);
        assert_eq!(status(&upgrade("").replace(KEY, "dGhlIHNhbXBsZQ==")), 400);
        assert_eq!(status(&upgrade("").replace(KEY, "dGhlIHNhbXBsZSBub25jZR==")), 400, "spare bits set");
        assert_eq!(status(&upgrade("").replace(KEY, "dGhlIHNhbXBsZSBub25j*Q==")), 400);
        assert_eq!(status(&upgrade("").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), "")), 400);
        assert_eq!(status(&upgrade("").replace("Version: 13", "Version: 8")), 426);
        assert_eq!(status(&upgrade("").replace("Sec-WebSocket-Version: 13\r\n", "")), 426);
        let e = check(&req(&upgrade("").replace("Version: 13", "Version: 8"))).unwrap().unwrap_err();
        assert!(e.message.contains("Sec-WebSocket-Version: 13"));
    }

    #[test]
    fn base64_round_trips() {
        for n in 0..40 {
            let data: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
            let s = base64(&data);
            assert_eq!(base64_decoded_len(&s), if n == 0 { None } else { Some(n) }, "{s}");
        }
    }

    #[test]
    fn deflate_plain_offer() {
        let (d, answer) = negotiate_deflate("permessage-deflate").unwrap();
        assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
        assert_eq!(
            d,
            Deflate { client_no_context_takeover: false, client_max_window_bits: 15, server_max_window_bits: 15 }
        );
    }

    #[test]
    fn deflate_parameters_are_answered() {
        let (d, answer) = negotiate_deflate(
            "permessage-deflate; client_max_window_bits; server_max_window_bits=10; client_no_context_takeover",
        )
        .unwrap();
        assert_eq!(
            answer,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10"
        );
        assert_eq!(
            d,
            Deflate { client_no_context_takeover: true, client_max_window_bits: 15, server_max_window_bits: 10 }
        );
        let (d, answer) = negotiate_deflate("permessage-deflate;client_max_window_bits=\"9\"").unwrap();
        assert_eq!(answer, "permessage-deflate; server_no_context_takeover; client_max_window_bits=9");
        assert_eq!(d.client_max_window_bits, 9);
        let (d, _) = negotiate_deflate("permessage-deflate; server_max_window_bits=8").unwrap();
        assert_eq!(d.server_max_window_bits, 8);
    }

    #[test]
    fn bad_offers_are_skipped_for_the_next() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=x",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; mystery",
            "x-webkit-deflate-frame",
        ] {
            assert!(negotiate_deflate(bad).is_none(), "{bad}");
            let (d, _) = negotiate_deflate(&format!("{bad}, permessage-deflate; server_max_window_bits=12")).unwrap();
            assert_eq!(d.server_max_window_bits, 12, "{bad}");
        }
        assert!(negotiate_deflate("").is_none());
    }

    #[test]
    fn an_answer_negotiates_to_itself() {
        for offer in [
            "permessage-deflate",
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_max_window_bits=11; server_max_window_bits=9; client_no_context_takeover",
        ] {
            let (d, answer) = negotiate_deflate(offer).unwrap();
            assert_eq!(negotiate_deflate(&answer).unwrap().0, d, "{offer}");
        }
    }
}
