//! The I/O worker loop.
//!
//! Each worker owns an epoll (its connections' home) and a FIFO deque; it also has an
//! inbox (a crossbeam `Injector`) where new connections and remotely woken ones
//! arrive. The loop finds a task (local deque, inbox, own epoll, then — when stealing is
//! on and fewer than half the workers search — siblings' deques and inboxes from a
//! random start), runs it, and parks in `epoll_wait` when there is nothing to do.
//!
//! A worker stuck in a long handler cannot poll its epoll, so the readiness of its other
//! connections would wait. When stealing is on, a searching sibling also polls the epoll
//! of any worker whose current task has run longer than [`STALL`] (and accepts from its
//! listeners); a parked sibling is woken for it by the stall monitor (`monitor.rs`), or
//! by its own park timeout when the stall began before it parked. Connections that
//! became ready on a stuck worker are served by another (Go's netpoller does the same
//! from any P).
//!
//! Parking follows [`crate::sched::idle`]: leave the searching count, re-check the
//! queues, then block in `epoll_wait` with the nearest timer (or stall watch) as timeout.
//!
//! This folder is the workers: this file (the loop, parking, stall takeover),
//! `registry` (a worker's connections by token), `runq` (its runnable connections,
//! shared fairly between clients) and `monitor` (the stall monitor, which also watches
//! the kernel's SYN counters for a flood).
//!
//! Invariants: a connection has one home worker whose epoll it is registered with, and
//! only the thread that holds its task state runs it; a worker parks only after
//! re-checking its deque, inbox and epoll; at most half the workers search at once.

pub(crate) mod monitor;
pub(crate) mod registry;
pub(crate) mod runq;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_deque::{Injector, Stealer, Worker};
use hdrhistogram::Histogram;

use crate::accept::listen::Listener;
use crate::accept::{self, Acceptor};
use crate::config::Readiness;
use crate::conn::{After, Conn, TurnCtx, DRAIN, HUP, READ, TIMEOUT, WRITE};
use crate::engine::Shared;
use crate::sched::steal::{self, Rng, Sibling};
use crate::sync::lock;
use crate::sys::{Done, Epoll, EventFd, Events, Interest, Op, Reaped, Ring};
use crate::worker::registry::Registry;
use crate::worker::runq::RunQueue;

const WAKE_TOKEN: u64 = u64::MAX;
/// The ring's poll of the worker's own epoll (io_uring backend).
const EPOLL_TAG: u64 = 1;
/// The ring's read of the worker's wake-up eventfd (io_uring backend).
const WAKE_TAG: u64 = 2;
/// io_uring: submission slots, provided receive buffers and their size, per worker.
const RING_ENTRIES: u32 = 1024;
const RING_BUFFERS: u16 = 256;
const RING_BUFFER_SIZE: usize = 8 << 10;

