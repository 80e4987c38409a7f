//! The engine's shared state (`Shared`), documented field by field and grouped by
//! concern, with the few operations every room needs: waking and scheduling workers,
//! delivering accepted connections, counting closes, and the lifecycle flags.
//!
//! Invariants: `Shared` is built once in `Engine::new` and never replaced; the lifecycle
//! only moves forward (accepting → draining → stopped); `conn_gate` is released exactly
//! once per admitted connection (`connection_closed`, or a refusal at registration).
//!
//! # The one loop of rooms
//!
//! Four rooms use each other and form the engine's one import cycle (tokio's
//! `runtime/` has the same shape: the scheduler, its workers and its tasks refer to
//! each other through one handle):
//!
//! - `engine` (this file) holds the workers (`worker::WorkerShared`), the handler
//!   (`handler::Handler`) and schedules a woken `conn::Conn` onto its worker;
//! - `conn` runs a connection's turn with `Shared` (counters, handler, scheduling) and
//!   its worker's `WorkerShared` (latency, inbox);
//! - `worker` drives connections (`conn`) and reads `Shared` (lifecycle, siblings);
//! - `handler`'s `Responder` completes a request into its `conn::Conn`.
//!
//! They are one room in four folders because a connection is scheduled by the engine,
//! run by a worker and completed by a handler from any thread: each needs the others'
//! types. Everything else stays out of the loop and below it: `config`, `accept` (the
//! PROXY reader takes its counters from `stats`), `cpu` (its pool thread hook is passed
//! in by `Engine::new`), `stats` (the snapshot is made in `engine/snapshot.rs`),
//! `frame`, `sched`, `sys`. Inside the loop, `Shared`'s fields are `pub(crate)` and
//! each is documented; what only the engine touches is `pub(super)`. core/tests/layers.rs
//! fails if a room outside the loop starts using one inside it.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::accept::handoff::{Accepted, HostQueue};
use crate::accept::listen::Listener;
use crate::accept::Gate;
use crate::config::Config;
use crate::cpu::CpuPool;
use crate::engine::plan::{Dispatch, Plan};
use crate::handler::{Handler, Request, Responder};
use crate::sched::idle::Idle;
use crate::stats::Counters;
use crate::sync::{lock, ThreadSet};
use crate::sys::TcpExt;
use crate::worker::{Task, WorkerLoop, WorkerShared};

/// Where the engine is in its life, and how shutdown waits. Private to the engine:
/// other rooms read it through `Shared::is_draining` / `is_stopped` /
/// `accepting_stopped` / `wait_while_running`.
pub(super) struct Lifecycle {
    /// Set at shutdown step 2: no new requests are framed; in-flight ones finish.
    pub(super) draining: AtomicBool,
    /// Set at shutdown step 3: workers close what is left and exit.
    pub(super) stopped: AtomicBool,
    /// Set at shutdown step 1: acceptors stop (shared with each acceptor).
    pub(super) accepting_stopped: Arc<AtomicBool>,
    /// Signalled when a connection closes while draining (shutdown waits on it).
    pub(super) drained: (Mutex<()>, Condvar),
    /// `true` once stopped; the stall monitor waits on it.
    pub(super) stop_signal: (Mutex<bool>, Condvar),
    /// Every engine thread, counted so shutdown can wait with a deadline.
    pub(super) threads: Arc<ThreadSet>,
}

impl Lifecycle {
    pub(super) fn new(accepting_stopped: Arc<AtomicBool>, threads: Arc<ThreadSet>) -> Lifecycle {
        Lifecycle {
            draining: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            accepting_stopped,
            drained: (Mutex::new(()), Condvar::new()),
            stop_signal: (Mutex::new(false), Condvar::new()),
            threads,
        }
    }
}

type Held = Vec<(Arc<Shared>, Arc<WorkerShared>)>;

thread_local! {
    /// The workers this thread owes a wake-up, while it holds them.
    static HELD: std::cell::RefCell<Option<Held>> = const { std::cell::RefCell::new(None) };
}

/// Holds this thread's wake-ups of I/O workers until [`release_wakes`]: replies and
/// websocket sends completed meanwhile are queued at once, but each worker is woken
/// once, at the release, instead of once per connection. For a host loop that answers
/// many connections in one pass (the Python and Node fronts: measured, a `write` to an
/// eventfd per message was a quarter of the Python loop's time on websocket echo).
/// Holding again while held does nothing; the release must come soon (within the same
/// pass), or the connections wait.
pub fn hold_wakes() {
    HELD.with(|h| {
        let mut h = h.borrow_mut();
        if h.is_none() {
            *h = Some(Vec::new());
        }
    });
}

