//! What a handler sees of a connection's TLS: the version, cipher suite, server name
//! and application protocol the handshake agreed on. Made once, when the handshake
//! completes, and shared by every request of the connection.

use crate::config::TlsVersion;

/// The TLS session a request came over ([`Request::tls`](crate::Request::tls)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    pub(crate) version: TlsVersion,
    pub(crate) cipher_suite: &'static str,
    pub(crate) cipher_suite_id: u16,
    pub(crate) sni: Option<String>,
    pub(crate) alpn: Option<Vec<u8>>,
    pub(crate) resumed: bool,
}

impl TlsInfo {
    /// The protocol version agreed on.
    pub fn version(&self) -> TlsVersion {
        self.version
    }
    /// The cipher suite agreed on, by its IANA name (`TLS13_AES_128_GCM_SHA256`).
    pub fn cipher_suite(&self) -> &'static str {
        self.cipher_suite
    }
    /// The cipher suite agreed on, by its IANA number (`0x1301`), as the ASGI `tls`
    /// extension gives it.
    pub fn cipher_suite_id(&self) -> u16 {
        self.cipher_suite_id
    }
    /// The host name the client asked for (SNI), if it sent one.
    pub fn sni(&self) -> Option<&str> {
        self.sni.as_deref()
    }
    /// The application protocol agreed on by ALPN (`b"http/1.1"`), if the client offered one.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }
    /// Whether the session was resumed (a ticket or a cached session id) rather than
    /// made by a full handshake.
    pub fn resumed(&self) -> bool {
        self.resumed
    }
}
