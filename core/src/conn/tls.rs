//! The connection's TLS seam: where its bytes pass through its session
//! ([`crate::tls::Session`]) on their way between the socket and the phases.
//!
//! - In: once the PROXY preamble (read in clear) is done, each read takes ciphertext
//!   from the socket (epoll: `recv`; io_uring: what the ring's receive delivered) into a
//!   per-thread buffer, and the session appends the plaintext to the read buffer, where
//!   the phases (head, body, websocket) find it as they would without TLS.
//! - Out: `flush` encrypts the write buffer into records as they leave: on epoll a chunk
//!   at a time, only once the records before it are sent; on io_uring all of it, as one
//!   send (one send in flight at a time, as without TLS).
//! - Handshake: its messages are ciphertext in and records out like any others, inline
//!   in the turn; its deadline is the header timeout (the first request's, counted from
//!   the connection's start). A handshake's expensive step moves to the CPU pool at
//!   [`Conn::tls_feed`] in a later slice.
//!
//! Invariants: the write backlog counts plaintext until it is encrypted (at most
//! `TLS_CHUNK` of records wait beyond it on epoll; on io_uring, the send in flight); a
//! session's failure moves the connection to `Closing`, so the alert is sent, nothing
//! after it, and the socket closes; every session's handshake is counted once, as
//! completed (`tls_feed`) or, if the client began it, as failed (`tls_close`).

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use super::{Conn, Io, Phase};
use crate::engine::Shared;
use crate::sys::{self, Op, Ring};
use crate::tls::{Failed, Session};

/// Plaintext encrypted per step of an epoll flush: records this size at most wait
/// beyond the write backlog.
const TLS_CHUNK: usize = 64 << 10;
/// The per-thread ciphertext buffer is given back above this size (an io_uring
/// receive may deliver up to its high-water mark at once).
const KEEP_CIPHERTEXT: usize = 256 << 10;

