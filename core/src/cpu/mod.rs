//! The CPU pool: threads for heavy requests, apart from the I/O workers so that the OS
//! preempts between light and heavy work and I/O stays responsive.
//!
//! Jobs are submitted to an `Injector`; each thread takes batches into its own FIFO
//! deque and idle threads steal from siblings. A job that names its client (an engine's
//! heavy request) goes instead, when the engine shares fairly, to a queue served by
//! deficit round robin over clients ([`crate::fair::drr`]), one job at a time: each is
//! charged its run time, so a client that queues many heavy requests gets the CPU time
//! of one that queues a single request while others wait. Heavy jobs are long (their
//! point is to take more than a few microseconds), so one lock per job costs nothing
//! measurable, and a single queue that every thread takes from needs no stealing. Threads park on a condvar slot each;
//! wake-ups follow [`crate::sched::idle`] (one at a time, only when nobody searches).
//! On stop, threads finish the queued jobs, then exit. Under overload two policies may
//! act on the queue: adaptive LIFO ([`crate::cpu::lifo`]) and CoDel ([`crate::cpu::codel`]).
//!
//! This folder is the CPU pool: this file (threads, queue, stealing), `fair` (the
//! clients' queue), `codel` (shedding a standing queue) and `lifo` (newest first above
//! a fill threshold). The pool knows
//! nothing of connections: an engine marks its threads through `Policy::on_start`.
//!
//! Invariants: every job submitted runs exactly once, or is refused by CoDel at dequeue
//! (its reply says 503); a thread parks only when no queue has work.

pub(crate) mod codel;
pub(crate) mod fair;
pub(crate) mod lifo;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::cpu::codel::Codel;
use crate::cpu::fair::FairJobs;
use crate::cpu::lifo::Lifo;
use crate::fair::ClientKey;

use crossbeam_deque::{Injector, Stealer, Worker};

use crate::sched::idle::Idle;
use crate::sched::steal::{self, Rng, Sibling};
use crate::sync::{lock, ThreadSet};

/// A job and when it was queued. `work(shed)` runs it, or, when CoDel sheds it,
/// refuses it (a job that cannot be refused ignores `shed` and runs).
pub(crate) struct Job {
    work: Box<dyn FnOnce(bool) + Send + 'static>,
    enqueued: Instant,
    /// Whose request this is, for a fair share of the pool.
    client: Option<ClientKey>,
}

impl Job {
    pub fn new(work: impl FnOnce(bool) + Send + 'static) -> Job {
        Job { work: Box::new(work), enqueued: Instant::now(), client: None }
    }

    /// A job run on behalf of `client`: shares the pool fairly with other clients'.
    pub fn for_client(client: ClientKey, work: impl FnOnce(bool) + Send + 'static) -> Job {
        Job { client: Some(client), ..Job::new(work) }
    }
}

#[derive(Default)]
struct Parker {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    fn unpark(&self) {
        *lock(&self.woken) = true;
        self.cv.notify_one();
    }
    fn park(&self) {
        let mut w = lock(&self.woken);
        while !*w {
            w = self.cv.wait(w).unwrap_or_else(|e| e.into_inner());
        }
        *w = false;
    }
}

#[derive(Default)]
pub(crate) struct CpuCounters {
    pub shed: AtomicU64,
    pub submitted: AtomicU64,
    pub run: AtomicU64,
    pub stolen: AtomicU64,
    pub panics: AtomicU64,
}

/// A CPU thread as a steal target: its deque; submissions all go to the shared
/// injector, so there is no per-thread inbox (an empty one stands in).
struct CpuSibling {
    deque: Stealer<Job>,
    no_inbox: Injector<Job>,
}

impl Sibling<Job> for CpuSibling {
    fn deque(&self) -> &Stealer<Job> {
        &self.deque
    }
    fn inbox(&self) -> &Injector<Job> {
        &self.no_inbox
    }
}

struct Inner {
    injector: Injector<Job>,
    siblings: Vec<CpuSibling>,
    parkers: Vec<Parker>,
    idle: Idle,
    stop: AtomicBool,
    counters: CpuCounters,
    codel: Option<Codel>,
    lifo: Option<Lifo<Job>>,
    fair: Option<FairJobs<Job>>,
}

