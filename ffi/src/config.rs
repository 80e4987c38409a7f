//! `corral_config`: every engine option, with defaults; invalid values are refused with
//! a status and leave the config unchanged.

use std::ffi::{c_char, c_int, CStr, CString};
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::Duration;

use corral_core::options::{Front, Value, OPTIONS};
use corral_core::{ConfigBuilder, ListenerStrategy, Model, Protocol, Readiness};

use crate::{boundary, boundary_void, CorralStatus};

/// Options for an engine. Create with corral_config_new(), free with corral_config_free().
/// Not thread-safe: use one config from one thread at a time.
pub struct CorralConfig {
    /// Holds the listening sockets handed in; each engine built gets its own duplicate,
    /// so one config can make several engines, and freeing it closes the originals.
    pub(crate) builder: ConfigBuilder,
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
    boundary_void(|| out = Box::into_raw(Box::new(CorralConfig { builder: ConfigBuilder::default() })));
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
        if fd < 0 {
            return CorralStatus::InvalidArgument;
        }
        // Checked on a duplicate, so that on error the fd stays the caller's, untouched.
        // SAFETY: the caller says `fd` is open for the length of this call.
        let dup = match unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned() {
            Ok(d) => d,
            Err(_) => return CorralStatus::InvalidConfig,
        };
        if let Err(e) = cfg.builder.clone().listener_fd(dup).validate() {
            return CorralStatus::of(&e);
        }
        // SAFETY: the fd is an open listening socket (checked) that the caller hands over.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        cfg.builder = cfg.builder.clone().listener_fd(owned);
        CorralStatus::Ok
    })
}

/// Takes the listening sockets a running engine offers at the Unix socket `path`
/// (corral_engine_hand_over() in the process being replaced), waiting up to
/// `timeout_ms` for them; the engine built from this config serves them instead of
/// binding, and tells its predecessor once it does (which then drains). Blocks.
#[no_mangle]
pub unsafe extern "C" fn corral_config_listeners_from(
    cfg: *mut CorralConfig,
    path: *const c_char,
    timeout_ms: u64,
) -> CorralStatus {
    boundary(|| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let path = match unsafe { crate::path_arg(path) } {
            Ok(p) => p,
            Err(status) => return status,
        };
        let Some(cfg) = config_mut(cfg) else { return CorralStatus::NullArgument };
        match cfg.builder.clone().listeners_from(path, Duration::from_millis(timeout_ms)) {
            Ok(b) => {
                cfg.builder = b;
                CorralStatus::Ok
            }
            Err(e) => CorralStatus::of(&e),
        }
    })
}

/// Socket activation: writes up to `cap` of the listening fds a service manager passed
/// (LISTEN_FDS from fd 3, when LISTEN_PID is this process) into `fds` and their count
/// into `n` (0 without activation). The variables are removed so children do not take
/// the sockets again; the fds are the caller's (give them to
/// corral_config_add_listener_fd()). Fds past `cap` are closed.
#[no_mangle]
pub unsafe extern "C" fn corral_listen_fds(fds: *mut c_int, cap: usize, n: *mut usize) -> CorralStatus {
    boundary(|| {
        if n.is_null() || (fds.is_null() && cap > 0) {
            return CorralStatus::NullArgument;
        }
        let got = match corral_core::os::listen_fds() {
            Ok(g) => g,
            Err(_) => return CorralStatus::Io,
        };
        let mut k = 0;
        for a in got {
            if k < cap {
                // SAFETY: `fds` holds `cap` ints (the caller's contract) and k < cap.
                unsafe { *fds.add(k) = a.fd.into_raw_fd() };
                k += 1;
            }
        }
        // SAFETY: `n` is a valid pointer (checked).
        unsafe { *n = k };
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

/// Sets any option of the option table by its name, with the value as text: a number
/// ("64"), true/false, a name ("stealing"), or a duration with its unit ("250ms",
/// "1.5s", "100us"; a bare "0" where zero means off or no limit). The names, ranges and
/// defaults are the README's option table, and corral_option_name() /
/// corral_option_describe() list them. An unknown name, a value of the wrong kind or
/// out of range returns CORRAL_STATUS_INVALID_CONFIG and leaves the config unchanged;
/// text that is not UTF-8 returns CORRAL_STATUS_INVALID_ARGUMENT. An option that has
/// no effect on the engine made from this config (a serve-only option for a handoff
/// engine) is refused by corral_engine_new_*() with CORRAL_STATUS_INVALID_CONFIG.
#[no_mangle]
pub unsafe extern "C" fn corral_config_set(
    cfg: *mut CorralConfig,
    name: *const c_char,
    value: *const c_char,
) -> CorralStatus {
    boundary(|| {
        let Some(cfg) = config_mut(cfg) else { return CorralStatus::NullArgument };
        if name.is_null() || value.is_null() {
            return CorralStatus::NullArgument;
        }
        // SAFETY: the caller passes NUL-terminated strings.
        let (name, value) = unsafe { (CStr::from_ptr(name), CStr::from_ptr(value)) };
        let (Ok(name), Ok(value)) = (name.to_str(), value.to_str()) else { return CorralStatus::InvalidArgument };
        let mut trial = cfg.builder.clone();
        let done = trial.set(&Front::C, name, Value::Text(value)).and_then(|()| trial.validate());
        match done {
            Ok(()) => {
                cfg.builder = trial;
                CorralStatus::Ok
            }
            Err(e) => CorralStatus::of(&e),
        }
    })
}

/// The option table as C strings, made once.
fn described() -> &'static [(CString, CString)] {
    static TABLE: OnceLock<Vec<(CString, CString)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        OPTIONS
            .iter()
            .map(|o| {
                let applies = match o.applies {
                    corral_core::options::Applies::Both => "any engine",
                    corral_core::options::Applies::Serve => "serving engines",
                    corral_core::options::Applies::Handoff => "handoff engines",
                };
                let text = format!(
                    "{}: {} Values: {}. Default: {}. Applies to {applies}.",
                    o.name,
                    o.doc,
                    o.range(&Front::C),
                    o.default
                );
                let clean = |t: String| CString::new(t.replace('\0', "")).unwrap_or_default();
                (clean(o.name.to_string()), clean(text))
            })
            .collect()
    })
}