thread_local! {
    /// Ciphertext just received, before the session takes it: one buffer per thread, so
    /// a TLS connection holds no read buffer of its own between turns.
    static CIPHERTEXT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Conn {
    /// A new connection's TLS session, when the engine serves TLS (counted as a
    /// handshake under way until it ends either way).
    pub(super) fn tls_session(engine: &Shared) -> Option<Box<Session>> {
        let config = engine.tls.as_ref()?.current();
        engine.counters.tls.handshaking.fetch_add(1, Relaxed);
        Some(Box::new(Session::new(&config)))
    }

    /// `read` for a TLS connection past its preamble: receives ciphertext once and
    /// passes it through the session. Returns the ciphertext bytes received (`Ok(0)`:
    /// the end of the stream, or the peer's `close_notify` seen on an earlier read); the
    /// plaintext, if any, is appended to the read buffer.
    pub(super) fn tls_read(&self, io: &mut Io, fd: RawFd, want: usize) -> std::io::Result<usize> {
        if io.tls.as_ref().is_some_and(|t| t.peer_closed()) {
            return Ok(0);
        }
        io.compact();
        CIPHERTEXT.with_borrow_mut(|cipher| {
            cipher.clear();
            let got = self.recv_into(fd, want, &mut io.want_read, io.hup_seen, cipher);
            if let Ok(n) = got {
                if n > 0 {
                    self.tls_feed(io, cipher);
                }
            }
            if cipher.capacity() > KEEP_CIPHERTEXT {
                *cipher = Vec::new();
            }
            got
        })
    }

    /// The PROXY header is read: what followed it in the read buffer is the start of
    /// the TLS stream (the `ClientHello`), so it goes through the session.
    pub(super) fn tls_after_preamble(&self, io: &mut Io) {
        let cipher = io.rbuf.split_off(io.rpos);
        io.rbuf.clear();
        io.rpos = 0;
        if !cipher.is_empty() {
            self.tls_feed(io, &cipher);
        }
    }

    /// Passes ciphertext through the session: plaintext into the read buffer, records
    /// to send queued in the session (written by the turn's next flush). A completed
    /// handshake is counted here; a failure closes the connection after its alert.
    fn tls_feed(&self, io: &mut Io, cipher: &[u8]) {
        let Some(tls) = io.tls.as_mut() else { return };
        match tls.feed(cipher, &mut io.rbuf) {
            Ok(fed) => {
                if fed.completed {
                    let c = &self.engine.counters.tls;
                    c.handshaking.fetch_sub(1, Relaxed);
                    c.handshakes.fetch_add(1, Relaxed);
                    if tls.info().is_some_and(|i| i.resumed()) {
                        c.resumed.fetch_add(1, Relaxed);
                    }
                }
                if fed.closed {
                    // No readiness event will say so: the next read reports the end.
                    io.want_read = true;
                }
            }
            // Counted at the close (a failed handshake, or a broken established session).
            Err(Failed { .. }) => io.advance(Phase::Closing),
        }
    }

    /// `flush` for a TLS connection: sends the session's records, encrypting more of
    /// the write buffer as they leave. False on a write error.
    pub(super) fn tls_flush(&self, io: &mut Io, fd: RawFd) -> bool {
        if let Some(ring) = self.ring() {
            return self.tls_send_on_ring(ring, io);
        }
        let Some(tls) = io.tls.as_mut() else { return true };
        loop {
            while !tls.pending().is_empty() {
                match sys::send(fd, tls.pending()) {
                    Ok(n) => tls.sent(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        self.want_writable(&mut io.out_armed, fd);
                        return true;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return false,
                }
            }
            let end = io.wbuf.len().min(io.wpos + TLS_CHUNK);
            let n = self.tls_encrypt(tls, &io.wbuf[io.wpos..end]);
            if n == 0 {
                break;
            }
            io.wpos += n;
        }
        self.tls_settle_wbuf(io);
        true
    }

    /// io_uring: encrypts the whole write buffer and hands the records to the home ring
    /// as one send, unless a send is still in flight (then they wait their turn).
    fn tls_send_on_ring(&self, ring: &Ring, io: &mut Io) -> bool {
        if self.send_failed.load(SeqCst) {
            return false;
        }
        if self.sending.load(SeqCst) > 0 {
            return true;
        }
        let Some(tls) = io.tls.as_mut() else { return true };
        io.wpos += self.tls_encrypt(tls, &io.wbuf[io.wpos..]);
        let records = tls.take_pending();
        self.tls_settle_wbuf(io);
        if !records.is_empty() {
            self.sending.store(records.len(), SeqCst);
            self.ring_op(ring, Op::Send { fd: self.raw, token: self.token, buf: records });
        }
        true
    }

    /// Encrypts `plain` into the session's records; the backlog counts it as written.
    fn tls_encrypt(&self, tls: &mut Session, plain: &[u8]) -> usize {
        let n = tls.encrypt(plain);
        if n > 0 {
            let _ = self.backlog.fetch_update(SeqCst, SeqCst, |b| Some(b.saturating_sub(n)));
        }
        n
    }

    /// After a flush: a write buffer encrypted to its end is emptied; after a failure,
    /// what it still holds is dropped (nothing follows the alert).
    fn tls_settle_wbuf(&self, io: &mut Io) {
        debug_assert!(
            io.wpos == io.wbuf.len() || io.tls.as_ref().is_some_and(|t| t.failed() || !t.pending().is_empty()),
            "plaintext is only written once the handshake is done (no request is framed before)"
        );
        if io.tls.as_ref().is_some_and(|t| t.failed()) {
            let rest = io.wbuf.len() - io.wpos;
            let _ = self.backlog.fetch_update(SeqCst, SeqCst, |b| Some(b.saturating_sub(rest)));
            io.wpos = io.wbuf.len();
        }
        if io.wpos == io.wbuf.len() {
            io.wbuf.clear();
            io.wpos = 0;
        }
    }

    /// The socket closes: a handshake that never completed is settled (a failure if
    /// the client began it), and a graceful close of an established session says
    /// `close_notify` first. Sent directly and never blocking, on either backend: a
    /// graceful close comes with nothing else unsent, so it goes in order.
    pub(super) fn tls_close(&self, io: &mut Io, fd: RawFd, graceful: bool) {
        let Some(mut tls) = io.tls.take() else { return };
        if tls.info().is_none() {
            let c = &self.engine.counters.tls;
            c.handshaking.fetch_sub(1, Relaxed);
            if tls.began() {
                c.handshake_failures.fetch_add(1, Relaxed);
            }
        }
        if graceful {
            tls.close_notify();
            let _ = sys::send(fd, tls.pending());
        }
    }
}
