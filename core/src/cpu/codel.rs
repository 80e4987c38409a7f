//! CoDel for the CPU-pool queue, as in folly's `Codel` (Maurer, "Fail at Scale"): the
//! queue counts as overloaded when the *minimum* time jobs waited over the last
//! interval exceeded the target — a standing queue, not a burst. While overloaded, a
//! job that waited more than twice the target is shed at dequeue (its request gets an
//! explicit refusal, HTTP 503) so that the ones served still meet their deadline.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::lock;

pub(crate) struct Codel {
    target: Duration,
    interval: Duration,
    state: Mutex<State>,
    /// Published for stats: the last interval's minimum delay, and the verdict.
    pub min_delay_us: AtomicU64,
    pub overloaded: AtomicBool,
}

struct State {
    interval_end: Instant,
    min_delay: Duration,
    overloaded: bool,
}

impl Codel {
    pub fn new(target: Duration, interval: Duration) -> Codel {
        Codel {
            target,
            interval,
            state: Mutex::new(State {
                interval_end: Instant::now() + interval,
                min_delay: Duration::MAX,
                overloaded: false,
            }),
            min_delay_us: AtomicU64::new(0),
            overloaded: AtomicBool::new(false),
        }
    }

    /// A job that waited `delay` is being dequeued: should it be shed? `queue_over` says
    /// the queue is over adaptive LIFO's threshold: overloaded whatever the interval's
    /// minimum says (with the newest served first, the minimum stays low while old jobs
    /// wait on).
    pub fn shed(&self, delay: Duration, queue_over: bool) -> bool {
        let now = Instant::now();
        let mut s = lock(&self.state);
        if now >= s.interval_end {
            // Judge the interval that ended by its minimum delay; start the next with
            // this job's delay.
            let min = if s.min_delay == Duration::MAX { delay } else { s.min_delay };
            s.overloaded = min > self.target;
            self.min_delay_us.store(min.as_micros() as u64, Relaxed);
            self.overloaded.store(s.overloaded, Relaxed);
            s.min_delay = delay;
            s.interval_end = now + self.interval;
        } else {
            s.min_delay = s.min_delay.min(delay);
        }
        (s.overloaded || queue_over) && delay > self.target * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_absorbed_a_standing_queue_is_shed() {
        let c = Codel::new(Duration::from_millis(5), Duration::from_millis(0));
        // Interval of zero: every call judges the previous one.
        assert!(!c.shed(Duration::from_millis(1), false), "short waits: fine");
        assert!(!c.shed(Duration::from_millis(50), false), "the previous minimum was 1 ms: not overloaded yet");
        assert!(c.shed(Duration::from_millis(50), false), "a standing 50 ms queue: shed waits over 10 ms");
        assert!(!c.shed(Duration::from_millis(8), false), "still overloaded, but 8 ms is under 2 x target");
        let fresh = Codel::new(Duration::from_millis(5), Duration::from_secs(60));
        assert!(!fresh.shed(Duration::from_millis(50), false), "no interval has ended: not judged overloaded");
        assert!(fresh.shed(Duration::from_millis(50), true), "but a queue over the LIFO threshold is");
        assert!(c.overloaded.load(Relaxed));
    }
}
