//! `Config`: every engine option with a default, built by [`ConfigBuilder`] and
//! validated once in [`ConfigBuilder::build`] against the one option table
//! ([`options::OPTIONS`]: names, ranges, defaults, where each applies). Secure defaults:
//! loopback only, explicit backlog, every limit on.
//!
//! Invariants: a `Config` only exists once every option is in range and none is set
//! where it has no effect; the builder remembers which options were set explicitly so
//! that the engine can refuse one that has no effect in its mode.

mod cidr;
mod names;
pub mod options;

pub use cidr::Cidr;
pub use names::{Backend, ListenerStrategy, Model, Protocol, ProxyMode, Readiness};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;

use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// Limits that bound what one client can make the engine hold or do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open served connections; at the cap acceptors stop and the backlog absorbs.
    pub max_connections: usize,
    /// Open served connections from one source IP; a connection over it is closed at
    /// once (0: no cap). Counts public sources only unless `per_ip_all`.
    pub max_connections_per_ip: usize,
    /// Whether the per-IP cap counts every source (`per_ip_scope = "all"`) or only
    /// public ones (the default): loopback, private (RFC 1918, RFC 4193), link-local
    /// and shared (RFC 6598) sources are a load balancer, a proxy or a load test on
    /// the same network far more often than a flood.
    pub per_ip_all: bool,
    /// New connections accepted per second, over all acceptors (0: no limit, the
    /// default); beyond it acceptors pause and the backlog absorbs.
    pub max_accept_rate: u32,
    /// Requests served on one connection before it is closed, the last reply saying so
    /// (HTTP `Connection: close`), like nginx `keepalive_requests` (0: no cap).
    pub max_requests_per_connection: u64,
    /// Requests dispatched on one connection whose replies are not yet written;
    /// beyond it the connection is not read.
    pub max_in_flight: usize,
    /// Largest `Length` frame, `Lines` line, or HTTP body, in bytes.
    pub max_frame: usize,
    /// Largest HTTP request head (request line + headers), in bytes.
    pub max_header: usize,
    /// Time allowed for a request to arrive once its first byte has (and for the
    /// first request of a connection): slowloris protection.
    pub header_timeout: Duration,
    /// Time a connection may sit with nothing to do (or with replies the peer does not
    /// read) before it is closed.
    pub idle_timeout: Duration,
    /// Time a handler has to answer a request once it is framed. Past it the engine
    /// answers in the handler's place (HTTP `504`; the other protocols close the
    /// connection) and a later answer is dropped, so a handler that never answers
    /// cannot hold a connection forever. Zero: no deadline.
    pub reply_timeout: Duration,
    /// Frames dispatched per connection per turn before it yields to others.
    pub budget_frames: usize,
    /// Bytes read per connection per turn before it yields to others.
    pub budget_bytes: usize,
    /// Unwritten reply bytes at which a connection stops being read (back-pressure).
    pub write_high_water: usize,
    /// CoDel target for the CPU-pool queue (default None: off; folly uses 5 ms).
    /// While the minimum queueing delay over an interval exceeds it, heavy requests
    /// that waited over twice it are refused at dequeue (HTTP 503, `retry-after: 1`).
    /// Off by default because a refusal is only better than waiting for clients that
    /// retry or degrade; turn it on for a public-facing server under load.
    pub codel_target: Option<Duration>,
    /// CoDel interval.
    pub codel_interval: Duration,
    /// Adaptive LIFO on the CPU-pool queue: once this many heavy jobs wait, new ones are
    /// served first, newest first, so fresh requests are answered while old ones wait
    /// (and, with CoDel, are refused). 0: always first in, first out (the default,
    /// since LIFO reorders requests from different clients).
    pub lifo_threshold: usize,
}

impl Limits {
    /// The shortest of the connection timeouts: how often a connection's deadline is
    /// looked at, at the latest.
    pub(crate) fn recheck(&self) -> std::time::Duration {
        let t = self.header_timeout.min(self.idle_timeout);
        if self.reply_timeout.is_zero() {
            t
        } else {
            t.min(self.reply_timeout)
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: default_max_connections(),
            max_connections_per_ip: 1024,
            per_ip_all: false,
            max_accept_rate: 0,
            max_requests_per_connection: 10_000,
            max_in_flight: 64,
            max_frame: 1 << 20,
            max_header: 16 << 10,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            reply_timeout: Duration::from_secs(60),
            budget_frames: 32,
            budget_bytes: 256 << 10,
            write_high_water: 256 << 10,
            codel_target: None,
            codel_interval: Duration::from_millis(100),
            lifo_threshold: 0,
        }
    }
}