pub(crate) struct CpuPool {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// How a pool treats its queue and its jobs' replies.
#[derive(Default)]
pub(crate) struct Policy {
    pub codel: Option<Codel>,
    /// Queued jobs at which adaptive LIFO starts (0: always FIFO).
    pub lifo_threshold: usize,
    /// Run on each pool thread as it starts. An engine's pool marks its threads as ones
    /// that write the replies they complete (`conn::mark_pool_thread`), so the pool
    /// itself knows nothing of connections; a host's own pool (the Python executor)
    /// passes none and never runs I/O.
    pub on_start: Option<fn()>,
    /// Jobs that name a client share the pool by deficit round robin over clients.
    pub fair: bool,
}

impl CpuPool {
    pub fn start(threads: usize, name: &str, live: &Arc<ThreadSet>, policy: Policy) -> std::io::Result<CpuPool> {
        let Policy { codel, lifo_threshold, on_start, fair } = policy;
        let locals: Vec<Worker<Job>> = (0..threads).map(|_| Worker::new_fifo()).collect();
        let inner = Arc::new(Inner {
            injector: Injector::new(),
            siblings: locals.iter().map(|w| CpuSibling { deque: w.stealer(), no_inbox: Injector::new() }).collect(),
            parkers: (0..threads).map(|_| Parker::default()).collect(),
            idle: Idle::new(threads),
            stop: AtomicBool::new(false),
            counters: CpuCounters::default(),
            codel,
            lifo: (lifo_threshold > 0).then(|| Lifo::new(lifo_threshold)),
            fair: fair.then(FairJobs::new),
        });
        let mut handles = Vec::with_capacity(threads);
        for (i, local) in locals.into_iter().enumerate() {
            let inner = Arc::clone(&inner);
            let guard = live.enter();
            handles.push(std::thread::Builder::new().name(format!("{name}-cpu-{i}")).spawn(move || {
                let _guard = guard;
                if let Some(start) = on_start {
                    start();
                }
                run(&inner, i, local)
            })?);
        }
        Ok(CpuPool { inner, threads: Mutex::new(handles) })
    }

    pub fn submit(&self, job: Job) {
        let inner = &self.inner;
        inner.counters.submitted.fetch_add(1, Relaxed);
        let job = match &inner.lifo {
            Some(l) => l.offer(job, inner.fifo_queued()).err(),
            None => Some(job),
        };
        match (job, &inner.fair) {
            (Some(job @ Job { client: Some(key), .. }), Some(fair)) => fair.push(key, job),
            (Some(job), _) => inner.injector.push(job),
            (None, _) => {}
        }
        if let Some(i) = inner.idle.notify_one() {
            inner.parkers[i].unpark();
        }
    }

    pub fn threads(&self) -> usize {
        self.inner.parkers.len()
    }

    pub fn counters(&self) -> &CpuCounters {
        &self.inner.counters
    }

    /// CoDel's view: the last interval's minimum queueing delay and whether the queue
    /// counts as overloaded (None when CoDel is off).
    pub fn codel(&self) -> Option<(u64, bool)> {
        self.inner.codel.as_ref().map(|c| (c.min_delay_us.load(Relaxed), c.overloaded.load(Relaxed)))
    }

    /// Jobs waiting (not yet started).
    pub fn queued(&self) -> usize {
        self.inner.fifo_queued() + self.inner.lifo.as_ref().map_or(0, |l| l.len())
    }

    /// Adaptive LIFO's view: whether jobs wait on its stack now, and how many it served
    /// (None when it is off).
    pub fn lifo(&self) -> Option<(bool, u64)> {
        self.inner.lifo.as_ref().map(|l| (l.len() > 0, l.served.load(Relaxed)))
    }

    /// Asks threads to exit once the queue is empty, and hands back their handles.
    pub fn stop(&self) -> Vec<JoinHandle<()>> {
        self.inner.stop.store(true, SeqCst);
        for p in &self.inner.parkers {
            p.unpark();
        }
        std::mem::take(&mut *lock(&self.threads))
    }
}

impl Inner {
    /// Jobs waiting in the FIFO part: the injector, the threads' deques and the fair
    /// queue.
    fn fifo_queued(&self) -> usize {
        self.injector.len() + self.siblings.iter().map(|s| s.deque.len()).sum::<usize>() + self.fair_queued()
    }

    fn fair_queued(&self) -> usize {
        self.fair.as_ref().map_or(0, FairJobs::len)
    }

