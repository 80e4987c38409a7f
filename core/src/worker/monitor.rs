//! The monitor: a small thread with two duties.
//!
//! **Stalls** (after Go's sysmon; stealing models with more than one worker): it
//! notices an I/O worker stuck in one task and wakes a parked sibling to take over its
//! ready connections. A worker blocked in a long handler cannot poll its epoll. Its
//! siblings take over what it reported (deques, inboxes) by stealing, and a searching
//! sibling also polls a stalled worker's epoll (see `worker.rs`). But a sibling that
//! parked before the stall began sleeps until its own next event; this thread wakes
//! one. It checks every [`MIN_PERIOD`] while something is running and backs off to
//! [`MAX_PERIOD`] while nothing is, so an idle engine costs a few dozen cheap wake-ups a
//! second.
//!
//! **SYN floods** (every engine whose start could read `/proc/net/netstat`): once a
//! second it reads that file (one read, a few tens of microseconds) and logs a line,
//! at most once per 10 s, while the kernel's SYN-cookie or SYN-queue-full counters
//! rise (`accept::synflood`). Without stall duty the thread wakes only for this.

use std::sync::Arc;
use std::time::Duration;

use crate::accept::synflood::{FloodWatch, READ_EVERY_MS};
use crate::engine::Shared;
use crate::sys;

const MIN_PERIOD: Duration = Duration::from_millis(2);
const MAX_PERIOD: Duration = Duration::from_millis(32);

/// Whether watching for stalls can help: only stealing workers take over a sibling's work.
fn watches_stalls(engine: &Shared) -> bool {
    engine.plan.steal && engine.workers.len() > 1
}

/// Whether the engine needs a monitor thread at all.
pub(crate) fn wanted(engine: &Shared) -> bool {
    watches_stalls(engine) || (engine.kernel_at_start.is_some() && !engine.listeners.is_empty())
}

pub(crate) fn run(engine: Arc<Shared>) {
    let stalls = watches_stalls(&engine);
    let mut flood = engine.kernel_at_start.filter(|_| !engine.listeners.is_empty()).map(|start| {
        let ports: Vec<u16> = engine.listeners.iter().map(|l| l.addr.port()).collect();
        FloodWatch::new(&ports, engine.now_ms(), start)
    });
    let idle = Duration::from_millis(READ_EVERY_MS);
    let mut period = if stalls { MIN_PERIOD } else { idle };
    while engine.wait_while_running(period) {
        if stalls {
            let now = engine.now_us();
            let mut busy = false;
            let mut stalled = false;
            for w in &engine.workers {
                busy |= w.is_busy();
                stalled |= w.is_stalled(now);
            }
            if stalled {
                engine.notify_one_worker();
            }
            period = if busy { MIN_PERIOD } else { (period * 2).min(MAX_PERIOD) };
        }
        if let Some(watch) = &mut flood {
            let now = engine.now_ms();
            if watch.due(now) {
                if let Some(line) =
                    sys::TcpExt::read().and_then(|c| watch.observe(now, c, || sys::sysctl("net.ipv4.tcp_syncookies")))
                {
                    eprintln!("corral: {line}");
                }
            }
        }
    }
}
