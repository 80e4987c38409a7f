//! The one list of metrics. Prometheus text, the C getters, the Python dict and the Node
//! object are all made from it, so every counter that exists is reported in every front
//! under one name (Node: its camelCase), and a metric at zero is still listed.
//!
//! A metric has a scope: the engine as a whole, or one value per listener or per I/O
//! worker. A scoped metric's total (the sum over its listeners or workers) is what the
//! flat views report; the per-item values are in Prometheus labels, the Python and Node
//! `listeners` / `workers` lists, and `corral_stats_get_at` in C.

use super::{ListenerStats, Stats, WorkerStats};

/// How a metric behaves over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (Prometheus name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl MetricKind {
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// What a metric is one value of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Engine,
    Listener,
    Worker,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Engine => "engine",
            Scope::Listener => "listener",
            Scope::Worker => "worker",
        }
    }

    /// How many items of this scope a snapshot has.
    pub fn len(self, s: &Stats) -> usize {
        match self {
            Scope::Engine => 1,
            Scope::Listener => s.listeners.len(),
            Scope::Worker => s.workers.len(),
        }
    }
}

enum Get {
    Engine(fn(&Stats) -> f64),
    Listener(fn(&ListenerStats) -> f64),
    Worker(fn(&WorkerStats) -> f64),
}

/// One metric.
pub struct Metric {
    /// The name in every front (Prometheus adds `corral_` and, for counters, `_total`).
    pub name: &'static str,
    pub kind: MetricKind,
    /// `""` for a count, or `seconds`, `bytes`, `boolean` (0 or 1).
    pub unit: &'static str,
    pub help: &'static str,
    get: Get,
}

impl Metric {
    pub fn scope(&self) -> Scope {
        match self.get {
            Get::Engine(_) => Scope::Engine,
            Get::Listener(_) => Scope::Listener,
            Get::Worker(_) => Scope::Worker,
        }
    }

    /// The name in the Prometheus text.
    pub fn prometheus_name(&self) -> String {
        match self.kind {
            MetricKind::Counter => format!("corral_{}_total", self.name),
            MetricKind::Gauge => format!("corral_{}", self.name),
        }
    }

    /// Whether its values are whole numbers (every unit but seconds).
    pub fn is_integer(&self) -> bool {
        self.unit != "seconds"
    }

    /// The value for the engine: a scoped metric's sum over its items.
    pub fn total(&self, s: &Stats) -> f64 {
        match self.get {
            Get::Engine(f) => f(s),
            Get::Listener(f) => s.listeners.iter().map(f).sum(),
            Get::Worker(f) => s.workers.iter().map(f).sum(),
        }
    }

    /// The value for item `i` of the metric's scope (`None` past the end; for an
    /// engine-scope metric only `i == 0` exists).
    pub fn at(&self, s: &Stats, i: usize) -> Option<f64> {
        match self.get {
            Get::Engine(f) => (i == 0).then(|| f(s)),
            Get::Listener(f) => s.listeners.get(i).map(f),
            Get::Worker(f) => s.workers.get(i).map(f),
        }
    }
}

/// The metric called `name`.
pub fn find(name: &str) -> Option<&'static Metric> {
    all().find(|m| m.name == name)
}

const fn engine(
    name: &'static str,
    kind: MetricKind,
    unit: &'static str,
    help: &'static str,
    f: fn(&Stats) -> f64,
) -> Metric {
    Metric { name, kind, unit, help, get: Get::Engine(f) }
}
const fn listener(name: &'static str, kind: MetricKind, help: &'static str, f: fn(&ListenerStats) -> f64) -> Metric {
    Metric { name, kind, unit: "", help, get: Get::Listener(f) }
}
const fn worker(
    name: &'static str,
    kind: MetricKind,
    unit: &'static str,
    help: &'static str,
    f: fn(&WorkerStats) -> f64,
) -> Metric {
    Metric { name, kind, unit, help, get: Get::Worker(f) }
}

use MetricKind::{Counter, Gauge};

fn b(v: bool) -> f64 {
    f64::from(u8::from(v))
}
fn us(v: u64) -> f64 {
    v as f64 / 1e6
}

