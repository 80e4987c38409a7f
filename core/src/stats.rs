//! A snapshot of the engine's counters, and its Prometheus text rendering.
//!
//! Counters are plain atomics updated where things happen (acceptors, workers, the CPU
//! pool); a snapshot reads them without stopping anything, so its numbers are each
//! exact but not taken at one instant. Latency is measured per request from framing to
//! its reply being queued for writing, in HDR histograms kept per worker and per cost
//! class, merged here.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::engine::Shared;
use crate::sys;

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
    pub threads: usize,
    pub queued: usize,
    pub submitted: u64,
    pub run: u64,
    pub stolen: u64,
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default)]
pub struct LatencyStats {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl LatencyStats {
    fn of(h: &Histogram<u64>) -> LatencyStats {
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
    pub listeners: Vec<ListenerStats>,
    /// Change in the kernel's `ListenOverflows` / `ListenDrops` since the engine started
    /// (system-wide counters: other servers' drops show here too).
    pub kernel_listen_overflows: u64,
    pub kernel_listen_drops: u64,
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
    /// Accepted connections waiting in the host queue (handoff).
    pub handoff_queued: usize,
    pub latency_light: LatencyStats,
    pub latency_heavy: LatencyStats,
}

impl Stats {
    pub(crate) fn collect(s: &Shared) -> Stats {
        let uptime = s.epoch.elapsed();
        let listeners = s
            .listeners
            .iter()
            .map(|l| {
                let q = l.queue();
                ListenerStats {
                    addr: Some(l.addr),
                    accepts: l.counters.accepts.load(Relaxed),
                    pauses: l.counters.pauses.load(Relaxed),
                    fd_exhausted: l.counters.fd_exhausted.load(Relaxed),
                    errors: l.counters.errors.load(Relaxed),
                    throttled: l.counters.throttled.load(Relaxed),
                    queue_len: q.len,
                    queue_max: q.max,
                }
            })
            .collect();
        let kernel = sys::listen_drop_counters().unwrap_or_default();
        let mut hist = [new_hist(), new_hist()];
        let mut workers = Vec::new();
        for w in s.all_workers() {
            let [l, h] = w.latency();
            let _ = hist[0].add(&l);
            let _ = hist[1].add(&h);
            let c = &w.counters;
            let parked = Duration::from_nanos(c.parked_ns.load(Relaxed));
            workers.push(WorkerStats {
                connections: c.connections.load(Relaxed),
                requests: c.requests.load(Relaxed),
                tasks: c.tasks.load(Relaxed),
                stolen: c.stolen.load(Relaxed),
                steal_ops: c.steal_ops.load(Relaxed),
                parks: c.parks.load(Relaxed),
                busy: uptime.saturating_sub(parked),
                depth: w.depth(),
            });
        }
        let cpu = s.cpu.as_ref().map_or_else(CpuStats::default, |p| CpuStats {
            shed: p.counters().shed.load(Relaxed),
            min_delay_us: p.codel().map_or(0, |c| c.0),
            overloaded: p.codel().is_some_and(|c| c.1),
            lifo: p.lifo().is_some_and(|l| l.0),
            lifo_served: p.lifo().map_or(0, |l| l.1),
            threads: p.threads(),
            queued: p.queued(),
            submitted: p.counters().submitted.load(Relaxed),
            run: p.counters().run.load(Relaxed),
            stolen: p.counters().stolen.load(Relaxed),
        });
        let c = &s.counters;
        Stats {
            uptime,
            listeners,
            kernel_listen_overflows: kernel.overflows.saturating_sub(s.kernel_at_start.overflows),
            kernel_listen_drops: kernel.drops.saturating_sub(s.kernel_at_start.drops),
            workers,
            cpu,
            open_connections: s.conn_gate.used(),
            connections_closed: c.closed.load(Relaxed),
            connections_timed_out: c.timeouts.load(Relaxed),
            replies: c.replies.load(Relaxed),
            requests_aborted: c.aborted.load(Relaxed),
            requests_rejected: c.rejected.load(Relaxed),
            handler_panics: c.handler_panics.load(Relaxed),
            handler_failures: c.handler_failures.load(Relaxed),
            replies_timed_out: c.reply_timeouts.load(Relaxed),
            connections_refused_per_ip: c.refused_per_ip.load(Relaxed),
            handoff_queued: s.host.as_ref().map_or(0, |h| h.len()),
            latency_light: LatencyStats::of(&hist[0]),
            latency_heavy: LatencyStats::of(&hist[1]),
        }
    }

