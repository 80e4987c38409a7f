//! The one table of engine options: name, kind and range, default, where it applies,
//! one line of documentation, and how it reads and writes a [`ConfigBuilder`].
//!
//! Every front is driven by it: Python keyword arguments and Node option keys (the
//! camelCase of the same names) are looked up here and converted by [`ConfigBuilder::set`];
//! C has `corral_config_set(cfg, name, text)` and can list the table; the README's table,
//! the Node `.d.ts` option type and the Python `Options` type are generated from it and a
//! test fails when they drift (`make generated` rewrites them).
//!
//! Invariants:
//! - A range is stated here once; [`ConfigBuilder::build`] checks every option against
//!   it, whichever way it was set (typed setter or by name).
//! - Every duration and size has a finite maximum. "No limit" is an explicit zero where
//!   the option has one (`zero` below), never a very large number.
//! - An option set explicitly where it has no effect (a serve-only option on a handoff
//!   engine, a Stealing-only option in another model, a CPU-pool option without a CPU
//!   pool) is refused with a message that says so; it is never silently ignored.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{
    Backend, Cidr, ConfigBuilder, ListenerStrategy, Model, Protocol, ProxyMode, Readiness, TlsCipher, TlsClientAuth,
    TlsVersion,
};
use crate::error::{Error, Result};

/// What values an option takes.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    /// A whole number in `min..=max`; `zero` names what 0 means where 0 is allowed
    /// below `min` ("no cap").
    Count {
        min: u64,
        max: u64,
        zero: Option<&'static str>,
        unit: &'static str,
    },
    /// A duration in `min..=max`; `zero` as for counts.
    Duration {
        min: Duration,
        max: Duration,
        zero: Option<&'static str>,
    },
    /// One of these names.
    Choice(&'static [&'static str]),
    /// Text in a form of its own (`what` says which), checked by `check`.
    Text {
        what: &'static str,
        check: fn(&str) -> std::result::Result<(), String>,
    },
}

/// Which engines an option means something for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applies {
    Both,
    /// Only engines that serve (`Engine::serve`): framing, connections, handlers.
    Serve,
    /// Only handoff engines (`Engine::handoff`).
    Handoff,
}

/// A value checked against its option's kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    Bool(bool),
    Count(u64),
    Duration(Duration),
    Choice(&'static str),
    Text(String),
}

/// A value as a front received it, before it is checked against the option.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Bool(bool),
    /// A whole number (Python `int`); for a duration, in the front's plain unit.
    Int(i128),
    /// A number (Python `float`, a JS `number`); for a duration, in the front's plain unit.
    Float(f64),
    /// Text: a name, a number, `true`/`false`, or a duration with its unit (`250ms`).
    Text(&'a str),
}

/// How a front spells option names and what its plain numbers mean for durations.
#[derive(Clone, Copy, Debug)]
pub struct Front {
    pub name: &'static str,
    /// Node: `idleTimeout`; the others: `idle_timeout`.
    pub camel_case: bool,
    /// What a plain number means for a duration option (`None`: a unit is required).
    pub duration_unit: Option<Unit>,
    /// Whether the front can run heavy work on corral's CPU pool (Node cannot: its
    /// handlers are JS; heavy requests go to its own threads).
    pub cpu_pool: bool,
}

/// The unit of a plain number given for a duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Seconds,
    Millis,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Millis => "milliseconds",
        }
    }
    fn scale(self) -> f64 {
        match self {
            Unit::Seconds => 1.0,
            Unit::Millis => 1e-3,
        }
    }
}

impl Front {
    pub const RUST: Front = Front { name: "rust", camel_case: false, duration_unit: None, cpu_pool: true };
    pub const C: Front = Front { name: "c", camel_case: false, duration_unit: None, cpu_pool: true };
    pub const PYTHON: Front =
        Front { name: "python", camel_case: false, duration_unit: Some(Unit::Seconds), cpu_pool: true };
    pub const NODE: Front =
        Front { name: "node", camel_case: true, duration_unit: Some(Unit::Millis), cpu_pool: false };

    /// The option's name as this front spells it.
    pub fn spell(&self, name: &str) -> String {
        if self.camel_case {
            camel(name)
        } else {
            name.to_string()
        }
    }
}

/// `max_in_flight` → `maxInFlight`.
pub fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = false;
    for c in name.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// One option.
pub struct Opt {
    pub name: &'static str,
    pub kind: Kind,
    /// The default, in words (some depend on the machine: "cores").
    pub default: &'static str,
    pub doc: &'static str,
    pub applies: Applies,
    /// The models it has an effect in (`None`: all).
    pub models: Option<&'static [Model]>,
    /// Whether it configures corral's CPU pool (needs one, and a front that uses it).
    pub cpu_pool: bool,
    set: fn(&mut ConfigBuilder, &Parsed),
    get: fn(&ConfigBuilder) -> Option<Parsed>,
}

impl std::fmt::Debug for Opt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opt").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

const SECOND: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
const US: Duration = Duration::from_micros(1);
const YEAR: Duration = Duration::from_secs(365 * 86_400);
const STEALING: &[Model] = &[Model::Stealing];
const WITH_WORKER_COUNT: &[Model] = &[Model::Pool, Model::ReusePort, Model::Stealing];
/// The models whose connections live on I/O workers (each with a ring when on io_uring);
/// a thread per connection has no worker to own one.
const WITH_WORKERS: &[Model] = &[Model::Single, Model::Pool, Model::ReusePort, Model::Stealing];

const fn count(min: u64, max: u64, unit: &'static str) -> Kind {
    Kind::Count { min, max, zero: None, unit }
}
const fn count0(max: u64, zero: &'static str, unit: &'static str) -> Kind {
    Kind::Count { min: 1, max, zero: Some(zero), unit }
}
const fn dur(min: Duration, max: Duration) -> Kind {
    Kind::Duration { min, max, zero: None }
}
const fn dur0(min: Duration, max: Duration, zero: &'static str) -> Kind {
    Kind::Duration { min, max, zero: Some(zero) }
}

fn as_bool(v: &Parsed) -> bool {
    matches!(v, Parsed::Bool(true))
}
fn as_count(v: &Parsed) -> u64 {
    match v {
        Parsed::Count(n) => *n,
        _ => 0,
    }
}
fn as_usize(v: &Parsed) -> usize {
    usize::try_from(as_count(v)).unwrap_or(usize::MAX)
}
fn as_duration(v: &Parsed) -> Duration {
    match v {
        Parsed::Duration(d) => *d,
        _ => Duration::ZERO,
    }
}
fn as_text(v: &Parsed) -> &str {
    match v {
        Parsed::Text(s) => s,
        _ => "",
    }
}
fn as_choice(v: &Parsed) -> &'static str {
    match v {
        Parsed::Choice(s) => s,
        _ => "",
    }
}

/// How a field's value is an option value: what `get` reports (`None`: unset, the
/// machine-dependent default applies) and what `set` stores once the value was checked
/// against the option's kind (so the conversions below never see a value of another kind).
pub(crate) trait Field: Sized {
    fn to_parsed(&self) -> Option<Parsed>;
    fn from_parsed(v: &Parsed) -> Self;
}

impl Field for bool {
    fn to_parsed(&self) -> Option<Parsed> {
        Some(Parsed::Bool(*self))
    }
    fn from_parsed(v: &Parsed) -> bool {
        as_bool(v)
    }
}

impl Field for u32 {
    fn to_parsed(&self) -> Option<Parsed> {
        Some(Parsed::Count((*self).into()))
    }
    fn from_parsed(v: &Parsed) -> u32 {
        as_count(v) as u32
    }
}

impl Field for u64 {
    fn to_parsed(&self) -> Option<Parsed> {
        Some(Parsed::Count(*self))
    }
    fn from_parsed(v: &Parsed) -> u64 {
        as_count(v)
    }
}