/// Latency percentiles of one cost class, as gauges in seconds.
macro_rules! latency {
    ($class:literal, $field:ident) => {
        [
            engine(
                concat!("latency_", $class, "_count"),
                Counter,
                "",
                concat!("Requests measured (", $class, ")."),
                |s| s.$field.count as f64,
            ),
            engine(
                concat!("latency_", $class, "_p50_seconds"),
                Gauge,
                "seconds",
                concat!("Framing to reply queued, median (", $class, ")."),
                |s| us(s.$field.p50),
            ),
            engine(
                concat!("latency_", $class, "_p90_seconds"),
                Gauge,
                "seconds",
                concat!("Framing to reply queued, 90th percentile (", $class, ")."),
                |s| us(s.$field.p90),
            ),
            engine(
                concat!("latency_", $class, "_p99_seconds"),
                Gauge,
                "seconds",
                concat!("Framing to reply queued, 99th percentile (", $class, ")."),
                |s| us(s.$field.p99),
            ),
            engine(
                concat!("latency_", $class, "_p999_seconds"),
                Gauge,
                "seconds",
                concat!("Framing to reply queued, 99.9th percentile (", $class, ")."),
                |s| us(s.$field.p999),
            ),
            engine(
                concat!("latency_", $class, "_max_seconds"),
                Gauge,
                "seconds",
                concat!("Framing to reply queued, maximum (", $class, ")."),
                |s| us(s.$field.max),
            ),
        ]
    };
}

static LIGHT: [Metric; 6] = latency!("light", latency_light);
static HEAVY: [Metric; 6] = latency!("heavy", latency_heavy);

