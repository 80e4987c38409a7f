//! A served connection as a task.
//!
//! A connection is registered with its home worker's epoll, but any worker may run it:
//! readiness makes it a task in the deque of the worker that saw the event, and idle
//! workers steal tasks. An atomic task state guarantees that one thread at a time runs
//! it (`IDLE → SCHEDULED → RUNNING → IDLE`, with `NOTIFIED` recording a wake-up that
//! arrived while it ran, so none is lost).
//!
//! A turn: collect replies that are ready *in sequence order* into the write buffer and
//! flush it; then frame and dispatch requests until the budget (frames and bytes) is
//! spent, the per-connection in-flight cap is reached, or the peer stops reading its
//! replies (write back-pressure). Replies are completed by [`Responder`]s from any
//! thread into numbered slots, so pipelined light and heavy requests come back in order.
//!
//! Deadlines: with no complete request yet (first request, or a partial one) the header
//! timeout applies (with TLS, the handshake is inside the first request's, and also
//! within `tls_handshake_timeout`); otherwise
//! the idle timeout, which also bounds a peer that does not read its replies. The home
//! worker's timer checks them.
//!
//! This folder is the connection: this file (buffers, budgets, deadlines, a turn),
//! `task/` (the run state and reply slots other threads touch, loom-checked), the
//! phases (`body.rs`, `ws.rs`), and `tls.rs`, the one place where bytes pass through
//! the TLS session on their way between the socket and the buffers (`read_step` and
//! `flush` turn there when the connection has one).
//!
//! Invariants: replies are written in request order; a connection is never read while
//! `max_in_flight` requests await replies or `write_high_water` bytes are unwritten;
//! every request framed is answered (by its handler, the error reply, or the deadline
//! reply) or counted as aborted when its connection closes first.

mod body;
pub(crate) mod task;
mod tls;
mod ws;

use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::accept::proxy::{self, Preamble, ProxyHeader};
use crate::config::{ProxyMode, Readiness};
use crate::conn::task::replies::{Completed, Ready, ReplySlots};
use crate::conn::task::state::TaskState;
use crate::engine::Shared;
use crate::fair::{self, ClientKey};
use crate::frame::{BodyError, Decoded, Framer, Payload, ReplyCtx, CONTINUE};
use crate::handler::{Body, Cost, Handler, Request, Responder};
use crate::sync::lock;
use crate::sys::{self, Interest, Op, Received, Ring};
use crate::worker::WorkerShared;

// Readiness bits, set by whoever saw the event, taken by the runner.
pub(crate) const READ: u8 = 1;
pub(crate) const WRITE: u8 = 2;
pub(crate) const HUP: u8 = 4;
pub(crate) const TIMEOUT: u8 = 8;
pub(crate) const DRAIN: u8 = 16;

/// While the engine drains, a keep-alive connection with nothing in flight stays open
/// this long for a request the client may already have sent (closing at once would
/// race it: the request is lost or the close becomes a reset). A request that comes is
/// answered with `connection: close`; otherwise the connection closes quietly.
pub(crate) const DRAIN_IDLE_GRACE_MS: u64 = 250;

/// `deadline_ms` when nothing is timed (a request is being handled).
pub(crate) const NO_DEADLINE: u64 = u64::MAX;

const READ_CHUNK: usize = 16 << 10;
/// io_uring: received bytes a connection may hold unread before its receive is
/// cancelled (re-armed once the runner has taken them), so a client that sends faster
/// than it is served is held back by TCP, as with epoll.
const RX_HIGH: usize = 256 << 10;
/// An unfinished request this short is kept in a buffer of its own size between turns.
const SMALL_PARTIAL: usize = 1024;
/// Rounds a task may re-run for wake-ups that arrived during its turn before it goes to
/// the back of the queue.
const MAX_REPOLLS: u32 = 2;

thread_local! {
    /// The connection whose handler this thread is running inline, if any: a reply
    /// completed for it here needs no wake-up, its runner collects it next.
    static RUNNING_CONN: Cell<u64> = const { Cell::new(0) };
    /// This thread is a CPU-pool thread: a reply it completes at the head of the line
    /// is written from here rather than handed back to an I/O worker.
    static ON_POOL: Cell<bool> = const { Cell::new(false) };
}

/// When a connection's first request must have come: its header timeout and, while a
/// TLS handshake is under way, the handshake's, both from the connection's start.
fn first_request_deadline(engine: &Shared, io: &Io) -> u64 {
    let first = io.opened_ms + engine.config.limits.header_timeout.as_millis() as u64;
    Conn::tls_deadline(engine, io).map_or(first, |d| d.min(first))
}

/// Marks the calling thread as a CPU-pool thread (see `Conn::complete`).
pub(crate) fn mark_pool_thread() {
    ON_POOL.with(|c| c.set(true));
}

enum Out {
    Write { bytes: Vec<u8>, close: bool },
    Close,
}

/// What the runner keeps about a request until its reply is written.
struct Pending {
    since: Instant,
    heavy: bool,
    /// How to answer in the handler's place if it misses `reply_timeout`.
    ctx: ReplyCtx,
}

/// State only the runner touches (behind a mutex that is, by the task state, never
/// contended except by shutdown).
/// Where a connection is in its life, in order: it only moves forward ([`Io::advance`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Framing and dispatching requests.
    Serving,
    /// No more requests are framed (`Connection: close`, bad input, the per-connection
    /// request cap); replies to those already framed are written, then it closes.
    LastReplies,
    /// A reply said to close: close once the write buffer is flushed; nothing queued
    /// after that reply is written.
    Closing,
}

struct Io {
    fd: Option<OwnedFd>,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    next_seq: u64,
    done_seq: u64,
    /// Requests framed so far.
    requests: u64,
    /// More bytes may be waiting in the socket (edge-triggered: until a short read).
    want_read: bool,
    /// The peer's end-of-stream was signalled: read until it shows (a short read does
    /// not mean drained, since no new edge will come for it).
    hup_seen: bool,
    peer_closed: bool,
    /// Where the connection is in its life (only moves forward).
    phase: Phase,
    continue_sent: bool,
    /// Edge mode: writability is registered (after a write would have blocked).
    out_armed: bool,
    partial_since: Option<u64>,
    opened_ms: u64,
    /// Draining: when this connection was first seen with nothing to do.
    drain_idle_since: Option<u64>,
    /// The PROXY header is read (or none is expected): requests come next.
    preamble_done: bool,
    /// A streamed request's body being read (the body phase, `body.rs`).
    body: Option<body::BodyIn>,
    /// A websocket upgrade request awaits its handler's decision (`ws.rs`): nothing
    /// more is framed until then.
    upgrade_wait: Option<u64>,
    /// The websocket phase (`ws.rs`).
    ws: Option<Box<ws::WsIn>>,
    /// The TLS session, when the engine serves TLS (`tls.rs`): bytes between the socket
    /// and the buffers above pass through it.
    tls: Option<Box<crate::tls::Session>>,
    /// The TLS session is on the CPU pool for a handshake flight (`tls` is `None`
    /// meanwhile): nothing is read or written until it comes back (`tls.rs`).
    tls_away: bool,
}