impl Field for usize {
    fn to_parsed(&self) -> Option<Parsed> {
        Some(Parsed::Count(*self as u64))
    }
    fn from_parsed(v: &Parsed) -> usize {
        as_usize(v)
    }
}

/// A count whose default depends on the machine: `None` until set.
impl Field for Option<usize> {
    fn to_parsed(&self) -> Option<Parsed> {
        self.map(|n| Parsed::Count(n as u64))
    }
    fn from_parsed(v: &Parsed) -> Option<usize> {
        Some(as_usize(v))
    }
}

impl Field for Duration {
    fn to_parsed(&self) -> Option<Parsed> {
        Some(Parsed::Duration(*self))
    }
    fn from_parsed(v: &Parsed) -> Duration {
        as_duration(v)
    }
}

/// A duration that may be off: zero means off, in every front.
impl Field for Option<Duration> {
    fn to_parsed(&self) -> Option<Parsed> {
        Some(Parsed::Duration(self.unwrap_or_default()))
    }
    fn from_parsed(v: &Parsed) -> Option<Duration> {
        Some(as_duration(v)).filter(|d| !d.is_zero())
    }
}

/// Address blocks, as the comma-separated text the option takes.
impl Field for Vec<Cidr> {
    fn to_parsed(&self) -> Option<Parsed> {
        Some(Parsed::Text(self.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")))
    }
    fn from_parsed(v: &Parsed) -> Vec<Cidr> {
        Cidr::parse_list(as_text(v)).unwrap_or_default()
    }
}

/// A header name, lower-cased; empty (or `none`) means none.
impl Field for String {
    fn to_parsed(&self) -> Option<Parsed> {
        Some(Parsed::Text(if self.is_empty() { "none".into() } else { self.clone() }))
    }
    fn from_parsed(v: &Parsed) -> String {
        let t = as_text(v).trim().to_ascii_lowercase();
        if t == "none" {
            String::new()
        } else {
            t
        }
    }
}

/// A file's path, as given (not trimmed or lower-cased: both are part of a name); empty
/// means none.
impl Field for PathBuf {
    fn to_parsed(&self) -> Option<Parsed> {
        Some(Parsed::Text(self.to_string_lossy().into_owned()))
    }
    fn from_parsed(v: &Parsed) -> PathBuf {
        PathBuf::from(as_text(v))
    }
}

/// One `tls_sni_certs` entry: a PEM certificate chain and its private key, in two files
/// (`cert.pem:key.pem`) or in one that holds both (HAProxy's way).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertKeyFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertKeyFiles {
    /// The entries of `text`: comma-separated, each `cert.pem:key.pem` or `both.pem`.
    pub fn parse_list(text: &str) -> std::result::Result<Vec<CertKeyFiles>, String> {
        let mut out = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            check_path(entry)?;
            let (cert, key) = entry.split_once(':').unwrap_or((entry, entry));
            if cert.is_empty() || key.is_empty() {
                return Err(format!("{entry:?} lacks a path: give cert.pem:key.pem, or one file that holds both"));
            }
            out.push(CertKeyFiles { cert: cert.into(), key: key.into() });
        }
        Ok(out)
    }
}

/// Certificate/key pairs, as the comma-separated text the option takes.
impl Field for Vec<CertKeyFiles> {
    fn to_parsed(&self) -> Option<Parsed> {
        let entry = |p: &CertKeyFiles| match p.cert == p.key {
            true => p.cert.display().to_string(),
            false => format!("{}:{}", p.cert.display(), p.key.display()),
        };
        Some(Parsed::Text(self.iter().map(entry).collect::<Vec<_>>().join(",")))
    }
    fn from_parsed(v: &Parsed) -> Vec<CertKeyFiles> {
        CertKeyFiles::parse_list(as_text(v)).unwrap_or_default()
    }
}

/// Cipher suites, as the `:`-separated IANA names (empty: rustls's list).
impl Field for Vec<TlsCipher> {
    fn to_parsed(&self) -> Option<Parsed> {
        Some(Parsed::Text(self.iter().map(|c| c.name()).collect::<Vec<_>>().join(":")))
    }
    fn from_parsed(v: &Parsed) -> Vec<TlsCipher> {
        TlsCipher::parse_list(as_text(v)).unwrap_or_default()
    }
}

/// A file's path: any text but one with a NUL byte (no system call takes it).
fn check_path(t: &str) -> std::result::Result<(), String> {
    if t.contains('\0') {
        return Err("a path cannot hold a NUL byte".into());
    }
    Ok(())
}

/// An HTTP header name (RFC 9110 token characters), or empty.
fn check_header_name(t: &str) -> std::result::Result<(), String> {
    let bad = t.trim().bytes().find(|b| !(b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b)));
    match bad {
        None => Ok(()),
        Some(b) => Err(format!("{:?} is not allowed in a header name: use letters, digits and -", b as char)),
    }
}

macro_rules! choice_field {
    ($($ty:ident),+) => {$(
        impl Field for $ty {
            fn to_parsed(&self) -> Option<Parsed> {
                Some(Parsed::Choice(self.name()))
            }
            fn from_parsed(v: &Parsed) -> $ty {
                as_choice(v).parse().unwrap_or_default()
            }
        }
    )+};
}

choice_field!(Model, Protocol, ListenerStrategy, ProxyMode, Readiness, Backend, TlsVersion, TlsClientAuth);

