//! `Engine`: owns the listeners, acceptors, I/O workers and CPU pool; starts them,
//! reports on them, and shuts them down within a deadline.
//!
//! Two modes: **serve** (the engine reads, frames, and calls a [`Handler`]) and
//! **handoff** (the engine accepts and queues connections for the host to take).
//!
//! Shutdown: stop accepting and close the listeners; stop framing new requests; let
//! in-flight requests finish and their replies flush until the deadline; then close
//! what is left. The report counts what was completed and what was aborted.
//!
//! This folder is the engine: this file (`Engine`: build, start, stats, shutdown),
//! `shared` (the state every thread shares, documented field by field) and `plan`
//! (what each model means: thread counts, stealing, dispatch).
//!
//! Invariants: `Engine::new` refuses an option that has no effect in its mode; the
//! phases only move forward (ready → running → closed); shutdown returns by its
//! deadline (plus a 2 s grace for threads) even when a handler never returns.

pub(crate) mod plan;
mod shared;
mod snapshot;

pub(crate) use shared::Shared;
pub use shared::{hold_wakes, release_wakes};

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_deque::Worker;

use crate::accept::handoff::{Accepted, HostQueue};
use crate::accept::listen;
use crate::accept::{Acceptor, Gate};
use crate::config::Config;
use crate::cpu::CpuPool;
use crate::engine::plan::Plan;
use crate::error::{Error, ErrorKind, Result};
use crate::handler::Handler;
use crate::sched::idle::Idle;
use crate::stats::{Counters, Stats};
use crate::sync::{lock, ThreadSet};
use crate::sys::{self, EventFd};
use crate::worker::{Task, WorkerLoop, WorkerShared, LISTEN_BASE};

/// What a shutdown did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Served connections closed since the engine started (all of them, by now).
    pub connections_closed: u64,
    /// Of those, closed by force at the deadline with work unfinished.
    pub connections_aborted: u64,
    /// Replies written since the engine started.
    pub requests_completed: u64,
    /// Requests framed whose reply was never written (their connection closed first).
    pub requests_aborted: u64,
    /// Accepted connections still queued for the host, closed unclaimed (handoff).
    pub handoff_unclaimed: u64,
    /// Whether every connection finished before the deadline.
    pub clean: bool,
    pub elapsed: Duration,
}

/// How the engine serves: with a handler, or by handing connections to the host.
pub enum Mode {
    Serve(Arc<dyn Handler>),
    Handoff,
}

enum Phase {
    Ready { acceptors: Vec<Acceptor>, locals: Vec<Worker<Task>> },
    Running,
    Closed,
}

struct Control {
    phase: Phase,
    acceptor_threads: Vec<JoinHandle<()>>,
    worker_threads: Vec<JoinHandle<()>>,
    acceptor_ctls: Vec<Arc<EventFd>>,
}

/// The engine. Methods may be called from any thread.
pub struct Engine {
    shared: Arc<Shared>,
    control: Mutex<Control>,
    addrs: Vec<SocketAddr>,
}

/// Which backend the workers run on: `(io_uring, why not)`. `auto` falls back to
/// epoll when the probe fails, saying why; `io_uring` asked for and unavailable is an
/// error. A handoff engine does no connection I/O (the option is a serving one). A
/// thread per connection has no worker to own a ring: refused when set, and when it
/// comes from `CORRAL_BACKEND` the engine runs on epoll and says so.
fn resolve_backend(config: &Config, serving: bool, has_workers: bool) -> Result<(bool, Option<String>)> {
    use crate::config::Backend;
    let asked = config.backend;
    if asked == Backend::Epoll || !serving {
        return Ok((false, None));
    }
    if !has_workers {
        let note = format!(
            "backend {}: the thread-per-connection model has no I/O workers to own rings; running on epoll",
            asked.name()
        );
        eprintln!("corral: {note}");
        return Ok((false, Some(note)));
    }
    match sys::probe_io_uring() {
        Ok(()) => Ok((true, None)),
        Err(why) if asked == Backend::Auto => {
            let note = format!("backend auto: io_uring is not available ({why}); running on epoll");
            eprintln!("corral: {note}");
            Ok((false, Some(note)))
        }
        Err(why) => Err(Error::new(
            ErrorKind::Io,
            format!(
                "backend io_uring cannot run here: {why}; set backend = \"auto\" to fall back to epoll, or \"epoll\""
            ),
        )),
    }
}