/// Leaves room under `RLIMIT_NOFILE` for the engine's own descriptors and the host's.
fn default_max_connections() -> usize {
    let soft = sys::nofile_limit().map(|(s, _)| s).unwrap_or(1024);
    (soft.saturating_sub(64) as usize).clamp(16, 1 << 20)
}

pub(crate) fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// A validated engine configuration. Build one with [`Config::builder`].
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) inherited: Vec<Arc<Socket>>,
    /// Told "ready" once the engine serves (a hand-over's successor).
    pub(crate) handover: Option<Arc<std::os::unix::net::UnixStream>>,
    pub(crate) allow_public: bool,
    pub(crate) listener: ListenerStrategy,
    pub(crate) acceptors: usize,
    pub(crate) io_workers: usize,
    pub(crate) cpu_threads: usize,
    pub(crate) io_slice: Duration,
    pub(crate) backlog: u32,
    pub(crate) accept_batch: usize,
    pub(crate) accept_in_workers: bool,
    pub(crate) defer_accept: bool,
    pub(crate) tcp_nodelay: bool,
    pub(crate) sd_notify: bool,
    pub(crate) proxy_protocol: ProxyMode,
    pub(crate) proxy_trusted: Vec<Cidr>,
    pub(crate) handoff_capacity: usize,
    pub(crate) limits: Limits,
    pub(crate) model: Model,
    pub(crate) protocol: Protocol,
    pub(crate) readiness: Readiness,
    pub(crate) backend: Backend,
    /// Options set explicitly (checked against the engine's mode).
    pub(crate) explicit: Vec<&'static str>,
}

impl Config {
    /// Refuses an option set explicitly that has no effect on an engine of this mode.
    pub(crate) fn check_mode(&self, serve: bool) -> Result<()> {
        options::check_mode(&self.explicit, serve)
    }

    pub fn builder() -> ConfigBuilder {
        ConfigBuilder::default()
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }
    pub fn allow_public(&self) -> bool {
        self.allow_public
    }
    pub fn listener(&self) -> ListenerStrategy {
        self.listener
    }
    pub fn acceptors(&self) -> usize {
        self.acceptors
    }
    pub fn io_workers(&self) -> usize {
        self.io_workers
    }
    pub fn cpu_threads(&self) -> usize {
        self.cpu_threads
    }
    pub fn io_slice(&self) -> Duration {
        self.io_slice
    }
    pub fn accept_in_workers(&self) -> bool {
        self.accept_in_workers
    }
    pub fn defer_accept(&self) -> bool {
        self.defer_accept
    }
    pub fn backlog(&self) -> u32 {
        self.backlog
    }
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    pub fn model(&self) -> Model {
        self.model
    }
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }
    pub fn readiness(&self) -> Readiness {
        self.readiness
    }
    /// The backend asked for (what runs is in the stats: `auto` may fall back).
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl Default for Config {
    fn default() -> Config {
        ConfigBuilder::default().build().expect("the default configuration is valid")
    }
}

/// Builds a [`Config`]. Every setter has a default; nothing is checked until `build`.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    addrs: Vec<SocketAddr>,
    /// Listening sockets the host handed over; each built `Config` gets its own
    /// duplicate, so building twice never closes one twice.
    inherited: Vec<Arc<OwnedFd>>,
    /// The predecessor's hand-over stream (`listeners_from`), told "ready" at start.
    pub(crate) handover: Option<Arc<std::os::unix::net::UnixStream>>,
    pub(crate) allow_public: bool,
    pub(crate) listener: ListenerStrategy,
    pub(crate) acceptors: Option<usize>,
    pub(crate) io_workers: Option<usize>,
    pub(crate) cpu_threads: Option<usize>,
    pub(crate) io_slice: Duration,
    pub(crate) backlog: u32,
    pub(crate) accept_batch: usize,
    pub(crate) accept_in_workers: bool,
    pub(crate) defer_accept: bool,
    pub(crate) tcp_nodelay: bool,
    pub(crate) sd_notify: bool,
    pub(crate) proxy_protocol: ProxyMode,
    pub(crate) proxy_trusted: Vec<Cidr>,
    pub(crate) handoff_capacity: usize,
    pub(crate) limits: Limits,
    pub(crate) model: Model,
    pub(crate) protocol: Protocol,
    pub(crate) readiness: Readiness,
    pub(crate) backend: Backend,
    explicit: Vec<&'static str>,
}

