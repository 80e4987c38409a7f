//! `corral_engine`: create (serve or handoff), start, take connections, read stats,
//! shut down, free.

use std::ffi::{c_char, CString};
use std::os::fd::IntoRawFd;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use corral_core::metrics::{self, Metric};
use corral_core::{Engine, Mode};

use crate::serve::{CHandler, CorralPeer, CorralServe};
use crate::status::write_str;
use crate::{boundary, boundary_void, CorralConfig, CorralStatus};

/// An engine. Thread-safe: every corral_engine_* function may be called from any
/// thread, concurrently, until corral_engine_free().
pub struct CorralEngine {
    inner: Engine,
}

pub(crate) fn engine<'a>(e: *const CorralEngine) -> Option<&'a Engine> {
    // SAFETY: the caller passes a pointer from corral_engine_new_*() or NULL.
    unsafe { e.as_ref() }.map(|e| &e.inner)
}

unsafe fn create(
    config: *const CorralConfig,
    mode: impl FnOnce() -> Result<Mode, CorralStatus>,
    out: *mut *mut CorralEngine,
) -> CorralStatus {
    boundary(|| {
        // SAFETY: the caller passes a config from corral_config_new() or NULL.
        let Some(cfg) = (unsafe { config.as_ref() }) else { return CorralStatus::NullArgument };
        if out.is_null() {
            return CorralStatus::NullArgument;
        }
        let mode = match mode() {
            Ok(m) => m,
            Err(s) => return s,
        };
        let made = cfg.builder.clone().build().and_then(|c| Engine::new(c, mode));
        match made {
            Ok(inner) => {
                unsafe { *out = Box::into_raw(Box::new(CorralEngine { inner })) };
                CorralStatus::Ok
            }
            Err(e) => CorralStatus::of(&e),
        }
    })
}

/// Creates a serving engine: corral reads, frames and calls `serve->handler`. The
/// listeners are bound now (so corral_engine_local_addr() works), threads start with
/// corral_engine_start(). The config and `serve` may be freed afterwards. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_new_serve(
    config: *const CorralConfig,
    serve: *const CorralServe,
    out: *mut *mut CorralEngine,
) -> CorralStatus {
    let mode = || {
        // SAFETY: the caller passes a corral_serve or NULL.
        let serve = unsafe { serve.as_ref() }.ok_or(CorralStatus::NullArgument)?;
        let h = unsafe { CHandler::from_c(serve) }?;
        Ok(Mode::Serve(Arc::new(h)))
    };
    unsafe { create(config, mode, out) }
}

/// Creates a handoff engine: corral accepts and queues connections; take them with
/// corral_engine_take() when corral_engine_notify_fd() is readable. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_new_handoff(
    config: *const CorralConfig,
    out: *mut *mut CorralEngine,
) -> CorralStatus {
    unsafe { create(config, || Ok(Mode::Handoff), out) }
}

/// Starts the engine's threads. CORRAL_STATUS_STATE if already started or shut down.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_start(e: *const CorralEngine) -> CorralStatus {
    boundary(|| match engine(e) {
        Some(e) => e.start().map_or_else(|err| CorralStatus::of(&err), |()| CorralStatus::Ok),
        None => CorralStatus::NullArgument,
    })
}

/// What a shutdown did.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CorralShutdownReport {
    /// Served connections closed since the engine started.
    pub connections_closed: u64,
    /// Of those, closed by force at the deadline with work unfinished.
    pub connections_aborted: u64,
    /// Replies written since the engine started.
    pub requests_completed: u64,
    /// Requests framed whose reply was never written.
    pub requests_aborted: u64,
    /// Accepted connections still queued for the host, closed unclaimed (handoff).
    pub handoff_unclaimed: u64,
    /// True if every connection finished before the deadline.
    pub clean: bool,
}

/// Stops accepting, lets in-flight requests finish for up to `timeout_ms`, closes the
/// rest, and writes the report into `out` (may be NULL). CORRAL_STATUS_STATE if already
/// shut down. Blocks the calling thread; do not call it from a handler callback.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_shutdown(
    e: *const CorralEngine,
    timeout_ms: u64,
    out: *mut CorralShutdownReport,
) -> CorralStatus {
    boundary(|| {
        let Some(e) = engine(e) else { return CorralStatus::NullArgument };
        match e.shutdown(Duration::from_millis(timeout_ms)) {
            Ok(r) => {
                if !out.is_null() {
                    let report = CorralShutdownReport {
                        connections_closed: r.connections_closed,
                        connections_aborted: r.connections_aborted,
                        requests_completed: r.requests_completed,
                        requests_aborted: r.requests_aborted,
                        handoff_unclaimed: r.handoff_unclaimed,
                        clean: r.clean,
                    };
                    unsafe { *out = report };
                }
                CorralStatus::Ok
            }
            Err(err) => CorralStatus::of(&err),
        }
    })
}

