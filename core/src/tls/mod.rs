//! TLS for served connections: rustls between the socket and the phases.
//!
//! ```text
//! socket ─► ciphertext ─► Session::feed ─► plaintext (the read buffer) ─► phase
//! phase  ─► plaintext (the write buffer) ─► Session::encrypt ─► records ─► socket
//! ```
//!
//! This room owns the TLS state and nothing of the I/O: `config.rs` turns the PEM
//! certificate chain and key (files, or contents given) into the rustls `ServerConfig` every connection shares (read
//! once, when the engine is built); `session.rs` is one connection's rustls
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

mod config;
mod info;
mod session;

pub(crate) use config::{server_config, PemSource};
pub use info::TlsInfo;
pub(crate) use session::{Failed, Fed, Reason, Session};
