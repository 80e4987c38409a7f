//! The engine-wide counters: plain atomics bumped where things happen (connections,
//! the PROXY preamble reader, the handler boundary) and read by a stats snapshot. They
//! live here, with the snapshot, so the rooms that count need only `stats`, not the
//! engine.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use hdrhistogram::Histogram;

/// The engine-wide counters (per-worker and per-listener ones live with their owner).
/// Relaxed atomics: each is exact, a snapshot is not taken at one instant.
#[derive(Default)]
pub(crate) struct Counters {
    /// Served connections closed.
    pub connections_closed: AtomicU64,
    /// Of those, closed by force at the shutdown deadline with work unfinished.
    pub connections_forced: AtomicU64,
    /// Connections closed by the header or idle timeout.
    pub timeouts: AtomicU64,
    /// Replies written (or queued to write).
    pub replies: AtomicU64,
    /// Requests whose connection closed before their reply could be written.
    pub requests_aborted: AtomicU64,
    /// Inputs a framer refused (bad request, too large).
    pub rejected: AtomicU64,
    /// Handler panics caught (each answered with the error reply).
    pub handler_panics: AtomicU64,
    /// Requests answered with the error reply (panic, dropped responder).
    pub handler_failures: AtomicU64,
    /// Requests the engine answered because the handler missed `reply_timeout`.
    pub reply_timeouts: AtomicU64,
    /// Connections closed at once for being over the per-IP cap.
    pub refused_per_ip: AtomicU64,
    /// Requests answered 429 for a client over `rate_limit`.
    pub rate_limited: AtomicU64,
    /// PROXY protocol: refused for an untrusted source / closed for a bad header.
    pub proxy_untrusted: AtomicU64,
    pub proxy_bad_headers: AtomicU64,
    /// Request body bytes read for requests whose bodies stream.
    pub body_bytes_in: AtomicU64,
    /// Requests dispatched before their bodies were in (streamed).
    pub bodies_streamed: AtomicU64,
    /// Requests refused with 413 for a body over `max_body` (streamed) or `max_frame`.
    pub bodies_too_large: AtomicU64,
    /// Streamed bodies cut with 408 for arriving too slowly.
    pub bodies_too_slow: AtomicU64,
    /// Websockets.
    pub ws: WsCounters,
    /// TLS.
    pub tls: TlsCounters,
}

/// The websocket counters (see [`WsStats`](super::WsStats) for what each means).
#[derive(Default)]
pub(crate) struct WsCounters {
    pub opened: AtomicU64,
    pub closed: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub dropped: AtomicU64,
    pub failed: AtomicU64,
    pub abnormal: AtomicU64,
    pub refused: AtomicU64,
    pub deflate_raw: AtomicU64,
    pub deflate_sent: AtomicU64,
}

/// The TLS counters (see [`TlsStats`](super::TlsStats) for what each means).
#[derive(Default)]
pub(crate) struct TlsCounters {
    pub handshakes: AtomicU64,
    pub handshake_failures: AtomicU64,
    /// The failures by reason, indexed as [`TlsFailures::NAMES`](super::TlsFailures::NAMES).
    pub failed_by: [AtomicU64; 7],
    pub resumed: AtomicU64,
    /// A gauge: up when a session is made, down when its handshake ends either way.
    pub handshaking: AtomicU64,
    /// Handshake flights fed on the CPU pool.
    pub pool_flights: AtomicU64,
    /// Completed handshakes' times in microseconds. A lock per handshake: a handshake
    /// costs far more than an uncontended lock.
    pub handshake_us: HandshakeTimes,
}

/// Completed handshakes' times, in microseconds.
pub(crate) struct HandshakeTimes(pub Mutex<Histogram<u64>>);

impl Default for HandshakeTimes {
    fn default() -> Self {
        HandshakeTimes(Mutex::new(super::new_hist()))
    }
}
