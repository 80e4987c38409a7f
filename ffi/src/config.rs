//! `corral_config`: every engine option, with defaults; invalid values are refused with
//! a status and leave the config unchanged.

use std::ffi::{c_char, c_int, CStr};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use engine::{ConfigBuilder, ListenerStrategy, Model, Protocol, Readiness};

use crate::{boundary, boundary_void, CorralStatus};

/// Options for an engine. Create with corral_config_new(), free with corral_config_free().
/// Not thread-safe: use one config from one thread at a time.
pub struct CorralConfig {
    pub(crate) builder: ConfigBuilder,
    /// Listening sockets handed in; each engine gets its own duplicate, so one config
    /// can make several engines and freeing it closes these.
    pub(crate) listener_fds: Vec<OwnedFd>,
}

impl CorralConfig {
    /// The builder for one engine, with its own duplicates of the inherited sockets.
    pub(crate) fn builder_for_engine(&self) -> std::io::Result<ConfigBuilder> {
        let mut b = self.builder.clone();
        for fd in &self.listener_fds {
            b = b.listener_fd(fd.try_clone()?.into_raw_fd());
        }
        Ok(b)
    }
}

/// Concurrency models (pass to corral_config_set_model()).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorralModel {
    /// One thread accepts and serves; heavy work inline (Node-like).
    Single = 0,
    /// One acceptor thread; a new thread per connection.
    ThreadPerConnection = 1,
    /// One acceptor thread; round-robin to N workers, no stealing.
    Pool = 2,
    /// N reuseport shards, each served by its own worker, no stealing (nginx-like).
    ReusePort = 3,
    /// N reuseport shards; ready connections stolen between workers; heavy work on a
    /// CPU pool (the default).
    Stealing = 4,
}

/// How served bytes are framed (pass to corral_config_set_protocol()).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorralProtocol {
    /// Each read is one request; replies are written as they are.
    Raw = 0,
    /// One request per line (LF or CRLF); each reply gets an LF.
    Lines = 1,
    /// Big-endian u32 length prefix; replies are prefixed the same way.
    Length = 2,
    /// HTTP/1.1 (the default).
    Http1 = 3,
}

/// How listening sockets are laid out (pass to corral_config_set_listener()).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorralListener {
    /// One SO_REUSEPORT socket per acceptor (the default).
    ReusePort = 0,
    /// One socket shared by the acceptors (EPOLLEXCLUSIVE).
    Shared = 1,
    /// One socket, one acceptor.
    Single = 2,
}

/// How connections are registered with epoll (pass to corral_config_set_readiness()).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorralReadiness {
    /// Edge-triggered with an atomic task state (the default).
    Edge = 0,
    /// EPOLLONESHOT, re-armed after each turn.
    OneShot = 1,
}

fn config_mut<'a>(cfg: *mut CorralConfig) -> Option<&'a mut CorralConfig> {
    // SAFETY: the caller passes a pointer from corral_config_new() or NULL.
    unsafe { cfg.as_mut() }
}

/// The status for a value out of its enum's range.
fn refuse(cfg: *mut CorralConfig) -> CorralStatus {
    if cfg.is_null() {
        CorralStatus::NullArgument
    } else {
        CorralStatus::InvalidArgument
    }
}