    pub fn accepts(&self) -> u64 {
        self.listeners.iter().map(|l| l.accepts).sum()
    }

    pub fn requests(&self) -> u64 {
        self.workers.iter().map(|w| w.requests).sum()
    }

    pub fn stolen(&self) -> u64 {
        self.workers.iter().map(|w| w.stolen).sum()
    }

    /// The snapshot in the Prometheus text exposition format.
    pub fn to_prometheus(&self) -> String {
        let mut o = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(o, "# HELP corral_{name} {help}\n# TYPE corral_{name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(o, "corral_{name}{labels} {v}");
            }
        };
        let one = |v: String| vec![(String::new(), v)];
        let per_listener = |f: &dyn Fn(&ListenerStats) -> String| -> Vec<(String, String)> {
            self.listeners
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    let addr = l.addr.map(|a| a.to_string()).unwrap_or_default();
                    (format!("{{listener=\"{i}\",addr=\"{addr}\"}}"), f(l))
                })
                .collect()
        };
        let per_worker = |f: &dyn Fn(&WorkerStats) -> String| -> Vec<(String, String)> {
            self.workers.iter().enumerate().map(|(i, w)| (format!("{{worker=\"{i}\"}}"), f(w))).collect()
        };
        metric(
            "uptime_seconds",
            "gauge",
            "Seconds since the engine started.",
            one(format!("{:.3}", self.uptime.as_secs_f64())),
        );
        metric("accepts_total", "counter", "Connections accepted.", per_listener(&|l| l.accepts.to_string()));
        metric(
            "accept_pauses_total",
            "counter",
            "Times accepting paused (descriptors exhausted, or a cap reached).",
            per_listener(&|l| l.pauses.to_string()),
        );
        metric(
            "accept_fd_exhausted_total",
            "counter",
            "accept() failures for lack of descriptors or memory.",
            per_listener(&|l| l.fd_exhausted.to_string()),
        );
        metric(
            "accept_errors_total",
            "counter",
            "Transient accept() errors skipped.",
            per_listener(&|l| l.errors.to_string()),
        );
        metric(
            "listen_queue_length",
            "gauge",
            "Connections waiting in the kernel accept queue.",
            per_listener(&|l| l.queue_len.to_string()),
        );
        metric("listen_queue_max", "gauge", "Effective listen backlog.", per_listener(&|l| l.queue_max.to_string()));
        metric(
            "kernel_listen_overflows_total",
            "counter",
            "ListenOverflows since start (system-wide).",
            one(self.kernel_listen_overflows.to_string()),
        );
        metric(
            "kernel_listen_drops_total",
            "counter",
            "ListenDrops since start (system-wide).",
            one(self.kernel_listen_drops.to_string()),
        );
        metric(
            "worker_connections_total",
            "counter",
            "Connections registered with the worker.",
            per_worker(&|w| w.connections.to_string()),
        );
        metric(
            "worker_requests_total",
            "counter",
            "Requests framed by the worker.",
            per_worker(&|w| w.requests.to_string()),
        );
        metric("worker_tasks_total", "counter", "Connection turns run.", per_worker(&|w| w.tasks.to_string()));
        metric("worker_stolen_total", "counter", "Tasks stolen from siblings.", per_worker(&|w| w.stolen.to_string()));
        metric(
            "worker_steal_operations_total",
            "counter",
            "Successful steal operations.",
            per_worker(&|w| w.steal_ops.to_string()),
        );
        metric("worker_parks_total", "counter", "Times the worker parked.", per_worker(&|w| w.parks.to_string()));
        metric(
            "worker_busy_seconds_total",
            "counter",
            "Time the worker was not parked.",
            per_worker(&|w| format!("{:.6}", w.busy.as_secs_f64())),
        );
        metric(
            "worker_queue_depth",
            "gauge",
            "Tasks waiting in the worker's deque and inbox.",
            per_worker(&|w| w.depth.to_string()),
        );
        metric("cpu_threads", "gauge", "CPU-pool threads.", one(self.cpu.threads.to_string()));
        metric("cpu_queued", "gauge", "Heavy jobs waiting.", one(self.cpu.queued.to_string()));
        metric("cpu_jobs_total", "counter", "Heavy jobs run.", one(self.cpu.run.to_string()));
        metric("cpu_shed_total", "counter", "Heavy requests refused by CoDel.", one(self.cpu.shed.to_string()));
        metric(
            "cpu_queue_min_delay_seconds",
            "gauge",
            "CoDel: the last interval's minimum queueing delay.",
            one(format!("{:.6}", self.cpu.min_delay_us as f64 / 1e6)),
        );
        metric(
            "cpu_queue_overloaded",
            "gauge",
            "CoDel: 1 while the queue counts as overloaded.",
            one(u8::from(self.cpu.overloaded).to_string()),
        );
        metric(
            "cpu_lifo_active",
            "gauge",
            "Adaptive LIFO: 1 while jobs wait on its stack.",
            one(u8::from(self.cpu.lifo).to_string()),
        );
        metric(
            "cpu_lifo_served_total",
            "counter",
            "Adaptive LIFO: jobs served newest first.",
            one(self.cpu.lifo_served.to_string()),
        );
        metric(
            "cpu_stolen_total",
            "counter",
            "Heavy jobs stolen between CPU threads.",
            one(self.cpu.stolen.to_string()),
        );
        metric("open_connections", "gauge", "Served connections open now.", one(self.open_connections.to_string()));
        metric(
            "connections_closed_total",
            "counter",
            "Served connections closed.",
            one(self.connections_closed.to_string()),
        );
        metric(
            "connections_timed_out_total",
            "counter",
            "Connections closed by the header or idle timeout.",
            one(self.connections_timed_out.to_string()),
        );
        metric("replies_total", "counter", "Replies written.", one(self.replies.to_string()));
        metric(
            "requests_aborted_total",
            "counter",
            "Requests whose connection closed before the reply.",
            one(self.requests_aborted.to_string()),
        );
        metric(
            "requests_rejected_total",
            "counter",
            "Bad or oversized inputs refused.",
            one(self.requests_rejected.to_string()),
        );
        metric("handler_panics_total", "counter", "Handler panics caught.", one(self.handler_panics.to_string()));
        metric(
            "handler_failures_total",
            "counter",
            "Requests answered with the error reply.",
            one(self.handler_failures.to_string()),
        );
        metric(
            "replies_timed_out_total",
            "counter",
            "Requests answered by the engine because the handler missed reply_timeout.",
            one(self.replies_timed_out.to_string()),
        );
        metric(
            "handoff_queued",
            "gauge",
            "Accepted connections waiting for the host.",
            one(self.handoff_queued.to_string()),
        );
        for (class, l) in [("light", &self.latency_light), ("heavy", &self.latency_heavy)] {
            let rows = [("0.5", l.p50), ("0.9", l.p90), ("0.99", l.p99), ("0.999", l.p999)]
                .iter()
                .map(|(q, v)| (format!("{{cost=\"{class}\",quantile=\"{q}\"}}"), format!("{:.6}", *v as f64 / 1e6)))
                .chain(std::iter::once((format!("_count{{cost=\"{class}\"}}"), l.count.to_string())))
                .collect();
            metric(&format!("request_latency_seconds_{class}"), "summary", "Framing to reply queued.", rows);
        }
        o
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("valid histogram bounds")
}
