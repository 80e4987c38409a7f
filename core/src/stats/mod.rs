//! A snapshot of the engine's counters ([`Stats`]), the one list of metrics every front
//! reports ([`metrics::METRICS`]), and the Prometheus text made from that list.
//!
//! Counters are plain atomics updated where things happen (acceptors, workers, the CPU
//! pool); a snapshot reads them without stopping anything, so its numbers are each
//! exact but not taken at one instant. Latency is measured per request from framing to
//! its reply being queued for writing, in HDR histograms kept per worker and per cost
//! class, merged here.

mod counters;
pub mod metrics;
mod prometheus;

pub(crate) use counters::{Counters, TlsCounters, WsCounters};

use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;

#[derive(Clone, Debug, Default)]
pub struct ListenerStats {
    pub addr: Option<SocketAddr>,
    pub accepts: u64,
    pub pauses: u64,
    pub fd_exhausted: u64,
    pub errors: u64,
    /// Pauses for the accept-rate limit.
    pub throttled: u64,
    /// Connections in the kernel accept queue now (`TCP_INFO`).
    pub queue_len: u32,
    /// The accept queue's size: the effective backlog after the kernel's clamp.
    pub queue_max: u32,
}

#[derive(Clone, Debug, Default)]
pub struct WorkerStats {
    pub connections: u64,
    pub requests: u64,
    pub tasks: u64,
    /// Tasks taken from siblings (deques, inboxes, or the epoll of a stalled sibling).
    pub stolen: u64,
    pub steal_ops: u64,
    pub parks: u64,
    /// Time not parked since the engine started.
    pub busy: Duration,
    /// Tasks waiting in the worker's deque and inbox.
    pub depth: usize,
}