/// The option list: one entry per option, in the order the documentation lists them.
/// Each entry is what the option is everywhere:
///
/// ```text
/// <place> {
///     /// The setter's documentation (and the field's).
///     field: Type = default,
///     row: ("name", kind, "default in words", applies, models, cpu_pool, "one line for the tables")
/// }
/// ```
///
/// `place` is `engine` (a field of `ConfigBuilder` and `Config`) or `limits` (a field of
/// the public [`Limits`](crate::Limits)). From one entry, `define_config!` (config/mod.rs)
/// makes the field, its default, the builder's setter (which records the option as set)
/// and the copy into `Config`; `define_table!` (below) makes the row of [`OPTIONS`],
/// whose `set` and `get` convert through [`Field`]. So a new option is its entry here
/// plus the code that uses it.
///
/// Two forms say more:
/// - `field: Option<T> as T = None`: unset until given, because its default depends on
///   the machine (cores); the setter takes a `T`, and `ConfigBuilder::checked` settles
///   the `T` the `Config` holds.
/// - a row ending in `set: |b, v| .., get: |b| ..`: the option's values are not the
///   field's (`per_ip_scope` names what the `per_ip_all` flag holds).
macro_rules! option_table {
    ($then:ident) => {
        $then! {
            engine {
                /// The concurrency model (default `Stealing`); see [`Model`].
                model: Model = Model::Stealing,
                row: ("model", Kind::Choice(Model::NAMES), "stealing", Both, None, false,
                    "The concurrency model (see Models).")
            }
            engine {
                /// How requests are framed when serving (default `Http1`).
                protocol: Protocol = Protocol::Http1,
                row: ("protocol", Kind::Choice(Protocol::NAMES), "http", Serve, None, false,
                    "How requests are framed.")
            }
            engine {
                /// Allows wildcard addresses (`0.0.0.0`, `::`). Off by default so that nothing
                /// listens on every interface by accident.
                allow_public: bool = false,
                row: ("allow_public", Kind::Bool, "false", Both, None, false,
                    "Allow wildcard addresses (0.0.0.0, ::): off so nothing listens on every interface by accident.")
            }
            engine {
                /// How listening sockets are laid out (default `ReusePort`).
                listener: ListenerStrategy = ListenerStrategy::ReusePort,
                row: ("listener", Kind::Choice(ListenerStrategy::NAMES), "reuseport", Both, Some(STEALING), false,
                    "Listening sockets: one SO_REUSEPORT socket per acceptor, one shared (EPOLLEXCLUSIVE), or one.")
            }
            engine {
                /// Acceptor threads (default: one per core, at most 4).
                acceptors: Option<usize> as usize = None,
                row: ("acceptors", count(1, 256, "threads"), "min(cores, 4)", Both, Some(STEALING), false,
                    "Acceptor threads (or acceptors inside I/O workers).")
            }
            engine {
                /// I/O worker threads (default: one per core).
                io_workers: Option<usize> as usize = None,
                row: ("io_workers", count(1, 1024, "threads"), "cores", Serve, Some(WITH_WORKER_COUNT), false,
                    "I/O worker threads: read, frame, run light requests, write.")
            }
            engine {
                /// CPU-pool threads for heavy requests (default: one per core).
                cpu_threads: Option<usize> as usize = None,
                row: ("cpu_threads", count0(1024, "none: heavy requests run inline", "threads"), "cores", Serve,
                    Some(STEALING), true, "CPU-pool threads for heavy requests (0: heavy requests run inline).")
            }
            engine {
                /// The scheduler time slice I/O workers ask for (default 100 us; zero: the kernel's
                /// default). On Linux 6.12 and later (EEVDF custom slices) a waking I/O worker with
                /// a short slice preempts a thread running heavy work at once instead of waiting out
                /// its slice (about 3 ms): measured on 2 cores, light requests' p99 beside 50 ms
                /// heavy ones went from 1-4 ms to under 0.2 ms. Older kernels ignore it.
                io_slice: Duration = Duration::from_micros(100),
                row: ("io_slice", dur0(Duration::from_micros(100), Duration::from_millis(100), "the kernel's default"),
                    "100 us", Serve, None, false,
                    "Scheduler slice I/O workers ask for (EEVDF, Linux >= 6.12): a waking worker preempts heavy work at once.")
            }
            engine {
                /// `Stealing` model: run each acceptor inside an I/O worker (its listeners in the
                /// worker's epoll) instead of on a thread of its own (default `true`). Saves a
                /// thread hop and a wake-up per connection (measured: 52k vs 38k new
                /// connections/s on 2 cores); a stalled worker's listeners are accepted from by
                /// its siblings. `false` gives dedicated acceptor threads.
                accept_in_workers: bool = true,
                row: ("accept_in_workers", Kind::Bool, "true", Serve, Some(STEALING), false,
                    "Run acceptors inside the I/O workers (false: dedicated acceptor threads; measured 38k vs 52k conn/s).")
            }
            engine {
                /// `TCP_DEFER_ACCEPT` on the listeners (default off): the kernel hands over a
                /// connection only once its first bytes arrived, saving a wake-up per
                /// connection for protocols where the client speaks first (measured: 58k vs
                /// 50k new connections/s on 2 cores). A client that sends nothing is held by the
                /// kernel (about 10 s) instead of by corral's header timeout. Leave it off in
                /// handoff mode for protocols where the server speaks first.
                defer_accept: bool = false,
                row: ("defer_accept", Kind::Bool, "false", Both, None, false,
                    "TCP_DEFER_ACCEPT: hand over a connection once its first bytes arrived (only where the client speaks first).")
            }
            engine {
                /// See the option table: `tcp_nodelay`.
                tcp_nodelay: bool = true,
                row: ("tcp_nodelay", Kind::Bool, "true", Both, None, false,
                    "TCP_NODELAY on the listeners, inherited by every accepted socket (false: Nagle's algorithm batches small writes).")
            }
            engine {
                /// See the option table: `proxy_protocol`.
                proxy_protocol: ProxyMode = ProxyMode::Off,
                row: ("proxy_protocol", Kind::Choice(ProxyMode::NAMES), "off", Both, None, false,
                    "The PROXY protocol header (HAProxy, AWS NLB) each connection starts with: off, v1, v2, or any; the client's address is then the header's (handoff: read off the socket before the host gets it).")
            }
            engine {
                /// See the option table: `proxy_trusted` (here as parsed blocks).
                proxy_trusted: Vec<Cidr> = Cidr::parse_list("127.0.0.0/8,::1").unwrap_or_default(),
                row: ("proxy_trusted", Kind::Text { what: "a comma-separated list of addresses or address/prefix blocks (none: no source)", check: |t| Cidr::parse_list(t).map(drop) },
                    "127.0.0.0/8,::1", Both, None, false,
                    "With proxy_protocol: the sources (balancers) allowed to send the header; a connection from any other is refused before it is read.")
            }
            engine {
                /// The PEM file with the certificate chain served connections present over
                /// TLS, the server's own certificate first (empty, the default: no TLS). With
                /// `tls_key`; read when the engine is built, so a missing or unreadable file is
                /// an error then.
                tls_cert: std::path::PathBuf = std::path::PathBuf::new(),
                row: ("tls_cert", Kind::Text { what: "a path to a PEM certificate chain (empty: no TLS)", check: check_path },
                    "none", Serve, None, false,
                    "TLS: the PEM certificate chain (server certificate first) every served connection presents; empty: plain TCP. Needs tls_key.")
            }
            engine {
                /// The PEM file with the private key of `tls_cert`'s first certificate (PKCS#8,
                /// PKCS#1 RSA or SEC1 EC).
                tls_key: std::path::PathBuf = std::path::PathBuf::new(),
                row: ("tls_key", Kind::Text { what: "a path to a PEM private key (empty: no TLS)", check: check_path },
                    "none", Serve, None, false,
                    "TLS: the PEM private key (PKCS#8, RSA or EC) of tls_cert's certificate. Needs tls_cert.")
            }
            engine {
                /// More certificate chains, each chosen by the server name a client asks for
                /// (SNI): the names are each certificate's DNS subjectAltNames (`*.example.com`
                /// included); `tls_cert` serves clients that send no name or one no entry has.
                tls_sni_certs: Vec<CertKeyFiles> = Vec::new(),
                row: ("tls_sni_certs", Kind::Text { what: "a comma-separated list of cert.pem:key.pem pairs (or files holding both)", check: |t| CertKeyFiles::parse_list(t).map(drop) },
                    "none", Serve, None, false,
                    "TLS: more certificate chains, each served to clients asking (SNI) for one of its DNS names; tls_cert serves the rest.")
            }
            engine {
                /// The cipher suites a client may agree on, in order of preference (empty, the
                /// default: all of rustls's, AES-GCM and ChaCha20-Poly1305 with ECDHE).
                tls_ciphers: Vec<TlsCipher> = Vec::new(),
                row: ("tls_ciphers", Kind::Text { what: "a :-separated list of cipher suites (IANA or OpenSSL names)", check: |t| TlsCipher::parse_list(t).map(drop) },
                    "all", Serve, None, false,
                    "TLS: the cipher suites allowed, by IANA or OpenSSL name, separated by : (empty: rustls's AEAD suites).")
            }
            engine {
                /// The PEM bundle of the CA certificates that issue client certificates (mutual
                /// TLS); with it, clients must present one (`tls_client_auth`).
                tls_client_ca: std::path::PathBuf = std::path::PathBuf::new(),
                row: ("tls_client_ca", Kind::Text { what: "a path to a PEM bundle of CA certificates (empty: no client certificates)", check: check_path },
                    "none", Serve, None, false,
                    "TLS: the CA certificates client certificates are checked against (mutual TLS); the verified client's name reaches the app.")
            }
            engine {
                /// Whether a client certificate is asked for: `none`, `optional` or `required`
                /// (default: `required` with `tls_client_ca`, else `none`).
                tls_client_auth: TlsClientAuth = TlsClientAuth::None,
                row: ("tls_client_auth", Kind::Choice(TlsClientAuth::NAMES), "required with tls_client_ca, else none", Serve, None, false,
                    "TLS: ask clients for a certificate from tls_client_ca: none, optional (one without is served) or required.")
            }
            engine {
                /// The oldest TLS version a client may use (default 1.2; 1.3 refuses 1.2 clients).
                tls_min_version: TlsVersion = TlsVersion::Tls12,
                row: ("tls_min_version", Kind::Choice(TlsVersion::NAMES), "1.2", Serve, None, false,
                    "TLS: the oldest version a client may use, 1.2 or 1.3 (older ones are always refused).")
            }
            engine {
                /// Feed TLS handshake messages (the full handshake's key exchange and
                /// signature) to the CPU pool instead of running them on the I/O worker.
                tls_handshake_on_pool: bool = true,
                row: ("tls_handshake_on_pool", Kind::Bool, "true", Serve, None, false,
                    "TLS: do handshakes (key exchange, signature: the heaviest step per connection) on the CPU pool, so keep-alive connections on the I/O workers do not wait behind a storm of new ones; inline when false or cpu_threads is 0.")
            }
            engine {
                /// Time a TLS handshake may take from the connection's start (a slow or
                /// stalled client is closed then, counted as abandoned).
                tls_handshake_timeout: Duration = Duration::from_secs(10),
                row: ("tls_handshake_timeout", dur(MS, YEAR), "10 s", Serve, None, false,
                    "TLS: time for the handshake to complete, from the connection's start; a client slower than that is closed (tls_handshake_failures_abandoned). The first request's header_timeout also counts from the start.")
            }
            engine {
                /// See the option table: `sd_notify`.
                sd_notify: bool = false,
                row: ("sd_notify", Kind::Bool, "false", Both, None, false,
                    "Tell a service manager (NOTIFY_SOCKET) READY=1 once accepting (with MAINPID after a hand-over), RELOADING=1 when a successor takes the listeners, and STOPPING=1 when draining; off for engines embedded among others.")
            }
            engine {
                /// Listen backlog requested from the kernel (default 1024; clamped to somaxconn).
                backlog: u32 = 1024,
                row: ("backlog", count(1, 1 << 20, "connections"), "1024", Both, None, false,
                    "Listen backlog asked of the kernel (clamped to somaxconn; the effective value is in the stats).")
            }
            engine {
                /// Accepts per wake-up before an acceptor yields (default 64).
                accept_batch: usize = 64,
                row: ("accept_batch", count(1, 4096, "connections"), "64", Both, None, false,
                    "Accepts per wake-up before an acceptor yields.")
            }
            engine {
                /// Accepted connections the host queue holds before acceptors pause (handoff).
                handoff_capacity: usize = 1024,
                row: ("handoff_capacity", count(1, 1 << 24, "connections"), "1024", Handoff, None, false,
                    "Accepted connections the host queue holds before acceptors pause (the backlog absorbs).")
            }
            limits {
                /// Open served connections; at the cap acceptors stop and the backlog absorbs.
                max_connections: usize = default_max_connections(),
                row: ("max_connections", count(1, 1 << 24, "connections"), "RLIMIT_NOFILE - 64", Serve, None, false,
                    "Open served connections; at the cap acceptors pause and the backlog absorbs.")
            }
            limits {
                /// Open served connections from one source IP; a connection over it is closed at
                /// once (0: no cap). Counts public sources only unless `per_ip_all`.
                max_connections_per_ip: usize = 1024,
                row: ("max_connections_per_ip", count0(1 << 24, "no cap", "connections"), "1024", Serve, None, false,
                    "Open served connections from one source address (see per_ip_scope); one over it is closed at once.")
            }
            limits {
                /// Whether the per-IP cap counts every source (`per_ip_scope = "all"`) or only
                /// public ones (the default): loopback, private (RFC 1918, RFC 4193), link-local
                /// and shared (RFC 6598) sources are a load balancer, a proxy or a load test on
                /// the same network far more often than a flood.
                per_ip_all: bool = false,
                row: ("per_ip_scope", Kind::Choice(&["public", "all"]), "public", Serve, None, false,
                    "Which sources the per-IP cap counts: public addresses only (loopback, private and link-local are not capped), or all.",
                    set: |b, v| b.limits.per_ip_all = as_choice(v) == "all",
                    get: |b| Some(Parsed::Choice(if b.limits.per_ip_all { "all" } else { "public" })))
            }
            limits {
                /// New connections accepted per second, over all acceptors (0: no limit, the
                /// default); beyond it acceptors pause and the backlog absorbs.
                max_accept_rate: u32 = 0,
                row: ("max_accept_rate", count0(u32::MAX as u64, "no limit", "connections per second"), "0", Both, None, false,
                    "New connections accepted per second over all acceptors; beyond it acceptors pause.")
            }
            limits {
                /// Requests served on one connection before it is closed, the last reply saying so
                /// (HTTP `Connection: close`), like nginx `keepalive_requests` (0: no cap).
                max_requests_per_connection: u64 = 10_000,
                row: ("max_requests_per_connection", count0(1 << 40, "no cap", "requests"), "10000", Serve, None, false,
                    "Requests served on one connection before it is closed, the last reply saying so.")
            }
            limits {
                /// Requests dispatched on one connection whose replies are not yet written;
                /// beyond it the connection is not read.
                max_in_flight: usize = 64,
                row: ("max_in_flight", count(1, 1 << 16, "requests"), "64", Serve, None, false,
                    "Requests on one connection awaiting replies before it is not read.")
            }
            limits {
                /// Largest `Length` frame, `Lines` line, or HTTP body for a handler that takes
                /// bodies whole, in bytes (bodies that stream are limited by `max_body`).
                max_frame: usize = 1 << 20,
                row: ("max_frame", count(1, 1 << 30, "bytes"), "1 MiB", Serve, None, false,
                    "Largest Length frame, Lines line, or HTTP body taken whole (streamed bodies: max_body).")
            }
            limits {
                /// HTTP, for a handler that streams bodies ([`Handler::streams_bodies`]): the
                /// largest request body, in bytes (default 1 GiB). Checked against
                /// `Content-Length` before the handler is called (`413`, nothing read) and while
                /// a chunked body arrives (`413`, then the connection closes). A streamed body
                /// costs the server only its window, so this guards what the app writes it to.
                ///
                /// [`Handler::streams_bodies`]: crate::Handler::streams_bodies
                max_body: u64 = 1 << 30,
                row: ("max_body", count(1, 1 << 50, "bytes"), "1 GiB", Serve, None, false,
                    "Largest streamed HTTP request body: over it, 413 (Content-Length: before the app is called).")
            }
            limits {
                /// HTTP, streamed bodies: the bytes of a request body delivered to the app and not
                /// yet taken by it, at which the connection stops being read until it takes some
                /// (flow control, default 64 KiB). A body that fits in it and has arrived whole
                /// when the head is read is handed over whole.
                body_window: usize = 64 << 10,
                row: ("body_window", count(1024, 1 << 30, "bytes"), "64 KiB", Serve, None, false,
                    "Streamed request body bytes delivered and not yet taken at which reading stops (flow control).")
            }
            limits {
                /// HTTP, streamed bodies: the grace for a slow body (default 30 s). While the app
                /// keeps up, a client must send at least `min_body_rate` x this (and at least one
                /// byte) in every such period, else the request is answered `408` and the
                /// connection closed (slow-body, "RUDY" defence, like nginx
                /// `client_body_timeout`).
                body_timeout: Duration = Duration::from_secs(30),
                row: ("body_timeout", dur(MS, YEAR), "30 s", Serve, None, false,
                    "Slow-body grace: each such period the client must send min_body_rate x it (at least 1 byte), else 408.")
            }
            limits {
                /// HTTP, streamed bodies: the slowest average rate, in bytes per second, a body may
                /// arrive at over each `body_timeout` period (default 1024; 0: only the timeout).
                min_body_rate: u64 = 1024,
                row: ("min_body_rate", count0(1 << 40, "only body_timeout", "bytes per second"), "1024", Serve, None, false,
                    "Slowest rate a streamed body may arrive at over each body_timeout period (0: only the timeout).")
            }
            limits {
                /// HTTP: answer websocket upgrade requests (RFC 6455; default on). Off: a request
                /// asking for a websocket reaches the handler as an ordinary request.
                ws: bool = true,
                row: ("ws", Kind::Bool, "true", Serve, None, false,
                    "Websockets: upgrade requests are checked and offered to the handler (off: ordinary requests).")
            }
            limits {
                /// Websockets: the largest message, after decompression (default 16 MiB, as
                /// uvicorn); a larger one closes the connection with 1009.
                ws_max_message: usize = 16 << 20,
                row: ("ws_max_message", count(1, 1 << 30, "bytes"), "16 MiB", Serve, None, false,
                    "Largest websocket message after decompression; over it the socket closes with 1009.")
            }
            limits {
                /// Websockets: a ping is sent after this long without a frame from the client
                /// (default 20 s, as uvicorn; zero: no pings).
                ws_ping_interval: Duration = Duration::from_secs(20),
                row: ("ws_ping_interval", dur0(MS, YEAR, "no pings"), "20 s", Serve, None, false,
                    "Websocket keep-alive: a ping after this long without a frame from the client.")
            }
            limits {
                /// Websockets: time for any frame to answer a keep-alive ping (default 20 s);
                /// past it the socket closes with 1011. Also the time a close frame waits for
                /// the client's.
                ws_ping_timeout: Duration = Duration::from_secs(20),
                row: ("ws_ping_timeout", dur(MS, YEAR), "20 s", Serve, None, false,
                    "Time for the client to answer a ping (else close 1011), and to answer a close frame.")
            }
            limits {
                /// Websockets: a socket with nothing received and nothing sent for this long is
                /// closed with 1001 (default zero: never; pings find dead peers).
                ws_idle_timeout: Duration = Duration::ZERO,
                row: ("ws_idle_timeout", dur0(MS, YEAR, "never"), "0", Serve, None, false,
                    "Websocket with no message either way for this long is closed with 1001 (0: never).")
            }
            limits {
                /// Websockets: offer permessage-deflate (RFC 7692) to clients that ask (default on,
                /// as uvicorn). The server compresses each message on its own.
                ws_deflate: bool = true,
                row: ("ws_deflate", Kind::Bool, "true", Serve, None, false,
                    "Websocket permessage-deflate for clients that ask (each message compressed on its own).")
            }
            limits {
                /// Websockets: bytes queued to a socket and not yet written at which `send`
                /// answers back-pressure; a send while over it is dropped (default 1 MiB, as
                /// uWebSockets and Bun).
                ws_max_backpressure: usize = 1 << 20,
                row: ("ws_max_backpressure", count(1024, 1 << 30, "bytes"), "1 MiB", Serve, None, false,
                    "Websocket bytes queued unwritten at which send reports back-pressure; a send while over it is dropped.")
            }
            limits {
                /// Largest HTTP request head (request line + headers), in bytes.
                max_header: usize = 16 << 10,
                row: ("max_header", count(64, 1 << 24, "bytes"), "16 KiB", Serve, None, false,
                    "Largest HTTP request head (request line and headers).")
            }
            limits {
                /// Time allowed for a request to arrive once its first byte has (and for the
                /// first request of a connection): slowloris protection.
                header_timeout: Duration = Duration::from_secs(10),
                row: ("header_timeout", dur(MS, YEAR), "10 s", Both, None, false,
                    "Time for a request to arrive once begun, and for the first request (slowloris); in handoff, for the PROXY header (proxy_protocol).")
            }
            limits {
                /// Time a connection may sit with nothing to do (or with replies the peer does not
                /// read) before it is closed.
                idle_timeout: Duration = Duration::from_secs(60),
                row: ("idle_timeout", dur(MS, YEAR), "60 s", Serve, None, false,
                    "Time a connection may sit idle, or not read its replies, before it is closed.")
            }
            limits {
                /// Time a handler has to answer a request once it is framed. Past it the engine
                /// answers in the handler's place (HTTP `504`; the other protocols close the
                /// connection) and a later answer is dropped, so a handler that never answers
                /// cannot hold a connection forever. Zero: no deadline.
                reply_timeout: Duration = Duration::from_secs(60),
                row: ("reply_timeout", dur0(MS, YEAR, "no deadline"), "60 s", Serve, None, false,
                    "Time a handler has to answer; past it the engine answers 504 in its place and drops the late answer.")
            }
            limits {
                /// Frames dispatched per connection per turn before it yields to others.
                budget_frames: usize = 32,
                row: ("budget_frames", count(1, 1 << 16, "requests"), "32", Serve, None, false,
                    "Requests dispatched per connection per turn before it yields to others.")
            }
            limits {
                /// Bytes read per connection per turn before it yields to others.
                budget_bytes: usize = 256 << 10,
                row: ("budget_bytes", count(512, 1 << 30, "bytes"), "256 KiB", Serve, None, false,
                    "Bytes read per connection per turn before it yields to others.")
            }
            limits {
                /// Unwritten reply bytes at which a connection stops being read (back-pressure).
                write_high_water: usize = 256 << 10,
                row: ("write_high_water", count(1, 1 << 30, "bytes"), "256 KiB", Serve, None, false,
                    "Unwritten reply bytes at which a connection stops being read (back-pressure).")
            }
            limits {
                /// Share the I/O workers' run queues and the CPU pool per client by deficit round
                /// robin (default on): a client with 200 connections ready, or 64 heavy requests
                /// queued, gets the turns and CPU time of one with a single request while others
                /// wait; alone, it gets everything. See [`crate::fair`] for who a client is.
                fair_share: bool = true,
                row: ("fair_share", Kind::Bool, "true", Serve, None, false,
                    "Share the I/O workers and the CPU pool per client (deficit round robin): many connections or queued heavy requests from one client get the share of one request while others wait.")
            }
            limits {
                /// HTTP: the request header whose value names the client for fair shares and
                /// rate limits (an API token, `x-api-key`); empty (the default): the peer's
                /// address, or the PROXY header's source. Lower-cased when set.
                client_key_header: String = String::new(),
                row: ("client_key_header", Kind::Text { what: "an HTTP header name (none: the address)", check: check_header_name },
                    "none", Serve, None, false,
                    "HTTP: the header whose value names the client for fair shares and rate limits (an API token); empty: the peer address (or the PROXY header's source).")
            }
            limits {
                /// Requests per second one client may make on average, like nginx `limit_req`
                /// with `nodelay` (0: no limit, the default); over it the request is answered
                /// `429 Too Many Requests` with `Retry-After`, unread by the handler.
                rate_limit: u32 = 0,
                row: ("rate_limit", count0(1 << 24, "no limit", "requests per second"), "0", Serve, None, false,
                    "Requests per second one client may make on average; over it (after rate_burst), 429 with Retry-After (0: no limit).")
            }
            limits {
                /// With `rate_limit`: requests a client may make at once above its average rate
                /// (default 10; nginx's `burst`).
                rate_burst: u32 = 10,
                row: ("rate_burst", count0(1 << 24, "none", "requests"), "10", Serve, None, false,
                    "With rate_limit: requests one client may make at once beyond its average rate.")
            }
            limits {
                /// CoDel target for the CPU-pool queue (default None: off; folly uses 5 ms).
                /// While the minimum queueing delay over an interval exceeds it, heavy requests
                /// that waited over twice it are refused at dequeue (HTTP 503, `retry-after: 1`).
                /// Off by default because a refusal is only better than waiting for clients that
                /// retry or degrade; turn it on for a public-facing server under load.
                codel_target: Option<Duration> = None,
                row: ("codel_target", dur0(Duration::from_micros(100), Duration::from_secs(60), "off"), "off", Serve,
                    Some(STEALING), true,
                    "CoDel on the CPU-pool queue: over it for an interval, heavy requests that waited 2x are refused (503).")
            }
            limits {
                /// CoDel interval.
                codel_interval: Duration = Duration::from_millis(100),
                row: ("codel_interval", dur(MS, Duration::from_secs(600)), "100 ms", Serve, Some(STEALING), true,
                    "CoDel's interval.")
            }
            limits {
                /// Adaptive LIFO on the CPU-pool queue: once this many heavy jobs wait, new ones are
                /// served first, newest first, so fresh requests are answered while old ones wait
                /// (and, with CoDel, are refused). 0: always first in, first out (the default,
                /// since LIFO reorders requests from different clients).
                lifo_threshold: usize = 0,
                row: ("lifo_threshold", count0(1 << 24, "off", "jobs"), "0", Serve, Some(STEALING), true,
                    "Adaptive LIFO: once this many heavy jobs wait, new ones run first, newest first.")
            }
            engine {
                /// How connections are registered with epoll (default `Edge`).
                readiness: Readiness = Readiness::Edge,
                row: ("readiness", Kind::Choice(Readiness::NAMES), "edge", Serve, None, false,
                    "How connections are registered with epoll: edge-triggered, or EPOLLONESHOT re-armed per turn.")
            }
            engine {
                /// epoll, io_uring, or io_uring where the probe passes (default epoll, or
                /// `CORRAL_BACKEND`); see [`Backend`].
                backend: Backend = Backend::from_env(),
                row: ("backend", Kind::Choice(Backend::NAMES), "epoll", Serve, Some(WITH_WORKERS), false,
                    "Connection I/O: epoll readiness, io_uring completions, or auto (io_uring if the start-up probe passes, else epoll). CORRAL_BACKEND sets the default.")
            }
        }
    };
}
pub(super) use option_table;

