//! The task state of a connection: one thread at a time runs it, and no wake-up is
//! lost (`IDLE → SCHEDULED → RUNNING → IDLE`; a wake-up that arrives while it runs sets
//! `NOTIFIED`, and the runner looks again instead of going idle).

use crate::sync::model::{AtomicU8, Ordering::*};

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 4;
const CLOSED: u8 = 8;

pub(crate) struct TaskState {
    state: AtomicU8,
    /// Readiness bits set by whoever saw an event, taken by the runner.
    ready: AtomicU8,
}

impl TaskState {
    /// `scheduled`: the creator queues the task itself, with `ready` already seen.
    pub fn new(scheduled: bool, ready: u8) -> TaskState {
        TaskState { state: AtomicU8::new(if scheduled { SCHEDULED } else { IDLE }), ready: AtomicU8::new(ready) }
    }

    /// Records readiness. Both this and [`TaskState::take`] read and write: whichever
    /// comes second sees the first, so either the runner sees the bits or the waker,
    /// in its `try_schedule` that follows, sees the runner running (a store followed
    /// by a load on each side would let both miss each other).
    pub fn mark(&self, bits: u8) {
        self.ready.fetch_or(bits, AcqRel);
    }

    /// Takes the readiness recorded so far.
    pub fn take(&self) -> u8 {
        self.ready.swap(0, AcqRel)
    }

    /// A wake-up. True if the caller must queue the task; false if it is already
    /// queued, running (it will look again), or closed.
    pub fn try_schedule(&self) -> bool {
        let mut s = self.state.load(Acquire);
        loop {
            let next = if s & CLOSED != 0 {
                return false;
            } else if s & RUNNING != 0 {
                if s & NOTIFIED != 0 {
                    return false;
                }
                s | NOTIFIED
            } else if s & SCHEDULED != 0 {
                return false;
            } else {
                SCHEDULED
            };
            match self.state.compare_exchange_weak(s, next, AcqRel, Acquire) {
                Ok(_) => return next == SCHEDULED,
                Err(now) => s = now,
            }
        }
    }

    /// The runner took the task from a queue (so it was `SCHEDULED`).
    pub fn start(&self) {
        self.state.store(RUNNING, Release);
    }

    /// The runner found nothing more to do. True if the task is now idle; false if a
    /// wake-up came while it ran: it is running again and must look again.
    pub fn try_idle(&self) -> bool {
        if self.state.compare_exchange(RUNNING, IDLE, AcqRel, Acquire).is_ok() {
            return true;
        }
        self.state.store(RUNNING, Release);
        false
    }

    /// The runner yields with work left: the task goes back to a queue.
    pub fn requeue(&self) {
        self.state.store(SCHEDULED, Release);
    }

    pub fn close(&self) {
        self.state.store(CLOSED, Release);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::sync::Arc;

    /// A runner and a waker race: the waker's readiness is seen by the runner (now, or
    /// in a run the waker queues), and the task is never queued twice at once.
    #[test]
    fn no_wake_up_is_lost_and_the_task_is_queued_once() {
        loom::model(|| {
            let task = Arc::new(TaskState::new(true, 0));
            let queued = Arc::new(AtomicUsize::new(1)); // the creator queued it
            let waker = {
                let (task, queued) = (Arc::clone(&task), Arc::clone(&queued));
                loom::thread::spawn(move || {
                    task.mark(1);
                    if task.try_schedule() {
                        assert_eq!(queued.fetch_add(1, AcqRel), 0, "queued while already queued");
                    }
                })
            };
            let mut seen = 0;
            let run = |seen: &mut u8| {
                task.start();
                loop {
                    *seen |= task.take();
                    if task.try_idle() {
                        break;
                    }
                }
            };
            while queued.load(Acquire) > 0 {
                queued.fetch_sub(1, AcqRel);
                run(&mut seen);
            }
            waker.join().unwrap();
            while queued.load(Acquire) > 0 {
                queued.fetch_sub(1, AcqRel);
                run(&mut seen);
            }
            assert_eq!(seen, 1, "the readiness was seen by a run");
        });
    }
}