static MAIN: [Metric; 70] = [
    engine("uptime_seconds", Gauge, "seconds", "Seconds since the engine started.", |s| s.uptime.as_secs_f64()),
    listener("accepts", Counter, "Connections accepted.", |l| l.accepts as f64),
    listener("accept_pauses", Counter, "Times accepting paused (descriptors exhausted, or a cap reached).", |l| {
        l.pauses as f64
    }),
    listener("accept_fd_exhausted", Counter, "accept() failures for lack of descriptors or memory.", |l| {
        l.fd_exhausted as f64
    }),
    listener("accept_errors", Counter, "Transient accept() errors skipped.", |l| l.errors as f64),
    listener("accept_throttled", Counter, "Pauses for the accept-rate limit (max_accept_rate).", |l| {
        l.throttled as f64
    }),
    listener("listen_queue_length", Gauge, "Connections waiting in the kernel accept queue.", |l| l.queue_len as f64),
    listener("listen_queue_max", Gauge, "Effective listen backlog (after the kernel's clamp).", |l| l.queue_max as f64),
    engine("kernel_listen_overflows", Counter, "", "ListenOverflows since start (system-wide).", |s| {
        s.kernel_listen_overflows as f64
    }),
    engine("kernel_listen_drops", Counter, "", "ListenDrops since start (system-wide).", |s| {
        s.kernel_listen_drops as f64
    }),
    engine(
        "kernel_syncookies_sent",
        Counter,
        "",
        "SyncookiesSent since start (system-wide): SYN-ACKs that carried a SYN cookie.",
        |s| s.kernel_syncookies_sent as f64,
    ),
    engine(
        "kernel_syncookies_received",
        Counter,
        "",
        "SyncookiesRecv since start (system-wide): valid SYN cookies that came back.",
        |s| s.kernel_syncookies_received as f64,
    ),
    engine(
        "kernel_syncookies_failed",
        Counter,
        "",
        "SyncookiesFailed since start (system-wide): returning SYN cookies that did not check out.",
        |s| s.kernel_syncookies_failed as f64,
    ),
    engine(
        "kernel_syn_queue_full_cookies",
        Counter,
        "",
        "TCPReqQFullDoCookies since start (system-wide): SYNs that met a full SYN queue, answered with a cookie.",
        |s| s.kernel_syn_queue_full_cookies as f64,
    ),
    engine(
        "kernel_syn_queue_full_drops",
        Counter,
        "",
        "TCPReqQFullDrop since start (system-wide): SYNs that met a full SYN queue, dropped (cookies off).",
        |s| s.kernel_syn_queue_full_drops as f64,
    ),
    worker("worker_connections", Counter, "", "Connections registered with the worker.", |w| w.connections as f64),
    worker("worker_requests", Counter, "", "Requests framed by the worker.", |w| w.requests as f64),
    worker("worker_tasks", Counter, "", "Connection turns run.", |w| w.tasks as f64),
    worker("worker_stolen", Counter, "", "Tasks stolen from siblings.", |w| w.stolen as f64),
    worker("worker_steal_operations", Counter, "", "Successful steal operations.", |w| w.steal_ops as f64),
    worker("worker_parks", Counter, "", "Times the worker parked.", |w| w.parks as f64),
    worker("worker_busy_seconds", Counter, "seconds", "Time the worker was not parked.", |w| w.busy.as_secs_f64()),
    worker("worker_queue_depth", Gauge, "", "Tasks waiting in the worker's deque and inbox.", |w| w.depth as f64),
    engine("cpu_threads", Gauge, "", "CPU-pool threads.", |s| s.cpu.threads as f64),
    engine("cpu_queued", Gauge, "", "Heavy jobs waiting.", |s| s.cpu.queued as f64),
    engine("cpu_submitted", Counter, "", "Heavy jobs submitted to the CPU pool.", |s| s.cpu.submitted as f64),
    engine("cpu_jobs", Counter, "", "Heavy jobs run.", |s| s.cpu.run as f64),
    engine("cpu_stolen", Counter, "", "Heavy jobs stolen between CPU threads.", |s| s.cpu.stolen as f64),
    engine("cpu_panics", Counter, "", "Heavy jobs that panicked (answered with the error reply).", |s| {
        s.cpu.panics as f64
    }),
    engine("cpu_shed", Counter, "", "Heavy requests refused by CoDel (HTTP 503).", |s| s.cpu.shed as f64),
    engine(
        "cpu_queue_min_delay_seconds",
        Gauge,
        "seconds",
        "CoDel: the last interval's minimum queueing delay.",
        |s| us(s.cpu.min_delay_us),
    ),
    engine("io_uring", Gauge, "boolean", "1 when the I/O workers run on io_uring, 0 on epoll.", |s| {
        b(s.backend == "io_uring")
    }),
    engine(
        "io_uring_fallback",
        Gauge,
        "boolean",
        "1 when io_uring was asked for and the engine runs on epoll (the log says why).",
        |s| b(s.backend_note.is_some()),
    ),
    engine("cpu_queue_overloaded", Gauge, "boolean", "CoDel: 1 while the queue counts as overloaded.", |s| {
        b(s.cpu.overloaded)
    }),
    engine("cpu_lifo_active", Gauge, "boolean", "Adaptive LIFO: 1 while jobs wait on its stack.", |s| b(s.cpu.lifo)),
    engine("cpu_lifo_served", Counter, "", "Adaptive LIFO: jobs served newest first.", |s| s.cpu.lifo_served as f64),
    engine("open_connections", Gauge, "", "Served connections open now.", |s| s.open_connections as f64),
    engine("connections_closed", Counter, "", "Served connections closed.", |s| s.connections_closed as f64),
    engine("connections_timed_out", Counter, "", "Connections closed by the header or idle timeout.", |s| {
        s.connections_timed_out as f64
    }),
    engine(
        "connections_refused_per_ip",
        Counter,
        "",
        "Connections closed at once for being over the per-IP cap.",
        |s| s.connections_refused_per_ip as f64,
    ),
    engine(
        "requests_rate_limited",
        Counter,
        "",
        "Requests answered 429 (with Retry-After) for a client over rate_limit.",
        |s| s.requests_rate_limited as f64,
    ),
    engine(
        "proxy_untrusted",
        Counter,
        "",
        "PROXY protocol: connections refused unread for coming from outside proxy_trusted.",
        |s| s.proxy_untrusted as f64,
    ),
    engine(
        "proxy_bad_headers",
        Counter,
        "",
        "PROXY protocol: connections closed for a malformed, oversized or mismatched header.",
        |s| s.proxy_bad_headers as f64,
    ),
    engine("replies", Counter, "", "Replies written.", |s| s.replies as f64),
    engine("requests_aborted", Counter, "", "Requests whose connection closed before the reply.", |s| {
        s.requests_aborted as f64
    }),
    engine("requests_rejected", Counter, "", "Bad or oversized inputs refused.", |s| s.requests_rejected as f64),
    engine("handler_panics", Counter, "", "Handler panics caught.", |s| s.handler_panics as f64),
    engine(
        "handler_failures",
        Counter,
        "",
        "Requests answered with the error reply (panic, dropped responder).",
        |s| s.handler_failures as f64,
    ),
    engine(
        "replies_timed_out",
        Counter,
        "",
        "Requests the engine answered because the handler missed reply_timeout.",
        |s| s.replies_timed_out as f64,
    ),
    engine("body_bytes_in", Counter, "bytes", "Request body bytes read for streamed bodies.", |s| {
        s.body_bytes_in as f64
    }),
    engine("bodies_streamed", Counter, "", "Requests dispatched before their bodies were in (streamed).", |s| {
        s.bodies_streamed as f64
    }),
    engine("bodies_too_large", Counter, "", "Requests refused with 413 for a body over max_body or max_frame.", |s| {
        s.bodies_too_large as f64
    }),
    engine(
        "bodies_too_slow",
        Counter,
        "",
        "Streamed bodies cut with 408 for arriving slower than min_body_rate.",
        |s| s.bodies_too_slow as f64,
    ),
    engine("ws_open", Gauge, "", "Websockets open now.", |s| s.ws.open() as f64),
    engine("ws_opened", Counter, "", "Websockets opened (upgrades accepted).", |s| s.ws.opened as f64),
    engine("ws_closed", Counter, "", "Websockets closed, however they ended.", |s| s.ws.closed as f64),
    engine("ws_messages_in", Counter, "", "Websocket data messages received.", |s| s.ws.messages_in as f64),
    engine("ws_messages_out", Counter, "", "Websocket data messages sent (per recipient).", |s| {
        s.ws.messages_out as f64
    }),
    engine("ws_bytes_in", Counter, "bytes", "Websocket message payload bytes received (decompressed).", |s| {
        s.ws.bytes_in as f64
    }),
    engine("ws_bytes_out", Counter, "bytes", "Websocket message payload bytes sent (before compression).", |s| {
        s.ws.bytes_out as f64
    }),
    engine("ws_dropped", Counter, "", "Websocket sends dropped: over ws_max_backpressure, or closing.", |s| {
        s.ws.dropped as f64
    }),
    engine(
        "ws_failed",
        Counter,
        "",
        "Websockets failed for a client's error (1002, 1007, 1009) or a missed ping (1011).",
        |s| s.ws.failed as f64,
    ),
    engine("ws_abnormal", Counter, "", "Websockets ended without a close handshake (1006).", |s| s.ws.abnormal as f64),
    engine("ws_refused", Counter, "", "Websocket upgrade requests refused by the engine (400, 426).", |s| {
        s.ws.refused as f64
    }),
    engine("ws_deflate_raw", Counter, "bytes", "permessage-deflate: payload bytes compressed.", |s| {
        s.ws.deflate_raw as f64
    }),
    engine("ws_deflate_sent", Counter, "bytes", "permessage-deflate: what those bytes became on the wire.", |s| {
        s.ws.deflate_sent as f64
    }),
    engine("tls_handshakes", Counter, "", "TLS handshakes completed.", |s| s.tls.handshakes as f64),
    engine(
        "tls_handshake_failures",
        Counter,
        "",
        "TLS handshakes begun that failed: not TLS, nothing in common (alert sent), or closed or timed out first.",
        |s| s.tls.handshake_failures as f64,
    ),
    engine("tls_resumed", Counter, "", "TLS handshakes that resumed a session (ticket or session id).", |s| {
        s.tls.resumed as f64
    }),
    engine("tls_handshaking", Gauge, "", "TLS handshakes under way now.", |s| s.tls.handshaking as f64),
];