/// Makes [`OPTIONS`] from the option list: each row's columns, and `set` / `get` that
/// convert the field's value through [`Field`] (or the row's own, where it has them).
macro_rules! define_table {
    ($($place:ident {
        $(#[$doc:meta])* $field:ident : $ty:ty $(as $cty:ty)? = $default:expr,
        row: $row:tt
    })*) => {
        /// Every engine option, in the order the documentation lists them.
        pub static OPTIONS: &[Opt] = &[$(table_row!($place $field $row)),*];
    };
}

macro_rules! table_row {
    ($place:ident $field:ident ($name:literal, $kind:expr, $default:literal, $applies:ident, $models:expr,
        $pool:expr, $doc:literal, set: |$b:ident, $v:ident| $set:expr, get: |$g:ident| $get:expr)) => {
        Opt {
            name: $name,
            kind: $kind,
            default: $default,
            doc: $doc,
            applies: Applies::$applies,
            models: $models,
            cpu_pool: $pool,
            set: |$b, $v| $set,
            get: |$g| $get,
        }
    };
    (engine $field:ident ($name:literal, $($row:tt)*)) => {
        table_row!(engine $field ($name, $($row)*, set: |b, v| b.$field = Field::from_parsed(v),
            get: |b| Field::to_parsed(&b.$field)))
    };
    (limits $field:ident ($name:literal, $($row:tt)*)) => {
        table_row!(limits $field ($name, $($row)*, set: |b, v| b.limits.$field = Field::from_parsed(v),
            get: |b| Field::to_parsed(&b.limits.$field)))
    };
}

option_table!(define_table);

/// The option called `name` (in the table's own spelling).
pub fn find(name: &str) -> Option<&'static Opt> {
    OPTIONS.iter().find(|o| o.name == name)
}

