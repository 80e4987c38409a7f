//! The kernel's SYN-cookie and SYN-queue counters reach the stats and every front's
//! metric view, and every engine — each model, handoff too — runs the monitor that
//! watches them for a flood. (The flood log line and the start-up warning are pure
//! functions, tested on values in `accept::synflood`: a real flood needs raw sockets
//! and a namespace of its own, which the lab's synflood scenario has.)

mod common;

use std::sync::Mutex;

use common::*;
use corral::os::TcpExt;
use corral::{Config, Engine, Model};

/// The tests here count this process's threads by name: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const NEW_METRICS: [&str; 5] = [
    "kernel_syncookies_sent",
    "kernel_syncookies_received",
    "kernel_syncookies_failed",
    "kernel_syn_queue_full_cookies",
    "kernel_syn_queue_full_drops",
];

/// This process's threads named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().trim() == name)
        .count()
}

/// Waits (up to the deadline) until this process has `n` threads named `name`: a new
/// thread names itself once it runs, and a joined one may linger a moment in /proc.
fn threads_become(name: &str, n: usize) -> usize {
    let start = std::time::Instant::now();
    loop {
        let now = threads_named(name);
        if now == n || start.elapsed() > DEADLINE {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn the_syn_counters_are_changes_since_start_in_stats_and_prometheus() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let before = TcpExt::read();
    let e = Engine::serve(Config::builder().io_workers(1).build().unwrap(), TestApp).unwrap();
    let st = e.stats();
    let after = TcpExt::read();
    let text = st.to_prometheus();
    let got = [
        st.kernel_syncookies_sent,
        st.kernel_syncookies_received,
        st.kernel_syncookies_failed,
        st.kernel_syn_queue_full_cookies,
        st.kernel_syn_queue_full_drops,
    ];
    for (name, v) in NEW_METRICS.iter().zip(got) {
        let m = corral::metrics::find(name).unwrap_or_else(|| panic!("{name} is in the metric table"));
        assert_eq!(m.total(&st), v as f64, "{name}");
        let line = format!("\n{} {v}\n", m.prometheus_name());
        assert!(text.contains(&line), "{line:?} in\n{text}");
    }
    // The namespace-wide counters moved at most this much while the engine lived.
    if let (Some(b), Some(a)) = (before, after) {
        let d = a.since(&b);
        let bound =
            [d.syncookies_sent, d.syncookies_recv, d.syncookies_failed, d.req_q_full_do_cookies, d.req_q_full_drop];
        for ((name, v), max) in NEW_METRICS.iter().zip(got).zip(bound) {
            assert!(v <= max, "{name}: {v} since the engine started, but the kernel's moved {max}");
        }
    }
    e.shutdown(DEADLINE).unwrap();
}

#[test]
fn every_engine_runs_one_monitor_and_it_ends_with_the_engine() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if TcpExt::read().is_none() {
        return; // no /proc/net/netstat: only stealing engines watch (for stalls)
    }
    assert_eq!(threads_become("corral-monitor", 0), 0);
    for model in Model::ALL {
        let mut b = Config::builder().model(model);
        if corral::options::find("io_workers").unwrap().in_model(model) {
            b = b.io_workers(2);
        }
        let e = Engine::serve(b.build().unwrap(), TestApp).unwrap();
        assert_eq!(threads_become("corral-monitor", 1), 1, "{model:?}");
        e.shutdown(DEADLINE).unwrap();
        assert_eq!(threads_become("corral-monitor", 0), 0, "{model:?}: the monitor ended with its engine");
    }
    let e = Engine::handoff(Config::builder().build().unwrap()).unwrap();
    assert_eq!(threads_become("corral-monitor", 1), 1, "handoff");
    e.shutdown(DEADLINE).unwrap();
    assert_eq!(threads_become("corral-monitor", 0), 0, "handoff");
}