/// Wakes the workers owed a wake-up since [`hold_wakes`]; nothing if none was held.
pub fn release_wakes() {
    let held = HELD.with(|h| h.borrow_mut().take());
    for (engine, worker) in held.into_iter().flatten() {
        engine.wake_worker(&worker);
    }
}

/// What the engine's threads share: set up once in `Engine::new`, read from every
/// thread. Grouped by concern: what to run (`config`, `plan`, `handler`), who runs it
/// (`workers`, `solo`, `idle`, `cpu`), who may come in (`conn_gate`, `per_ip`, `host`,
/// `listeners`), what is counted (`epoch`, `kernel_at_start`, `counters`), and the
/// engine's life (`life`, private).
pub(crate) struct Shared {
    /// The validated configuration.
    pub(crate) config: Config,
    /// What the model means for it: thread counts, stealing, dispatch.
    pub(crate) plan: Plan,
    /// The workers run on io_uring (else epoll).
    pub(crate) io_uring: bool,
    /// Why the engine runs on epoll although io_uring was asked for (auto's fallback).
    pub(crate) backend_note: Option<String>,
    /// TLS for every served connection (`tls_cert`): each new connection takes the
    /// current configuration.
    pub(crate) tls: Option<crate::tls::ServerTls>,
    /// The serving engine's handler (`None` in handoff mode).
    pub(super) handler: Option<Arc<dyn Handler>>,
    /// The handler reads HTTP bodies as streams (`Handler::streams_bodies`, asked once).
    pub(crate) stream_bodies: bool,
    /// The I/O workers, by index (empty in handoff mode).
    pub(crate) workers: Vec<Arc<WorkerShared>>,
    /// Thread-per-connection workers still alive (outside the idle set).
    pub(super) solo: Mutex<Vec<Weak<WorkerShared>>>,
    /// Which workers are searching or parked (`sched::idle`).
    pub(crate) idle: Idle,
    /// The CPU pool for heavy requests, if the plan has one.
    pub(crate) cpu: Option<CpuPool>,
    /// Admission: open served connections (or host-queue slots) and the accept rate.
    pub(crate) conn_gate: Arc<Gate>,
    /// Admission: the per-source-IP cap.
    pub(crate) per_ip: crate::accept::per_ip::PerIp,
    /// Admission: the per-client request rate (`rate_limit`), if set.
    pub(crate) rate: Option<crate::fair::rate::RateLimit>,
    /// Handoff mode's queue of accepted connections for the host.
    pub(crate) host: Option<HostQueue>,
    /// Handoff mode with `proxy_protocol`: where headers are read before the host
    /// gets a connection.
    pub(crate) preambles: Option<Arc<crate::accept::preamble::Preambles>>,
    /// The listening sockets, for stats and shutdown.
    pub(crate) listeners: Vec<Arc<Listener>>,
    /// When the engine was built: the zero of every timestamp and of uptime.
    pub(crate) epoch: Instant,
    /// The kernel's `TcpExt` listen and SYN counters at start (stats report the
    /// change; `None`: `/proc/net/netstat` could not be read, and no change is reported).
    pub(crate) kernel_at_start: Option<TcpExt>,
    /// Engine-wide counters.
    pub(crate) counters: Counters,
    /// Websocket topics (`subscribe` / `publish`).
    pub(crate) topics: crate::handler::topics::Topics,
    /// The last connection id handed out.
    pub(super) next_id: AtomicU64,
    /// The next worker for round-robin dispatch.
    pub(super) round_robin: AtomicUsize,
    /// Draining, stopped, and how shutdown waits.
    pub(super) life: Lifecycle,
}