/// The TLS configuration served connections share, when TLS is on. ALPN says
/// `http/1.1` when the engine frames HTTP (`h2` joins the list once it speaks it); the
/// other protocols have no ALPN name, so the extension is not answered.
fn server_tls(config: &Config) -> Result<Option<crate::tls::ServerTls>> {
    let alpn: &[&[u8]] = if config.protocol() == crate::config::Protocol::Http1 { &[b"http/1.1"] } else { &[] };
    crate::tls::TlsSetup::of(config, alpn)?.map(crate::tls::ServerTls::new).transpose()
}

/// How often a draining shutdown re-checks for open connections between wake-ups.
const DRAIN_RECHECK: Duration = Duration::from_millis(20);

impl Engine {
    /// Binds the listeners and prepares every thread, without starting them: the
    /// addresses (with the ports the kernel picked) are known from here on.
    pub fn new(config: Config, mode: Mode) -> Result<Engine> {
        config.check_mode(matches!(mode, Mode::Serve(_)))?;
        // Before binding: a certificate that cannot be used leaves no socket behind.
        // (`check_mode` refused the TLS options on a handoff engine.)
        let tls = server_tls(&config)?;
        let plan = Plan::of(&config);
        let bound = listen::bind(&config, plan.listener, plan.acceptors)?;
        let (handler, host) = match mode {
            Mode::Serve(h) => (Some(h), None),
            Mode::Handoff => {
                let q = HostQueue::new(config.handoff_capacity, config.limits.max_accept_rate)
                    .map_err(|e| Error::io(ErrorKind::Io, "cannot create the host queue's notify fd", e))?;
                (None, Some(q))
            }
        };
        let preambles = match (&host, config.proxy_protocol) {
            (Some(_), mode) if mode != crate::config::ProxyMode::Off => Some(Arc::new(
                crate::accept::preamble::Preambles::new(
                    mode,
                    config.proxy_trusted.clone(),
                    config.limits.max_header,
                    config.limits.header_timeout,
                )
                .map_err(|e| Error::io(ErrorKind::Io, "cannot create the PROXY header reader's epoll", e))?,
            )),
            _ => None,
        };
        let conn_gate = match &host {
            Some(q) => Arc::clone(&q.gate),
            None => Arc::new(Gate::new(config.limits.max_connections).with_rate(config.limits.max_accept_rate)),
        };
        let serving = host.is_none();
        let in_workers = serving && plan.accept_in_workers;
        let n_workers = if serving { plan.workers } else { 0 };
        let (io_uring, backend_note) = resolve_backend(&config, serving, n_workers > 0)?;
        let io_err = |what: &'static str| move |e| Error::io(ErrorKind::Io, what, e);
        let mut workers = Vec::with_capacity(n_workers);
        let mut locals = Vec::with_capacity(n_workers);
        for i in 0..n_workers {
            // A worker that accepts holds acceptor i's listeners.
            let listeners = match bound.per_acceptor.get(i) {
                Some(idx) if in_workers => idx.iter().map(|&k| Arc::clone(&bound.listeners[k])).collect(),
                _ => Vec::new(),
            };
            let (ws, local) = WorkerShared::new(i, false, listeners, io_uring).map_err(io_err(if io_uring {
                "cannot create a worker's epoll and io_uring (set backend = \"epoll\" if rings cannot be had here)"
            } else {
                "cannot create a worker's epoll"
            }))?;
            workers.push(ws);
            locals.push(local);
        }
        let threads = Arc::new(ThreadSet::default());
        let cpu = if serving && plan.cpu_threads > 0 {
            let codel =
                config.limits.codel_target.map(|t| crate::cpu::codel::Codel::new(t, config.limits.codel_interval));
            Some(
                CpuPool::start(
                    plan.cpu_threads,
                    "corral",
                    &threads,
                    crate::cpu::Policy {
                        codel,
                        lifo_threshold: config.limits.lifo_threshold,
                        on_start: Some(crate::conn::mark_pool_thread),
                        fair: config.limits.fair_share,
                    },
                )
                .map_err(io_err("cannot start the CPU pool"))?,
            )
        } else {
            None
        };
        let stop_accepting = Arc::new(AtomicBool::new(false));
        let mut acceptors = Vec::new();
        for (i, idx) in bound.per_acceptor.iter().enumerate() {
            let ls = idx.iter().map(|&k| Arc::clone(&bound.listeners[k])).collect();
            let (waker, base) = if in_workers {
                (Arc::clone(&workers[i % n_workers].wake), LISTEN_BASE)
            } else {
                (Arc::new(EventFd::new().map_err(io_err("cannot create an acceptor's control fd"))?), 0)
            };
            let gate = Arc::clone(&conn_gate);
            let stop = Arc::clone(&stop_accepting);
            acceptors.push(Acceptor::new(i, ls, bound.exclusive, config.accept_batch, gate, stop, waker, base));
        }
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for l in &bound.listeners {
            if !addrs.contains(&l.addr) {
                addrs.push(l.addr);
            }
        }
        let acceptor_ctls = acceptors.iter().map(|a| Arc::clone(&a.waker)).collect();
        let shared = Arc::new(Shared {
            idle: Idle::new(n_workers.max(1)),
            plan,
            stream_bodies: handler.as_ref().is_some_and(|h| h.streams_bodies()),
            handler,
            workers,
            solo: Mutex::new(Vec::new()),
            cpu,
            per_ip: crate::accept::per_ip::PerIp::new(config.limits.max_connections_per_ip, config.limits.per_ip_all),
            rate: (config.limits.rate_limit > 0)
                .then(|| crate::fair::rate::RateLimit::new(config.limits.rate_limit, config.limits.rate_burst)),
            conn_gate,
            host,
            preambles,
            listeners: bound.listeners,
            epoch: Instant::now(),
            kernel_at_start: sys::TcpExt::read(),
            counters: Counters::default(),
            topics: Default::default(),
            next_id: AtomicU64::new(0),
            round_robin: AtomicUsize::new(0),
            life: shared::Lifecycle::new(Arc::clone(&stop_accepting), threads),
            io_uring,
            backend_note,
            tls,
            config,
        });
        Ok(Engine {
            shared,
            control: Mutex::new(Control {
                phase: Phase::Ready { acceptors, locals },
                acceptor_threads: Vec::new(),
                worker_threads: Vec::new(),
                acceptor_ctls,
            }),
            addrs,
        })
    }