/// The option called `name` as `front` spells it, or an error naming the choices.
pub fn lookup(front: &Front, name: &str) -> Result<&'static Opt> {
    OPTIONS.iter().find(|o| front.spell(o.name) == name).ok_or_else(|| {
        let near: Vec<String> = OPTIONS
            .iter()
            .map(|o| front.spell(o.name))
            .filter(|n| n.contains(name) || name.contains(n.as_str()))
            .collect();
        let hint = if near.is_empty() { String::new() } else { format!(" (did you mean {}?)", near.join(", ")) };
        Error::config(format!("unknown option {name:?}{hint}; the options are listed in the README"))
    })
}

impl Opt {
    /// The accepted values, in words, for `front`.
    pub fn range(&self, front: &Front) -> String {
        match self.kind {
            Kind::Bool => "true or false".into(),
            Kind::Count { min, max, zero, unit } => {
                let z = zero.map(|z| format!(", or 0 for {z}")).unwrap_or_default();
                let u = if unit.is_empty() { String::new() } else { format!(" {unit}") };
                format!("{min} to {max}{u}{z}")
            }
            Kind::Duration { min, max, zero } => {
                let z = zero.map(|z| format!(", or 0 for {z}")).unwrap_or_default();
                let unit = match front.duration_unit {
                    Some(u) => format!(" ({} as a number, or text with a unit such as \"250ms\")", u.name()),
                    None => " (text with a unit: ns, us, ms, s, m, h)".into(),
                };
                format!("{} to {}{z}{unit}", show(min), show(max))
            }
            Kind::Choice(names) => format!("one of {}", names.join(", ")),
            Kind::Text { what, .. } => what.to_string(),
        }
    }