/// Applies `f` to a copy, and keeps the copy only if every option is still valid.
fn update(cfg: *mut CorralConfig, f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> CorralStatus {
    boundary(|| {
        let Some(cfg) = config_mut(cfg) else { return CorralStatus::NullArgument };
        let trial = f(cfg.builder.clone());
        match trial.validate() {
            Ok(()) => {
                cfg.builder = trial;
                CorralStatus::Ok
            }
            Err(e) => CorralStatus::of(&e),
        }
    })
}

/// A config with every option at its default (loopback 127.0.0.1, port 0, the
/// Stealing model, HTTP/1.1). Returns NULL only if memory is exhausted. Any thread.
#[no_mangle]
pub extern "C" fn corral_config_new() -> *mut CorralConfig {
    let mut out = std::ptr::null_mut();
    boundary_void(|| {
        out = Box::into_raw(Box::new(CorralConfig { builder: ConfigBuilder::default(), listener_fds: Vec::new() }))
    });
    out
}

/// Frees a config. NULL is a no-op. Engines created from it do not need it afterwards.
#[no_mangle]
pub unsafe extern "C" fn corral_config_free(cfg: *mut CorralConfig) {
    boundary_void(|| {
        if !cfg.is_null() {
            // SAFETY: a non-NULL pointer here came from corral_config_new().
            drop(unsafe { Box::from_raw(cfg) });
        }
    })
}

/// Adds an address to listen on, as text: "127.0.0.1:8080" or "[::1]:0" (port 0 lets
/// the kernel choose; read it back with corral_engine_local_addr()). Several may be
/// added; without any, the engine listens on 127.0.0.1:0. A wildcard address is refused
/// with CORRAL_STATUS_PUBLIC_ADDRESS unless allow_public is set first.
#[no_mangle]
pub unsafe extern "C" fn corral_config_add_address(cfg: *mut CorralConfig, addr: *const c_char) -> CorralStatus {
    boundary(|| {
        if cfg.is_null() || addr.is_null() {
            return CorralStatus::NullArgument;
        }
        // SAFETY: the caller passes a NUL-terminated string.
        let text = unsafe { CStr::from_ptr(addr) };
        match text.to_str().ok().and_then(|t| t.parse::<SocketAddr>().ok()) {
            Some(parsed) => update(cfg, |b| b.addr(parsed)),
            None => CorralStatus::InvalidArgument,
        }
    })
}

/// Serves a listening socket the caller already bound and put in the listening state.
/// On CORRAL_STATUS_OK the fd belongs to corral (closed with the engine); on any other
/// status it is still the caller's.
#[no_mangle]
pub unsafe extern "C" fn corral_config_add_listener_fd(cfg: *mut CorralConfig, fd: c_int) -> CorralStatus {
    boundary(|| {
        let Some(cfg) = config_mut(cfg) else { return CorralStatus::NullArgument };
        // Checked without taking it: on error the fd stays the caller's.
        if let Err(e) = cfg.builder.clone().listener_fd(fd).validate() {
            return CorralStatus::of(&e);
        }
        // SAFETY: the fd is an open listening socket (checked) that the caller hands over.
        cfg.listener_fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
        CorralStatus::Ok
    })
}

/// Allows wildcard addresses (0.0.0.0, ::). Off by default.
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_allow_public(cfg: *mut CorralConfig, allow: bool) -> CorralStatus {
    update(cfg, |b| b.allow_public(allow))
}

/// Sets the concurrency model: one of the corral_model values.
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_model(cfg: *mut CorralConfig, model: u32) -> CorralStatus {
    let m = match model {
        0 => Model::Single,
        1 => Model::ThreadPerConnection,
        2 => Model::Pool,
        3 => Model::ReusePort,
        4 => Model::Stealing,
        _ => return refuse(cfg),
    };
    update(cfg, |b| b.model(m))
}

/// Sets the framing of served connections: one of the corral_protocol values.
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_protocol(cfg: *mut CorralConfig, protocol: u32) -> CorralStatus {
    let p = match protocol {
        0 => Protocol::Raw,
        1 => Protocol::Lines,
        2 => Protocol::Length,
        3 => Protocol::Http1,
        _ => return refuse(cfg),
    };
    update(cfg, |b| b.protocol(p))
}

/// Sets the listener layout: one of the corral_listener values.
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_listener(cfg: *mut CorralConfig, listener: u32) -> CorralStatus {
    let l = match listener {
        0 => ListenerStrategy::ReusePort,
        1 => ListenerStrategy::Shared,
        2 => ListenerStrategy::Single,
        _ => return refuse(cfg),
    };
    update(cfg, |b| b.listener(l))
}

/// Sets the epoll registration: one of the corral_readiness values.
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_readiness(cfg: *mut CorralConfig, readiness: u32) -> CorralStatus {
    let r = match readiness {
        0 => Readiness::Edge,
        1 => Readiness::OneShot,
        _ => return refuse(cfg),
    };
    update(cfg, |b| b.readiness(r))
}

/// Sets TCP_DEFER_ACCEPT on the listeners (default off): connections are handed over
/// only once the client's first bytes arrived. Only for protocols where the client
/// speaks first.
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_defer_accept(cfg: *mut CorralConfig, on: bool) -> CorralStatus {
    update(cfg, |b| b.defer_accept(on))
}

/// Runs acceptors inside the I/O workers (true, the default) or on threads of their own.
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_accept_in_workers(cfg: *mut CorralConfig, on: bool) -> CorralStatus {
    update(cfg, |b| b.accept_in_workers(on))
}

/// A count option: out of `usize` range is refused like any out-of-range value.
fn set_count(cfg: *mut CorralConfig, value: u64, f: fn(ConfigBuilder, usize) -> ConfigBuilder) -> CorralStatus {
    match usize::try_from(value) {
        Ok(v) => update(cfg, |b| f(b, v)),
        Err(_) if cfg.is_null() => CorralStatus::NullArgument,
        Err(_) => CorralStatus::InvalidConfig,
    }
}

/// Acceptor threads (1..=256; default: min(cores, 4)).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_acceptors(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::acceptors)
}

