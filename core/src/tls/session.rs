//! One connection's TLS session: a rustls `ServerConnection` used sans-IO. Ciphertext
//! goes in as a slice and comes out as plaintext appended to the caller's buffer;
//! plaintext goes in as a slice and comes out as records in [`Session::pending`] (or
//! [`Session::take_pending`]) for the caller to send. It never touches a socket.
//!
//! Invariants: after `feed` returns, rustls holds no plaintext and no records (both are
//! moved out); after a failure (`Failed`) the session only hands out what it queued
//! (the alert, or the plain 400 for an HTTP request on the TLS port), takes nothing more
//! and encrypts nothing. A session is `Send`: a handshake flight may be fed on a CPU-pool
//! thread and the session handed back.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{HandshakeKind, ServerConfig, ServerConnection};

use super::TlsInfo;
use crate::config::TlsVersion;

/// Records sent: a buffer this large or more is given back (an idle connection keeps
/// none).
const KEEP_OUT: usize = 16 << 10;

/// The answer, in clear, to a plain HTTP request on the TLS port (as nginx answers it):
/// cheaper for the person debugging than an alert their client cannot show.
const PLAIN_HTTP: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 77\r\n\
connection: close\r\n\r\nThis port speaks HTTPS: the request came as plain HTTP. Use an https:// URL.\n";

pub(crate) struct Session {
    conn: ServerConnection,
    /// Records to send, in order; `out[sent..]` is not on the wire yet.
    out: Vec<u8>,
    sent: usize,
    /// When the client sent the first byte of its handshake.
    began: Option<Instant>,
    /// A protocol error ended the session (its alert may still be in `out`).
    failed: bool,
    /// The peer sent `close_notify`: no more plaintext comes.
    peer_closed: bool,
    /// The session has answered the client at least once (its first flight).
    answered: bool,
    /// What the handshake agreed on, once it completed.
    info: Option<Arc<TlsInfo>>,
}

/// What feeding ciphertext brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Fed {
    /// Plaintext bytes appended (none for handshake messages or part of a record).
    pub plain: usize,
    /// The handshake completed with these bytes ([`Session::info`] is set).
    pub completed: bool,
    /// The peer sent `close_notify`; what came before it is in the plaintext.
    pub closed: bool,
}

/// The peer's bytes broke TLS (garbage, no common version or cipher suite, a bad
/// record): the alert rustls chose, if any, is queued, and the connection must close.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failed {
    /// This failed a handshake under way (else an established session broke, or the
    /// session had failed before).
    pub in_handshake: bool,
    pub reason: Reason,
}

/// Why a handshake failed, as the metrics count it (`tls_handshake_failures_<name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The first bytes were not a TLS record (garbage, another protocol).
    NotTls,
    /// A plain HTTP request on the TLS port (answered with a 400 in clear).
    PlainHttp,
    /// No version, cipher suite or key exchange in common, or an extension refused.
    Incompatible,
    /// The client's certificate was missing, or not from a trusted CA.
    ClientCert,
    /// Any other protocol error (a bad record or message, a renegotiation attempt).
    Protocol,
    /// The client stopped before completing it (closed, reset, or silent past the
    /// handshake's deadline).
    Abandoned,
    /// The CPU pool shed it: it waited there past CoDel's target (overload).
    Shed,
}

impl Reason {
    /// Every reason, in the order of their counters (`reason as usize`).
    #[cfg(test)]
    pub(crate) const ALL: [Reason; 7] = [
        Reason::NotTls,
        Reason::PlainHttp,
        Reason::Incompatible,
        Reason::ClientCert,
        Reason::Protocol,
        Reason::Abandoned,
        Reason::Shed,
    ];

    /// The error rustls gave, sorted.
    fn of(e: &rustls::Error) -> Reason {
        use rustls::Error as E;
        match e {
            E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
                Reason::Protocol
            }
            E::PeerIncompatible(_) | E::NoApplicationProtocol => Reason::Incompatible,
            E::NoCertificatesPresented | E::InvalidCertificate(_) => Reason::ClientCert,
            _ => Reason::Protocol,
        }
    }
}