impl Default for ConfigBuilder {
    fn default() -> ConfigBuilder {
        ConfigBuilder {
            addrs: Vec::new(),
            inherited: Vec::new(),
            handover: None,
            allow_public: false,
            listener: ListenerStrategy::ReusePort,
            acceptors: None,
            io_workers: None,
            cpu_threads: None,
            io_slice: Duration::from_micros(100),
            backlog: 1024,
            accept_batch: 64,
            accept_in_workers: true,
            defer_accept: false,
            tcp_nodelay: true,
            sd_notify: false,
            proxy_protocol: ProxyMode::Off,
            proxy_trusted: Cidr::parse_list("127.0.0.0/8,::1").unwrap_or_default(),
            handoff_capacity: 1024,
            limits: Limits::default(),
            model: Model::Stealing,
            protocol: Protocol::Http1,
            readiness: Readiness::Edge,
            backend: Backend::from_env(),
            explicit: Vec::new(),
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, v: $ty) -> Self {
            self.$name = v;
            self.mark(stringify!($name));
            self
        }
    };
}

macro_rules! limit_setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, v: $ty) -> Self {
            self.limits.$name = v;
            self.mark(stringify!($name));
            self
        }
    };
}

impl ConfigBuilder {
    /// Records that `name` was set explicitly (an option of the table).
    pub(crate) fn mark(&mut self, name: &str) {
        if let Some(o) = options::find(name) {
            if !self.explicit.contains(&o.name) {
                self.explicit.push(o.name);
            }
        }
    }

    pub(crate) fn is_explicit(&self, name: &str) -> bool {
        self.explicit.contains(&name)
    }