/// The TLS handshakes' failures by reason and their times.
static TLS: [Metric; 13] = [
    engine("tls_handshake_failures_not_tls", Counter, "", "Failed handshakes: the first bytes were not TLS.", |s| {
        s.tls.failed.not_tls as f64
    }),
    engine(
        "tls_handshake_failures_plain_http",
        Counter,
        "",
        "Failed handshakes: a plain HTTP request on the TLS port (answered 400 in clear).",
        |s| s.tls.failed.plain_http as f64,
    ),
    engine(
        "tls_handshake_failures_incompatible",
        Counter,
        "",
        "Failed handshakes: no version, cipher suite or key exchange in common.",
        |s| s.tls.failed.incompatible as f64,
    ),
    engine(
        "tls_handshake_failures_client_cert",
        Counter,
        "",
        "Failed handshakes: the client certificate was missing or not from a trusted CA.",
        |s| s.tls.failed.client_cert as f64,
    ),
    engine(
        "tls_handshake_failures_protocol",
        Counter,
        "",
        "Failed handshakes: a bad record or message, or a renegotiation attempt.",
        |s| s.tls.failed.protocol as f64,
    ),
    engine(
        "tls_handshake_failures_abandoned",
        Counter,
        "",
        "Failed handshakes: the client closed, reset or went silent past header_timeout first.",
        |s| s.tls.failed.abandoned as f64,
    ),
    engine(
        "tls_handshake_failures_shed",
        Counter,
        "",
        "Failed handshakes: shed by the CPU pool under overload (CoDel) before they ran.",
        |s| s.tls.failed.shed as f64,
    ),
    engine(
        "tls_pool_flights",
        Counter,
        "",
        "Handshake flights fed on the CPU pool (tls_handshake_on_pool) rather than an I/O worker.",
        |s| s.tls.pool_flights as f64,
    ),
    engine("tls_handshake_count", Counter, "", "Handshakes timed (completed).", |s| s.tls.handshake_time.count as f64),
    engine(
        "tls_handshake_p50_seconds",
        Gauge,
        "seconds",
        "Handshake time, client's first byte to completion, median.",
        |s| us(s.tls.handshake_time.p50),
    ),
    engine(
        "tls_handshake_p99_seconds",
        Gauge,
        "seconds",
        "Handshake time, client's first byte to completion, 99th percentile.",
        |s| us(s.tls.handshake_time.p99),
    ),
    engine(
        "tls_handshake_p999_seconds",
        Gauge,
        "seconds",
        "Handshake time, client's first byte to completion, 99.9th percentile.",
        |s| us(s.tls.handshake_time.p999),
    ),
    engine("tls_handshake_max_seconds", Gauge, "seconds", "Handshake time, maximum.", |s| us(s.tls.handshake_time.max)),
];