impl Session {
    /// A session for a new connection. `config` comes from
    /// [`server_config`](super::server_config), which checked that it makes connections.
    pub(crate) fn new(config: &Arc<ServerConfig>) -> Session {
        let conn = ServerConnection::new(Arc::clone(config)).expect("checked by server_config");
        Session {
            conn,
            out: Vec::new(),
            sent: 0,
            began: None,
            failed: false,
            peer_closed: false,
            answered: false,
            info: None,
        }
    }

    /// Takes `cipher` (all of it), appends the plaintext it carries to `plain`, and
    /// queues whatever rustls answers (handshake messages, tickets, alerts).
    pub(crate) fn feed(&mut self, mut cipher: &[u8], plain: &mut Vec<u8>) -> Result<Fed, Failed> {
        let handshaking = self.conn.is_handshaking();
        let mut fed = Fed::default();
        if self.failed {
            // Counted when it failed.
            return Err(Failed { in_handshake: false, reason: Reason::Protocol });
        }
        if self.began.is_none() && !cipher.is_empty() {
            self.began = Some(Instant::now());
            if let Some(reason) = not_tls(cipher) {
                return Err(self.refuse(reason));
            }
        }
        while !cipher.is_empty() && !self.peer_closed {
            // `read_tls` takes what fits its buffer (a record at most, or 4 KiB) and
            // advances the slice; what it took is processed before the next piece.
            let state = match self.conn.read_tls(&mut cipher) {
                Ok(0) => break,
                Ok(_) => self.conn.process_new_packets().map_err(|e| Reason::of(&e)),
                // Its buffer is full: a record larger than TLS allows.
                Err(_) => Err(Reason::Protocol),
            };
            let state = match state {
                Ok(state) => state,
                Err(reason) => return Err(self.fail(handshaking, reason)),
            };
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let at = plain.len();
                plain.resize(at + n, 0);
                if self.conn.reader().read_exact(&mut plain[at..]).is_err() {
                    plain.truncate(at);
                    return Err(self.fail(handshaking, Reason::Protocol));
                }
                fed.plain += n;
            }
            self.peer_closed = state.peer_has_closed();
        }
        fed.closed = self.peer_closed;
        self.queue_out();
        if handshaking && !self.conn.is_handshaking() {
            fed.completed = true;
            self.info = Some(Arc::new(self.agreed()));
        }
        Ok(fed)
    }

    /// Encrypts `plain` into records (after those already pending); returns how much of
    /// it was taken: all of it, or none while the handshake runs or after a failure.
    pub(crate) fn encrypt(&mut self, mut plain: &[u8]) -> usize {
        if self.failed || self.conn.is_handshaking() {
            return 0;
        }
        let mut taken = 0;
        while !plain.is_empty() {
            match self.conn.writer().write(plain) {
                Ok(n) if n > 0 => {
                    taken += n;
                    plain = &plain[n..];
                    self.queue_out();
                }
                _ => break,
            }
        }
        taken
    }

    /// Queues `close_notify` (a graceful close of an established session only).
    pub(crate) fn close_notify(&mut self) {
        if !self.failed && !self.conn.is_handshaking() {
            self.conn.send_close_notify();
            self.queue_out();
        }
    }

    /// Records not sent yet.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// `n` bytes of [`Session::pending`] went out.
    pub(crate) fn sent(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.out.len() {
            self.sent = 0;
            if self.out.capacity() >= KEEP_OUT {
                self.out = Vec::new();
            } else {
                self.out.clear();
            }
        }
    }

    /// The records not sent yet, handed over whole (a send on the ring owns its buffer).
    pub(crate) fn take_pending(&mut self) -> Vec<u8> {
        self.out.drain(..self.sent);
        self.sent = 0;
        std::mem::take(&mut self.out)
    }

    /// The client began a handshake (a connection closed before that is no failure).
    pub(crate) fn began(&self) -> bool {
        self.began.is_some()
    }

    /// The handshake is under way: neither completed nor failed.
    pub(crate) fn handshaking(&self) -> bool {
        self.info.is_none() && !self.failed
    }

    /// The handshake is under way and the server has not answered yet: the next bytes
    /// fed may complete the `ClientHello`, whose answer is the full handshake's expensive
    /// step (the key exchange and the signature). The client's later flights cost a
    /// fraction of that (TLS 1.3: checking its `Finished`).
    pub(crate) fn awaits_hello(&self) -> bool {
        self.handshaking() && !self.answered
    }

    /// How long the handshake took, from the client's first byte to its completion
    /// (`None` before it completes).
    pub(crate) fn handshake_time(&self, now: Instant) -> Option<Duration> {
        self.info.as_ref().and(self.began).map(|began| now.saturating_duration_since(began))
    }

    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    pub(crate) fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// What the handshake agreed on (`None` until it completes).
    pub(crate) fn info(&self) -> Option<&Arc<TlsInfo>> {
        self.info.as_ref()
    }

    /// Ends the session for a protocol error, keeping the alert rustls queued for it.
    fn fail(&mut self, in_handshake: bool, reason: Reason) -> Failed {
        self.failed = true;
        self.queue_out();
        Failed { in_handshake, reason }
    }

    /// Ends the session before rustls saw anything: the first bytes were not TLS. A
    /// plain HTTP request is answered in clear; anything else gets the alert TLS has for
    /// a record it cannot read (`decode_error`).
    fn refuse(&mut self, reason: Reason) -> Failed {
        self.failed = true;
        let answer: &[u8] = match reason {
            Reason::PlainHttp => PLAIN_HTTP,
            // A fatal (2) decode_error (50) alert, in a TLS 1.0 record as a server may
            // send before a version is agreed.
            _ => &[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 50],
        };
        self.out.extend_from_slice(answer);
        Failed { in_handshake: true, reason }
    }

    /// Moves what rustls has to send into `out`.
    fn queue_out(&mut self) {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.out) {
                Ok(n) if n > 0 => self.answered = true,
                _ => break,
            }
        }
    }

    fn agreed(&self) -> TlsInfo {
        let c = &self.conn;
        TlsInfo {
            version: match c.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
                _ => TlsVersion::Tls13,
            },
            cipher_suite: c.negotiated_cipher_suite().and_then(|s| s.suite().as_str()).unwrap_or("unknown"),
            cipher_suite_id: c.negotiated_cipher_suite().map_or(0, |s| u16::from(s.suite())),
            sni: c.server_name().map(str::to_string),
            alpn: c.alpn_protocol().map(<[u8]>::to_vec),
            resumed: c.handshake_kind() == Some(HandshakeKind::Resumed),
            client_chain: c.peer_certificates().unwrap_or_default().iter().map(|d| d.to_vec()).collect(),
            client_subject: c.peer_certificates().and_then(|chain| super::subject(chain.first()?)),
        }
    }
}

