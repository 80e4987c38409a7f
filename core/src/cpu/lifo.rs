//! Adaptive LIFO for the CPU-pool queue ("Fail at Scale", Maurer 2015): while the queue
//! is short, jobs run first in, first out; once it holds `threshold` jobs or more, new
//! jobs go on a stack that is served first, newest first. Under overload the requests
//! that are served are then the fresh ones, whose clients are still waiting, rather
//! than the oldest, whose clients may have given up; the old ones wait behind and, with
//! CoDel on, are refused at dequeue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Mutex;

use crate::sync::lock;

pub(crate) struct Lifo<T> {
    threshold: usize,
    stack: Mutex<Vec<T>>,
    len: AtomicUsize,
    /// Jobs served from the stack.
    pub served: AtomicU64,
}

impl<T> Lifo<T> {
    /// `threshold`: queued jobs at which new ones go on the stack (at least 1).
    pub fn new(threshold: usize) -> Lifo<T> {
        Lifo {
            threshold: threshold.max(1),
            stack: Mutex::new(Vec::new()),
            len: AtomicUsize::new(0),
            served: AtomicU64::new(0),
        }
    }

    /// Takes `job` onto the stack if `queued` (jobs waiting elsewhere) is at the
    /// threshold or above; otherwise gives it back for the FIFO queue.
    pub fn offer(&self, job: T, queued: usize) -> Result<(), T> {
        if !self.over(queued) {
            return Err(job);
        }
        let mut s = lock(&self.stack);
        s.push(job);
        self.len.store(s.len(), Release);
        Ok(())
    }

    /// The newest job on the stack.
    pub fn take(&self) -> Option<T> {
        if self.len.load(Acquire) == 0 {
            return None;
        }
        let mut s = lock(&self.stack);
        let job = s.pop();
        self.len.store(s.len(), Release);
        if job.is_some() {
            self.served.fetch_add(1, Relaxed);
        }
        job
    }

    /// Whether the queue (`fifo_queued` elsewhere, plus the stack) is at the threshold.
    pub fn over(&self, fifo_queued: usize) -> bool {
        fifo_queued + self.len() >= self.threshold
    }

    pub fn len(&self) -> usize {
        self.len.load(Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_below_the_threshold_newest_first_above_it() {
        let l = Lifo::new(3);
        assert_eq!(l.offer(1, 0), Err(1));
        assert_eq!(l.offer(2, 2), Err(2));
        assert_eq!(l.offer(3, 3), Ok(()));
        // Once the stack holds jobs it counts toward the fill.
        assert_eq!(l.offer(4, 2), Ok(()));
        assert_eq!(l.len(), 2);
        assert_eq!((l.take(), l.take(), l.take()), (Some(4), Some(3), None));
        assert_eq!(l.served.load(Relaxed), 2);
    }
}