impl Io {
    /// A new connection's I/O state: nothing read or written yet; edge-triggered, so it
    /// reads until a short read shows the socket drained.
    /// `preamble_done`: no PROXY header is expected.
    fn new(fd: Option<OwnedFd>, opened_ms: u64, preamble_done: bool) -> Io {
        Io {
            fd,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            wpos: 0,
            next_seq: 0,
            done_seq: 0,
            requests: 0,
            want_read: true,
            hup_seen: false,
            peer_closed: false,
            phase: Phase::Serving,
            continue_sent: false,
            out_armed: false,
            partial_since: None,
            opened_ms,
            drain_idle_since: None,
            preamble_done,
            body: None,
            upgrade_wait: None,
            ws: None,
            tls: None,
            tls_away: false,
        }
    }

    /// Moves the connection to `to` unless it is already further on.
    fn advance(&mut self, to: Phase) {
        self.phase = self.phase.max(to);
    }

    /// The connection speaks TLS: its session is here or on the CPU pool (`tls.rs`).
    fn tls_on(&self) -> bool {
        self.tls.is_some() || self.tls_away
    }

    /// Bytes wait to be written: reply bytes in the write buffer, or TLS records.
    fn queued(&self) -> bool {
        self.wpos < self.wbuf.len() || self.tls.as_ref().is_some_and(|t| !t.pending().is_empty())
    }

    /// Drops the read buffer's consumed bytes before a read appends more.
    fn compact(&mut self) {
        if self.rpos > 0 {
            let rpos = self.rpos;
            self.rbuf.drain(..rpos);
            self.rpos = 0;
        }
    }
}

pub(crate) struct Conn {
    pub id: u64,
    pub token: u64,
    pub peer: SocketAddr,
    pub home: Arc<WorkerShared>,
    engine: Arc<Shared>,
    task: TaskState,
    deadline_ms: AtomicU64,
    replies: Mutex<ReplySlots<Out, Pending>>,
    io: Mutex<Io>,
    /// Bytes handed to the connection (replies, parts of streamed ones) not yet written
    /// to the socket: what a streaming producer's back-pressure is measured by.
    backlog: AtomicUsize,
    /// Someone waits in `watch.writable` (checked by the runner without the lock).
    writable_waiting: AtomicBool,
    /// Someone waits in `watch.gone` (checked by the runner without the lock).
    gone_waiting: AtomicBool,
    /// The socket is closed (set before the waiters are told).
    closed: AtomicBool,
    watch: Mutex<Watch>,
    /// The client, when a PROXY header named it (else `peer`, the socket's).
    client: OnceLock<SocketAddr>,
    /// Who the client is for fair shares and rate limits ([`crate::fair`]): its
    /// address's key, or the last key its requests named.
    client_key: AtomicU64,
    /// The PROXY header, once parsed.
    proxy: OnceLock<Arc<ProxyHeader>>,
    /// The address the per-IP cap counted this connection under, if any.
    admitted: OnceLock<IpAddr>,
    /// The socket's number, for the ring (valid until `Side::closed`).
    raw: RawFd,
    /// io_uring: what the home ring's receive delivered.
    side: Mutex<Side>,
    /// io_uring: bytes of the send in flight on the home ring (one at a time, in order).
    sending: AtomicUsize,
    /// io_uring: the runner waits for the send in flight to finish.
    wake_on_send: AtomicBool,
    /// io_uring: a send failed (the peer reset): the next turn closes.
    send_failed: AtomicBool,
    /// The last turn stopped at its budget with input left (a pipelining client), so
    /// the next one will be long too.
    yielded: AtomicBool,
    /// A websocket the handler accepted, until the runner enters its phase (with the
    /// permessage-deflate parameters agreed).
    upgraded: Mutex<Option<Upgraded>>,
    /// A TLS handshake flight the CPU pool fed, waiting for the runner (`tls.rs`).
    tls_flight: Mutex<Option<Box<tls::Flight>>>,
}

type Upgraded = (Arc<crate::handler::ws::WsShared>, Option<crate::frame::ws::Deflate>);

/// The ring's side of a connection (io_uring backend): the bytes its multishot receive
/// delivered, and whether that receive is armed. The worker reaping the ring and the
/// runner each hold it briefly; lock order: `io`, then this, then the ring's own.
#[derive(Default)]
struct Side {
    rx: Vec<u8>,
    eof: bool,
    failed: bool,
    armed: bool,
    cancelling: bool,
    closed: bool,
}

type Waiter = Box<dyn FnOnce() + Send>;

/// Callbacks for streaming producers and for handlers that wait on the peer.
#[derive(Default)]
struct Watch {
    /// Called once the backlog is down to the low-water mark, or the connection closed.
    /// Each with the backlog it waits for (at or below).
    writable: Vec<(usize, Waiter)>,
    /// Called once the peer has finished sending (it closed or half-closed its side) or
    /// the connection closed, unless the request (by its seq) was answered first.
    gone: Vec<(u64, Waiter)>,
    gone_fired: bool,
}

/// Calls each waiter, catching panics (a waiter is a front's callback; the worker that
/// fires it lives on).
fn fire(waiters: Vec<Waiter>) {
    for w in waiters {
        let _ = catch_unwind(AssertUnwindSafe(w));
    }
}

/// What the worker running a turn lends it.
pub(crate) struct TurnCtx<'a> {
    pub worker: &'a WorkerShared,
    pub spare: &'a mut Vec<u8>,
}

/// What the worker should do with the task after `run`.
pub(crate) enum After {
    Done,
    Requeue,
}

/// What [`Conn::read_step`] brought.
enum Read {
    /// Bytes (appended to the read buffer).
    Data,
    /// The peer finished sending.
    Eof,
    /// Nothing more until the next readiness.
    Blocked,
    /// The connection broke.
    Failed,
}

enum Turn {
    Idle,
    Yield,
    Closed,
}