thread_local! {
    /// The worker whose loop runs on this thread (its `WorkerShared` address), if any.
    static CURRENT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether the calling thread is `ws`'s own loop (which submits its ring each turn).
pub(crate) fn is_current(ws: &WorkerShared) -> bool {
    CURRENT.with(|c| c.get()) == ws as *const WorkerShared as usize
}
/// Tokens from here up are this worker's listeners (when it accepts itself).
pub(crate) const LISTEN_BASE: u64 = 1 << 63;
/// A task running longer than this leaves its worker's epoll to siblings.
pub(crate) const STALL: Duration = Duration::from_millis(1);
/// Every this many tasks, poll the own epoll and timers even if the deque is not empty.
const EVENT_INTERVAL: u64 = 61;
/// With fair shares, a round that ends within this many tasks and [`ROUND_POLL_US`] of
/// the last poll is followed by the next round without polling again: rounds are short
/// when several clients wait (a turn each), and an `epoll_wait` per round would cost
/// more than cheap turns (measured on `greedy judge` kind b with hello); readiness that
/// arrived meanwhile joins within this many turns or this long.
const ROUND_POLL_MIN: u64 = 16;
/// See [`ROUND_POLL_MIN`]: with turns that take tens of microseconds, polling after this
/// long keeps a polite request that arrives mid-round from waiting for many of a greedy
/// client's turns.
const ROUND_POLL_US: u64 = 50;
/// Turns a client alone in a round gets before the worker looks again (at the clock,
/// and, past the limits above, at its epoll): others may be ready and not yet seen.
const ALONE_TURNS: usize = 4;

const IDLE: u8 = 0;
const BUSY: u8 = 1;
const PARKED: u8 = 2;

pub(crate) enum Task {
    New(OwnedFd, SocketAddr),
    Conn(Arc<Conn>),
}

#[derive(Default)]
pub(crate) struct WorkerCounters {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub tasks: AtomicU64,
    pub stolen: AtomicU64,
    pub steal_ops: AtomicU64,
    pub parks: AtomicU64,
    pub parked_ns: AtomicU64,
}

/// The part of a worker other threads see.
pub(crate) struct WorkerShared {
    pub index: usize,
    /// A thread-per-connection worker: outside the stealing set, exits with its connection.
    pub solo: bool,
    pub epoll: Epoll,
    pub wake: Arc<EventFd>,
    /// The listeners in this worker's epoll, if it accepts itself; a sibling takes
    /// over accepting on them while this worker is stalled.
    pub listeners: Vec<Arc<Listener>>,
    pub inbox: Injector<Task>,
    pub stealer: Stealer<Task>,
    /// The io_uring backend's ring: connection receives, sends and closes, and a poll
    /// of `epoll` (which keeps the listeners) and a read of the wake-up eventfd.
    pub ring: Option<Ring>,
    /// io_uring: operations other threads handed to this worker's ring (only this
    /// worker's thread submits to it), and whether there are any.
    handed: Mutex<Vec<Op>>,
    has_handed: std::sync::atomic::AtomicBool,
    pub registry: Mutex<Registry<Arc<Conn>>>,
    pub counters: WorkerCounters,
    latency: Mutex<[Histogram<u64>; 2]>,
    status: AtomicU8,
    turn_started_us: AtomicU64,
}

impl Sibling<Task> for Arc<WorkerShared> {
    fn deque(&self) -> &Stealer<Task> {
        &self.stealer
    }
    fn inbox(&self) -> &Injector<Task> {
        &self.inbox
    }
}

impl WorkerShared {
    /// Creates a worker's shared half and the deque its thread will own.
    /// `ring`: on the io_uring backend.
    pub fn new(
        index: usize,
        solo: bool,
        listeners: Vec<Arc<Listener>>,
        ring: bool,
    ) -> std::io::Result<(Arc<WorkerShared>, Worker<Task>)> {
        let local = Worker::new_fifo();
        let epoll = Epoll::new()?;
        let ring = if ring { Some(Ring::new(RING_ENTRIES, RING_BUFFERS, RING_BUFFER_SIZE)?) } else { None };
        let wake = Arc::new(if ring.is_some() { EventFd::blocking()? } else { EventFd::new()? });
        if ring.is_none() {
            // On io_uring the ring reads it (`Ring::watch_eventfd`).
            epoll.add(wake.as_raw_fd(), WAKE_TOKEN, Interest::READ_LEVEL)?;
        }
        let hist = || Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds");
        let ws = WorkerShared {
            index,
            solo,
            epoll,
            wake,
            listeners,
            inbox: Injector::new(),
            stealer: local.stealer(),
            ring,
            handed: Mutex::new(Vec::new()),
            has_handed: std::sync::atomic::AtomicBool::new(false),
            registry: Mutex::new(Registry::new()),
            counters: WorkerCounters::default(),
            latency: Mutex::new([hist(), hist()]),
            status: AtomicU8::new(IDLE),
            turn_started_us: AtomicU64::new(0),
        };
        Ok((Arc::new(ws), local))
    }

    /// Records a request's time from framing to its reply being queued for writing.
    pub fn record_latency(&self, heavy: bool, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, 60_000_000);
        let _ = lock(&self.latency)[usize::from(heavy)].record(us);
    }

    pub fn latency(&self) -> [Histogram<u64>; 2] {
        lock(&self.latency).clone()
    }

    pub fn is_busy(&self) -> bool {
        self.status.load(Acquire) == BUSY
    }

    /// Running one task for longer than [`STALL`].
    pub fn is_stalled(&self, now_us: u64) -> bool {
        self.is_busy() && now_us.saturating_sub(self.turn_started_us.load(Relaxed)) >= STALL.as_micros() as u64
    }

    pub fn depth(&self) -> usize {
        self.stealer.len() + self.inbox.len()
    }

    /// io_uring: hands an operation to this worker's ring from another thread (a
    /// sibling running a stolen connection, a CPU-pool thread writing its reply),
    /// waking the worker if it is parked.
    pub fn hand_to_ring(&self, op: Op) {
        lock(&self.handed).push(op);
        self.has_handed.store(true, SeqCst);
        // Pairs with the re-check in `park` after the status is PARKED (SeqCst both).
        if self.status.load(SeqCst) == PARKED {
            self.wake.notify();
        }
    }

    /// io_uring, on this worker's thread: puts what other threads handed over on the ring.
    pub fn apply_handed(&self, ring: &Ring) {
        if self.has_handed.load(SeqCst) {
            let ops = {
                let mut q = lock(&self.handed);
                self.has_handed.store(false, SeqCst);
                std::mem::take(&mut *q)
            };
            for op in ops {
                ring.apply(op);
            }
        }
    }
}