impl Shared {
    pub(crate) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
    pub(crate) fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }
    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_id.fetch_add(1, Relaxed) + 1
    }
    pub(crate) fn is_draining(&self) -> bool {
        self.life.draining.load(Acquire)
    }
    pub(crate) fn is_stopped(&self) -> bool {
        self.life.stopped.load(Acquire)
    }
    /// Waits up to `d` for the engine to stop; true if it is still running after.
    pub(crate) fn wait_while_running(&self, d: Duration) -> bool {
        let g = lock(&self.life.stop_signal.0);
        let (g, _) =
            self.life.stop_signal.1.wait_timeout_while(g, d, |stopped| !*stopped).unwrap_or_else(|e| e.into_inner());
        !*g
    }

    /// The flag acceptors watch: set once the engine stops accepting.
    pub(crate) fn accepting_stopped(&self) -> &AtomicBool {
        &self.life.accepting_stopped
    }

    pub(crate) fn handler(&self) -> &dyn Handler {
        self.handler.as_deref().expect("connections are only served by a serving engine")
    }

    /// The handler of a serving engine (none for handoff).
    pub(crate) fn handler_opt(&self) -> Option<&dyn Handler> {
        self.handler.as_deref()
    }

    /// Runs the handler, catching a panic (its responder, dropped while unwinding,
    /// sends the error reply).
    pub(crate) fn call_handler(&self, req: Request, res: Responder) {
        let h = self.handler();
        if catch_unwind(AssertUnwindSafe(|| h.handle(req, res))).is_err() {
            self.counters.handler_panics.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn all_workers(&self) -> Vec<Arc<WorkerShared>> {
        let mut all = self.workers.clone();
        all.extend(lock(&self.solo).iter().filter_map(Weak::upgrade));
        all
    }

    /// Wakes one parked worker, if nobody is searching already.
    pub(crate) fn notify_one_worker(&self) {
        if let Some(i) = self.idle.notify_one() {
            self.workers[i].wake.notify();
        }
    }

    fn wake_worker(&self, w: &WorkerShared) {
        // A thread-per-connection worker is outside the idle set: always wake it.
        if w.solo || self.idle.claim_parked(w.index) {
            w.wake.notify();
        } else if self.plan.steal {
            self.notify_one_worker();
        }
    }

    /// Queues a connection woken off its worker (a reply completed on another thread).
    /// While this thread holds wake-ups ([`hold_wakes`]), the worker is woken at the
    /// release instead, once however many connections were queued for it.
    pub(crate) fn schedule_remote(self: &Arc<Self>, conn: Arc<crate::conn::Conn>) {
        let home = Arc::clone(&conn.home);
        home.inbox.push(Task::Conn(conn));
        let deferred = HELD.with(|h| match &mut *h.borrow_mut() {
            Some(held) => {
                if !held.iter().any(|(_, w)| Arc::ptr_eq(w, &home)) {
                    held.push((Arc::clone(self), Arc::clone(&home)));
                }
                true
            }
            None => false,
        });
        if !deferred {
            self.wake_worker(&home);
        }
    }

    pub(crate) fn connection_closed(&self, graceful: bool, aborted: u64) {
        let c = &self.counters;
        c.connections_closed.fetch_add(1, Relaxed);
        c.requests_aborted.fetch_add(aborted, Relaxed);
        if !graceful && self.is_stopped() {
            c.connections_forced.fetch_add(1, Relaxed);
        }
        self.conn_gate.release(1);
        if self.is_draining() {
            let _g = lock(&self.life.drained.0);
            self.life.drained.1.notify_all();
        }
    }

    fn send_new(&self, i: usize, fd: OwnedFd, peer: SocketAddr) {
        let w = &self.workers[i];
        w.inbox.push(Task::New(fd, peer));
        self.wake_worker(w);
    }

    fn spawn_solo(self: &Arc<Self>, fd: OwnedFd, peer: SocketAddr) {
        let made = WorkerShared::new(usize::MAX, true, Vec::new(), false).and_then(|(ws, local)| {
            ws.inbox.push(Task::New(fd, peer));
            let shared = Arc::clone(self);
            let weak = Arc::downgrade(&ws);
            let guard = self.life.threads.enter();
            std::thread::Builder::new().name("corral-conn".into()).spawn(move || {
                let _guard = guard;
                WorkerLoop::new(ws, shared, local, None).run();
            })?;
            let mut solo = lock(&self.solo);
            solo.retain(|w| w.strong_count() > 0);
            solo.push(weak);
            Ok(())
        });
        if let Err(e) = made {
            eprintln!("corral: cannot start a thread for a connection from {peer}: {e}");
            self.conn_gate.release(1);
        }
    }

    pub(super) fn wake_all_workers(&self) {
        for w in self.all_workers() {
            w.wake.notify();
        }
    }
}

impl Shared {
    /// Hands a connection accepted on an acceptor thread to the host queue or a worker.
    pub(super) fn deliver(self: &Arc<Self>, acceptor: usize, fd: OwnedFd, peer: SocketAddr) {
        if let Some(host) = &self.host {
            match &self.preambles {
                Some(p) => p.admit(fd, peer, host, &self.counters),
                None => host.push(Accepted { fd, peer, proxy: None }),
            }
            return;
        }
        match self.plan.dispatch {
            Dispatch::RoundRobin => {
                let i = self.round_robin.fetch_add(1, Relaxed) % self.workers.len();
                self.send_new(i, fd, peer);
            }
            Dispatch::ByAcceptor => self.send_new(acceptor % self.workers.len(), fd, peer),
            Dispatch::ThreadPerConnection => self.spawn_solo(fd, peer),
        }
    }
}
