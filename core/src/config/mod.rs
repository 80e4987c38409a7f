//! `Config`: every engine option with a default, built by [`ConfigBuilder`] and
//! validated once in [`ConfigBuilder::build`] against the one option table
//! ([`options::OPTIONS`]: names, ranges, defaults, where each applies). Secure defaults:
//! loopback only, explicit backlog, every limit on.
//!
//! Invariants: a `Config` only exists once every option is in range and none is set
//! where it has no effect; the builder remembers which options were set explicitly so
//! that the engine can refuse one that has no effect in its mode.
//!
//! `Limits`, `Config` and `ConfigBuilder` are made by `define_config!` below from the
//! option list in `options.rs` (`option_table!`): each option's field, default, setter
//! and table row come from its one entry there. What is written here by hand is what is
//! not an option: the addresses, inherited listeners, the hand-over stream, the set of
//! explicitly set options, the `limits` setter, and the checks across options in `build`.
//!
//! `config/` imports nothing above it (only `error` and `sys`): the option values that
//! are names (`Model`, `Protocol`, `ListenerStrategy`, ...) are defined here, in
//! `names.rs`, and the rooms that act on them import them from here
//! (core/tests/layers.rs keeps it so).

mod cidr;
mod names;
pub mod options;

pub use cidr::Cidr;
pub use names::{
    Backend, ListenerStrategy, Model, Protocol, ProxyMode, Readiness, TlsCipher, TlsClientAuth, TlsVersion,
};
pub use options::CertKeyFiles;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use socket2::Socket;

use crate::error::{Error, ErrorKind, Result};
use crate::sys;

/// What `checked` settles that the builder leaves open: the thread counts whose
/// defaults depend on the machine, and the addresses (loopback when none is given).
struct Settled {
    acceptors: usize,
    io_workers: usize,
    cpu_threads: usize,
    addrs: Vec<SocketAddr>,
}

/// The type an option field has in `Config` (`Option<T> as T`: the settled `T`).
macro_rules! settled_ty {
    ($ty:ty) => {
        $ty
    };
    ($ty:ty, $settled:ty) => {
        $settled
    };
}

/// What a setter stores (`Option<T> as T`: the `T` given, as set).
macro_rules! given {
    ($v:ident) => {
        $v
    };
    ($v:ident, $settled:ty) => {
        Some($v)
    };
}

/// The value a `Config` takes from its builder (`Option<T> as T`: what `checked` settled).
macro_rules! settled {
    ($b:ident, $s:ident, $field:ident) => {
        $b.$field
    };
    ($b:ident, $s:ident, $field:ident, $settled:ty) => {
        $s.$field
    };
}

/// The option's name, from its row.
macro_rules! row_name {
    (($name:literal, $($rest:tt)*)) => {
        $name
    };
}

