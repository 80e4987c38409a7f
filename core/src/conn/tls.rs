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
//! - Handshake: its messages are ciphertext in and records out like any others; its
//!   deadline is `tls_handshake_timeout` or the first request's header timeout, whichever
//!   comes first, both counted from the connection's start. With a CPU pool and
//!   `tls_handshake_on_pool`, the client's first flight (the `ClientHello`: the key
//!   exchange and the signature it makes the server do are the heaviest work per
//!   connection) is fed on the pool: the session goes there with the ciphertext
//!   (`Io::tls_away`), the connection reads nothing more meanwhile, and the pool hands
//!   the session back (`tls_flight`) and schedules the connection, whose next turn takes
//!   it (`tls_land`) and sends what it answered. An I/O worker's other connections never
//!   wait behind a key exchange or a signature. The client's later flights (TLS 1.3: its
//!   `Finished`, often with the first request behind it) are fed inline: a trip to the
//!   pool and back costs more than they do (measured: a fifth more server CPU per
//!   handshake when every flight went).
//!
//! Invariants: the write backlog counts plaintext until it is encrypted (at most
//! `TLS_CHUNK` of records wait beyond it on epoll; on io_uring, the send in flight); a
//! session's failure moves the connection to `Closing`, so the alert is sent, nothing
//! after it, and the socket closes; every session's handshake is counted once, as
//! completed (`tls_fed`) or, if the client began it, as failed for one reason
//! (`tls_fed`, `tls_close`); while the session is away, nothing is read, written or
//! encrypted for the connection, and a close in that time settles the handshake (the
//! session coming back later is dropped unseen).

use std::cell::RefCell;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::Instant;

use super::{Conn, Io, Phase};
use crate::engine::Shared;
use crate::sync::lock;
use crate::sys::{self, Op, Ring};
use crate::tls::{Failed, Fed, Reason, Session};

/// Plaintext encrypted per step of an epoll flush: records this size at most wait
/// beyond the write backlog.
const TLS_CHUNK: usize = 64 << 10;
/// The per-thread ciphertext buffer is given back above this size (an io_uring
/// receive may deliver up to its high-water mark at once).
const KEEP_CIPHERTEXT: usize = 256 << 10;

