//! What a handler sees of a connection's TLS: the version, cipher suite, server name
//! and application protocol the handshake agreed on, and the client's certificate when
//! it presented one. Made once, when the handshake completes, and shared by every
//! request of the connection.
//!
//! Invariant: a client certificate is here only once rustls verified it against
//! `tls_client_ca` (a certificate that fails is a failed handshake, never a request).

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
    /// The client's chain as it sent it (DER), its own certificate first; empty without one.
    pub(crate) client_chain: Vec<Vec<u8>>,
    /// The subject of the client's certificate (RFC 4514).
    pub(crate) client_subject: Option<String>,
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
    /// The certificate chain the client presented, as it sent it, once `tls_client_ca`
    /// verified it: each as DER, its own certificate first (a client may add its CA); empty when it presented none (`tls_client_auth =
    /// optional`) or none was asked for. On a resumed session, the chain of the session
    /// it resumed.
    pub fn client_cert_chain(&self) -> &[Vec<u8>] {
        &self.client_chain
    }
    /// The subject of the client's certificate as RFC 4514 writes a distinguished name
    /// (`CN=alice,O=Example`), as the ASGI `client_cert_name` and WSGI `SSL_CLIENT_S_DN`
    /// give it; `None` without a client certificate.
    pub fn client_subject(&self) -> Option<&str> {
        self.client_subject.as_deref()
    }
    /// [`client_cert_chain`](TlsInfo::client_cert_chain) as PEM text, one
    /// `-----BEGIN CERTIFICATE-----` block per certificate (what the ASGI `tls`
    /// extension and WSGI's `SSL_CLIENT_CERT` carry).
    pub fn client_cert_pem(&self) -> Vec<String> {
        self.client_chain.iter().map(|der| pem(der)).collect()
    }
}

/// One certificate as PEM: base64 in lines of 64, between the markers.
fn pem(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            let c = if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i)) as usize & 63] } else { b'=' };
            b64.push(c);
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    #[test]
    fn pem_is_what_a_pem_reader_reads_back() {
        for der in [vec![], vec![1], vec![1, 2], vec![1, 2, 3], (0..=255).collect::<Vec<u8>>()] {
            let text = super::pem(&der);
            let back = CertificateDer::from_pem_slice(text.as_bytes()).unwrap();
            assert_eq!(back.as_ref(), &der[..], "{text}");
        }
        assert_eq!(super::pem(b"hi!"), "-----BEGIN CERTIFICATE-----\naGkh\n-----END CERTIFICATE-----\n");
    }
}