/// Hands the engine's listening sockets to a successor: offers them at the Unix socket
/// `path` and returns once a successor (a config with corral_config_listeners_from()
/// on the same path) serves them, within `timeout_ms`. Then call
/// corral_engine_shutdown(): this engine drains while the successor takes every new
/// connection — nothing queued is reset. CORRAL_STATUS_STATE if no successor came in
/// time (this engine serves on). Blocks; do not call it from a handler callback.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_hand_over(
    e: *const CorralEngine,
    path: *const c_char,
    timeout_ms: u64,
) -> CorralStatus {
    boundary(|| {
        // SAFETY: the caller passes NULL or a NUL-terminated string.
        let path = match unsafe { crate::path_arg(path) } {
            Ok(p) => p,
            Err(status) => return status,
        };
        let Some(e) = engine(e) else { return CorralStatus::NullArgument };
        match e.hand_over(path, Duration::from_millis(timeout_ms)) {
            Ok(()) => CorralStatus::Ok,
            Err(err) => CorralStatus::of(&err),
        }
    })
}

/// Frees an engine, shutting it down first (deadline 0) if it still runs. NULL is a
/// no-op. Do not call it from a handler callback, nor while another thread still uses
/// the engine.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_free(e: *mut CorralEngine) {
    boundary_void(|| {
        if !e.is_null() {
            // SAFETY: a non-NULL pointer here came from corral_engine_new_*().
            drop(unsafe { Box::from_raw(e) });
        }
    })
}

/// Writes the `index`-th listening address (with the port the kernel chose) into `out`;
/// CORRAL_STATUS_NOT_FOUND past the last one.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_local_addr(
    e: *const CorralEngine,
    index: usize,
    out: *mut CorralPeer,
) -> CorralStatus {
    boundary(|| {
        let Some(e) = engine(e) else { return CorralStatus::NullArgument };
        if out.is_null() {
            return CorralStatus::NullArgument;
        }
        match e.local_addrs().get(index) {
            Some(a) => {
                unsafe { *out = (*a).into() };
                CorralStatus::Ok
            }
            None => CorralStatus::NotFound,
        }
    })
}

/// Handoff: writes the notify fd into `out`. It is readable while connections wait; put
/// it in your own epoll/poll loop. It belongs to the engine: do not close it.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_notify_fd(e: *const CorralEngine, out: *mut i32) -> CorralStatus {
    boundary(|| {
        let Some(e) = engine(e) else { return CorralStatus::NullArgument };
        if out.is_null() {
            return CorralStatus::NullArgument;
        }
        match e.notify_fd() {
            Ok(fd) => {
                unsafe { *out = fd };
                CorralStatus::Ok
            }
            Err(err) => CorralStatus::of(&err),
        }
    })
}

/// One accepted connection: a non-blocking, close-on-exec TCP socket, yours to close.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CorralAccepted {
    pub fd: i32,
    pub peer: CorralPeer,
}

/// Handoff: moves up to `cap` accepted connections into `out` and their number into
/// `count` (0 when none wait). Each fd then belongs to the caller. Any thread; several
/// threads may take from one engine.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_take(
    e: *const CorralEngine,
    out: *mut CorralAccepted,
    cap: usize,
    count: *mut usize,
) -> CorralStatus {
    boundary(|| {
        let Some(e) = engine(e) else { return CorralStatus::NullArgument };
        if count.is_null() || (out.is_null() && cap > 0) {
            return CorralStatus::NullArgument;
        }
        let taken = match e.take(cap) {
            Ok(t) => t,
            Err(err) => return CorralStatus::of(&err),
        };
        let n = taken.len();
        for (i, a) in taken.into_iter().enumerate() {
            let item = CorralAccepted { fd: a.fd.into_raw_fd(), peer: a.peer.into() };
            // SAFETY: i < n <= cap slots.
            unsafe { *out.add(i) = item };
        }
        unsafe { *count = n };
        CorralStatus::Ok
    })
}

/// A snapshot of the engine's counters, read through getters by metric name so that
/// new metrics never change the ABI (a by-value struct would break every caller each
/// time one is added). Create with corral_engine_stats(), free with corral_stats_free().
/// Immutable: any thread may read it.
pub struct CorralStats {
    inner: corral_core::Stats,
}

/// Takes a snapshot of the engine's counters into `*out` (free it with
/// corral_stats_free()). Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_stats(e: *const CorralEngine, out: *mut *mut CorralStats) -> CorralStatus {
    boundary(|| {
        let Some(e) = engine(e) else { return CorralStatus::NullArgument };
        if out.is_null() {
            return CorralStatus::NullArgument;
        }
        let snapshot = Box::new(CorralStats { inner: e.stats() });
        unsafe { *out = Box::into_raw(snapshot) };
        CorralStatus::Ok
    })
}