/// Whether the connection's first bytes cannot start a TLS handshake: a handshake
/// record (type 22, version major 3). HTTP methods are told apart for a clearer answer.
fn not_tls(first: &[u8]) -> Option<Reason> {
    const METHODS: [&[u8]; 9] = [b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC"];
    if first[0] == 22 && first.get(1).map_or(true, |&major| major == 3) {
        return None;
    }
    let head = &first[..first.len().min(4)];
    if METHODS.iter().any(|m| m.starts_with(head)) {
        Some(Reason::PlainHttp)
    } else {
        Some(Reason::NotTls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection};

    /// A server config for a fresh self-signed `localhost` certificate, and a client
    /// that trusts it.
    fn pair() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let pem = super::super::PemSource::Given(cert.as_bytes(), key.as_bytes());
        let server = super::super::server_config(pem, TlsVersion::Tls12, &[b"http/1.1"]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (server, Arc::new(client))
    }

    /// Runs the handshake in memory; returns the server's plaintext so far.
    fn handshake(s: &mut Session, c: &mut ClientConnection) -> Vec<u8> {
        let mut plain = Vec::new();
        for _ in 0..8 {
            let mut flight = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut flight).unwrap();
            }
            let fed = s.feed(&flight, &mut plain).unwrap();
            let records = s.take_pending();
            c.read_tls(&mut &records[..]).unwrap();
            c.process_new_packets().unwrap();
            if fed.completed {
                return plain;
            }
        }
        panic!("the handshake did not complete in 8 flights");
    }

    #[test]
    fn plaintext_goes_through_both_ways_and_close_notify_ends_it() {
        let (server, client) = pair();
        let mut s = Session::new(&server);
        let mut c = ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
        assert_eq!(s.encrypt(b"too early"), 0, "nothing is encrypted before the handshake completes");
        assert!(handshake(&mut s, &mut c).is_empty());
        let info = s.info().expect("set at completion").clone();
        assert_eq!((info.sni(), info.resumed()), (Some("localhost"), false));

        c.writer().write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut flight = Vec::new();
        c.write_tls(&mut flight).unwrap();
        let mut plain = Vec::new();
        let fed = s.feed(&flight, &mut plain).unwrap();
        assert_eq!((fed.plain, fed.completed, fed.closed), (18, false, false));
        assert_eq!(plain, b"GET / HTTP/1.1\r\n\r\n");

        assert_eq!(s.encrypt(b"HTTP/1.1 200 OK\r\n\r\n"), 19);
        s.close_notify();
        let records = s.pending().to_vec();
        s.sent(records.len());
        assert!(s.pending().is_empty());
        c.read_tls(&mut &records[..]).unwrap();
        let state = c.process_new_packets().unwrap();
        let mut got = Vec::new();
        c.reader().read_to_end(&mut got).unwrap();
        assert_eq!(got, b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(state.peer_has_closed(), "the reply is followed by close_notify");

        c.send_close_notify();
        let mut last = Vec::new();
        c.write_tls(&mut last).unwrap();
        assert!(s.feed(&last, &mut plain).unwrap().closed);
        assert!(s.peer_closed());
    }

    #[test]
    fn garbage_fails_the_handshake_with_an_alert_and_nothing_after() {
        let (server, _) = pair();
        let mut s = Session::new(&server);
        let mut plain = Vec::new();
        let failed = s.feed(b"\x00\x01garbage that is not a TLS record", &mut plain).unwrap_err();
        assert_eq!(failed, Failed { in_handshake: true, reason: Reason::NotTls });
        assert!(s.began() && s.failed() && plain.is_empty());
        let alert = s.take_pending();
        assert_eq!(alert, [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 50], "a fatal decode_error alert");
        assert!(s.feed(b"more", &mut plain).is_err(), "a failed session takes nothing more");
        s.close_notify();
        assert!(s.pending().is_empty(), "no close_notify after a fatal alert");
    }

    #[test]
    fn plain_http_is_answered_with_a_400_in_clear() {
        let (server, _) = pair();
        for first in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], b"PO", b"OPTIONS * HTTP/1.1\r\n"] {
            let mut s = Session::new(&server);
            let failed = s.feed(first, &mut Vec::new()).unwrap_err();
            assert_eq!(failed.reason, Reason::PlainHttp, "{first:?}");
            let answer = String::from_utf8(s.take_pending()).unwrap();
            assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("content-length: {}", body.len())), "{answer}");
            assert!(body.contains("https://"), "{body}");
        }
    }

    #[test]
    fn a_handshake_is_timed_from_the_clients_first_byte() {
        let (server, client) = pair();
        let mut s = Session::new(&server);
        let mut c = ClientConnection::new(client, ServerName::try_from("localhost").unwrap()).unwrap();
        assert!(s.handshaking() && s.awaits_hello() && s.handshake_time(Instant::now()).is_none());
        let mut hello = Vec::new();
        c.write_tls(&mut hello).unwrap();
        s.feed(&hello[..10], &mut Vec::new()).unwrap();
        assert!(s.awaits_hello(), "part of a ClientHello brings no answer");
        s.feed(&hello[10..], &mut Vec::new()).unwrap();
        assert!(s.handshaking() && !s.awaits_hello(), "the server's first flight is queued");
        c.read_tls(&mut &s.take_pending()[..]).unwrap();
        c.process_new_packets().unwrap();
        handshake(&mut s, &mut c);
        assert!(!s.handshaking());
        assert!(s.handshake_time(Instant::now()).is_some());
    }
}