    /// Binds and starts a serving engine.
    pub fn serve(config: Config, handler: impl Handler) -> Result<Engine> {
        let e = Engine::new(config, Mode::Serve(Arc::new(handler)))?;
        e.start()?;
        Ok(e)
    }

    /// Binds and starts a handoff engine.
    pub fn handoff(config: Config) -> Result<Engine> {
        let e = Engine::new(config, Mode::Handoff)?;
        e.start()?;
        Ok(e)
    }

    /// Starts the threads. Fails if already started or shut down.
    pub fn start(&self) -> Result<()> {
        let mut c = lock(&self.control);
        if !matches!(c.phase, Phase::Ready { .. }) {
            let msg = "the engine was already started (or shut down); create a new one";
            return Err(Error::new(ErrorKind::State, msg));
        }
        let Phase::Ready { acceptors, locals } = std::mem::replace(&mut c.phase, Phase::Running) else {
            unreachable!("checked above")
        };
        // A host open to SYN floods is said once, at start (and once per process).
        let backlog = (!self.shared.config.addrs.is_empty()).then(|| self.shared.config.backlog());
        for line in crate::accept::synflood::warnings(backlog, &crate::accept::synflood::Settings::read()) {
            crate::accept::synflood::warn_once(&line);
        }
        let spawn_err = |e| Error::io(ErrorKind::Io, "cannot start an engine thread", e);
        let in_workers = self.shared.host.is_none() && self.shared.plan.accept_in_workers;
        let mut acceptors: Vec<Option<Acceptor>> = acceptors.into_iter().map(Some).collect();
        for (i, (ws, local)) in self.shared.workers.iter().zip(locals).enumerate() {
            let (ws, shared) = (Arc::clone(ws), Arc::clone(&self.shared));
            let acceptor = if in_workers { acceptors.get_mut(i).and_then(Option::take) } else { None };
            let guard = self.shared.life.threads.enter();
            let h = std::thread::Builder::new()
                .name(format!("corral-io-{}", ws.index))
                .spawn(move || {
                    let _guard = guard;
                    WorkerLoop::new(ws, shared, local, acceptor).run()
                })
                .map_err(spawn_err)?;
            c.worker_threads.push(h);
        }
        if crate::worker::monitor::wanted(&self.shared) {
            let shared = Arc::clone(&self.shared);
            let guard = self.shared.life.threads.enter();
            let h = std::thread::Builder::new()
                .name("corral-monitor".into())
                .spawn(move || {
                    let _guard = guard;
                    crate::worker::monitor::run(shared)
                })
                .map_err(spawn_err)?;
            c.worker_threads.push(h);
        }
        if let Some(p) = &self.shared.preambles {
            let (p, shared) = (Arc::clone(p), Arc::clone(&self.shared));
            let guard = self.shared.life.threads.enter();
            let h = std::thread::Builder::new()
                .name("corral-proxy".into())
                .spawn(move || {
                    let _guard = guard;
                    if let Some(host) = &shared.host {
                        p.run(host, &shared.counters);
                    }
                })
                .map_err(spawn_err)?;
            c.worker_threads.push(h);
        }
        for a in acceptors.into_iter().flatten() {
            let shared = Arc::clone(&self.shared);
            let h = std::thread::Builder::new()
                .name(format!("corral-accept-{}", a.index))
                .spawn(move || a.run(&mut |i, fd, peer| shared.deliver(i, fd, peer)))
                .map_err(spawn_err)?;
            c.acceptor_threads.push(h);
        }
        // The listeners are open and every thread runs: connections are taken from here.
        if let Some(h) = &self.shared.config.handover {
            // The successor of a hand-over is the service's main process from now on; the
            // manager hears so before the predecessor, told next, says STOPPING=1.
            self.tell_service_manager(&format!("READY=1\nMAINPID={}", std::process::id()));
            crate::accept::handover::ready(h);
        } else {
            self.tell_service_manager("READY=1");
        }
        Ok(())
    }

