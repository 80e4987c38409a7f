//! Small synchronisation helpers.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Locks a mutex, ignoring poisoning: every handler call is wrapped in `catch_unwind`
/// outside our locks, so a poisoned lock only means a panic happened elsewhere while it
/// was held, and the data it guards is still consistent for our uses.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The instant `d` from now; `None` when it is past what an `Instant` holds, which the
/// callers read as "no deadline" (so `Duration::MAX` waits without limit, never panics).
pub(crate) fn deadline_in(d: std::time::Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// Counts live threads so that shutdown can wait for them with a deadline (a thread
/// stuck in a handler that never returns is left behind rather than hanging shutdown).
#[derive(Default)]
pub(crate) struct ThreadSet {
    alive: Mutex<usize>,
    cv: Condvar,
}

/// Held by a thread for its whole life; dropping it (even while unwinding) counts the
/// thread out.
pub(crate) struct ThreadGuard(Arc<ThreadSet>);

impl ThreadSet {
    pub fn enter(self: &Arc<ThreadSet>) -> ThreadGuard {
        *lock(&self.alive) += 1;
        ThreadGuard(Arc::clone(self))
    }

    /// Waits until no thread is alive, or `deadline` (`None`: no deadline). True if
    /// all exited.
    pub fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut alive = lock(&self.alive);
        while *alive > 0 {
            alive = match deadline {
                None => self.cv.wait(alive).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.cv.wait_timeout(alive, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
        true
    }
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        let mut alive = lock(&self.0.alive);
        *alive -= 1;
        if *alive == 0 {
            self.0.cv.notify_all();
        }
    }
}

/// The primitives the `loom` models cover (`crate::conn::task`, the host queue, the CPU
/// pool's fair queue): std's in every build, loom's under `--cfg loom` (`make loom`),
/// so the models check the code that ships.
pub(crate) mod model {
    #[cfg(loom)]
    pub(crate) use loom::sync::{
        atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Mutex, MutexGuard,
    };
    #[cfg(not(loom))]
    pub(crate) use std::sync::{
        atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering},
        Mutex, MutexGuard,
    };

    /// Locks, ignoring poisoning (see [`super::lock`]).
    pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
}