pub(crate) struct WorkerLoop {
    ws: Arc<WorkerShared>,
    engine: Arc<Shared>,
    run: RunQueue,
    events: Events,
    timers: BinaryHeap<Reverse<(u64, u64)>>,
    rng: Rng,
    tick: u64,
    /// `tick` when the own epoll or ring was last polled.
    polled_at: u64,
    /// `now_us` then.
    polled_us: u64,
    searching: bool,
    /// A task ran since the handler was last told a round ended.
    ran: bool,
    drained: bool,
    spare: Vec<u8>,
    acceptor: Option<Acceptor>,
    /// io_uring: completions taken from the ring, reused.
    reaped: Reaped,
    /// io_uring: the epoll reported events when last waited on, so it may have more
    /// (a poll of an epoll fd fires on new events only).
    epoll_hot: bool,
}

impl WorkerLoop {
    pub fn new(
        ws: Arc<WorkerShared>,
        engine: Arc<Shared>,
        local: Worker<Task>,
        acceptor: Option<Acceptor>,
    ) -> WorkerLoop {
        let seed = (ws.index as u64).wrapping_add(1);
        let fair = engine.config.limits.fair_share && !ws.solo;
        WorkerLoop {
            ws,
            engine,
            run: RunQueue::new(local, fair),
            events: Events::with_capacity(256),
            timers: BinaryHeap::new(),
            rng: Rng::new(seed),
            tick: 0,
            polled_at: 0,
            polled_us: 0,
            searching: false,
            ran: false,
            drained: false,
            spare: Vec::new(),
            acceptor,
            reaped: Reaped::default(),
            epoll_hot: false,
        }
    }