static LAST: [Metric; 1] =
    [engine("handoff_queued", Gauge, "", "Accepted connections waiting for the host.", |s| s.handoff_queued as f64)];

/// Every metric, in the order the fronts list them.
pub fn all() -> impl Iterator<Item = &'static Metric> {
    MAIN.iter().chain(TLS.iter()).chain(LAST.iter()).chain(LIGHT.iter()).chain(HEAVY.iter())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prometheus_lists_every_metric_even_at_zero() {
        let mut seen = std::collections::HashSet::new();
        let stats = Stats {
            listeners: vec![ListenerStats::default()],
            workers: vec![WorkerStats::default(); 2],
            ..Stats::default()
        };
        let text = stats.to_prometheus();
        for m in all() {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'), "{}", m.name);
            assert!(
                text.contains(&format!("\n{} ", m.prometheus_name()))
                    || text.contains(&format!("\n{}{{", m.prometheus_name())),
                "{} missing",
                m.name
            );
        }
    }

    #[test]
    fn a_scoped_metric_totals_its_items() {
        let mut stats = Stats { workers: vec![WorkerStats::default(); 2], ..Stats::default() };
        stats.workers[0].requests = 3;
        stats.workers[1].requests = 4;
        let m = find("worker_requests").unwrap();
        assert_eq!((m.total(&stats), m.at(&stats, 1), m.at(&stats, 2)), (7.0, Some(4.0), None));
        assert_eq!(m.scope().len(&stats), 2);
    }
}