    /// Adds an address to listen on (IPv4 or IPv6; several allowed). Default: `127.0.0.1:0`.
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addrs.push(addr);
        self
    }

    /// Replaces the addresses to listen on.
    pub fn addrs(mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.addrs = addrs.into_iter().collect();
        self
    }

    /// Listens on a socket the host already bound and put in the listening state. The
    /// builder owns it from here on; each `Config` built gets its own duplicate, and the
    /// socket itself is closed when the last builder holding it is dropped.
    pub fn listener_fd(mut self, fd: OwnedFd) -> Self {
        self.inherited.push(Arc::new(fd));
        self
    }

    /// Listening sockets were handed in (`listener_fd`, `listeners_from`).
    pub fn has_listeners(&self) -> bool {
        !self.inherited.is_empty()
    }

    /// Takes listening sockets and the predecessor's stream received in a hand-over
    /// (`listeners_from`, which speaks the hand-over protocol and so lives with it in
    /// `accept::handover`).
    pub(crate) fn inherit(&mut self, fds: Vec<OwnedFd>, handover: std::os::unix::net::UnixStream) {
        self.inherited.extend(fds.into_iter().map(Arc::new));
        self.handover = Some(Arc::new(handover));
    }

    /// Heavy requests are not run on a CPU pool: the handler takes them to threads of
    /// its own (the Node front). Not an explicit `cpu_threads` setting.
    pub fn without_cpu_pool(mut self) -> Self {
        self.cpu_threads = Some(0);
        self
    }

    setter!(
        /// Allows wildcard addresses (`0.0.0.0`, `::`). Off by default so that nothing
        /// listens on every interface by accident.
        allow_public: bool
    );
    setter!(
        /// How listening sockets are laid out (default `ReusePort`).
        listener: ListenerStrategy
    );
    setter!(
        /// Listen backlog requested from the kernel (default 1024; clamped to somaxconn).
        backlog: u32
    );
    setter!(
        /// Accepts per wake-up before an acceptor yields (default 64).
        accept_batch: usize
    );
    setter!(
        /// `Stealing` model: run each acceptor inside an I/O worker (its listeners in the
        /// worker's epoll) instead of on a thread of its own (default `true`). Saves a
        /// thread hop and a wake-up per connection (measured: 52k vs 38k new
        /// connections/s on 2 cores); a stalled worker's listeners are accepted from by
        /// its siblings. `false` gives dedicated acceptor threads.
        accept_in_workers: bool
    );
    setter!(
        /// `TCP_DEFER_ACCEPT` on the listeners (default off): the kernel hands over a
        /// connection only once its first bytes arrived, saving a wake-up per
        /// connection for protocols where the client speaks first (measured: 58k vs
        /// 50k new connections/s on 2 cores). A client that sends nothing is held by the
        /// kernel (about 10 s) instead of by corral's header timeout. Leave it off in
        /// handoff mode for protocols where the server speaks first.
        defer_accept: bool
    );
    setter!(
        /// See the option table: `tcp_nodelay`.
        tcp_nodelay: bool
    );
    setter!(
        /// See the option table: `sd_notify`.
        sd_notify: bool
    );
    setter!(
        /// See the option table: `proxy_protocol`.
        proxy_protocol: ProxyMode
    );
    setter!(
        /// See the option table: `proxy_trusted` (here as parsed blocks).
        proxy_trusted: Vec<Cidr>
    );
    setter!(
        /// Accepted connections the host queue holds before acceptors pause (handoff).
        handoff_capacity: usize
    );
    setter!(
        /// The concurrency model (default `Stealing`); see [`Model`].
        model: Model
    );
    setter!(
        /// How requests are framed when serving (default `Http1`).
        protocol: Protocol
    );
    setter!(
        /// How connections are registered with epoll (default `Edge`).
        readiness: Readiness
    );
    setter!(
        /// epoll, io_uring, or io_uring where the probe passes (default epoll, or
        /// `CORRAL_BACKEND`); see [`Backend`].
        backend: Backend
    );
    setter!(
        /// All limits at once.
        limits: Limits
    );
    limit_setter!(
        /// See [`Limits::max_connections`].
        max_connections: usize
    );
    limit_setter!(
        /// See [`Limits::max_connections_per_ip`].
        max_connections_per_ip: usize
    );
    /// See [`Limits::per_ip_all`]: true counts every source, false (the default) only
    /// public ones.
    pub fn per_ip_all(mut self, all: bool) -> Self {
        self.limits.per_ip_all = all;
        self.mark("per_ip_scope");
        self
    }
    limit_setter!(
        /// See [`Limits::max_accept_rate`].
        max_accept_rate: u32
    );
    limit_setter!(
        /// See [`Limits::max_requests_per_connection`].
        max_requests_per_connection: u64
    );
    limit_setter!(
        /// See [`Limits::max_in_flight`].
        max_in_flight: usize
    );
    limit_setter!(
        /// See [`Limits::max_frame`].
        max_frame: usize
    );
    limit_setter!(
        /// See [`Limits::max_header`].
        max_header: usize
    );
    limit_setter!(
        /// See [`Limits::header_timeout`].
        header_timeout: Duration
    );
    limit_setter!(
        /// See [`Limits::idle_timeout`].
        idle_timeout: Duration
    );
    limit_setter!(
        /// See [`Limits::lifo_threshold`].
        lifo_threshold: usize
    );
    limit_setter!(
        /// See [`Limits::reply_timeout`].
        reply_timeout: Duration
    );
    limit_setter!(
        /// See [`Limits::budget_frames`].
        budget_frames: usize
    );
    limit_setter!(
        /// See [`Limits::budget_bytes`].
        budget_bytes: usize
    );
    limit_setter!(
        /// See [`Limits::write_high_water`].
        write_high_water: usize
    );
    limit_setter!(
        /// See [`Limits::codel_target`].
        codel_target: Option<Duration>
    );
    limit_setter!(
        /// See [`Limits::codel_interval`].
        codel_interval: Duration
    );

    /// Acceptor threads (default: one per core, at most 4).
    pub fn acceptors(mut self, n: usize) -> Self {
        self.acceptors = Some(n);
        self.mark("acceptors");
        self
    }

    /// I/O worker threads (default: one per core).
    pub fn io_workers(mut self, n: usize) -> Self {
        self.io_workers = Some(n);
        self.mark("io_workers");
        self
    }

    /// CPU-pool threads for heavy requests (default: one per core).
    pub fn cpu_threads(mut self, n: usize) -> Self {
        self.cpu_threads = Some(n);
        self.mark("cpu_threads");
        self
    }

    /// The scheduler time slice I/O workers ask for (default 100 us; zero: the kernel's
    /// default). On Linux 6.12 and later (EEVDF custom slices) a waking I/O worker with
    /// a short slice preempts a thread running heavy work at once instead of waiting out
    /// its slice (about 3 ms): measured on 2 cores, light requests' p99 beside 50 ms
    /// heavy ones went from 1-4 ms to under 0.2 ms. Older kernels ignore it.
    pub fn io_slice(mut self, d: Duration) -> Self {
        self.io_slice = d;
        self.mark("io_slice");
        self
    }

    /// Checks every option without building (and without taking inherited fds): what
    /// `build` would refuse, this refuses with the same error.
    pub fn validate(&self) -> Result<()> {
        self.checked().map(|_| ())
    }

    /// Thread counts after defaults, once every option is checked.
    fn checked(&self) -> Result<(usize, usize, usize, Vec<SocketAddr>)> {
        self.check_options()?;
        let cores = available_cores();
        let acceptors = self.acceptors.unwrap_or(cores.min(4));
        let io_workers = self.io_workers.unwrap_or(cores);
        let cpu_threads = self.cpu_threads.unwrap_or(cores);
        let mut addrs = self.addrs.clone();
        if addrs.is_empty() && self.inherited.is_empty() {
            addrs.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
        }
        if !self.allow_public {
            if let Some(a) = addrs.iter().find(|a| a.ip().is_unspecified()) {
                return Err(Error::new(
                    ErrorKind::PublicAddress,
                    format!(
                        "refusing to listen on {a}: a wildcard address accepts connections on every \
                         interface; name a specific address, or set allow_public to mean it"
                    ),
                ));
            }
        }
        let mut sorted = addrs.clone();
        sorted.sort();
        if sorted.windows(2).any(|w| w[0] == w[1] && w[0].port() != 0) {
            return Err(Error::config("the same address is listed twice"));
        }
        // Check every inherited fd before taking any, so a failed build leaves them all
        // with the caller.
        for fd in &self.inherited {
            let raw = fd.as_raw_fd();
            sys::check_listener(raw)
                .map_err(|e| Error::io(ErrorKind::InvalidConfig, format!("listener fd {raw} cannot be used"), e))?;
        }
        Ok((acceptors, io_workers, cpu_threads, addrs))
    }

    /// Checks every option and returns the configuration, or an error that names the
    /// option and the accepted range.
    pub fn build(self) -> Result<Config> {
        let (acceptors, io_workers, cpu_threads, addrs) = self.checked()?;
        // readiness is epoll's: set explicitly, it keeps an engine on epoll unless the
        // backend was set too (then the pair was refused above).
        let backend =
            if self.is_explicit("readiness") && !self.is_explicit("backend") { Backend::Epoll } else { self.backend };
        let mut inherited = Vec::with_capacity(self.inherited.len());
        for fd in &self.inherited {
            let raw = fd.as_raw_fd();
            let cannot = |e| Error::io(ErrorKind::InvalidConfig, format!("listener fd {raw} cannot be used"), e);
            let sock = sys::adopt_listener(fd.try_clone().map_err(cannot)?).map_err(cannot)?;
            inherited.push(Arc::new(sock));
        }
        Ok(Config {
            addrs,
            inherited,
            handover: self.handover.clone(),
            allow_public: self.allow_public,
            listener: self.listener,
            acceptors,
            io_workers,
            cpu_threads,
            io_slice: self.io_slice,
            backlog: self.backlog,
            accept_batch: self.accept_batch,
            accept_in_workers: self.accept_in_workers,
            defer_accept: self.defer_accept,
            tcp_nodelay: self.tcp_nodelay,
            sd_notify: self.sd_notify,
            proxy_protocol: self.proxy_protocol,
            proxy_trusted: self.proxy_trusted.clone(),
            handoff_capacity: self.handoff_capacity,
            limits: self.limits,
            model: self.model,
            protocol: self.protocol,
            readiness: self.readiness,
            // readiness is epoll's; set explicitly, it keeps an engine on epoll unless the
            // backend itself was set (then the pair is refused above).
            backend,
            explicit: self.explicit,
        })
    }
}
