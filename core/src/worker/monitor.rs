//! The stall monitor (after Go's sysmon): a small thread that notices an I/O worker
//! stuck in one task and wakes a parked sibling to take over its ready connections.
//!
//! A worker blocked in a long handler cannot poll its epoll. Its siblings take over
//! what it reported (deques, inboxes) by stealing, and a searching sibling also polls a
//! stalled worker's epoll (see `worker.rs`). But a sibling that parked before the stall
//! began sleeps until its own next event; this thread wakes one. It checks every
//! [`MIN_PERIOD`] while something is running and backs off to [`MAX_PERIOD`] while
//! nothing is, so an idle engine costs a few dozen cheap wake-ups a second.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::Shared;

const MIN_PERIOD: Duration = Duration::from_millis(2);
const MAX_PERIOD: Duration = Duration::from_millis(32);

pub(crate) fn run(engine: Arc<Shared>) {
    let mut period = MIN_PERIOD;
    while engine.wait_while_running(period) {
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
}