    pub fn run(mut self) {
        crate::handler::mark_io_worker();
        let slice = self.engine.config.io_slice;
        if !slice.is_zero() {
            // Best effort: kernels before 6.12 have no custom slice, and run as before.
            let _ = crate::sys::set_thread_slice(slice);
        }
        if let Some(a) = &mut self.acceptor {
            a.arm(&self.ws.epoll, true);
        }
        CURRENT.with(|c| c.set(Arc::as_ptr(&self.ws) as usize));
        if let Some(ring) = &self.ws.ring {
            // This thread is the ring's one issuer from here on.
            if let Err(e) = ring.enable() {
                eprintln!("corral: worker {}: cannot enable its io_uring: {e}", self.ws.index);
            }
            ring.poll(self.ws.epoll.as_raw_fd(), EPOLL_TAG);
            ring.watch_eventfd(self.ws.wake.as_raw_fd(), WAKE_TAG);
        }
        loop {
            if self.engine.is_stopped() {
                self.close_all();
                if let Some(ring) = &self.ws.ring {
                    // Closes other threads handed over go through the ring like the rest.
                    self.ws.apply_handed(ring);
                    ring.shutdown();
                }
                CURRENT.with(|c| c.set(0));
                return;
            }
            if self.engine.is_draining() && !self.drained {
                self.drained = true;
                let mut last = Vec::new();
                if let Some(mut a) = self.acceptor.take() {
                    a.retire(&self.ws.epoll, &mut |fd, peer| last.push((fd, peer)));
                }
                self.mark_all(DRAIN);
                for (fd, peer) in last {
                    // Registered while draining: marked DRAIN and served.
                    if let Some(conn) = self.register(fd, peer, true) {
                        self.run.push(conn);
                    }
                }
                // Connections idle at the drain close after a grace (see `conn`): look
                // at each again then.
                let at = self.engine.now_ms() + crate::conn::DRAIN_IDLE_GRACE_MS + 1;
                for c in lock(&self.ws.registry).values() {
                    self.timers.push(Reverse((at, c.token)));
                }
            }
            if self.ws.solo && self.tick > 0 && lock(&self.ws.registry).len() == 0 && self.run.is_empty() {
                return;
            }
            self.tick += 1;
            if self.tick % EVENT_INTERVAL == 0 {
                self.end_round();
                self.poll(&Arc::clone(&self.ws), Some(Duration::ZERO));
                self.run_timers();
            }
            match self.next_task() {
                Some(task) => self.run_task(task),
                None => self.park(),
            }
        }
    }

    fn steal_enabled(&self) -> bool {
        self.engine.plan.steal && !self.ws.solo
    }