    /// Checks `value` for this option as `front` gave it.
    pub fn parse(&self, front: &Front, value: Value<'_>) -> Result<Parsed> {
        let name = front.spell(self.name);
        let given = match value {
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => n.to_string(),
            Value::Float(f) => format!("{f:?}"),
            Value::Text(t) => format!("{t:?}"),
        };
        let refuse = || Error::config(format!("{name} = {given} is out of range: use {}", self.range(front)));
        let wrong = |what: &str| Error::config(format!("{name} takes {}, not {what} ({given})", self.range(front)));
        match (self.kind, value) {
            (Kind::Bool, Value::Bool(b)) => Ok(Parsed::Bool(b)),
            (Kind::Bool, Value::Text(t)) => match t {
                "true" | "1" | "on" | "yes" => Ok(Parsed::Bool(true)),
                "false" | "0" | "off" | "no" => Ok(Parsed::Bool(false)),
                _ => Err(wrong("this text")),
            },
            (Kind::Bool, _) => Err(wrong("a number")),
            (Kind::Count { .. }, v) => {
                let n: i128 = match v {
                    Value::Int(n) => n,
                    Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 => f as i128,
                    Value::Float(_) => return Err(wrong("a number that is not whole")),
                    Value::Text(t) => t.trim().parse::<i128>().map_err(|_| wrong("this text"))?,
                    Value::Bool(_) => return Err(wrong("a boolean")),
                };
                let v = u64::try_from(n).map(Parsed::Count).map_err(|_| refuse())?;
                if self.in_range(&v) {
                    Ok(v)
                } else {
                    Err(refuse())
                }
            }
            (Kind::Duration { .. }, v) => {
                let d = match v {
                    Value::Bool(_) => return Err(wrong("a boolean")),
                    Value::Text(t) => parse_duration(t).ok_or_else(|| wrong("this text"))?,
                    Value::Int(n) => {
                        let unit = front.duration_unit.ok_or_else(|| wrong("a number without a unit"))?;
                        if n < 0 {
                            return Err(refuse());
                        }
                        seconds(n as f64 * unit.scale()).ok_or_else(refuse)?
                    }
                    Value::Float(f) => {
                        let unit = front.duration_unit.ok_or_else(|| wrong("a number without a unit"))?;
                        seconds(f * unit.scale()).ok_or_else(refuse)?
                    }
                };
                let v = Parsed::Duration(d);
                if self.in_range(&v) {
                    Ok(v)
                } else {
                    Err(refuse())
                }
            }
            (Kind::Choice(names), Value::Text(t)) => names
                .iter()
                .find(|n| **n == t)
                .map(|n| Parsed::Choice(n))
                .ok_or_else(|| Error::config(format!("unknown {name} {t:?}: use {}", names.join(", ")))),
            (Kind::Choice(_), _) => Err(wrong("a non-text value")),
            (Kind::Text { check, .. }, Value::Text(t)) => match check(t) {
                Ok(()) => Ok(Parsed::Text(t.to_string())),
                Err(why) => Err(Error::config(format!("{name} = {t:?}: {why}; use {}", self.range(front)))),
            },
            (Kind::Text { .. }, _) => Err(wrong("a non-text value")),
        }
    }