impl Conn {
    /// A new connection; `scheduled` when the caller runs it at once (its first bytes are
    /// known to be there), otherwise it waits, idle, for its first readiness event.
    /// `admitted`: the address the per-IP cap counted it under (none for a PROXY
    /// listener: the header's client is counted once it is read).
    pub fn new(
        engine: Arc<Shared>,
        home: Arc<WorkerShared>,
        token: u64,
        fd: OwnedFd,
        peer: SocketAddr,
        scheduled: bool,
        admitted: Option<IpAddr>,
    ) -> Conn {
        let now = engine.now_ms();
        let id = engine.next_conn_id();
        let no_header = engine.config.proxy_protocol == ProxyMode::Off;
        let raw = fd.as_raw_fd();
        let mut io = Io::new(Some(fd), now, no_header);
        io.tls = Conn::tls_session(&engine);
        // The home worker's first timer is set by this (later ones follow end_turn's).
        let deadline = first_request_deadline(&engine, &io);
        Conn {
            id,
            token,
            peer,
            home,
            engine,
            task: TaskState::new(scheduled, if scheduled { READ } else { 0 }),
            deadline_ms: AtomicU64::new(deadline),
            replies: Mutex::new(ReplySlots::new()),
            io: Mutex::new(io),
            backlog: AtomicUsize::new(0),
            writable_waiting: AtomicBool::new(false),
            gone_waiting: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            watch: Mutex::new(Watch::default()),
            client: OnceLock::new(),
            client_key: AtomicU64::new(fair::key_of_ip(peer.ip())),
            proxy: OnceLock::new(),
            admitted: admitted.map(OnceLock::from).unwrap_or_default(),
            raw,
            side: Mutex::new(Side::default()),
            sending: AtomicUsize::new(0),
            wake_on_send: AtomicBool::new(false),
            send_failed: AtomicBool::new(false),
            yielded: AtomicBool::new(false),
            upgraded: Mutex::new(None),
            tls_flight: Mutex::new(None),
        }
    }

    /// The home worker's ring, when the connection is on the io_uring backend.
    fn ring(&self) -> Option<&Ring> {
        self.home.ring.as_ref()
    }

    /// Puts `op` on the home ring: directly on the home worker's thread (after what
    /// other threads handed it before, so a connection's operations keep their
    /// order), else handed to the home worker.
    fn ring_op(&self, ring: &Ring, op: Op) {
        if crate::worker::is_current(&self.home) {
            self.home.apply_handed(ring);
            ring.apply(op);
        } else {
            self.home.hand_to_ring(op);
        }
    }

    /// io_uring: starts the connection's multishot receive (at registration).
    pub fn arm_recv(&self) {
        if let Some(ring) = self.ring() {
            self.rearm(ring, &mut lock(&self.side));
        }
    }

    /// io_uring: what the home ring's receive brought (`data` holds the bytes a
    /// `Received::Data` points into). True if the runner has something new to see.
    pub fn received(&self, data: &[u8], got: Received, armed: bool) -> bool {
        let Some(ring) = self.ring() else { return false };
        let mut s = lock(&self.side);
        if s.closed {
            return false;
        }
        let news = match got {
            Received::Data(r) => {
                s.rx.extend_from_slice(&data[r]);
                true
            }
            Received::Eof => {
                s.eof = true;
                true
            }
            Received::Failed(_) => {
                s.failed = true;
                true
            }
            Received::NoBuffers | Received::Cancelled => false,
        };
        if !armed {
            s.armed = false;
            s.cancelling = false;
        }
        self.rearm(ring, &mut s);
        news
    }

    /// Keeps the receive armed while the runner keeps up, and stops it (until the
    /// runner catches up) while it does not.
    fn rearm(&self, ring: &Ring, s: &mut Side) {
        if s.closed || s.eof || s.failed {
            return;
        }
        if !s.armed && s.rx.len() < RX_HIGH {
            s.armed = true;
            self.ring_op(ring, Op::Recv { fd: self.raw, token: self.token });
        } else if s.armed && !s.cancelling && s.rx.len() >= RX_HIGH {
            s.cancelling = true;
            self.ring_op(ring, Op::CancelRecv { token: self.token });
        }
    }

    /// io_uring: the send in flight finished. True if the runner waits for that.
    pub fn sent(&self, result: Result<usize, i32>) -> bool {
        let n = self.sending.swap(0, SeqCst);
        let failed = result.is_err();
        if failed {
            self.send_failed.store(true, SeqCst);
        } else if self.engine.tls.is_none() {
            // (With TLS the backlog counted these bytes as written once encrypted.)
            let _ = self.backlog.fetch_update(SeqCst, SeqCst, |b| Some(b.saturating_sub(n)));
            self.wake_writers();
        }
        self.wake_on_send.swap(false, SeqCst) || failed
    }

    /// Whether the last turn yielded at its budget (and forgets it): the runner sends
    /// what other connections queued on the ring before a long turn holds them up.
    pub fn took_budget(&self) -> bool {
        self.yielded.swap(false, Relaxed)
    }

