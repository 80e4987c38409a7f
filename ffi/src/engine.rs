//! `corral_engine`: create (serve or handoff), start, take connections, read stats,
//! shut down, free.

use std::ffi::c_char;
use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::time::Duration;

use engine::{Engine, Mode};

use crate::serve::{CHandler, CorralPeer, CorralServe};
use crate::status::write_str;
use crate::{boundary, boundary_void, CorralConfig, CorralStatus};

/// An engine. Thread-safe: every corral_engine_* function may be called from any
/// thread, concurrently, until corral_engine_free().
pub struct CorralEngine {
    inner: Engine,
}

fn engine<'a>(e: *const CorralEngine) -> Option<&'a Engine> {
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
        let built = match cfg.builder_for_engine() {
            Ok(b) => b.build(),
            Err(_) => return CorralStatus::Io,
        };
        let made = built.and_then(|c| Engine::new(c, mode));
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

/// Totals from the engine's counters (per-worker and per-listener detail is in the
/// Prometheus text).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CorralStats {
    pub uptime_ms: u64,
    pub accepts: u64,
    pub accept_pauses: u64,
    pub accept_fd_exhausted: u64,
    /// Effective listen backlog of the first listener (after the kernel's clamp).
    pub backlog: u32,
    /// Connections in the kernel accept queues now.
    pub listen_queue: u32,
    pub open_connections: u64,
    pub connections_closed: u64,
    pub connections_timed_out: u64,
    pub requests: u64,
    pub replies: u64,
    pub requests_aborted: u64,
    pub requests_rejected: u64,
    pub handler_panics: u64,
    pub handler_failures: u64,
    pub tasks_stolen: u64,
    pub steal_operations: u64,
    pub cpu_jobs_run: u64,
    /// Heavy requests refused by CoDel (HTTP 503).
    pub cpu_shed: u64,
    pub cpu_queued: u64,
    pub handoff_queued: u64,
    pub latency_light_p50_us: u64,
    pub latency_light_p99_us: u64,
    pub latency_heavy_p50_us: u64,
    pub latency_heavy_p99_us: u64,
}

/// Writes a snapshot of the engine's counters into `out`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_stats(e: *const CorralEngine, out: *mut CorralStats) -> CorralStatus {
    boundary(|| {
        let Some(e) = engine(e) else { return CorralStatus::NullArgument };
        if out.is_null() {
            return CorralStatus::NullArgument;
        }
        let s = e.stats();
        let stats = CorralStats {
            uptime_ms: s.uptime.as_millis() as u64,
            accepts: s.accepts(),
            accept_pauses: s.listeners.iter().map(|l| l.pauses).sum(),
            accept_fd_exhausted: s.listeners.iter().map(|l| l.fd_exhausted).sum(),
            backlog: s.listeners.first().map_or(0, |l| l.queue_max),
            listen_queue: s.listeners.iter().map(|l| l.queue_len).sum(),
            open_connections: s.open_connections as u64,
            connections_closed: s.connections_closed,
            connections_timed_out: s.connections_timed_out,
            requests: s.requests(),
            replies: s.replies,
            requests_aborted: s.requests_aborted,
            requests_rejected: s.requests_rejected,
            handler_panics: s.handler_panics,
            handler_failures: s.handler_failures,
            tasks_stolen: s.stolen(),
            steal_operations: s.workers.iter().map(|w| w.steal_ops).sum(),
            cpu_jobs_run: s.cpu.run,
            cpu_shed: s.cpu.shed,
            cpu_queued: s.cpu.queued as u64,
            handoff_queued: s.handoff_queued as u64,
            latency_light_p50_us: s.latency_light.p50,
            latency_light_p99_us: s.latency_light.p99,
            latency_heavy_p50_us: s.latency_heavy.p50,
            latency_heavy_p99_us: s.latency_heavy.p99,
        };
        unsafe { *out = stats };
        CorralStatus::Ok
    })
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