    /// Whether `v` is within this option's range (0 counts where the option has a
    /// meaning for it).
    fn in_range(&self, v: &Parsed) -> bool {
        match (self.kind, v) {
            (Kind::Count { min, max, zero, .. }, Parsed::Count(n)) => {
                (min..=max).contains(n) || (*n == 0 && zero.is_some())
            }
            (Kind::Duration { min, max, zero }, Parsed::Duration(d)) => {
                (min..=max).contains(d) || (d.is_zero() && zero.is_some())
            }
            _ => true,
        }
    }

    /// Checks a value set through a typed setter against the range.
    fn check(&self, v: &Parsed) -> Result<()> {
        if self.in_range(v) {
            return Ok(());
        }
        let shown = match v {
            Parsed::Count(n) => n.to_string(),
            Parsed::Duration(d) => format!("{d:?}"),
            other => format!("{other:?}"),
        };
        Err(Error::config(format!("{} = {shown} is out of range: use {}", self.name, self.range(&Front::RUST))))
    }

    /// The current value in `b` (`None`: unset, the machine-dependent default applies).
    pub fn get(&self, b: &ConfigBuilder) -> Option<Parsed> {
        (self.get)(b)
    }

    /// Whether the option has an effect in `model`.
    pub fn in_model(&self, model: Model) -> bool {
        self.models.map_or(true, |m| m.contains(&model))
    }
}

/// Seconds as a `Duration`: `None` for negative, NaN, infinite or over a century.
pub fn seconds(s: f64) -> Option<Duration> {
    if !(0.0..=3.2e9).contains(&s) {
        return None;
    }
    Duration::try_from_secs_f64(s).ok()
}

/// `250ms`, `1.5s`, `100us`, `2m`, `0`: a duration with its unit (a bare 0 needs none).
pub fn parse_duration(t: &str) -> Option<Duration> {
    let t = t.trim();
    if t == "0" {
        return Some(Duration::ZERO);
    }
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    seconds(n * scale)
}

/// A duration in the shortest unit that shows it whole.
pub fn show(d: Duration) -> String {
    if d >= SECOND && d.subsec_nanos() == 0 {
        let s = d.as_secs();
        if s % 86_400 == 0 {
            format!("{} days", s / 86_400)
        } else {
            format!("{s} s")
        }
    } else if d >= MS && d.subsec_nanos() % 1_000_000 == 0 {
        format!("{} ms", d.as_millis())
    } else if d >= US {
        format!("{} us", d.as_micros())
    } else {
        format!("{} ns", d.as_nanos())
    }
}

impl ConfigBuilder {
    /// Sets an option by name, as `front` spells it and with a value as `front` gives
    /// it; refuses an unknown name, a wrong type or an out-of-range value with an
    /// `InvalidConfig` error that names the option, its range and the value given.
    /// On error the builder is unchanged.
    pub fn set(&mut self, front: &Front, name: &str, value: Value<'_>) -> Result<()> {
        let opt = lookup(front, name)?;
        if opt.cpu_pool && !front.cpu_pool {
            return Err(Error::config(format!(
                "{} configures corral's CPU pool, which the {} front does not use (its heavy requests run on its own threads)",
                front.spell(opt.name),
                front.name
            )));
        }
        let v = opt.parse(front, value)?;
        (opt.set)(self, &v);
        self.mark(opt.name);
        Ok(())
    }

