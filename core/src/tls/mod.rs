//! TLS for served connections: rustls between the socket and the phases.
//!
//! ```text
//! socket ─► ciphertext ─► Session::feed ─► plaintext (the read buffer) ─► phase
//! phase  ─► plaintext (the write buffer) ─► Session::encrypt ─► records ─► socket
//! ```
//!
//! This room owns the TLS state and nothing of the I/O: `certs.rs` reads the PEM
//! certificate chains and keys (files, or contents given); `resolve.rs` picks the chain a
//! handshake presents by the server name the client asked for (SNI); `config.rs` makes
//! the rustls `ServerConfig` every connection shares from the options (with the client
//! certificate verifier, `tls_client_ca`); `live.rs` holds the one new connections take;
//! `dn.rs` writes a client certificate's subject as text; `session.rs` is one connection's rustls
//! `ServerConnection` behind a sans-IO wrapper that takes ciphertext and hands back
//! plaintext, and takes plaintext and hands back records to send; `info.rs` is what a
//! handler sees of it ([`TlsInfo`]). The connection (`conn/tls.rs`) moves bytes between
//! the socket (or the io_uring receive and send) and a session, so epoll and io_uring
//! pass the same bytes through the same code.
//!
//! Invariants:
//! - rustls never owns the socket: it sees slices and `Vec`s only, so both backends and
//!   the PROXY preamble (read in clear before the `ClientHello`) share one session type.
//! - Every ciphertext byte read is fed at once, and all the plaintext it yields is taken
//!   at once: nothing waits inside rustls for a readiness event that will not come
//!   (edge-triggered epoll, the ring's completions).
//! - Plaintext is encrypted only once the handshake is done, and only as fast as the
//!   records before it leave (the caller encrypts when [`Session::pending`] is empty, or
//!   all of it in one send on io_uring), so the records waiting in a session are bounded.
//! - After a protocol error the session takes no more input and encrypts nothing: the
//!   alert rustls queued is its last output; `close_notify` goes only on a graceful close
//!   of a connection whose handshake completed.
//! - No early data (0-RTT: replayable); resumption by tickets (stateless, TLS 1.2 and
//!   1.3) or by session id from an in-memory cache.
//!
//! A session is `Send` and owns no I/O, so a handshake flight (the `ClientHello` and its
//! key exchange and signature, the heaviest work per connection) can be fed on a
//! CPU-pool thread and the session handed back: the connection decides where
//! (`conn/tls.rs`, `tls_handshake_on_pool`).

mod certs;
mod config;
mod dn;
mod info;
mod live;
mod resolve;
mod session;

#[cfg(test)]
pub(crate) use certs::PemSource;
#[cfg(test)]
pub(crate) use config::server_config;
pub(crate) use config::TlsSetup;
pub use info::TlsInfo;
pub(crate) use live::ServerTls;
pub(crate) use session::{Failed, Fed, Reason, Session};

/// The RFC 4514 subject of a certificate (a verified client's), `None` if it does not parse.
fn subject(cert: &rustls::pki_types::CertificateDer<'_>) -> Option<String> {
    dn::rfc4514(webpki::EndEntityCert::try_from(cert).ok()?.subject())
}