    /// Hands this engine's listening sockets to the next process: offers them on a Unix
    /// socket at `path`, where a successor built with
    /// [`ConfigBuilder::listeners_from`](crate::ConfigBuilder::listeners_from) takes
    /// them, and returns once it serves them (within `timeout`). Then call
    /// [`Engine::shutdown`]: this engine drains what it has while the successor takes
    /// every new connection from the same sockets — nothing queued is reset. On error
    /// nothing was given up and this engine serves on. With `sd_notify`, the service
    /// manager hears RELOADING=1 when a successor connects, then READY=1 with the
    /// successor's MAINPID from it (READY=1 from this engine if the successor failed).
    pub fn hand_over(&self, path: impl AsRef<std::path::Path>, timeout: Duration) -> Result<()> {
        let fds: Vec<i32> = self.shared.listeners.iter().map(|l| l.fd()).collect();
        let reloading = std::cell::Cell::new(false);
        let offered = crate::accept::handover::offer(path.as_ref(), &fds, timeout, &|| {
            reloading.set(true);
            self.tell_service_manager(&format!("RELOADING=1\nMONOTONIC_USEC={}", crate::sys::monotonic_usec()));
        });
        if let Err(e) = offered {
            // A successor came and failed: this engine serves on, and says so.
            if reloading.get() {
                self.tell_service_manager("READY=1");
            }
            return Err(e);
        }
        for l in &self.shared.listeners {
            l.mark_shared();
        }
        Ok(())
    }