/// I/O worker threads (1..=1024; default: cores).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_io_workers(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::io_workers)
}

/// CPU-pool threads for heavy requests (0..=1024; 0 runs heavy requests inline; default: cores).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_cpu_threads(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::cpu_threads)
}

/// The scheduler time slice I/O workers ask for, in microseconds (100..=100000, or 0
/// for the kernel's default; default 100). On Linux 6.12+ a waking I/O worker then
/// preempts heavy work at once; older kernels ignore it.
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_io_slice_us(cfg: *mut CorralConfig, micros: u64) -> CorralStatus {
    update(cfg, |b| b.io_slice(Duration::from_micros(micros)))
}

/// Accepts per wake-up (1..=4096; default 64).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_accept_batch(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::accept_batch)
}

/// Accepted connections the handoff queue holds before acceptors pause (default 1024).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_handoff_capacity(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::handoff_capacity)
}

/// Open served connections; at the cap, accepting pauses (default RLIMIT_NOFILE - 64).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_max_connections(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::max_connections)
}

/// Open served connections from one source IP; one over it is closed at once (0: no
/// cap; default 1024).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_max_connections_per_ip(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::max_connections_per_ip)
}

/// Requests served on one connection before it is closed, the last reply saying so
/// (0: no cap; default 10000).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_max_requests_per_connection(
    cfg: *mut CorralConfig,
    value: u64,
) -> CorralStatus {
    update(cfg, |b| b.max_requests_per_connection(value))
}

/// Requests per connection awaiting replies before it is not read (default 64).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_max_in_flight(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::max_in_flight)
}

/// Largest frame, line or HTTP body in bytes (default 1 MiB).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_max_frame(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::max_frame)
}

/// Largest HTTP request head in bytes (64..; default 16 KiB).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_max_header(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::max_header)
}

/// Frames dispatched per connection per turn (default 32).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_budget_frames(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::budget_frames)
}

/// Bytes read per connection per turn (512..; default 256 KiB).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_budget_bytes(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::budget_bytes)
}

/// Unwritten reply bytes at which a connection stops being read (default 256 KiB).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_write_high_water(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::write_high_water)
}

/// Time for a request to arrive once begun, and for the first request (default 10000 ms).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_header_timeout_ms(cfg: *mut CorralConfig, millis: u64) -> CorralStatus {
    update(cfg, |b| b.header_timeout(Duration::from_millis(millis)))
}

/// Time a connection may sit idle, or not read its replies (default 60000 ms).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_idle_timeout_ms(cfg: *mut CorralConfig, millis: u64) -> CorralStatus {
    update(cfg, |b| b.idle_timeout(Duration::from_millis(millis)))
}

/// Time a handler has to answer a request (default 60000 ms; 0: no deadline). Past it
/// the engine answers in its place (HTTP 504; other protocols close the connection) and
/// the late answer is dropped.
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_reply_timeout_ms(cfg: *mut CorralConfig, millis: u64) -> CorralStatus {
    update(cfg, |b| b.reply_timeout(Duration::from_millis(millis)))
}

/// CoDel on the CPU-pool queue: the target in microseconds (0 turns CoDel off, the
/// default; folly uses 5000). See corral_config_set_codel_interval_ms().
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_codel_target_us(cfg: *mut CorralConfig, micros: u64) -> CorralStatus {
    update(cfg, |b| b.codel_target((micros > 0).then(|| Duration::from_micros(micros))))
}

/// CoDel's interval in milliseconds (default 100).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_codel_interval_ms(cfg: *mut CorralConfig, millis: u64) -> CorralStatus {
    update(cfg, |b| b.codel_interval(Duration::from_millis(millis)))
}

/// Adaptive LIFO on the CPU-pool queue: once this many heavy jobs wait, new ones run
/// first, newest first (0: always FIFO, the default).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_lifo_threshold(cfg: *mut CorralConfig, value: u64) -> CorralStatus {
    set_count(cfg, value, ConfigBuilder::lifo_threshold)
}

/// New connections accepted per second over all acceptors (0: no limit, the default).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_max_accept_rate(cfg: *mut CorralConfig, per_sec: u32) -> CorralStatus {
    update(cfg, |b| b.max_accept_rate(per_sec))
}

/// Listen backlog requested from the kernel (1..=1048576; default 1024; the kernel
/// clamps it to somaxconn, and corral_stats.backlog reports the effective value).
#[no_mangle]
pub unsafe extern "C" fn corral_config_set_backlog(cfg: *mut CorralConfig, backlog: u32) -> CorralStatus {
    update(cfg, |b| b.backlog(backlog))
}