    /// Reply bytes not yet written: in the write buffer, TLS records, and (io_uring)
    /// in flight.
    fn unwritten(&self, io: &Io) -> usize {
        let records = io.tls.as_ref().map_or(0, |t| t.pending().len());
        io.wbuf.len() - io.wpos + records + self.sending.load(SeqCst)
    }

    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms.load(Relaxed)
    }

    /// Records readiness seen by epoll, a timer, or shutdown.
    pub fn mark(&self, bits: u8) {
        self.task.mark(bits);
    }

    /// Makes the connection a task. Returns true if the caller must queue it; false if
    /// it is already queued, running (it will run again), or closed.
    pub fn try_schedule(&self) -> bool {
        self.task.try_schedule()
    }

    /// Runs the task (the caller took it from a queue, so it is `SCHEDULED`).
    pub fn run(self: &Arc<Self>, ctx: &mut TurnCtx<'_>) -> After {
        self.task.start();
        let mut rounds = 0;
        loop {
            match self.turn(ctx) {
                Turn::Closed => {
                    self.task.close();
                    return After::Done;
                }
                Turn::Yield => {
                    self.yielded.store(true, Relaxed);
                    self.task.requeue();
                    return After::Requeue;
                }
                Turn::Idle => {
                    if self.task.try_idle() {
                        return After::Done;
                    }
                    // Something happened while we ran: look again, a few times at most.
                    rounds += 1;
                    if rounds > MAX_REPOLLS {
                        self.task.requeue();
                        return After::Requeue;
                    }
                }
            }
        }
    }

    /// A responder's completion. `bytes == None` closes the connection at that point.
    pub fn complete(self: &Arc<Self>, seq: u64, bytes: Option<Vec<u8>>, close: bool, failed: bool) {
        let c = &self.engine.counters;
        if failed {
            c.handler_failures.fetch_add(1, Relaxed);
        }
        let len = bytes.as_ref().map_or(0, Vec::len);
        let out = match bytes {
            Some(bytes) => Out::Write { bytes, close },
            None => Out::Close,
        };
        let done = lock(&self.replies).complete(seq, out);
        self.handed(done, len);
    }

    /// A part of a streamed reply (more follow, then a `complete`). False if the
    /// connection is closed or the reply was already completed (by the deadline).
    pub fn append(self: &Arc<Self>, seq: u64, bytes: Vec<u8>) -> bool {
        let len = bytes.len();
        let done = lock(&self.replies).append(seq, Out::Write { bytes, close: false });
        let kept = done != Completed::Dropped;
        self.handed(done, len);
        kept
    }

    /// Accounts for `len` bytes handed over, and wakes the runner if they are at the
    /// head of the line (only the reply at the head lets the runner write anything).
    fn handed(self: &Arc<Self>, done: Completed, len: usize) {
        if done == Completed::Dropped {
            return;
        }
        self.backlog.fetch_add(len, SeqCst);
        if done == Completed::Head && RUNNING_CONN.with(|c| c.get()) != self.id {
            self.run_soon();
        }
    }

    /// Runs the task soon, from a thread that is not running it: here when this is a
    /// CPU-pool thread ([`Conn::run_here`]), else on an I/O worker.
    fn run_soon(self: &Arc<Self>) {
        if self.try_schedule() {
            if ON_POOL.with(Cell::get) {
                self.run_here();
            } else {
                self.engine.schedule_remote(Arc::clone(self));
            }
        }
    }

    /// Something outside the turn changed what the connection may read (a streamed
    /// body's reader took data, asked for it or left; a websocket's app resumed reading
    /// or closed): run it, unless this thread is running it already.
    pub(crate) fn wake_to_read(self: &Arc<Self>) {
        self.mark(READ);
        if RUNNING_CONN.with(|c| c.get()) != self.id && self.try_schedule() {
            self.engine.schedule_remote(Arc::clone(self));
        }
    }

    /// The write backlog is at or above `write_high_water`: a streaming producer should
    /// wait ([`Conn::when_writable`]) before it sends more.
    pub fn backlog_full(&self) -> bool {
        self.backlog.load(SeqCst) >= self.engine.config.limits.write_high_water
    }

    fn low_water(&self) -> usize {
        self.engine.config.limits.write_high_water / 2
    }

    /// The connection is closed: nothing more will be written.
    pub fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    /// Calls `f` once the write backlog is down to half of `write_high_water`, or the
    /// connection closed (at once if either is already so). From any thread; `f` runs on
    /// whichever thread sees the condition, so it must be quick.
    pub fn when_writable(&self, f: Waiter) {
        self.when_backlog_below(self.low_water(), f)
    }

    /// Calls `f` once the write backlog is at or below `mark` bytes, or the connection
    /// closed (at once if either is already so); as [`Conn::when_writable`].
    pub fn when_backlog_below(&self, mark: usize, f: Waiter) {
        let mut w = lock(&self.watch);
        w.writable.push((mark, f));
        self.writable_waiting.store(true, SeqCst);
        // Checked after registering: a runner that drained the backlog before it could
        // see the flag is caught here (SeqCst on both sides).
        let ready = self.take_writable(&mut w);
        drop(w);
        fire(ready);
    }

    /// The waiters whose mark the backlog is down to (all of them once closed).
    fn take_writable(&self, w: &mut Watch) -> Vec<Waiter> {
        let closed = self.is_closed();
        let backlog = self.backlog.load(SeqCst);
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut w.writable).into_iter().partition(|(mark, _)| closed || backlog <= *mark);
        w.writable = waiting;
        self.writable_waiting.store(!w.writable.is_empty(), SeqCst);
        ready.into_iter().map(|(_, f)| f).collect()
    }

    /// Calls `f` once the peer has finished sending (closed or half-closed) or the
    /// connection closed (at once if that already happened), unless request `seq`'s
    /// reply is written first (then `f` is dropped uncalled). Same rules as
    /// [`Conn::when_writable`].
    pub fn when_gone(&self, seq: u64, f: Waiter) {
        let mut w = lock(&self.watch);
        if w.gone_fired {
            drop(w);
            fire(vec![f]);
        } else {
            w.gone.push((seq, f));
            self.gone_waiting.store(true, Relaxed);
        }
    }

    /// Replies up to `done_seq` are written: their gone-waiters are not needed.
    fn forget_answered(&self, done_seq: u64) {
        if self.gone_waiting.load(Relaxed) {
            let dropped: Vec<_> = {
                let mut w = lock(&self.watch);
                let (answered, waiting) = std::mem::take(&mut w.gone).into_iter().partition(|(seq, _)| *seq < done_seq);
                w.gone = waiting;
                self.gone_waiting.store(!w.gone.is_empty(), Relaxed);
                answered
            };
            drop(dropped);
        }
    }

    /// The runner wrote some of the backlog: wake producers waiting for room.
    fn wake_writers(&self) {
        if self.writable_waiting.load(SeqCst) {
            let ready = self.take_writable(&mut lock(&self.watch));
            fire(ready);
        }
    }

    /// The peer finished sending, or the connection closed.
    fn peer_gone(&self, closed: bool) {
        let (gone, writable) = {
            let mut w = lock(&self.watch);
            let gone: Vec<Waiter> = std::mem::take(&mut w.gone).into_iter().map(|(_, f)| f).collect();
            w.gone_fired = true;
            let writable =
                if closed { std::mem::take(&mut w.writable).into_iter().map(|(_, f)| f).collect() } else { Vec::new() };
            (gone, writable)
        };
        fire(gone);
        fire(writable);
    }

    /// Runs the task on this (CPU-pool) thread: the heavy reply it just completed is
    /// written at once, with no wake-up of an I/O worker and no context switch (measured
    /// on `heavy`: see the README). Any thread may run a task; the task state keeps it to
    /// one at a time, and readiness that arrives meanwhile makes this run look again.
    fn run_here(self: &Arc<Self>) {
        let home = Arc::clone(&self.home);
        let mut spare = Vec::new();
        let mut ctx = TurnCtx { worker: &home, spare: &mut spare };
        if let After::Requeue = self.run(&mut ctx) {
            self.engine.schedule_remote(Arc::clone(self));
        }
    }

    fn turn(self: &Arc<Self>, ctx: &mut TurnCtx<'_>) -> Turn {
        let engine = Arc::clone(&self.engine);
        let limits = &engine.config.limits;
        let mut io = lock(&self.io);
        let Some(fd) = io.fd.as_ref().map(|f| f.as_raw_fd()) else {
            return Turn::Closed;
        };
        let bits = self.task.take();
        if self.send_failed.load(Relaxed) {
            // io_uring: the peer is gone (reset, broken pipe).
            self.close(&mut io, false);
            return Turn::Closed;
        }
        if io.tls_away {
            self.tls_land(&mut io);
        }
        if bits & (READ | HUP) != 0 {
            io.want_read = true;
        }
        if bits & HUP != 0 {
            io.hup_seen = true;
        }
        // Idle past the drain's grace: close, unless input came meanwhile (read it first).
        if bits & TIMEOUT != 0 && engine.is_draining() && self.drain_idle(&io) && !io.want_read {
            let since = *io.drain_idle_since.get_or_insert(engine.now_ms());
            if engine.now_ms() >= since + DRAIN_IDLE_GRACE_MS {
                self.close(&mut io, true);
                return Turn::Closed;
            }
        }
        let body_deadline = bits & TIMEOUT != 0 && self.body_deadline_passed(&mut io, engine.now_ms());
        let in_ws = io.ws.is_some();
        if in_ws && bits & TIMEOUT != 0 && !self.ws_timer(&mut io) {
            self.close(&mut io, false);
            return Turn::Closed;
        }
        if bits & TIMEOUT != 0 && !in_ws && !body_deadline && engine.now_ms() >= self.deadline_ms() {
            // With nothing unwritten, a deadline while requests are in flight is the
            // handlers': answer the late ones and carry on. Otherwise the peer's: close.
            let replies_due = io.next_seq > io.done_seq && self.unwritten(&io) == 0;
            if !(replies_due && self.expire_replies(limits.reply_timeout)) {
                engine.counters.timeouts.fetch_add(1, Relaxed);
                self.close(&mut io, false);
                return Turn::Closed;
            }
        }
        let framer = Framer::new(engine.config.protocol).streaming(engine.stream_bodies);
        let mut frames = limits.budget_frames;
        let mut bytes = limits.budget_bytes;
        if io.rbuf.capacity() == 0 {
            std::mem::swap(&mut io.rbuf, ctx.spare);
        }
        let result = loop {
            self.collect(&mut io, ctx.worker);
            if io.queued() && !self.flush(&mut io, fd) {
                self.close(&mut io, false);
                return Turn::Closed;
            }
            let in_flight = io.next_seq - io.done_seq;
            let unwritten = self.unwritten(&io);
            let flushed = unwritten == 0;
            if io.phase == Phase::Closing && flushed {
                self.close(&mut io, true);
                return Turn::Closed;
            }
            let stopped = io.phase != Phase::Serving || io.peer_closed;
            if stopped && in_flight == 0 && flushed {
                self.close(&mut io, true);
                return Turn::Closed;
            }
            if io.upgrade_wait.is_some() {
                match self.upgrade_decided(&mut io) {
                    None => break Turn::Idle,
                    Some(true) => continue,
                    Some(false) => {}
                }
            }
            if io.ws.is_some() {
                match self.ws_step(&mut io, fd, &mut frames, &mut bytes) {
                    ws::WsNext::Again => continue,
                    ws::WsNext::Idle => break Turn::Idle,
                    ws::WsNext::Yield => break Turn::Yield,
                    ws::WsNext::Close => {
                        self.close(&mut io, false);
                        return Turn::Closed;
                    }
                }
            }
            if io.body.is_some() {
                match self.body_step(&mut io, fd, &mut bytes) {
                    body::BodyNext::Again => continue,
                    body::BodyNext::Idle => break Turn::Idle,
                    body::BodyNext::Yield => break Turn::Yield,
                    body::BodyNext::Close => {
                        self.close(&mut io, false);
                        return Turn::Closed;
                    }
                }
            }
            if stopped || in_flight >= limits.max_in_flight as u64 || unwritten >= limits.write_high_water {
                break Turn::Idle;
            }
            // The budget, and fairness: once it has had a frame this turn, a connection
            // with more input already buffered yields to others waiting on its worker,
            // so a client that pipelines gets no more than one that sends a request at
            // a time.
            let more_buffered = io.rpos < io.rbuf.len();
            if frames == 0 || bytes == 0 || (frames < limits.budget_frames && more_buffered) {
                break Turn::Yield;
            }
            let rpos = io.rpos;
            let decoded = if io.preamble_done {
                framer.decode(&io.rbuf[rpos..], limits)
            } else {
                match proxy::parse(engine.config.proxy_protocol, &io.rbuf[rpos..], limits.max_header) {
                    Preamble::Done { used, header } => {
                        io.rpos += used;
                        io.preamble_done = true;
                        if !self.adopt(header) {
                            self.close(&mut io, false);
                            return Turn::Closed;
                        }
                        if io.tls.is_some() {
                            self.tls_after_preamble(&mut io);
                        }
                        continue;
                    }
                    Preamble::Bad(_) => {
                        engine.counters.proxy_bad_headers.fetch_add(1, Relaxed);
                        self.close(&mut io, false);
                        return Turn::Closed;
                    }
                    Preamble::NeedMore => Decoded::NeedMore { expect_continue: false },
                }
            };
            // A streamed request is dispatched at its head, its body read as a stream.
            let (decoded, streamed) = match decoded {
                Decoded::Head { used, payload, ctx, body, expect_continue } => {
                    (Decoded::Frame { used, payload, ctx }, Some((body, expect_continue)))
                }
                other => (other, None),
            };
            match decoded {
                Decoded::Frame { used, payload, ctx: mut rctx } => {
                    io.rpos += used;
                    io.requests += 1;
                    if io.requests == limits.max_requests_per_connection || engine.is_draining() {
                        // The last request this connection may make: its reply says so.
                        rctx.close = true;
                    }
                    io.partial_since = None;
                    io.continue_sent = false;
                    if rctx.close {
                        io.advance(Phase::LastReplies);
                    }
                    frames -= 1;
                    let body = streamed.map(|(framing, expect)| self.start_body(&mut io, framing, expect));
                    self.dispatch(&mut io, ctx.worker, payload, rctx, body);
                }
                Decoded::Reject(r) => {
                    engine.counters.rejected.fetch_add(1, Relaxed);
                    if r.status == 413 {
                        engine.counters.bodies_too_large.fetch_add(1, Relaxed);
                    }
                    io.advance(Phase::LastReplies);
                    let seq = io.next_seq;
                    io.next_seq += 1;
                    self.backlog.fetch_add(r.reply.len(), SeqCst);
                    let out = if r.reply.is_empty() { Out::Close } else { Out::Write { bytes: r.reply, close: true } };
                    let meta = Pending { since: Instant::now(), heavy: false, ctx: ReplyCtx::default() };
                    let pushed = lock(&self.replies).push(Some(out), meta);
                    debug_assert_eq!(pushed, seq);
                }
                Decoded::Head { .. } => unreachable!("made a Frame above"),
                Decoded::NeedMore { expect_continue } => {
                    if expect_continue && !io.continue_sent && in_flight == 0 {
                        io.continue_sent = true;
                        io.wbuf.extend_from_slice(CONTINUE);
                        self.backlog.fetch_add(CONTINUE.len(), SeqCst);
                        continue;
                    }
                    // A handshake flight is on the CPU pool: its return runs the task.
                    if !io.want_read || io.tls_away {
                        break Turn::Idle;
                    }
                    match self.read_step(&mut io, fd, READ_CHUNK, &mut bytes) {
                        Read::Data => {}
                        Read::Eof => self.peer_gone(false),
                        Read::Blocked => break Turn::Idle,
                        Read::Failed => {
                            self.close(&mut io, false);
                            return Turn::Closed;
                        }
                    }
                }
            }
        };
        self.end_turn(&mut io, ctx, fd);
        result
    }

    /// The client: the PROXY header's source, else the socket's peer.
    pub fn client(&self) -> SocketAddr {
        self.client.get().copied().unwrap_or(self.peer)
    }

    /// The client's key for fair shares ([`crate::fair`]).
    pub fn client_key(&self) -> ClientKey {
        self.client_key.load(Relaxed)
    }

    /// The key a request names (the handler's, else the `client_key_header`), which
    /// from now on is the connection's; else the connection's own.
    fn request_key(&self, req: &Request, handler: &dyn Handler) -> ClientKey {
        let named = match catch_unwind(AssertUnwindSafe(|| handler.client_key(req))) {
            Ok(k) => k.map(|k| fair::key_of_token(&k.to_le_bytes())),
            Err(_) => {
                self.engine.counters.handler_panics.fetch_add(1, Relaxed);
                None
            }
        };
        let header = &self.engine.config.limits.client_key_header;
        let named = named.or_else(|| {
            if header.is_empty() {
                return None;
            }
            Some(fair::key_of_token(req.http()?.header(header)?))
        });
        match named {
            Some(k) => {
                self.client_key.store(k, Relaxed);
                k
            }
            None => self.client_key(),
        }
    }

    /// Takes a PROXY header: its client becomes the connection's, counted by the
    /// per-IP cap from here on. False if that cap refuses it (counted, logged).
    fn adopt(&self, header: ProxyHeader) -> bool {
        if let Some(src) = header.source {
            let per_ip = &self.engine.per_ip;
            if !per_ip.admit(src.ip()) {
                let n = self.engine.counters.refused_per_ip.fetch_add(1, Relaxed) + 1;
                per_ip.log_refusal(src.ip(), n);
                return false;
            }
            let _ = self.admitted.set(src.ip());
            let _ = self.client.set(src);
            self.client_key.store(fair::key_of_ip(src.ip()), Relaxed);
        }
        let _ = self.proxy.set(Arc::new(header));
        true
    }

    /// Reads once into the read buffer. A short read means the socket is drained
    /// (edge-triggered: the next arrival raises a new event). On io_uring, takes what
    /// the ring's receive delivered (`WouldBlock` when that is nothing yet).
    /// `want`: how much the caller can use now (a body's window); at least a read chunk
    /// is offered.
    fn read(&self, io: &mut Io, fd: std::os::fd::RawFd, want: usize) -> std::io::Result<usize> {
        io.compact();
        self.recv_into(fd, want, &mut io.want_read, io.hup_seen, &mut io.rbuf)
    }

    /// Receives once into `dst` (the read buffer, or TLS's ciphertext buffer), keeping
    /// the edge state (`want_read`) as `read` says.
    fn recv_into(
        &self,
        fd: RawFd,
        want: usize,
        want_read: &mut bool,
        hup_seen: bool,
        dst: &mut Vec<u8>,
    ) -> std::io::Result<usize> {
        if let Some(ring) = self.ring() {
            return self.take_received(ring, want_read, dst);
        }
        let need = want.max(READ_CHUNK);
        let room = dst.capacity() - dst.len();
        let n = sys::recv_append(fd, dst, if room >= need { 0 } else { need })?;
        let offered = room.max(need);
        if n > 0 && n < offered && !hup_seen {
            *want_read = false;
        }
        Ok(n)
    }

    /// One read for a phase, with the bookkeeping every phase does: the end of the
    /// peer's stream recorded, the edge state (`want_read`), the turn's byte budget.
    /// With TLS, `Data` may have brought no plaintext (handshake messages, part of a
    /// record), or closed the session after its alert: the caller looks again.
    fn read_step(self: &Arc<Self>, io: &mut Io, fd: RawFd, want: usize, budget: &mut usize) -> Read {
        let got =
            if io.tls.is_some() && io.preamble_done { self.tls_read(io, fd, want) } else { self.read(io, fd, want) };
        match got {
            Ok(0) => {
                io.peer_closed = true;
                io.want_read = false;
                Read::Eof
            }
            Ok(n) => {
                *budget = budget.saturating_sub(n);
                Read::Data
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                io.want_read = false;
                Read::Blocked
            }
            Err(_) => Read::Failed,
        }
    }

    fn take_received(&self, ring: &Ring, want_read: &mut bool, dst: &mut Vec<u8>) -> std::io::Result<usize> {
        let mut s = lock(&self.side);
        let n = s.rx.len();
        // Like a short read: what the ring brought is all there is until its next
        // completion, which marks the connection readable again.
        *want_read = s.eof || s.failed;
        if n > 0 {
            dst.extend_from_slice(&s.rx);
            s.rx.clear();
            if s.rx.capacity() > 4 * SMALL_PARTIAL {
                s.rx = Vec::new();
            }
            self.rearm(ring, &mut s);
            return Ok(n);
        }
        if s.failed {
            return Err(std::io::ErrorKind::ConnectionReset.into());
        }
        if s.eof {
            return Ok(0);
        }
        self.rearm(ring, &mut s);
        Err(std::io::ErrorKind::WouldBlock.into())
    }

    /// io_uring: hands the write buffer to the home ring, unless a send is still in
    /// flight (then it waits its turn: one send at a time keeps the bytes in order).
    fn send_on_ring(&self, ring: &Ring, io: &mut Io) -> bool {
        if self.send_failed.load(SeqCst) {
            return false;
        }
        if self.sending.load(SeqCst) > 0 {
            return true;
        }
        // The whole buffer goes: only epoll's `flush` writes part of it (`wpos`).
        let bytes = std::mem::take(&mut io.wbuf);
        self.sending.store(bytes.len(), SeqCst);
        self.ring_op(ring, Op::Send { fd: self.raw, token: self.token, buf: bytes });
        true
    }

    /// Writes as much of the write buffer as the socket takes (through the TLS session
    /// when there is one). False on a write error.
    fn flush(&self, io: &mut Io, fd: std::os::fd::RawFd) -> bool {
        if io.tls_on() {
            return self.tls_flush(io, fd);
        }
        if let Some(ring) = self.ring() {
            return self.send_on_ring(ring, io);
        }
        while io.wpos < io.wbuf.len() {
            match sys::send(fd, &io.wbuf[io.wpos..]) {
                Ok(n) => {
                    io.wpos += n;
                    let _ = self.backlog.fetch_update(SeqCst, SeqCst, |b| Some(b.saturating_sub(n)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.want_writable(&mut io.out_armed, fd);
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        io.wbuf.clear();
        io.wpos = 0;
        true
    }

    /// The socket would block a write: ask to hear when the peer makes room (checked at
    /// once by the kernel, so room made in between is not missed).
    fn want_writable(&self, out_armed: &mut bool, fd: RawFd) {
        if !*out_armed && self.engine.config.readiness == Readiness::Edge {
            *out_armed = true;
            let _ = self.home.epoll.modify(fd, self.token, Interest::RW_EDGE);
        }
    }

    /// Moves ready replies, in sequence, from the slots into the write buffer.
    fn collect(&self, io: &mut Io, worker: &WorkerShared) {
        if io.done_seq == io.next_seq {
            return;
        }
        let before = io.done_seq;
        let mut r = lock(&self.replies);
        while let Some(ready) = r.pop_ready() {
            let out = match ready {
                Ready::Part(out) => out,
                Ready::Last(out, meta) => {
                    io.done_seq += 1;
                    worker.record_latency(meta.heavy, meta.since.elapsed());
                    if let Out::Write { .. } = out {
                        self.engine.counters.replies.fetch_add(1, Relaxed);
                    }
                    out
                }
            };
            match out {
                Out::Write { bytes, close } => {
                    if io.wbuf.is_empty() {
                        io.wbuf = bytes;
                    } else {
                        io.wbuf.extend_from_slice(&bytes);
                    }
                    if close {
                        io.advance(Phase::Closing);
                        break;
                    }
                }
                Out::Close => {
                    io.advance(Phase::Closing);
                    break;
                }
            }
        }
        drop(r);
        if io.done_seq != before {
            self.forget_answered(io.done_seq);
        }
    }

    /// Answers, in the handlers' place, the unanswered requests that have waited
    /// `reply_timeout` or longer. False if the reply deadline is off.
    fn expire_replies(&self, timeout: Duration) -> bool {
        if timeout.is_zero() {
            return false;
        }
        let mut r = lock(&self.replies);
        let mut expired = 0;
        let mut added = 0;
        for slot in r.pending_mut().filter(|s| s.meta.since.elapsed() >= timeout) {
            let ctx = slot.meta.ctx;
            let out = match ctx.protocol.timeout_reply(&ctx) {
                Some(bytes) => {
                    added += bytes.len();
                    Out::Write { bytes, close: ctx.close }
                }
                None => Out::Close,
            };
            slot.fill(out);
            expired += 1;
        }
        self.backlog.fetch_add(added, SeqCst);
        self.engine.counters.reply_timeouts.fetch_add(expired, Relaxed);
        true
    }

    /// When the oldest unanswered request reaches `reply_timeout` (NO_DEADLINE if off,
    /// or if every request is answered and only waits for its turn).
    fn reply_deadline(&self, now: u64) -> u64 {
        let timeout = self.engine.config.limits.reply_timeout;
        if timeout.is_zero() {
            return NO_DEADLINE;
        }
        let Some(oldest) = lock(&self.replies).oldest_pending().map(|s| s.meta.since) else {
            return NO_DEADLINE;
        };
        let left = timeout.saturating_sub(oldest.elapsed());
        now + left.as_millis() as u64 + 1
    }

    fn dispatch(
        self: &Arc<Self>,
        io: &mut Io,
        worker: &WorkerShared,
        payload: Payload,
        rctx: ReplyCtx,
        body: Option<Body>,
    ) {
        let engine = &self.engine;
        let ws = if body.is_none() { self.ws_offer(&payload, &rctx) } else { Ok(None) };
        let ws = match ws {
            Ok(offer) => offer,
            Err(refusal) => {
                // A malformed websocket handshake: answered here, and the connection closes.
                io.advance(Phase::LastReplies);
                io.next_seq += 1;
                self.backlog.fetch_add(refusal.len(), SeqCst);
                let out = Out::Write { bytes: refusal, close: true };
                lock(&self.replies).push(Some(out), Pending { since: Instant::now(), heavy: false, ctx: rctx });
                return;
            }
        };
        let seq = io.next_seq;
        io.next_seq += 1;
        if ws.is_some() {
            io.upgrade_wait = Some(seq);
        }
        let mut req = Request {
            conn: self.id,
            seq,
            peer: self.client(),
            worker: worker.index,
            payload,
            proxy: self.proxy.get().cloned(),
            tls: io.tls.as_ref().and_then(|t| t.info().cloned()),
            body,
            ws: ws.clone(),
            client: 0,
        };
        let handler = engine.handler();
        let key = self.request_key(&req, handler);
        req.client = key;
        // Over the client's rate: answered here, in order, without the handler.
        let limited = engine.rate.as_ref().and_then(|r| r.check(key, engine.now_us()).err());
        let cost = match limited {
            Some(_) => Cost::Light,
            None => catch_unwind(AssertUnwindSafe(|| handler.cost(&req))).unwrap_or_else(|_| {
                engine.counters.handler_panics.fetch_add(1, Relaxed);
                Cost::Light
            }),
        };
        let heavy = cost == Cost::Heavy && engine.cpu.is_some();
        lock(&self.replies).push(None, Pending { since: Instant::now(), heavy, ctx: rctx });
        worker.counters.requests.fetch_add(1, Relaxed);
        let res = Responder::new(Arc::clone(self), seq, rctx, ws);
        if let Some(wait_us) = limited {
            engine.counters.rate_limited.fetch_add(1, Relaxed);
            res.refuse_rate_limited(wait_us);
            return;
        }
        match &engine.cpu {
            Some(cpu) if heavy => {
                let engine = Arc::clone(engine);
                cpu.submit(crate::cpu::Job::for_client(key, move |shed| {
                    if shed {
                        res.refuse_overloaded();
                    } else {
                        engine.call_handler(req, res)
                    }
                }));
            }
            _ => {
                RUNNING_CONN.with(|c| c.set(self.id));
                engine.call_handler(req, res);
                RUNNING_CONN.with(|c| c.set(0));
            }
        }
    }

    /// Nothing in flight, unwritten or half-read: closing now loses nothing framed.
    fn drain_idle(&self, io: &Io) -> bool {
        io.next_seq == io.done_seq && self.unwritten(io) == 0 && io.rpos == io.rbuf.len()
    }

    fn end_turn(&self, io: &mut Io, ctx: &mut TurnCtx<'_>, fd: std::os::fd::RawFd) {
        self.wake_writers();
        let limits = &self.engine.config.limits;
        let now = self.engine.now_ms();
        let in_flight = io.next_seq > io.done_seq;
        let partial = io.rpos < io.rbuf.len();
        let drain_idle = self.engine.is_draining() && self.drain_idle(io);
        if !drain_idle {
            io.drain_idle_since = None;
        }
        let deadline = if let Some(d) = self.ws_deadline(io) {
            if self.unwritten(io) > 0 {
                d.min(now + limits.idle_timeout.as_millis() as u64)
            } else {
                d
            }
        } else if let Some(d) = self.body_deadline(io) {
            d
        } else if drain_idle {
            *io.drain_idle_since.get_or_insert(now) + DRAIN_IDLE_GRACE_MS
        } else if self.unwritten(io) > 0 {
            now + limits.idle_timeout.as_millis() as u64
        } else if in_flight {
            self.reply_deadline(now)
        } else if partial {
            *io.partial_since.get_or_insert(now) + limits.header_timeout.as_millis() as u64
        } else if io.requests == 0 {
            first_request_deadline(&self.engine, io)
        } else {
            now + limits.idle_timeout.as_millis() as u64
        };
        self.deadline_ms.store(deadline, Relaxed);
        // A few bytes of an unfinished request (a slowloris trickle) keep a buffer their
        // size, not a whole read chunk.
        if partial && io.rbuf.len() - io.rpos < SMALL_PARTIAL && io.rbuf.capacity() > 2 * SMALL_PARTIAL {
            let rpos = io.rpos;
            io.rbuf.drain(..rpos);
            io.rpos = 0;
            io.rbuf.shrink_to(SMALL_PARTIAL);
        }
        // Give the read buffer back to the worker while it holds nothing, so an idle
        // connection costs no buffer memory.
        if !partial {
            io.rbuf.clear();
            io.rpos = 0;
            if ctx.spare.capacity() == 0 {
                std::mem::swap(&mut io.rbuf, ctx.spare);
            } else {
                io.rbuf = Vec::new();
            }
        }
        if io.wpos == io.wbuf.len() && io.wbuf.capacity() > 0 {
            io.wbuf = Vec::new();
            io.wpos = 0;
        }
        if self.ring().is_some() {
            self.want_send_done(io);
        } else if self.engine.config.readiness == Readiness::OneShot {
            let write = io.queued();
            let _ = self.home.epoll.modify(fd, self.token, Interest::oneshot(write));
        }
    }

    /// io_uring: asks to run again when the send in flight finishes, if the turn
    /// stopped short because of it (more to write, a close to make, back-pressure, a
    /// drain). A plain keep-alive reply needs no second turn.
    fn want_send_done(&self, io: &Io) {
        let limits = &self.engine.config.limits;
        let waits = io.queued()
            || io.phase != Phase::Serving
            || io.peer_closed
            || self.engine.is_draining()
            || self.unwritten(io) >= limits.write_high_water
            || io.next_seq - io.done_seq >= limits.max_in_flight as u64;
        if !waits {
            return;
        }
        if self.sending.load(SeqCst) == 0 {
            // The send in flight finished since this turn flushed: bytes it left in the
            // write buffer (queued behind that send) have nobody else to send them.
            if io.queued() {
                self.run_again();
            }
            return;
        }
        self.wake_on_send.store(true, SeqCst);
        // The send may have finished before the flag was up (SeqCst on both sides):
        // then nobody will wake us, so look again ourselves.
        if self.sending.load(SeqCst) == 0 && self.wake_on_send.swap(false, SeqCst) {
            self.run_again();
        }
    }

    /// From inside a turn: makes this run take another turn to write. A readiness bit
    /// alone would be lost: the runner goes idle unless the task state says it was
    /// notified (on a loaded machine this stalled a streamed reply until the idle
    /// timeout), so the task is notified too.
    fn run_again(&self) {
        self.mark(WRITE);
        let queued = self.try_schedule();
        debug_assert!(!queued, "called by the runner, so the task is running and only notified");
    }

    /// Closes the socket and settles the books: replies not yet written are aborted.
    fn close(&self, io: &mut Io, graceful: bool) {
        let Some(fd) = io.fd.take() else { return };
        self.end_body(io, BodyError::Closed);
        self.ws_gone(io);
        let raw = fd.as_raw_fd();
        if io.tls_on() {
            self.tls_close(io, raw, graceful);
        }
        let unread = io.rpos < io.rbuf.len() || io.want_read;
        // At shutdown the peer may have sent more after our last read (no event has
        // said so yet): treat input as possibly unread then too.
        let unread_may_follow = unread && io.phase != Phase::Serving || self.engine.is_draining();
        if graceful && unread_may_follow && !io.peer_closed {
            // Unread input makes close() send a reset, which can destroy the reply we
            // just wrote before the peer reads it: send FIN, then discard what is there.
            let _ = sys::shutdown_write(raw);
            let mut scratch = [0u8; 4096];
            for _ in 0..16 {
                match sys::recv(raw, &mut scratch) {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        }
        match self.ring() {
            Some(ring) => {
                // The fd number stays taken until the ring has cancelled what is in
                // flight on it and closed it: no operation can reach a successor.
                let mut s = lock(&self.side);
                s.closed = true;
                s.rx = Vec::new();
                self.ring_op(ring, Op::Close(fd));
            }
            None => drop(fd),
        }
        io.rbuf = Vec::new();
        io.wbuf = Vec::new();
        lock(&self.home.registry).remove(self.token);
        if let Some(ip) = self.admitted.get() {
            self.engine.per_ip.release(*ip);
        }
        let aborted = lock(&self.replies).close();
        self.engine.connection_closed(graceful, aborted as u64);
        self.closed.store(true, SeqCst);
        self.peer_gone(true);
    }

    /// Shutdown past its deadline: close whatever state the connection is in.
    pub fn force_close(&self) {
        let mut io = lock(&self.io);
        self.close(&mut io, false);
        self.task.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_only_moves_forward() {
        let mut io = Io::new(None, 0, true);
        io.advance(Phase::Closing);
        io.advance(Phase::LastReplies);
        assert_eq!(io.phase, Phase::Closing, "a close reply is not undone by a later Connection: close");
        let mut io2 = Io::new(None, 0, true);
        io2.advance(Phase::LastReplies);
        assert_eq!(io2.phase, Phase::LastReplies);
        io2.advance(Phase::Closing);
        assert_eq!(io2.phase, Phase::Closing);
    }
}