    /// With `sd_notify`, tells the service manager a state change (a failure to is
    /// logged once per call: the engine serves on either way).
    fn tell_service_manager(&self, state: &str) {
        if self.shared.config.sd_notify {
            if let Err(e) = crate::sys::notify(state) {
                eprintln!("corral: cannot tell the service manager {state}: {e}");
            }
        }
    }

    /// The addresses listened on, with the ports the kernel chose for port 0.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The first listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    pub fn stats(&self) -> Stats {
        Stats::collect(&self.shared)
    }

    /// Reads the TLS certificates and keys again (`tls_cert`, `tls_key`,
    /// `tls_sni_certs`, `tls_client_ca`): connections that start from now on use them,
    /// open ones keep theirs. A file that cannot be used is an `InvalidConfig` error
    /// naming it, and the certificates served before stay. What a renewal (certbot's
    /// deploy hook, a SIGHUP) calls.
    pub fn reload_tls(&self) -> Result<()> {
        self.served_tls()?.reload(None)
    }

    /// Like [`reload_tls`](Engine::reload_tls), with a new certificate chain and key as
    /// PEM contents, for an engine given its pair that way
    /// ([`ConfigBuilder::tls_pem`](crate::ConfigBuilder::tls_pem)); the other files
    /// (`tls_sni_certs`, `tls_client_ca`) are read again too.
    pub fn reload_tls_pem(&self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Result<()> {
        self.served_tls()?.reload(Some((cert.into(), key.into())))
    }

    fn served_tls(&self) -> Result<&crate::tls::ServerTls> {
        self.shared.tls.as_ref().ok_or_else(|| {
            Error::config(
                "this engine serves no TLS, so it has no certificate to reload: build it with tls_cert and tls_key",
            )
        })
    }

    /// Sends `msg` to every websocket subscribed to `topic` (see
    /// [`WebSocket::subscribe`](crate::ws::WebSocket::subscribe)); returns how many it was
    /// queued for. Encoded once, from the calling thread.
    pub fn publish(&self, topic: &str, msg: &crate::ws::Message) -> usize {
        self.shared.topics.publish(topic, msg.kind(), msg.as_bytes(), None)
    }

    /// Websockets subscribed to `topic` now.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.shared.topics.count(topic)
    }

    fn host(&self) -> Result<&HostQueue> {
        self.shared.host.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::WrongMode,
                "this engine serves connections itself; create it in handoff mode to take them",
            )
        })
    }

    /// Handoff: takes up to `max` accepted connections; each fd is then the caller's.
    pub fn take(&self, max: usize) -> Result<Vec<Accepted>> {
        Ok(self.host()?.take(max))
    }

    /// Handoff: how many accepted connections wait to be taken.
    pub fn waiting(&self) -> Result<usize> {
        Ok(self.host()?.len())
    }

    /// Handoff: the fd that is readable while connections wait (put it in your loop).
    pub fn notify_fd(&self) -> Result<RawFd> {
        Ok(self.host()?.notify_fd())
    }

    /// Handoff: also calls `waker` on each empty→non-empty transition of the queue,
    /// on an acceptor thread (it must not block). For hosts that cannot watch
    /// [`notify_fd`](Self::notify_fd), such as Node's loop through a threadsafe function.
    pub fn set_handoff_waker(&self, waker: impl Fn() + Send + Sync + 'static) -> Result<()> {
        self.host()?.set_waker(Arc::new(waker));
        Ok(())
    }

    /// Handoff: waits until a connection is queued or `timeout` passes (`None`: no
    /// limit). Returns false on timeout or interruption by a signal.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        let fd = self.notify_fd()?;
        sys::poll_readable(fd, timeout).map_err(|e| Error::io(ErrorKind::Io, "poll on the notify fd failed", e))
    }

    /// Handoff: stops accepting (as the first step of [`shutdown`](Self::shutdown)
    /// does) and leaves what is queued for the host to take, so a host can take every
    /// connection accepted before it shuts the engine down. Idempotent.
    pub fn stop_accepting(&self) -> Result<()> {
        self.host()?;
        let mut c = lock(&self.control);
        if matches!(c.phase, Phase::Closed) {
            return Err(Error::new(ErrorKind::State, "the engine is already shut down"));
        }
        self.stop_acceptors(&mut c);
        Ok(())
    }

    fn stop_acceptors(&self, c: &mut Control) {
        let s = &self.shared;
        s.life.accepting_stopped.store(true, SeqCst);
        for ctl in &c.acceptor_ctls {
            ctl.notify();
        }
        for h in c.acceptor_threads.drain(..) {
            let _ = h.join();
        }
        for l in &s.listeners {
            l.stop();
        }
    }

    /// Stops accepting, lets in-flight requests finish until `timeout`, then closes
    /// what remains. Fails if the engine was already shut down. A timeout too large
    /// for a deadline (`Duration::MAX`) means no deadline.
    pub fn shutdown(&self, timeout: Duration) -> Result<ShutdownReport> {
        let started = Instant::now();
        let deadline = crate::sync::deadline_in(timeout);
        let mut c = lock(&self.control);
        match c.phase {
            Phase::Closed => return Err(Error::new(ErrorKind::State, "the engine is already shut down")),
            Phase::Ready { .. } | Phase::Running => {}
        }
        c.phase = Phase::Closed;
        let s = &self.shared;
        // 1. Stop accepting; closing the listeners resets what waits in their backlog.
        self.stop_acceptors(&mut c);
        // 2. Drain: no new requests; in-flight ones finish until the deadline.
        self.tell_service_manager("STOPPING=1");
        s.life.draining.store(true, SeqCst);
        s.wake_all_workers();
        let clean = {
            let mut g = lock(&s.life.drained.0);
            loop {
                // Handoff: what the host has is the host's; a PROXY header on its way
                // is still waited for.
                let handoff_done = s.preambles.as_ref().map_or(true, |p| p.waiting() == 0);
                if s.conn_gate.used() == 0 || (s.host.is_some() && handoff_done) {
                    break true;
                }
                // A closing connection wakes this wait; an acceptor's unit reserved for
                // an accept that found nothing (a last take from a shared socket) is given
                // back without a word, so look again every DRAIN_RECHECK as well.
                let left = deadline.map_or(DRAIN_RECHECK, |d| d.saturating_duration_since(Instant::now()));
                if left.is_zero() {
                    break false;
                }
                g = s.life.drained.1.wait_timeout(g, left.min(DRAIN_RECHECK)).unwrap_or_else(|e| e.into_inner()).0;
            }
        };
        // 3. Stop: workers close what is left and exit.
        s.life.stopped.store(true, SeqCst);
        if let Some(p) = &s.preambles {
            p.stop();
        }
        *lock(&s.life.stop_signal.0) = true;
        s.life.stop_signal.1.notify_all();
        s.wake_all_workers();
        let grace = deadline.and_then(|d| d.max(Instant::now()).checked_add(Duration::from_secs(2)));
        let cpu_threads = s.cpu.as_ref().map(|p| p.stop()).unwrap_or_default();
        if s.life.threads.wait(grace) {
            for h in c.worker_threads.drain(..).chain(cpu_threads) {
                let _ = h.join();
            }
        } else {
            // Joining would hang on a handler that never returns; leave it behind.
            eprintln!("corral: shutdown: a thread is still inside a handler past the deadline; leaving it behind");
            c.worker_threads.clear();
        }
        let handoff_unclaimed = s.host.as_ref().map_or(0, |h| h.close_all()) as u64;
        let k = &s.counters;
        Ok(ShutdownReport {
            connections_closed: k.connections_closed.load(SeqCst),
            connections_aborted: k.connections_forced.load(SeqCst),
            requests_completed: k.replies.load(SeqCst),
            requests_aborted: k.requests_aborted.load(SeqCst),
            handoff_unclaimed,
            clean,
            elapsed: started.elapsed(),
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let open = !matches!(lock(&self.control).phase, Phase::Closed);
        if open {
            let _ = self.shutdown(Duration::ZERO);
        }
    }
}
