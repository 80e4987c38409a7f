//! The CPU pool's fair queue: jobs that name their client, served by deficit round
//! robin over clients ([`crate::fair::drr`]) and charged their run time.
//!
//! A job's run time is known only once it ran, so a taken job is charged the running
//! mean of jobs' run times, and the difference is charged when it finishes. Every pool
//! thread takes from this one queue under its lock: heavy jobs run for many
//! microseconds, so the lock costs nothing measurable, and one queue needs no stealing
//! to stay balanced (the lock is what keeps the shares exact across threads).
//!
//! Invariants: `queued` equals the queue's length whenever the lock is free (both move
//! under the lock); every pushed job is taken exactly once.

use crate::fair::drr::Drr;
use crate::fair::ClientKey;
use crate::sync::model::{lock, AtomicU64, AtomicUsize, Mutex, Ordering::*};

/// What one visit of deficit round robin gives a client, in microseconds of run time:
/// about one typical heavy request.
pub(crate) const CPU_QUANTUM_US: u64 = 1000;

pub(crate) struct FairJobs<T> {
    drr: Mutex<Drr<T>>,
    /// Jobs in `drr`, readable without the lock (parking checks it).
    queued: AtomicUsize,
    /// The running mean of a job's run time, in microseconds.
    mean_us: AtomicU64,
}

impl<T> FairJobs<T> {
    pub fn new() -> FairJobs<T> {
        FairJobs {
            drr: Mutex::new(Drr::new(CPU_QUANTUM_US)),
            queued: AtomicUsize::new(0),
            mean_us: AtomicU64::new(CPU_QUANTUM_US),
        }
    }

    pub fn push(&self, client: ClientKey, job: T) {
        let mut drr = lock(&self.drr);
        drr.push(client, job);
        self.queued.store(drr.len(), SeqCst);
    }

    /// The next job in fair order, its client, and what it was charged (pass both to
    /// [`FairJobs::ran`] once it has run).
    pub fn pop(&self) -> Option<(ClientKey, T, u64)> {
        if self.queued.load(SeqCst) == 0 {
            return None;
        }
        let est = self.mean_us.load(Relaxed);
        let mut drr = lock(&self.drr);
        let (key, job) = drr.pop(est)?;
        self.queued.store(drr.len(), SeqCst);
        Some((key, job, est))
    }

    /// The job taken for `key`, charged `est`, ran `us`: charge the difference, and
    /// learn the mean (weighted 1/8 to the newest, as TCP's smoothed round-trip time).
    pub fn ran(&self, key: ClientKey, est: u64, us: u64) {
        lock(&self.drr).charge(key, us as i64 - est as i64);
        let mean = self.mean_us.load(Relaxed);
        self.mean_us.store((mean * 7 + us) / 8, Relaxed);
    }

    /// Jobs waiting.
    pub fn len(&self) -> usize {
        self.queued.load(SeqCst)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Client 1 queues 64 jobs of 2 ms, then clients 2..=4 one job each: each of those
    /// runs after at most one more of client 1's, not after all 64 (first in, first
    /// out would make them wait 128 ms on one thread).
    #[test]
    fn a_single_job_waits_for_one_quantum_not_for_a_greedy_queue() {
        let q = FairJobs::new();
        for i in 0..64 {
            q.push(1, (1, i));
        }
        let (key, first, est) = q.pop().unwrap();
        assert_eq!(first, (1, 0));
        for c in 2..=4 {
            q.push(c, (c, 0));
        }
        q.ran(key, est, 2000);
        let order: Vec<u64> = std::iter::from_fn(|| {
            let (k, _, est) = q.pop()?;
            q.ran(k, est, 2000);
            Some(k)
        })
        .take(6)
        .collect();
        let polite_at: Vec<usize> = (2..=4).map(|c| order.iter().position(|&k| k == c).unwrap()).collect();
        assert!(polite_at.iter().all(|&p| p <= 4), "order of service: {order:?}");
        assert_eq!(q.len(), 64 - 1 - 6 + 3);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    /// Two pool threads take while a submitter pushes two clients' jobs: every job is
    /// taken exactly once, and the lock-free count never says a job waits when none
    /// does or the other way round once all is done.
    #[test]
    fn every_job_is_taken_once_and_the_count_holds() {
        loom::model(|| {
            let q = Arc::new(FairJobs::new());
            let submitter = {
                let q = Arc::clone(&q);
                loom::thread::spawn(move || {
                    q.push(1, 10u32);
                    q.push(2, 20u32);
                    q.push(1, 11u32);
                })
            };
            let taker = |q: Arc<FairJobs<u32>>| {
                loom::thread::spawn(move || {
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        if let Some((k, job, est)) = q.pop() {
                            assert_eq!(u64::from(job / 10), k, "a job comes out under its own client");
                            q.ran(k, est, 5);
                            got.push(job);
                        }
                    }
                    got
                })
            };
            let a = taker(Arc::clone(&q));
            submitter.join().unwrap();
            let mut got = a.join().unwrap();
            while let Some((_, job, _)) = q.pop() {
                got.push(job);
            }
            got.sort();
            assert_eq!(got, [10, 11, 20]);
            assert_eq!(q.len(), 0);
        });
    }
}