    /// Checks every option against the table, and each explicitly set one against the
    /// model (what `build` refuses).
    pub(crate) fn check_options(&self) -> Result<()> {
        for opt in OPTIONS {
            if let Some(v) = opt.get(self) {
                opt.check(&v)?;
            }
            if self.is_explicit(opt.name) && !opt.in_model(self.model) {
                return Err(Error::config(format!(
                    "{} has no effect in the {} model: leave it unset (it applies to {})",
                    opt.name,
                    self.model.name(),
                    opt.models.unwrap_or(&[]).iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if self.backend == Backend::IoUring && self.is_explicit("backend") && self.is_explicit("readiness") {
            return Err(Error::config(
                "readiness says how connections are registered with epoll, and has no effect on the io_uring \
                 backend: leave it unset (or set backend to epoll)",
            ));
        }
        let pool = self.model == Model::Stealing && self.cpu_threads != Some(0);
        if !pool {
            if let Some(o) = OPTIONS.iter().find(|o| o.cpu_pool && o.name != "cpu_threads" && self.is_explicit(o.name))
            {
                return Err(Error::config(format!(
                    "{} configures the CPU pool, and this engine has none (cpu_threads = 0): leave it unset",
                    o.name
                )));
            }
        }
        Ok(())
    }

    /// TLS takes a certificate chain and its key together; its other options need them.
    /// Checked by `build` only, not by `validate`: a front that sets options one at a
    /// time and validates after each (C's `corral_config_set`) must be able to set
    /// `tls_cert` before `tls_key`.
    pub(crate) fn check_tls(&self) -> Result<()> {
        let (no_cert, no_key) = (self.tls_cert.as_os_str().is_empty(), self.tls_key.as_os_str().is_empty());
        if self.tls_pem.is_some() && !(no_cert && no_key) {
            return Err(Error::config(
                "the certificate and key are given twice, as PEM contents (tls_pem) and as files (tls_cert / \
                 tls_key): give them one way",
            ));
        }
        if no_cert != no_key {
            let (given, missing) = if no_cert { ("tls_key", "tls_cert") } else { ("tls_cert", "tls_key") };
            return Err(Error::config(format!(
                "{given} is set without {missing}: TLS needs both the PEM certificate chain (tls_cert) and its \
                 private key (tls_key); set both, or neither for plain TCP"
            )));
        }
        if no_cert && self.tls_pem.is_none() {
            if self.tls_client_ca_pem.is_some() {
                return Err(Error::config(
                    "a client CA has no effect without TLS: give the certificate and key too, or leave it out",
                ));
            }
            if let Some(o) = TLS_NEEDS_CERT.iter().find(|o| self.is_explicit(o)) {
                return Err(Error::config(format!(
                    "{o} has no effect without TLS: set tls_cert and tls_key too (the default certificate), or \
                     leave it unset"
                )));
            }
        }
        self.check_tls_ciphers()?;
        self.check_tls_client()
    }

    /// Client certificates are checked against a CA bundle: asking for them needs one.
    fn check_tls_client(&self) -> Result<()> {
        let (file, given) = (!self.tls_client_ca.as_os_str().is_empty(), self.tls_client_ca_pem.is_some());
        if file && given {
            return Err(Error::config(
                "the client CA is given twice, as a file (tls_client_ca) and as PEM contents: give it one way",
            ));
        }
        let ca = file || given;
        match (ca, self.tls_client_auth, self.is_explicit("tls_client_auth")) {
            (false, TlsClientAuth::Optional | TlsClientAuth::Required, _) => Err(Error::config(format!(
                "tls_client_auth = {} needs tls_client_ca: the PEM bundle of the CA certificates that issue the \
                 client certificates",
                self.tls_client_auth.name()
            ))),
            (true, TlsClientAuth::None, true) => Err(Error::config(
                "tls_client_ca has no effect with tls_client_auth = none: set tls_client_auth to optional or \
                 required, or leave tls_client_ca unset",
            )),
            _ => Ok(()),
        }
    }

    /// A cipher list must leave a suite for a version the engine allows.
    fn check_tls_ciphers(&self) -> Result<()> {
        let (c, min) = (&self.tls_ciphers, self.tls_min_version);
        if min == TlsVersion::Tls13 && !c.is_empty() && !c.iter().any(|c| c.tls13()) {
            return Err(Error::config(
                "tls_ciphers names only TLS 1.2 suites and tls_min_version is 1.3: add a TLS 1.3 suite \
                 (TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256)",
            ));
        }
        Ok(())
    }
}

impl crate::config::Config {
    /// How client certificates are asked for: `tls_client_auth` as set, else `required`
    /// with a CA (`tls_client_ca`), `none` without.
    pub fn tls_client_auth(&self) -> TlsClientAuth {
        let ca = !self.tls_client_ca.as_os_str().is_empty() || self.tls_client_ca_pem.is_some();
        match self.explicit.contains(&"tls_client_auth") || !ca {
            true => self.tls_client_auth,
            false => TlsClientAuth::Required,
        }
    }
}

/// The TLS options that need the default certificate (`tls_cert` and `tls_key`, or PEM
/// contents).
const TLS_NEEDS_CERT: &[&str] =
    &["tls_min_version", "tls_sni_certs", "tls_ciphers", "tls_client_ca", "tls_client_auth"];

/// Refuses options set explicitly that have no effect on an engine of this mode.
pub(crate) fn check_mode(explicit: &[&'static str], serve: bool) -> Result<()> {
    let (mode, other) = if serve { ("serving", Applies::Handoff) } else { ("handoff", Applies::Serve) };
    match OPTIONS.iter().find(|o| o.applies == other && explicit.contains(&o.name)) {
        Some(o) => Err(Error::config(format!(
            "{} has no effect on a {mode} engine (it applies to {} engines only): leave it unset",
            o.name,
            if serve { "handoff" } else { "serving" }
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_camel_case_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for o in OPTIONS {
            assert!(seen.insert(o.name), "{} twice", o.name);
            assert!(o.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", o.name);
            assert_eq!(lookup(&Front::NODE, &camel(o.name)).unwrap().name, o.name);
        }
        assert_eq!(camel("max_connections_per_ip"), "maxConnectionsPerIp");
    }

    #[test]
    fn every_default_is_within_its_range() {
        let b = ConfigBuilder::default();
        for o in OPTIONS {
            if let Some(v) = o.get(&b) {
                o.check(&v).unwrap_or_else(|e| panic!("{}: {e}", o.name));
            }
        }
    }

    #[test]
    fn set_by_name_converts_per_front_and_refuses_with_the_range() {
        let mut b = ConfigBuilder::default();
        b.set(&Front::PYTHON, "idle_timeout", Value::Float(2.5)).unwrap();
        assert_eq!(b.limits.idle_timeout, Duration::from_millis(2500));
        b.set(&Front::NODE, "idleTimeout", Value::Float(250.0)).unwrap();
        assert_eq!(b.limits.idle_timeout, Duration::from_millis(250));
        b.set(&Front::C, "idle_timeout", Value::Text("1.5s")).unwrap();
        assert_eq!(b.limits.idle_timeout, Duration::from_millis(1500));
        let e = b.set(&Front::PYTHON, "idle_timeout", Value::Float(1e20)).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::InvalidConfig);
        assert!(e.message().contains("idle_timeout = 1e20 is out of range: use 1 ms to 365 days"));
        assert_eq!(b.limits.idle_timeout, Duration::from_millis(1500), "unchanged on error");
        assert!(b.set(&Front::PYTHON, "idle_timeout", Value::Float(f64::NAN)).is_err());
        assert!(b.set(&Front::PYTHON, "idle_timeout", Value::Int(-1)).is_err());
        assert!(b.set(&Front::C, "idle_timeout", Value::Text("5")).is_err(), "C needs a unit");
        let e = b.set(&Front::NODE, "maxInFlite", Value::Float(1.0)).unwrap_err();
        assert!(e.message().starts_with("unknown option \"maxInFlite\""), "{e}");
        assert!(b.set(&Front::NODE, "maxInFlight", Value::Float(1.5)).is_err());
        assert!(b.set(&Front::NODE, "lifoThreshold", Value::Float(4.0)).is_err(), "Node has no CPU pool");
        b.set(&Front::C, "codel_target", Value::Text("0")).unwrap();
        assert_eq!(b.limits.codel_target, None, "zero means off in every front");
        b.set(&Front::PYTHON, "codel_target", Value::Int(0)).unwrap();
        assert_eq!(b.limits.codel_target, None);
        b.set(&Front::PYTHON, "protocol", Value::Text("lines")).unwrap();
        assert_eq!(b.protocol, Protocol::Lines);
        let e = b.set(&Front::PYTHON, "protocol", Value::Text("smtp")).unwrap_err();
        assert_eq!(e.message(), "unknown protocol \"smtp\": use http, lines, length, raw");
    }

    #[test]
    fn an_option_without_effect_in_the_model_or_mode_is_refused() {
        let e = ConfigBuilder::default().model(Model::Pool).cpu_threads(2).build().unwrap_err();
        assert!(e.message().starts_with("cpu_threads has no effect in the pool model"), "{e}");
        let e = ConfigBuilder::default().cpu_threads(0).lifo_threshold(3).build().unwrap_err();
        assert!(e.message().contains("this engine has none"), "{e}");
        assert!(check_mode(&["max_in_flight"], false).is_err());
        assert!(check_mode(&["handoff_capacity"], true).is_err());
        assert!(check_mode(&["backlog"], true).is_ok() && check_mode(&["backlog"], false).is_ok());
        let e = ConfigBuilder::default().model(Model::ThreadPerConnection).backend(Backend::IoUring).build();
        let e = e.unwrap_err();
        assert!(e.message().starts_with("backend has no effect in the thread-per-connection model"), "{e}");
        let e = ConfigBuilder::default().backend(Backend::IoUring).readiness(Readiness::OneShot).build();
        assert!(e.unwrap_err().message().starts_with("readiness says how connections are registered with epoll"));
        assert!(ConfigBuilder::default().backend(Backend::Auto).readiness(Readiness::OneShot).build().is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any option with any value from any front: accepted (and then the builder
        /// still builds or names what contradicts) or refused with InvalidConfig; never
        /// a panic.
        #[test]
        fn every_option_with_any_value_is_taken_or_refused(
            i in 0usize..64,
            front in 0usize..4,
            kind in 0u8..4,
            int in proptest::num::i128::ANY,
            float in proptest::num::f64::ANY,
            text in "\\PC{0,12}",
            flag in proptest::bool::ANY,
        ) {
            let opt = &OPTIONS[i % OPTIONS.len()];
            let front = [Front::RUST, Front::C, Front::PYTHON, Front::NODE][front];
            let value = match kind {
                0 => Value::Int(int),
                1 => Value::Float(float),
                2 => Value::Text(&text),
                _ => Value::Bool(flag),
            };
            let mut b = ConfigBuilder::default();
            match b.set(&front, &front.spell(opt.name), value) {
                Ok(()) => {
                    if let Err(e) = b.build() {
                        proptest::prop_assert_eq!(e.kind(), crate::error::ErrorKind::InvalidConfig);
                    }
                }
                Err(e) => proptest::prop_assert_eq!(e.kind(), crate::error::ErrorKind::InvalidConfig),
            }
        }
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("100us"), Some(Duration::from_micros(100)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "ms", "5", "1e400s", "-1s", "5 parsecs", "1.2.3s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(show(Duration::from_micros(100)), "100 us");
        assert_eq!(show(YEAR), "365 days");
    }
}