/// Frees a snapshot. NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn corral_stats_free(s: *mut CorralStats) {
    boundary_void(|| {
        if !s.is_null() {
            // SAFETY: a non-NULL pointer here came from corral_engine_stats().
            drop(unsafe { Box::from_raw(s) });
        }
    })
}

fn metric<'a>(
    s: *const CorralStats,
    name: *const c_char,
) -> Result<(&'a corral_core::Stats, &'static Metric), CorralStatus> {
    // SAFETY: the caller passes a snapshot from corral_engine_stats() or NULL.
    let Some(s) = (unsafe { s.as_ref() }) else { return Err(CorralStatus::NullArgument) };
    if name.is_null() {
        return Err(CorralStatus::NullArgument);
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(name) }.to_str().map_err(|_| CorralStatus::InvalidArgument)?;
    let m = metrics::find(name).ok_or(CorralStatus::NotFound)?;
    Ok((&s.inner, m))
}

/// Writes metric `name`'s value for the whole engine into `*out` (for a metric kept per
/// listener or per worker, the sum over them). The names are the README's metrics list
/// and the Prometheus names without `corral_` and `_total`; corral_metric_name() lists
/// them. A double holds every counter exactly up to 2^53. CORRAL_STATUS_NOT_FOUND for a
/// name this version does not have.
#[no_mangle]
pub unsafe extern "C" fn corral_stats_get(s: *const CorralStats, name: *const c_char, out: *mut f64) -> CorralStatus {
    boundary(|| match metric(s, name) {
        Ok(_) if out.is_null() => CorralStatus::NullArgument,
        Ok((st, m)) => {
            unsafe { *out = m.total(st) };
            CorralStatus::Ok
        }
        Err(status) => status,
    })
}

/// Writes metric `name`'s value for listener or worker `index` (its scope's item; 0 for
/// an engine-wide metric) into `*out`; CORRAL_STATUS_NOT_FOUND past the last item or for
/// an unknown name. corral_stats_items() says how many items there are.
#[no_mangle]
pub unsafe extern "C" fn corral_stats_get_at(
    s: *const CorralStats,
    name: *const c_char,
    index: usize,
    out: *mut f64,
) -> CorralStatus {
    boundary(|| match metric(s, name) {
        Ok(_) if out.is_null() => CorralStatus::NullArgument,
        Ok((st, m)) => match m.at(st, index) {
            Some(v) => {
                unsafe { *out = v };
                CorralStatus::Ok
            }
            None => CorralStatus::NotFound,
        },
        Err(status) => status,
    })
}

/// How many items metric `name` has in this snapshot: the number of listeners or
/// workers for a scoped metric, 1 for an engine-wide one, 0 for an unknown name.
#[no_mangle]
pub unsafe extern "C" fn corral_stats_items(s: *const CorralStats, name: *const c_char) -> usize {
    let mut n = 0;
    boundary_void(|| {
        if let Ok((st, m)) = metric(s, name) {
            n = m.scope().len(st);
        }
    });
    n
}

/// The metric names and their help, made once as C strings.
fn metric_strings() -> &'static [(CString, CString)] {
    static TABLE: OnceLock<Vec<(CString, CString)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        metrics::all()
            .map(|m| {
                let help = format!("{} ({}, per {}{})", m.help, m.kind.name(), m.scope().name(), unit(m.unit));
                (CString::new(m.name).unwrap_or_default(), CString::new(help).unwrap_or_default())
            })
            .collect()
    })
}

fn unit(u: &str) -> String {
    if u.is_empty() {
        String::new()
    } else {
        format!(", in {u}")
    }
}

/// The name of metric `index` (0, 1, ... until it returns NULL). Static; do not free.
#[no_mangle]
pub extern "C" fn corral_metric_name(index: usize) -> *const c_char {
    crate::config::static_entry(metric_strings, index, false)
}

/// What metric `index` counts, its kind (counter or gauge), scope and unit; NULL past
/// the last one. Static; do not free.
#[no_mangle]
pub extern "C" fn corral_metric_help(index: usize) -> *const c_char {
    crate::config::static_entry(metric_strings, index, true)
}

/// Writes the stats as Prometheus text (NUL-terminated) into `buf`. If `len` is too
/// small, returns CORRAL_STATUS_BUFFER_TOO_SMALL and writes the size needed (with the
/// NUL) into `needed`; otherwise writes the text's length into `needed` (may be NULL).
#[no_mangle]
pub unsafe extern "C" fn corral_engine_prometheus(
    e: *const CorralEngine,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> CorralStatus {
    boundary(|| match engine(e) {
        Some(e) => unsafe { write_str(&e.stats().to_prometheus(), buf, len, needed) },
        None => CorralStatus::NullArgument,
    })
}
