//! The opening handshake (RFC 6455 section 4.2): is a request a websocket upgrade, is it
//! a valid one, and the `101` that accepts it (with the subprotocol and
//! permessage-deflate parameters agreed).

use super::Deflate;
use crate::frame::HttpRequest;

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
    /// Whether the client offered permessage-deflate.
    pub fn offers_deflate(&self) -> bool {
        todo!()
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

/// `None`: not a websocket upgrade (no `Upgrade: websocket` header): an ordinary
/// request. `Some(Err)`: it asks for a websocket but the handshake is bad (method not
/// GET, HTTP/1.0, `Connection` without the `upgrade` token, key missing or not 16
/// bytes of base64, version not 13). `Some(Ok)`: a valid offer.
pub(crate) fn check(req: &HttpRequest) -> Option<Result<Offer, HandshakeError>> {
    let _ = req;
    todo!()
}

/// Picks the first acceptable permessage-deflate offer in `extensions` (the header
/// value; several offers separated by commas, each with `;` parameters). Returns the
/// agreed parameters and the `Sec-WebSocket-Extensions` value to answer with, which
/// always includes `server_no_context_takeover`. Offers with unknown or malformed
/// parameters, or repeated ones, are skipped; `None` if none is acceptable.
pub(crate) fn negotiate_deflate(extensions: &str) -> Option<(Deflate, String)> {
    let _ = extensions;
    todo!()
}

/// The `101 Switching Protocols` reply: `Sec-WebSocket-Accept` from `key`, the chosen
/// subprotocol and extension answer if any, and the handler's extra headers.
pub(crate) fn accept_response(
    key: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
    extra: &[(String, String)],
) -> Vec<u8> {
    let _ = (key, protocol, extensions, extra);
    todo!()
}