/// Makes `Limits`, `Config` and `ConfigBuilder` (their fields, defaults, setters, and
/// the copy from builder to config) from the option list (`options::option_table!`).
/// The entries are first sorted by place (`engine` fields, `limits` fields), keeping
/// their order, then each struct takes its own.
macro_rules! define_config {
    (@sort [$($e:tt)*] [$($l:tt)*] engine $entry:tt $($rest:tt)*) => {
        define_config!(@sort [$($e)* $entry] [$($l)*] $($rest)*);
    };
    (@sort [$($e:tt)*] [$($l:tt)*] limits $entry:tt $($rest:tt)*) => {
        define_config!(@sort [$($e)*] [$($l)* $entry] $($rest)*);
    };
    (@sort [$({
        $(#[$edoc:meta])* $ef:ident : $ety:ty $(as $ecty:ty)? = $edefault:expr, row: $erow:tt
    })*] [$({
        $(#[$ldoc:meta])* $lf:ident : $lty:ty = $ldefault:expr, row: $lrow:tt
    })*]) => {
        /// Limits that bound what one client can make the engine hold or do.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Limits {
            $($(#[$ldoc])* pub $lf: $lty,)*
        }

        impl Default for Limits {
            fn default() -> Limits {
                Limits { $($lf: $ldefault,)* }
            }
        }

        /// A validated engine configuration. Build one with [`Config::builder`].
        #[derive(Clone, Debug)]
        pub struct Config {
            $($(#[$edoc])* pub(crate) $ef: settled_ty!($ety $(, $ecty)?),)*
            pub(crate) limits: Limits,
            pub(crate) addrs: Vec<SocketAddr>,
            pub(crate) inherited: Vec<Arc<Socket>>,
            /// Told "ready" once the engine serves (a hand-over's successor).
            pub(crate) handover: Option<Arc<std::os::unix::net::UnixStream>>,
            /// The TLS certificate chain and key as PEM contents (`tls_pem`).
            pub(crate) tls_pem: Option<Arc<TlsPem>>,
            /// The client CA bundle as PEM contents (`tls_client_ca_pem`).
            pub(crate) tls_client_ca_pem: Option<Arc<Vec<u8>>>,
            /// Options set explicitly (checked against the engine's mode).
            pub(crate) explicit: Vec<&'static str>,
        }

        /// Builds a [`Config`]. Every setter has a default; nothing is checked until `build`.
        #[derive(Clone, Debug)]
        pub struct ConfigBuilder {
            $($(#[$edoc])* pub(crate) $ef: $ety,)*
            pub(crate) limits: Limits,
            addrs: Vec<SocketAddr>,
            /// Listening sockets the host handed over; each built `Config` gets its own
            /// duplicate, so building twice never closes one twice.
            inherited: Vec<Arc<OwnedFd>>,
            /// The predecessor's hand-over stream (`listeners_from`), told "ready" at start.
            handover: Option<Arc<std::os::unix::net::UnixStream>>,
            /// The TLS certificate chain and key as PEM contents (`tls_pem`).
            tls_pem: Option<Arc<TlsPem>>,
            /// The client CA bundle as PEM contents (`tls_client_ca_pem`).
            pub(crate) tls_client_ca_pem: Option<Arc<Vec<u8>>>,
            explicit: Vec<&'static str>,
        }

        impl Default for ConfigBuilder {
            fn default() -> ConfigBuilder {
                ConfigBuilder {
                    $($ef: $edefault,)*
                    limits: Limits::default(),
                    addrs: Vec::new(),
                    inherited: Vec::new(),
                    handover: None,
                    tls_pem: None,
                    tls_client_ca_pem: None,
                    explicit: Vec::new(),
                }
            }
        }

        impl ConfigBuilder {
            $(
                $(#[$edoc])*
                pub fn $ef(mut self, v: settled_ty!($ety $(, $ecty)?)) -> Self {
                    self.$ef = given!(v $(, $ecty)?);
                    self.mark(row_name!($erow));
                    self
                }
            )*
            $(
                #[doc = concat!("See [`Limits::", stringify!($lf), "`].")]
                pub fn $lf(mut self, v: $lty) -> Self {
                    self.limits.$lf = v;
                    self.mark(row_name!($lrow));
                    self
                }
            )*

            /// The `Config` of a checked builder.
            fn assemble(self, s: Settled, inherited: Vec<Arc<Socket>>) -> Config {
                let b = self;
                Config {
                    $($ef: settled!(b, s, $ef $(, $ecty)?),)*
                    limits: b.limits,
                    addrs: s.addrs,
                    inherited,
                    handover: b.handover,
                    tls_pem: b.tls_pem,
                    tls_client_ca_pem: b.tls_client_ca_pem,
                    explicit: b.explicit,
                }
            }
        }
    };
    ($($entries:tt)*) => {
        define_config!(@sort [] [] $($entries)*);
    };
}

options::option_table!(define_config);

impl Limits {
    /// The shortest of the connection timeouts: how often a connection's deadline is
    /// looked at, at the latest.
    pub(crate) fn recheck(&self) -> std::time::Duration {
        let mut t = self.header_timeout.min(self.idle_timeout).min(self.body_timeout).min(self.ws_ping_timeout);
        for ws in [self.ws_ping_interval, self.ws_idle_timeout] {
            if !ws.is_zero() {
                t = t.min(ws);
            }
        }
        if self.reply_timeout.is_zero() {
            t
        } else {
            t.min(self.reply_timeout)
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

impl Config {
    /// Refuses an option set explicitly that has no effect on an engine of this mode.
    pub(crate) fn check_mode(&self, serve: bool) -> Result<()> {
        if !serve && self.tls_pem.is_some() {
            return Err(Error::config(
                "TLS (tls_pem) has no effect on a handoff engine: the host reads the sockets it is handed; \
                 leave it unset",
            ));
        }
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
    /// The PEM certificate chain and private key files served connections use, when TLS
    /// is on by files (`tls_cert` and `tls_key` are both set; `build` refuses one without
    /// the other). `None` too when the PEM was given as contents ([`ConfigBuilder::tls_pem`]).
    pub fn tls_files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        (!self.tls_cert.as_os_str().is_empty()).then_some((self.tls_cert.as_path(), self.tls_key.as_path()))
    }
    /// Whether served connections speak TLS (by files or by PEM contents).
    pub fn tls(&self) -> bool {
        self.tls_pem.is_some() || self.tls_files().is_some()
    }
    /// The certificate chain and key given as PEM contents ([`ConfigBuilder::tls_pem`]).
    pub(crate) fn tls_pem(&self) -> Option<&TlsPem> {
        self.tls_pem.as_deref()
    }
    pub fn tls_min_version(&self) -> TlsVersion {
        self.tls_min_version
    }
}

/// A certificate chain and its key as PEM contents ([`ConfigBuilder::tls_pem`]).
pub(crate) struct TlsPem {
    pub(crate) cert: Vec<u8>,
    pub(crate) key: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    /// The key stays out of debug output (and so out of logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsPem {{ cert: {} bytes, key: (hidden) }}", self.cert.len())
    }
}

impl Default for Config {
    fn default() -> Config {
        ConfigBuilder::default().build().expect("the default configuration is valid")
    }
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

    /// TLS with the certificate chain (the server's certificate first) and its private key
    /// given as PEM contents rather than as files (`tls_cert`, `tls_key`): for hosts that
    /// hold them in memory (Node's `tls: { cert, key }`), so the key is never written to
    /// disk. Checked when the engine is built, as the files are; not with `tls_cert`.
    pub fn tls_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.tls_pem = Some(Arc::new(TlsPem { cert: cert.into(), key: key.into() }));
        self
    }

    /// The CA certificates that issue client certificates as PEM contents, instead of
    /// the file `tls_client_ca` names (what the Node front's `tls: { ca }` gives).
    pub fn tls_client_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_client_ca_pem = Some(Arc::new(pem.into()));
        self
    }

    /// All limits at once (each is also an option of its own, with its setter).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Checks every option without building (and without taking inherited fds): what
    /// `build` would refuse, this refuses with the same error, but for an incomplete
    /// pair (`tls_cert` without `tls_key`, `tls_min_version` without either), which a
    /// host setting options one at a time passes through on its way to the whole pair.
    pub fn validate(&self) -> Result<()> {
        self.checked().map(|_| ())
    }

    /// Thread counts after defaults, once every option is checked.
    fn checked(&self) -> Result<Settled> {
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
        Ok(Settled { acceptors, io_workers, cpu_threads, addrs })
    }

    /// Checks every option and returns the configuration, or an error that names the
    /// option and the accepted range.
    pub fn build(self) -> Result<Config> {
        let settled = self.checked()?;
        self.check_tls()?;
        // readiness is epoll's: set explicitly, it keeps an engine on epoll unless the
        // backend was set too (then the pair was refused above).
        let epoll_only = self.is_explicit("readiness") && !self.is_explicit("backend");
        let mut inherited = Vec::with_capacity(self.inherited.len());
        for fd in &self.inherited {
            let raw = fd.as_raw_fd();
            let cannot = |e| Error::io(ErrorKind::InvalidConfig, format!("listener fd {raw} cannot be used"), e);
            let sock = sys::adopt_listener(fd.try_clone().map_err(cannot)?).map_err(cannot)?;
            inherited.push(Arc::new(sock));
        }
        let mut config = self.assemble(settled, inherited);
        if epoll_only {
            config.backend = Backend::Epoll;
        }
        Ok(config)
    }
}