    /// A round of tasks is over (the local queue ran dry, or a busy worker looks at its
    /// events between tasks): a handler that queued work may wake its thread now. A
    /// connection that keeps requeueing itself (a pipelining client, a busy websocket)
    /// never empties the queue, so this also runs at every periodic poll.
    fn end_round(&mut self) {
        if std::mem::take(&mut self.ran) {
            if let Some(h) = self.engine.handler_opt() {
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.end_of_round())).is_err() {
                    self.engine.counters.handler_panics.fetch_add(1, Relaxed);
                }
            }
        }
    }

    fn next_task(&mut self) -> Option<Task> {
        if let Some(t) = self.run.local.pop() {
            return Some(t);
        }
        // The clock only when a round waits (first in, first out never reads it here).
        let recent = self.run.waiting()
            && self.tick - self.polled_at < ROUND_POLL_MIN
            && self.engine.now_us().saturating_sub(self.polled_us) < ROUND_POLL_US;
        if recent {
            if let Some(t) = self.run.pop(ALONE_TURNS) {
                return Some(t);
            }
        }
        self.end_round();
        if let Some(t) = self.run.take_inbox(&self.ws.inbox) {
            return Some(t);
        }
        self.poll(&Arc::clone(&self.ws), Some(Duration::ZERO));
        self.run_timers();
        if let Some(t) = self.run.pop(ALONE_TURNS) {
            return Some(t);
        }
        if !self.steal_enabled() {
            return None;
        }
        if !self.searching {
            if !self.engine.idle.try_start_searching() {
                return None;
            }
            self.searching = true;
        }
        if let Some(s) = steal::from_siblings(&self.engine.workers, self.ws.index, &self.run.local, &self.rng) {
            self.ws.counters.stolen.fetch_add(s.moved as u64, Relaxed);
            self.ws.counters.steal_ops.fetch_add(1, Relaxed);
            return Some(s.task);
        }
        // Siblings stuck in a long task: take their ready connections.
        let now = self.engine.now_us();
        for i in 0..self.engine.workers.len() {
            let w = &self.engine.workers[i];
            if i != self.ws.index && w.is_stalled(now) {
                let w = Arc::clone(w);
                let n = self.poll(&w, Some(Duration::ZERO));
                if n > 0 {
                    self.ws.counters.stolen.fetch_add(n as u64, Relaxed);
                    self.ws.counters.steal_ops.fetch_add(1, Relaxed);
                }
            }
        }
        self.run.pop(ALONE_TURNS)
    }

    fn run_task(&mut self, task: Task) {
        if self.searching {
            self.searching = false;
            if self.engine.idle.stop_searching() {
                // The last searcher found work: there may be more, let one more look.
                self.engine.notify_one_worker();
            }
        }
        self.ws.turn_started_us.store(self.engine.now_us(), Relaxed);
        self.ws.status.store(BUSY, Release);
        self.ws.counters.tasks.fetch_add(1, Relaxed);
        self.ran = true;
        let conn = match task {
            Task::Conn(c) => {
                if let Some(ring) = self.ws.ring.as_ref().filter(|_| c.took_budget()) {
                    // A long turn comes (a pipelining client): what this round queued
                    // goes out first, so the others' replies do not wait for it.
                    self.ws.apply_handed(ring);
                    let _ = ring.submit();
                }
                Some(c)
            }
            // With defer_accept the request is already there: serve it at once.
            // Otherwise wait for its first readiness event rather than read in vain.
            Task::New(fd, peer) => self.register(fd, peer, self.engine.config.defer_accept && self.ws.ring.is_none()),
        };
        if let Some(conn) = conn {
            let mut ctx = TurnCtx { worker: &self.ws, spare: &mut self.spare };
            if let After::Requeue = conn.run(&mut ctx) {
                // Collect readiness first, so connections that became ready while this
                // one ran go ahead of it: a connection that always has input (a greedy
                // pipeliner) cannot keep the others waiting in epoll.
                self.poll(&Arc::clone(&self.ws), Some(Duration::ZERO));
                self.run.push(conn);
                if self.steal_enabled() && self.run.len() > 1 {
                    self.engine.notify_one_worker();
                }
            }
        }
        self.ws.status.store(IDLE, Release);
    }

    /// Makes this worker the home of a new connection: registry, epoll, timer. Returns
    /// the connection to run now if `run_now`; otherwise its first event schedules it.
    fn register(&mut self, fd: OwnedFd, peer: SocketAddr, run_now: bool) -> Option<Arc<Conn>> {
        let proxied = self.engine.config.proxy_protocol != crate::config::ProxyMode::Off;
        if proxied && !self.engine.config.proxy_trusted.iter().any(|c| c.contains(peer.ip())) {
            // Only a trusted balancer may say who the client is: refused unread.
            drop(fd);
            self.engine.counters.proxy_untrusted.fetch_add(1, Relaxed);
            self.engine.conn_gate.release(1);
            return None;
        }
        if !proxied && !self.engine.per_ip.admit(peer.ip()) {
            // Over the per-IP cap: close at once, give the slot back, count it.
            drop(fd);
            let n = self.engine.counters.refused_per_ip.fetch_add(1, Relaxed) + 1;
            self.engine.per_ip.log_refusal(peer.ip(), n);
            self.engine.conn_gate.release(1);
            return None;
        }
        let raw = fd.as_raw_fd();
        let (token, conn) = {
            let engine = &self.engine;
            let ws = &self.ws;
            lock(&ws.registry).insert_with(|token| {
                let admitted = (!proxied).then_some(peer.ip());
                Arc::new(Conn::new(Arc::clone(engine), Arc::clone(ws), token, fd, peer, run_now, admitted))
            })
        };
        let interest = match self.engine.config.readiness {
            Readiness::Edge => Interest::READ_EDGE,
            Readiness::OneShot => Interest::oneshot(false),
        };
        let watched = if self.ws.ring.is_some() {
            conn.arm_recv();
            Ok(())
        } else {
            self.ws.epoll.add(raw, token, interest)
        };
        if let Err(e) = watched {
            eprintln!("corral: worker {}: cannot watch a new connection: {e}", self.ws.index);
            conn.force_close();
            return None;
        }
        self.ws.counters.connections.fetch_add(1, Relaxed);
        let recheck = self.engine.config.limits.recheck();
        let first = conn.deadline_ms().min(self.engine.now_ms() + recheck.as_millis() as u64);
        self.timers.push(Reverse((first, token)));
        if self.drained {
            conn.mark(DRAIN);
            if !run_now && conn.try_schedule() {
                return Some(conn);
            }
        }
        run_now.then_some(conn)
    }

    /// Collects readiness (epoll) or completions (io_uring) of `from` (this worker or a
    /// stalled sibling) into the local deque, and accepts on the listeners it reports.
    /// Returns how many connections became tasks.
    fn poll(&mut self, from: &Arc<WorkerShared>, timeout: Option<Duration>) -> usize {
        if Arc::ptr_eq(from, &self.ws) {
            self.polled_at = self.tick;
            if self.run.is_fair() {
                self.polled_us = self.engine.now_us();
            }
        }
        match &from.ring {
            // Only its owner may touch a ring; a sibling taking over a stalled worker
            // looks at its epoll (its listeners) only.
            Some(_) if Arc::ptr_eq(from, &self.ws) => self.poll_ring(timeout),
            _ => self.poll_epoll(from, timeout),
        }
    }

    /// io_uring: submits what this round queued (one `io_uring_enter` for every
    /// connection's sends), waits if asked to, and turns the completions into tasks. The
    /// epoll (the listeners) is looked at only when the ring's poll of it fired.
    fn poll_ring(&mut self, timeout: Option<Duration>) -> usize {
        let ws = Arc::clone(&self.ws);
        let Some(ring) = ws.ring.as_ref() else { return 0 };
        ws.apply_handed(ring);
        let r = if timeout == Some(Duration::ZERO) { ring.submit() } else { ring.wait(timeout) };
        if let Err(e) = r {
            eprintln!("corral: worker {}: io_uring: {e}", ws.index);
        }
        let mut reaped = std::mem::take(&mut self.reaped);
        reaped.clear();
        ring.reap(&mut reaped);
        let mut epoll_ready = self.epoll_hot;
        let mut woken = false;
        let mut conns = Vec::with_capacity(reaped.done.len());
        {
            let reg = lock(&ws.registry);
            for (i, d) in reaped.done.iter().enumerate() {
                match d {
                    Done::Polled { tag: WAKE_TAG, .. } => {
                        woken = true;
                        ring.watch_eventfd(ws.wake.as_raw_fd(), WAKE_TAG);
                    }
                    Done::Polled { armed, .. } => {
                        epoll_ready = true;
                        if !armed {
                            ring.poll(ws.epoll.as_raw_fd(), EPOLL_TAG);
                        }
                    }
                    Done::Recv { token, .. } | Done::Sent { token, .. } => {
                        if let Some(c) = reg.get(*token) {
                            conns.push((Arc::clone(c), i));
                        }
                    }
                }
            }
        }
        let mut queued = 0;
        for (conn, i) in conns {
            let (news, bit) = match &reaped.done[i] {
                Done::Recv { got, armed, .. } => (conn.received(&reaped.data, got.clone(), *armed), READ),
                Done::Sent { result, .. } => (conn.sent(*result), WRITE),
                Done::Polled { .. } => (false, 0),
            };
            if news {
                conn.mark(bit);
                if conn.try_schedule() {
                    self.run.push(conn);
                    queued += 1;
                }
            }
        }
        self.reaped = reaped;
        if let Some(a) = &mut self.acceptor {
            a.on_wake(&ws.epoll, woken);
        }
        let backoff = self.acceptor.as_ref().is_some_and(|a| a.resume_at().is_some());
        if epoll_ready || backoff {
            queued += self.poll_epoll(&ws, Some(Duration::ZERO));
            self.epoll_hot = !self.events.is_empty();
        } else if queued > 1 && self.steal_enabled() {
            self.engine.notify_one_worker();
        }
        queued
    }

    /// Collects readiness from `from`'s epoll into the local deque, and accepts on the
    /// listeners it reports. Returns how many connections became tasks.
    fn poll_epoll(&mut self, from: &Arc<WorkerShared>, timeout: Option<Duration>) -> usize {
        if from.epoll.wait(&mut self.events, timeout).is_err() {
            return 0;
        }
        let own = Arc::ptr_eq(from, &self.ws);
        // A paused acceptor still needs its backoff checked when the wait timed out.
        if self.events.is_empty() && !(own && self.acceptor.is_some()) {
            return 0;
        }
        let mut queued = 0;
        let mut woken = false;
        let mut listeners: Vec<usize> = Vec::new();
        {
            let reg = lock(&from.registry);
            for ev in self.events.iter() {
                if ev.token == WAKE_TOKEN {
                    from.wake.drain();
                    woken = true;
                    continue;
                }
                if ev.token >= LISTEN_BASE {
                    listeners.push((ev.token - LISTEN_BASE) as usize);
                    continue;
                }
                let Some(conn) = reg.get(ev.token) else { continue };
                let mut bits = 0;
                if ev.readable() {
                    bits |= READ;
                }
                if ev.writable() {
                    bits |= WRITE;
                }
                if ev.hangup() {
                    bits |= HUP;
                }
                conn.mark(bits);
                if conn.try_schedule() {
                    self.run.push(Arc::clone(conn));
                    queued += 1;
                }
            }
        }
        if woken && !own {
            // We took a wake-up meant for a sibling: pass it on.
            from.wake.notify();
        }
        let mut accepted = Vec::new();
        let mut take = |fd, peer| accepted.push((fd, peer));
        if own {
            if let Some(a) = &mut self.acceptor {
                a.on_wake(&self.ws.epoll, woken);
                for k in listeners {
                    a.on_ready(&self.ws.epoll, k, &mut take);
                }
            }
        } else {
            // The sibling is stuck: accept from its listeners so its backlog is served.
            let stop = self.engine.accepting_stopped();
            for k in listeners {
                if let Some(l) = from.listeners.get(k) {
                    accept::accept_batch(l, &self.engine.conn_gate, self.engine.config.accept_batch, stop, &mut take);
                }
            }
        }
        // With defer_accept the request is already there, but on io_uring it arrives
        // through the ring's receive, not a read now.
        let run_now = self.engine.config.defer_accept && self.ws.ring.is_none();
        for (fd, peer) in accepted {
            if let Some(conn) = self.register(fd, peer, run_now) {
                self.run.push(conn);
                queued += 1;
            }
        }
        if queued > 1 && self.steal_enabled() {
            self.engine.notify_one_worker();
        }
        queued
    }

    fn run_timers(&mut self) {
        let Some(Reverse((first, _))) = self.timers.peek() else { return };
        let now = self.engine.now_ms();
        if *first > now {
            return;
        }
        let recheck = self.engine.config.limits.recheck().as_millis() as u64;
        let reg = lock(&self.ws.registry);
        while let Some(&Reverse((at, token))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(conn) = reg.get(token) else { continue };
            let deadline = conn.deadline_ms();
            if deadline <= now {
                conn.mark(TIMEOUT);
                if conn.try_schedule() {
                    self.run.push(Arc::clone(conn));
                }
                self.timers.push(Reverse((now + recheck, token)));
            } else {
                // A connection's deadline can move earlier between checks (a short idle
                // timeout after a long header one), and the entry here cannot follow it
                // from other threads: look again within `recheck` at the latest.
                self.timers.push(Reverse((deadline.min(now + recheck), token)));
            }
        }
    }

    fn park_timeout(&self) -> Option<Duration> {
        let now_ms = self.engine.now_ms();
        let mut timeout = self.timers.peek().map(|Reverse((at, _))| Duration::from_millis(at.saturating_sub(now_ms)));
        if let Some(at) = self.acceptor.as_ref().and_then(|a| a.resume_at()) {
            let left = at.saturating_duration_since(std::time::Instant::now());
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        }
        if self.steal_enabled() {
            let now = self.engine.now_us();
            for w in self.engine.workers.iter() {
                if w.index != self.ws.index && w.status.load(Acquire) == BUSY {
                    let ran = Duration::from_micros(now.saturating_sub(w.turn_started_us.load(Relaxed)));
                    let left = STALL.saturating_sub(ran).max(Duration::from_micros(200));
                    timeout = Some(timeout.map_or(left, |t| t.min(left)));
                }
            }
        }
        timeout
    }

    fn park(&mut self) {
        let was_searching = std::mem::take(&mut self.searching);
        let idle = &self.engine.idle;
        if !self.ws.solo {
            idle.park(self.ws.index, was_searching);
            self.ws.status.store(PARKED, SeqCst);
            // Re-check after announcing the park: a push that raced with it is seen here,
            // or its pusher saw us parked and woke us. Siblings' queues count only while
            // nobody searches: a searcher takes them (and wakes another if it was the
            // last), and a worker that may not search would only spin until it does.
            let work_left = !self.ws.inbox.is_empty()
                || self.ws.has_handed.load(SeqCst)
                || (self.steal_enabled() && idle.searching() == 0 && self.engine.workers.iter().any(|w| w.depth() > 0));
            if work_left {
                self.unpark();
                return;
            }
        }
        // A non-blocking poll may have consumed the wake-up that announced a stop or a
        // drain; those flags are set before the wake-up, so checking them here is enough.
        if self.engine.is_stopped() || (self.engine.is_draining() && !self.drained) {
            if !self.ws.solo {
                self.unpark();
            }
            return;
        }
        let timeout = self.park_timeout();
        let t0 = std::time::Instant::now();
        self.poll(&Arc::clone(&self.ws), timeout);
        self.ws.counters.parks.fetch_add(1, Relaxed);
        self.ws.counters.parked_ns.fetch_add(t0.elapsed().as_nanos() as u64, Relaxed);
        if !self.ws.solo {
            self.unpark();
        }
        self.run_timers();
    }

    fn unpark(&mut self) {
        self.ws.status.store(IDLE, SeqCst);
        if !self.engine.idle.unpark_self(self.ws.index) {
            // A notifier claimed us and counted us as searching.
            self.searching = true;
        }
    }

    fn mark_all(&mut self, bits: u8) {
        let conns = lock(&self.ws.registry).values();
        for c in conns {
            c.mark(bits);
            if c.try_schedule() {
                self.run.push(c);
            }
        }
    }

    fn close_all(&mut self) {
        let conns = lock(&self.ws.registry).values();
        for c in conns {
            c.force_close();
        }
        // Connections never registered: close them and give back their admission.
        while let Some(t) = self.run.pop(usize::MAX).or_else(|| self.run.take_inbox(&self.ws.inbox)) {
            if let Task::New(fd, _) = t {
                drop(fd);
                self.engine.connection_closed(false, 0);
            }
        }
    }
}