/// A handshake flight fed on the CPU pool, on its way back to the connection: the
/// session, what feeding it brought, and the plaintext (a TLS 1.3 client may send its
/// first request right behind its `Finished`).
pub(super) struct Flight {
    session: Box<Session>,
    fed: Result<Fed, Failed>,
    plain: Vec<u8>,
}

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
    pub(super) fn tls_read(self: &Arc<Self>, io: &mut Io, fd: RawFd, want: usize) -> std::io::Result<usize> {
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
    pub(super) fn tls_after_preamble(self: &Arc<Self>, io: &mut Io) {
        let cipher = io.rbuf.split_off(io.rpos);
        io.rbuf.clear();
        io.rpos = 0;
        if !cipher.is_empty() {
            self.tls_feed(io, &cipher);
        }
    }

    /// Passes ciphertext through the session: plaintext into the read buffer, records
    /// to send queued in the session (written by the turn's next flush). A handshake
    /// flight goes to the CPU pool when the engine has one and says so.
    fn tls_feed(self: &Arc<Self>, io: &mut Io, cipher: &[u8]) {
        let Some(tls) = io.tls.as_mut() else { return };
        let engine = &self.engine;
        match &engine.cpu {
            Some(cpu) if engine.config.tls_handshake_on_pool && tls.awaits_hello() => {
                let session = io.tls.take().expect("checked above");
                io.tls_away = true;
                engine.counters.tls.pool_flights.fetch_add(1, Relaxed);
                let (conn, cipher) = (Arc::clone(self), cipher.to_vec());
                cpu.submit(crate::cpu::Job::for_client(self.client_key(), move |shed| {
                    conn.tls_flight(session, &cipher, shed)
                }));
            }
            _ => {
                let fed = tls.feed(cipher, &mut io.rbuf);
                self.tls_fed(io, fed);
            }
        }
    }

    /// On a CPU-pool thread: feeds the flight and hands the session back, scheduling
    /// the connection (run here, on the pool, as a heavy reply's is: its answer goes
    /// out without waking an I/O worker).
    fn tls_flight(self: &Arc<Self>, mut session: Box<Session>, cipher: &[u8], shed: bool) {
        let mut plain = Vec::new();
        let fed = if shed {
            Err(Failed { in_handshake: true, reason: Reason::Shed })
        } else {
            // rustls does not panic on a peer's bytes; if it ever did, the connection
            // fails its handshake here rather than waiting for its deadline.
            catch_unwind(AssertUnwindSafe(|| session.feed(cipher, &mut plain)))
                .unwrap_or(Err(Failed { in_handshake: true, reason: Reason::Protocol }))
        };
        *lock(&self.tls_flight) = Some(Box::new(Flight { session, fed, plain }));
        self.mark(super::READ);
        self.run_soon();
    }

    /// At the start of a turn while the session is on the pool: takes it back if its
    /// flight is done, and goes on as if it had been fed here.
    pub(super) fn tls_land(&self, io: &mut Io) {
        let Some(flight) = lock(&self.tls_flight).take() else { return };
        let Flight { session, fed, plain } = *flight;
        io.tls = Some(session);
        io.tls_away = false;
        io.rbuf.extend_from_slice(&plain);
        self.tls_fed(io, fed);
    }

    /// What feeding brought: a completed handshake is counted and timed; a failure
    /// closes the connection after its alert.
    fn tls_fed(&self, io: &mut Io, fed: Result<Fed, Failed>) {
        let Some(tls) = io.tls.as_ref() else { return };
        let c = &self.engine.counters.tls;
        match fed {
            Ok(fed) => {
                if fed.completed {
                    c.handshaking.fetch_sub(1, Relaxed);
                    c.handshakes.fetch_add(1, Relaxed);
                    if tls.info().is_some_and(|i| i.resumed()) {
                        c.resumed.fetch_add(1, Relaxed);
                    }
                    if let Some(took) = tls.handshake_time(Instant::now()) {
                        let _ = lock(&c.handshake_us.0).record(took.as_micros().max(1) as u64);
                    }
                }
                if fed.closed {
                    // No readiness event will say so: the next read reports the end.
                    io.want_read = true;
                }
            }
            Err(Failed { in_handshake, reason }) => {
                if in_handshake {
                    self.tls_failed(reason);
                }
                io.advance(Phase::Closing);
            }
        }
    }

    /// While the handshake is under way: when it must be done by (`tls_handshake_timeout`
    /// from the connection's start).
    pub(super) fn tls_deadline(engine: &Shared, io: &Io) -> Option<u64> {
        let handshaking = io.tls_away || io.tls.as_ref().is_some_and(|t| t.handshaking());
        handshaking.then(|| io.opened_ms + engine.config.tls_handshake_timeout.as_millis() as u64)
    }

    /// A begun handshake ended without completing.
    fn tls_failed(&self, reason: Reason) {
        let c = &self.engine.counters.tls;
        c.handshaking.fetch_sub(1, Relaxed);
        c.handshake_failures.fetch_add(1, Relaxed);
        c.failed_by[reason as usize].fetch_add(1, Relaxed);
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

    /// The socket closes: a handshake still under way is settled (a failure if the
    /// client began it, or if its session is on the pool), and a graceful close of an
    /// established session says `close_notify` first. Sent directly and never blocking,
    /// on either backend: a graceful close comes with nothing else unsent, so it goes in
    /// order.
    pub(super) fn tls_close(&self, io: &mut Io, fd: RawFd, graceful: bool) {
        if std::mem::take(&mut io.tls_away) {
            self.tls_failed(Reason::Abandoned);
            return;
        }
        let Some(mut tls) = io.tls.take() else { return };
        if tls.handshaking() {
            if tls.began() {
                self.tls_failed(Reason::Abandoned);
            } else {
                self.engine.counters.tls.handshaking.fetch_sub(1, Relaxed);
            }
        }
        if graceful {
            tls.close_notify();
            let _ = sys::send(fd, tls.pending());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_index_the_counters_in_the_order_the_stats_name_them() {
        let names = crate::stats::TlsFailures::NAMES;
        for (i, reason) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i);
            let debug = format!("{reason:?}");
            let snake: String = debug
                .chars()
                .enumerate()
                .flat_map(|(j, c)| {
                    let sep = (j > 0 && c.is_ascii_uppercase()).then_some('_');
                    sep.into_iter().chain(std::iter::once(c.to_ascii_lowercase()))
                })
                .collect();
            assert_eq!(snake, names[i], "{reason:?} is counted as {}", names[i]);
        }
    }
}