/// Row `index` of a table of static C strings, its first or second column; NULL past
/// the end (or if building the table panicked).
pub(crate) fn static_entry(table: fn() -> &'static [(CString, CString)], index: usize, second: bool) -> *const c_char {
    let mut out = std::ptr::null();
    boundary_void(|| {
        if let Some((a, b)) = table().get(index) {
            out = if second { b.as_ptr() } else { a.as_ptr() };
        }
    });
    out
}

/// The name of option `index` (0, 1, ... until it returns NULL), for corral_config_set().
/// Static; do not free. Any thread.
#[no_mangle]
pub extern "C" fn corral_option_name(index: usize) -> *const c_char {
    static_entry(described, index, false)
}

/// One line on option `index`: what it does, its values, its default and which engines
/// it applies to; NULL past the last option. Static; do not free. Any thread.
#[no_mangle]
pub extern "C" fn corral_option_describe(index: usize) -> *const c_char {
    static_entry(described, index, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{corral_engine_free, corral_engine_new_handoff, CorralEngine};
    use proptest::prelude::*;

    fn names() -> Vec<String> {
        (0..)
            .map_while(|i| {
                let p = corral_option_name(i);
                // SAFETY: a non-NULL name is a static NUL-terminated string.
                (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            })
            .collect()
    }

    fn text() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(1u8..=255, 0..12),
            Just(b"18446744073709551616".to_vec()),
            Just(b"-1".to_vec()),
            Just(b"1e400s".to_vec()),
            Just(b"NaN".to_vec()),
            Just(b"0".to_vec()),
            Just(b"250ms".to_vec()),
            Just(b"stealing".to_vec()),
            Just(b"true".to_vec()),
            Just(vec![0xff, 0xfe]),
            "[0-9]{1,22}(ns|us|ms|s|m|h)?".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// Every option with any text: accepted, or refused as a bad value or a bad
        /// argument; never a panic, and a refused value leaves the config as it was.
        #[test]
        fn every_option_with_any_text_is_taken_or_refused(i in 0usize..64, value in text()) {
            let all = names();
            let name = CString::new(all[i % all.len()].clone()).unwrap();
            let value = CString::new(value).unwrap();
            let cfg = corral_config_new();
            let s = unsafe { corral_config_set(cfg, name.as_ptr(), value.as_ptr()) };
            prop_assert!(
                matches!(s, CorralStatus::Ok | CorralStatus::InvalidConfig | CorralStatus::InvalidArgument),
                "{name:?} = {value:?}: {s:?}"
            );
            let mut e: *mut CorralEngine = std::ptr::null_mut();
            let made = unsafe { corral_engine_new_handoff(cfg, &mut e) };
            prop_assert!(matches!(made, CorralStatus::Ok | CorralStatus::InvalidConfig), "{made:?}");
            unsafe {
                corral_engine_free(e);
                corral_config_free(cfg);
            }
        }
    }

    #[test]
    fn an_unknown_name_is_refused() {
        let cfg = corral_config_new();
        let s = unsafe { corral_config_set(cfg, c"no_such_option".as_ptr(), c"1".as_ptr()) };
        assert_eq!(s, CorralStatus::InvalidConfig);
        assert!(names().len() >= 29 && names().contains(&"idle_timeout".to_string()));
        unsafe { corral_config_free(cfg) };
    }
}