#[derive(Clone, Debug, Default)]
pub struct CpuStats {
    /// Heavy requests refused by CoDel (HTTP 503).
    pub shed: u64,
    /// CoDel: the last interval's minimum queueing delay, in microseconds.
    pub min_delay_us: u64,
    /// CoDel: whether the queue counts as overloaded.
    pub overloaded: bool,
    /// Adaptive LIFO: whether jobs wait on its stack now (served newest first).
    pub lifo: bool,
    /// Adaptive LIFO: jobs served from its stack.
    pub lifo_served: u64,
    /// Heavy jobs that panicked (each answered with the error reply; the thread lives on).
    pub panics: u64,
    pub threads: usize,
    pub queued: usize,
    pub submitted: u64,
    pub run: u64,
    pub stolen: u64,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LatencyStats {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl LatencyStats {
    pub(crate) fn of(h: &Histogram<u64>) -> LatencyStats {
        LatencyStats {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub uptime: Duration,
    /// The I/O backend the workers run on: `"epoll"` or `"io_uring"`.
    pub backend: &'static str,
    /// Why it is epoll although io_uring was asked for (`backend = auto` fell back).
    pub backend_note: Option<String>,
    pub listeners: Vec<ListenerStats>,
    /// Change in the kernel's `ListenOverflows` / `ListenDrops` since the engine started
    /// (system-wide counters: other servers' drops show here too).
    pub kernel_listen_overflows: u64,
    pub kernel_listen_drops: u64,
    /// Change in the kernel's SYN-flood counters since the engine started (system-wide
    /// too): SYN-ACKs sent with a cookie (`SyncookiesSent`), cookies that came back valid
    /// (`SyncookiesRecv`) or not (`SyncookiesFailed`), and SYNs that met a full SYN
    /// queue and got a cookie (`TCPReqQFullDoCookies`) or were dropped, cookies being
    /// off (`TCPReqQFullDrop`).
    pub kernel_syncookies_sent: u64,
    pub kernel_syncookies_received: u64,
    pub kernel_syncookies_failed: u64,
    pub kernel_syn_queue_full_cookies: u64,
    pub kernel_syn_queue_full_drops: u64,
    pub workers: Vec<WorkerStats>,
    pub cpu: CpuStats,
    pub open_connections: usize,
    pub connections_closed: u64,
    pub connections_timed_out: u64,
    /// Replies written (or queued to write) to clients.
    pub replies: u64,
    /// Requests whose connection closed before their reply could be written.
    pub requests_aborted: u64,
    /// Inputs refused by a framer (bad request, too large).
    pub requests_rejected: u64,
    pub handler_panics: u64,
    /// Requests answered with the error reply (handler panicked or dropped its responder).
    pub handler_failures: u64,
    /// Requests the engine answered because the handler did not within `reply_timeout`.
    pub replies_timed_out: u64,
    /// Connections closed at once for being over the per-IP cap.
    pub connections_refused_per_ip: u64,
    /// Requests answered `429 Too Many Requests` for a client over `rate_limit`.
    pub requests_rate_limited: u64,
    /// PROXY protocol: connections refused before a byte was read, for coming from a
    /// source outside `proxy_trusted`.
    pub proxy_untrusted: u64,
    /// PROXY protocol: connections closed for a malformed, oversized or mismatched header.
    pub proxy_bad_headers: u64,
    /// Request body bytes read for requests whose bodies stream.
    pub body_bytes_in: u64,
    /// Requests dispatched before their bodies were in (streamed to the handler).
    pub bodies_streamed: u64,
    /// Requests refused with `413` for a body over `max_body` (or `max_frame`).
    pub bodies_too_large: u64,
    /// Streamed bodies cut with `408` for arriving slower than `min_body_rate`.
    pub bodies_too_slow: u64,
    /// Accepted connections waiting in the host queue (handoff).
    pub handoff_queued: usize,
    pub ws: WsStats,
    pub tls: TlsStats,
    pub latency_light: LatencyStats,
    pub latency_heavy: LatencyStats,
}

impl Stats {
    pub fn accepts(&self) -> u64 {
        self.listeners.iter().map(|l| l.accepts).sum()
    }

    pub fn requests(&self) -> u64 {
        self.workers.iter().map(|w| w.requests).sum()
    }

    pub fn stolen(&self) -> u64 {
        self.workers.iter().map(|w| w.stolen).sum()
    }
}

pub(crate) fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds")
}

/// Websocket counters, since the engine started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WsStats {
    /// Websockets opened (upgrades accepted).
    pub opened: u64,
    /// Websockets closed, however they ended.
    pub closed: u64,
    /// Data messages received from clients, and sent to them (publishes count once per
    /// recipient).
    pub messages_in: u64,
    pub messages_out: u64,
    /// Payload bytes of those messages (as the app sees them: before compression).
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Sends dropped because the socket's unwritten bytes were over
    /// `ws_max_backpressure`, or the socket was closing.
    pub dropped: u64,
    /// Websockets the server failed for a client's error (1002 protocol, 1007 bad
    /// UTF-8, 1009 too big) or a missed ping (1011).
    pub failed: u64,
    /// Websockets that ended without a close handshake (1006: reset, EOF, shutdown).
    pub abnormal: u64,
    /// Upgrade requests refused by the engine (400 malformed, 426 version).
    pub refused: u64,
    /// permessage-deflate: payload bytes compressed, and what they became on the wire.
    pub deflate_raw: u64,
    pub deflate_sent: u64,
}

impl WsStats {
    /// Websockets open now.
    pub fn open(&self) -> u64 {
        self.opened.saturating_sub(self.closed)
    }
}

/// TLS counters, since the engine started (all zero without `tls_cert`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshakes that failed after the client began one: bytes that were not TLS, no
    /// version or cipher suite in common (each answered with rustls's alert), or the
    /// connection closed or timed out (`header_timeout`) before the handshake completed.
    pub handshake_failures: u64,
    /// The same failures by reason.
    pub failed: TlsFailures,
    /// Of the completed handshakes, those that resumed a session (a ticket or a cached
    /// session id) instead of a full handshake.
    pub resumed: u64,
    /// Handshakes under way now.
    pub handshaking: u64,
    /// Handshake flights (a client's handshake messages, the expensive first one
    /// included) fed on the CPU pool rather than on an I/O worker.
    pub pool_flights: u64,
    /// Completed handshakes, from the client's first byte to completion: the network's
    /// round trips, the client's own work and any wait for the CPU pool included.
    pub handshake_time: LatencyStats,
}

/// Failed TLS handshakes by reason (they add up to `TlsStats::handshake_failures`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFailures {
    /// The first bytes were not a TLS record (answered with a `decode_error` alert).
    pub not_tls: u64,
    /// A plain HTTP request on the TLS port (answered with a 400 in clear).
    pub plain_http: u64,
    /// No version, cipher suite or key exchange in common with the client.
    pub incompatible: u64,
    /// The client's certificate was missing or not from a trusted CA.
    pub client_cert: u64,
    /// Another protocol error: a bad record or message, a renegotiation attempt.
    pub protocol: u64,
    /// The client closed, reset or went silent (past `header_timeout`) before the end.
    pub abandoned: u64,
    /// Shed by the CPU pool's CoDel under overload before it ran.
    pub shed: u64,
}

impl TlsFailures {
    /// The reasons' names, in the order of the engine's counters.
    pub const NAMES: [&'static str; 7] =
        ["not_tls", "plain_http", "incompatible", "client_cert", "protocol", "abandoned", "shed"];

    pub(crate) fn from_counts(c: [u64; 7]) -> TlsFailures {
        let [not_tls, plain_http, incompatible, client_cert, protocol, abandoned, shed] = c;
        TlsFailures { not_tls, plain_http, incompatible, client_cert, protocol, abandoned, shed }
    }
}