    fn lifo_waiting(&self) -> bool {
        self.lifo.as_ref().is_some_and(|l| l.len() > 0)
    }
}

fn run(inner: &Inner, i: usize, local: Worker<Job>) {
    let rng = Rng::new(i as u64 + 101);
    let mut searching = false;
    loop {
        let newest = inner.lifo.as_ref().and_then(Lifo::take);
        let mut taken = None;
        let job = newest
            .or_else(|| local.pop())
            .or_else(|| {
                let (key, job, est) = inner.fair.as_ref()?.pop()?;
                taken = Some((key, est));
                Some(job)
            })
            .or_else(|| steal::from_injector(&inner.injector, &local))
            .or_else(|| {
                if !searching && !inner.idle.try_start_searching() {
                    return None;
                }
                searching = true;
                steal::from_siblings(&inner.siblings, i, &local, &rng).map(|s| {
                    inner.counters.stolen.fetch_add(s.moved as u64, Relaxed);
                    s.task
                })
            });
        match job {
            Some(job) => {
                if searching {
                    searching = false;
                    if inner.idle.stop_searching() {
                        if let Some(k) = inner.idle.notify_one() {
                            inner.parkers[k].unpark();
                        }
                    }
                }
                let shed = inner.codel.as_ref().is_some_and(|c| {
                    let over = inner.lifo.as_ref().is_some_and(|l| l.over(inner.fifo_queued()));
                    c.shed(job.enqueued.elapsed(), over)
                });
                if shed {
                    inner.counters.shed.fetch_add(1, Relaxed);
                }
                let work = job.work;
                let started = Instant::now();
                if catch_unwind(AssertUnwindSafe(move || work(shed))).is_err() {
                    inner.counters.panics.fetch_add(1, Relaxed);
                }
                if let (Some((key, est)), Some(fair)) = (taken, &inner.fair) {
                    fair.ran(key, est, started.elapsed().as_micros() as u64);
                }
                inner.counters.run.fetch_add(1, Relaxed);
            }
            None => {
                if inner.stop.load(SeqCst)
                    && inner.injector.is_empty()
                    && !inner.lifo_waiting()
                    && inner.fair_queued() == 0
                {
                    return;
                }
                inner.idle.park(i, std::mem::take(&mut searching));
                let work = !inner.injector.is_empty()
                    || inner.fair_queued() > 0
                    || inner.lifo_waiting()
                    || inner.siblings.iter().any(|s| !s.deque.is_empty());
                if work || inner.stop.load(SeqCst) {
                    if !inner.idle.unpark_self(i) {
                        searching = true;
                    }
                    continue;
                }
                inner.parkers[i].park();
                if !inner.idle.unpark_self(i) {
                    searching = true;
                }
            }
        }
    }
}

/// A work-stealing thread pool for CPU-heavy jobs, the same one that runs an engine's
/// heavy requests, usable on its own (the Python front builds its
/// `concurrent.futures.Executor` on it). Jobs run in roughly submission order; idle
/// threads steal from busy ones. A job that panics is counted and the thread lives on.
pub struct Pool {
    inner: CpuPool,
    live: Arc<ThreadSet>,
    stopped: AtomicBool,
}

impl Pool {
    /// Starts `threads` threads (at least one).
    pub fn new(threads: usize) -> crate::Result<Pool> {
        let live = Arc::new(ThreadSet::default());
        let inner = CpuPool::start(threads.max(1), "corral-pool", &live, Policy::default())
            .map_err(|e| crate::Error::io(crate::ErrorKind::Io, "cannot start the pool's threads", e))?;
        Ok(Pool { inner, live, stopped: AtomicBool::new(false) })
    }

    /// Queues a job. Refused (the job is dropped, returned `false`) once shut down.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> bool {
        if self.stopped.load(SeqCst) {
            return false;
        }
        self.inner.submit(Job::new(move |_| job()));
        true
    }

    pub fn threads(&self) -> usize {
        self.inner.threads()
    }

    /// Jobs queued and not started.
    pub fn queued(&self) -> usize {
        self.inner.queued()
    }

    /// Stops taking jobs; the threads finish what is queued, then exit. With
    /// `wait = Some(d)`, waits up to `d` for them; returns whether they all exited.
    pub fn shutdown(&self, wait: Option<std::time::Duration>) -> bool {
        self.stopped.store(true, SeqCst);
        let handles = self.inner.stop();
        match wait {
            Some(d) => {
                let done = self.live.wait(crate::sync::deadline_in(d));
                if done {
                    for h in handles {
                        let _ = h.join();
                    }
                }
                done
            }
            None => false,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if !self.stopped.load(SeqCst) {
            self.shutdown(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn runs_every_job_and_stops() {
        let pool = CpuPool::start(3, "t", &Default::default(), Policy::default()).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..1000 {
            let tx = tx.clone();
            pool.submit(Job::new(move |_| tx.send(i).unwrap()));
        }
        let mut got: Vec<i32> = (0..1000).map(|_| rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        for h in pool.stop() {
            h.join().unwrap();
        }
        assert_eq!(pool.counters().run.load(Relaxed), 1000);
    }

    #[test]
    fn a_panicking_job_is_counted_and_the_thread_lives() {
        let pool = CpuPool::start(1, "t", &Default::default(), Policy::default()).unwrap();
        pool.submit(Job::new(|_| panic!("boom (expected in this test)")));
        let (tx, rx) = mpsc::channel();
        pool.submit(Job::new(move |_| tx.send(()).unwrap()));
        rx.recv().unwrap();
        assert_eq!(pool.counters().panics.load(Relaxed), 1);
        for h in pool.stop() {
            h.join().unwrap();
        }
    }
}
