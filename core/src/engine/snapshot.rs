//! A [`Stats`] snapshot of a running engine: reads every room's counters through the
//! engine's shared state. It lives in the engine (not in `stats/`) because it is the
//! one reader of all of `Shared`; `stats/` keeps the snapshot types, the counters, the
//! metric table and the Prometheus text, and imports nothing of the engine.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use crate::engine::Shared;
use crate::stats::{new_hist, CpuStats, LatencyStats, ListenerStats, Stats, WorkerStats};
use crate::sys;

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
        // One read of /proc/net/netstat; no change reported when either end is unreadable.
        let kernel = match (sys::TcpExt::read(), s.kernel_at_start) {
            (Some(now), Some(start)) => now.since(&start),
            _ => sys::TcpExt::default(),
        };
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
            panics: p.counters().panics.load(Relaxed),
        });
        let c = &s.counters;
        Stats {
            uptime,
            backend: if s.io_uring { "io_uring" } else { "epoll" },
            backend_note: s.backend_note.clone(),
            listeners,
            kernel_listen_overflows: kernel.listen_overflows,
            kernel_listen_drops: kernel.listen_drops,
            kernel_syncookies_sent: kernel.syncookies_sent,
            kernel_syncookies_received: kernel.syncookies_recv,
            kernel_syncookies_failed: kernel.syncookies_failed,
            kernel_syn_queue_full_cookies: kernel.req_q_full_do_cookies,
            kernel_syn_queue_full_drops: kernel.req_q_full_drop,
            workers,
            cpu,
            open_connections: s.conn_gate.used(),
            connections_closed: c.connections_closed.load(Relaxed),
            connections_timed_out: c.timeouts.load(Relaxed),
            replies: c.replies.load(Relaxed),
            requests_aborted: c.requests_aborted.load(Relaxed),
            requests_rejected: c.rejected.load(Relaxed),
            handler_panics: c.handler_panics.load(Relaxed),
            handler_failures: c.handler_failures.load(Relaxed),
            replies_timed_out: c.reply_timeouts.load(Relaxed),
            connections_refused_per_ip: c.refused_per_ip.load(Relaxed),
            requests_rate_limited: c.rate_limited.load(Relaxed),
            proxy_untrusted: c.proxy_untrusted.load(Relaxed),
            proxy_bad_headers: c.proxy_bad_headers.load(Relaxed),
            body_bytes_in: c.body_bytes_in.load(Relaxed),
            bodies_streamed: c.bodies_streamed.load(Relaxed),
            bodies_too_large: c.bodies_too_large.load(Relaxed),
            bodies_too_slow: c.bodies_too_slow.load(Relaxed),
            handoff_queued: s.host.as_ref().map_or(0, |h| h.len()),
            ws: ws_stats(&c.ws),
            tls: tls_stats(&c.tls),
            latency_light: LatencyStats::of(&hist[0]),
            latency_heavy: LatencyStats::of(&hist[1]),
        }
    }
}

fn ws_stats(w: &crate::stats::WsCounters) -> crate::stats::WsStats {
    crate::stats::WsStats {
        opened: w.opened.load(Relaxed),
        closed: w.closed.load(Relaxed),
        messages_in: w.messages_in.load(Relaxed),
        messages_out: w.messages_out.load(Relaxed),
        bytes_in: w.bytes_in.load(Relaxed),
        bytes_out: w.bytes_out.load(Relaxed),
        dropped: w.dropped.load(Relaxed),
        failed: w.failed.load(Relaxed),
        abnormal: w.abnormal.load(Relaxed),
        refused: w.refused.load(Relaxed),
        deflate_raw: w.deflate_raw.load(Relaxed),
        deflate_sent: w.deflate_sent.load(Relaxed),
    }
}

fn tls_stats(t: &crate::stats::TlsCounters) -> crate::stats::TlsStats {
    crate::stats::TlsStats {
        handshakes: t.handshakes.load(Relaxed),
        handshake_failures: t.handshake_failures.load(Relaxed),
        failed: crate::stats::TlsFailures::from_counts(t.failed_by.each_ref().map(|c| c.load(Relaxed))),
        resumed: t.resumed.load(Relaxed),
        handshaking: t.handshaking.load(Relaxed),
        pool_flights: t.pool_flights.load(Relaxed),
        handshake_time: LatencyStats::of(&crate::sync::lock(&t.handshake_us.0)),
    }
}
