//! Acceptor threads: each waits on its listeners in its own epoll, accepts a bounded
//! batch per wake-up (`accept4`, non-blocking and close-on-exec, `TCP_NODELAY`), and
//! hands each connection to the engine's dispatch.
//!
//! Admission is a [`Gate`]: a counted resource (open connections, or host-queue slots
//! in handoff mode) reserved *before* each accept, with an optional accept-rate limit
//! (a token bucket). When it is full the acceptor stops accepting, the kernel backlog
//! absorbs new connections, and the acceptor sleeps on its control eventfd until a
//! release crosses back under the cap (or, when throttled, until the next token). Descriptor exhaustion
//! (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) pauses with exponential backoff (also ended
//! early by a release); it is counted and never spins.
//!
//! This folder is acceptance: `listen` (how sockets are laid out and bound),
//! this file (acceptors and the admission gate), `per_ip` (the per-source cap),
//! `handoff` (the host queue and its notify fd) and `synflood` (the start-up warning
//! about the host's SYN-flood settings and the log line while a flood is under way).
//!
//! Invariants: a gate slot is reserved before every `accept4` and released exactly once
//! (when the connection closes, or at once when it is refused); an acceptor never spins
//! (it sleeps on its control fd when the gate is full or descriptors run out); nothing
//! here reads a byte of a connection.

pub(crate) mod handoff;
pub(crate) mod handover;
pub(crate) mod listen;
pub(crate) mod per_ip;
pub(crate) mod preamble;
pub mod proxy;
pub(crate) mod synflood;

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::accept::listen::Listener;
use crate::sys::{self, Epoll, EventFd, Events, Interest};

const CTL_TOKEN: u64 = u64::MAX;
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// An accept-rate limit: a token bucket holding at most one second's worth.
struct Rate {
    per_sec: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl Rate {
    /// Takes a token, or says how long until one is there.
    fn take(&self) -> Result<(), Duration> {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.1).as_secs_f64() * self.per_sec;
        b.0 = (b.0 + refill).min(self.per_sec.max(1.0));
        b.1 = now;
        if b.0 >= 1.0 {
            b.0 -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.0) / self.per_sec))
        }
    }
}

/// A counted admission resource shared by all acceptors, with an optional accept-rate
/// limit.
pub(crate) struct Gate {
    used: AtomicUsize,
    max: usize,
    rate: Option<Rate>,
    /// Acceptors currently paused on this gate (or on descriptor exhaustion).
    waiters: AtomicUsize,
    wakers: Mutex<Vec<Arc<EventFd>>>,
}

impl Gate {
    pub fn new(max: usize) -> Gate {
        Gate {
            used: AtomicUsize::new(0),
            max,
            rate: None,
            waiters: AtomicUsize::new(0),
            wakers: Mutex::new(Vec::new()),
        }
    }

    /// Limits accepts to `per_sec` a second (bursts up to one second's worth); 0: none.
    pub fn with_rate(mut self, per_sec: u32) -> Gate {
        if per_sec > 0 {
            let full = f64::from(per_sec);
            self.rate = Some(Rate { per_sec: full, bucket: Mutex::new((full, Instant::now())) });
        }
        self
    }

    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    pub fn add_waker(&self, fd: Arc<EventFd>) {
        crate::sync::lock(&self.wakers).push(fd);
    }

    /// Takes one unit if one is free.
    pub fn try_reserve(&self) -> bool {
        self.used.fetch_update(SeqCst, Relaxed, |u| if u < self.max { Some(u + 1) } else { None }).is_ok()
    }

    /// Gives `n` units back, waking paused acceptors: descriptors or room are free now.
    pub fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.used.fetch_sub(n, SeqCst);
        // Pairs with the SeqCst increment of `waiters` in `pause`: either the acceptor
        // sees the released unit on its re-check, or we see it waiting here.
        if self.waiters.load(SeqCst) > 0 {
            self.wake_all();
        }
    }

    /// Gives back a unit this acceptor reserved and did not use, waking nobody: nothing
    /// was freed. (A wake-up here, when accept4 failed for want of descriptors, sent the
    /// other paused acceptors straight into the same failure, and each one's failure
    /// woke the others: two acceptors spun on EMFILE instead of backing off.)
    pub fn unreserve(&self) {
        self.used.fetch_sub(1, SeqCst);
    }

    pub fn wake_all(&self) {
        for w in crate::sync::lock(&self.wakers).iter() {
            w.notify();
        }
    }
}

/// What an accept pass ended with.
pub(crate) enum Outcome {
    /// Drained the listener (`EAGAIN`) or used up the batch.
    Done,
    /// The gate is full.
    Full,
    /// Out of descriptors or kernel memory.
    Starved,
    /// Over the accept-rate limit: the next token comes after this long.
    Throttled(Duration),
}

/// Most connections an acceptor takes from an inherited listener as it leaves.
const LAST_BATCH: usize = 4096;

/// Accepts up to `batch` connections from `l`, reserving a gate unit for each, and hands
/// each to `deliver`. Used by an acceptor on its own listeners, and by a worker taking
/// over the listeners of a stalled sibling.
pub(crate) fn accept_batch(
    l: &Listener,
    gate: &Gate,
    batch: usize,
    stop: &AtomicBool,
    deliver: &mut dyn FnMut(OwnedFd, SocketAddr),
) -> Outcome {
    if l.is_shared() {
        // Another process holding the socket may have made it blocking (Python's
        // `socket.dup()` and `settimeout` do): accept4 would then hang this thread.
        let _ = sys::ensure_nonblocking(l.fd());
    }
    for _ in 0..batch {
        if stop.load(Acquire) {
            return Outcome::Done;
        }
        if let Some(rate) = &gate.rate {
            if let Err(wait) = rate.take() {
                return Outcome::Throttled(wait);
            }
        }
        if !gate.try_reserve() {
            return Outcome::Full;
        }
        match sys::accept4(l.fd()) {
            Ok((fd, peer)) => {
                // TCP_NODELAY is inherited from the listening socket.
                l.counters.accepted();
                deliver(fd, peer);
            }
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(0);
                if let libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM = errno {
                    gate.unreserve();
                    l.counters.fd_exhausted.fetch_add(1, Relaxed);
                    return Outcome::Starved;
                }
                gate.release(1);
                match errno {
                    libc::EAGAIN => return Outcome::Done,
                    libc::EINVAL | libc::EBADF | libc::ENOTSOCK => {
                        if !stop.load(Acquire) {
                            // The socket stopped listening under us; back off rather than spin.
                            l.counters.errors.fetch_add(1, Relaxed);
                            return Outcome::Starved;
                        }
                        return Outcome::Done;
                    }
                    _ => {
                        // ECONNABORTED, EPROTO, EPERM (firewall), EINTR, ...: skip this one.
                        l.counters.errors.fetch_add(1, Relaxed);
                    }
                }
            }
        }
    }
    Outcome::Done
}

/// Accepts on a set of listeners, either from its own thread ([`Acceptor::run`]) or
/// driven by an I/O worker whose epoll holds the listeners.
pub(crate) struct Acceptor {
    pub index: usize,
    pub listeners: Vec<Arc<Listener>>,
    exclusive: bool,
    batch: usize,
    gate: Arc<Gate>,
    stop: Arc<AtomicBool>,
    /// Signalled when the gate frees up (and, on an acceptor thread, to stop it).
    pub waker: Arc<EventFd>,
    token_base: u64,
    armed: bool,
    /// Paused on the gate or on starvation (and counted among the gate's waiters).
    paused: bool,
    backoff: Duration,
    resume_at: Option<Instant>,
}

impl Acceptor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        listeners: Vec<Arc<Listener>>,
        exclusive: bool,
        batch: usize,
        gate: Arc<Gate>,
        stop: Arc<AtomicBool>,
        waker: Arc<EventFd>,
        token_base: u64,
    ) -> Acceptor {
        gate.add_waker(Arc::clone(&waker));
        Acceptor {
            index,
            listeners,
            exclusive,
            batch,
            gate,
            stop,
            waker,
            token_base,
            armed: false,
            paused: false,
            backoff: BACKOFF_MIN,
            resume_at: None,
        }
    }

    /// The listener a token stands for, if it is one of ours.
    pub fn listener_of(&self, token: u64) -> Option<usize> {
        let k = token.checked_sub(self.token_base)? as usize;
        (k < self.listeners.len()).then_some(k)
    }

    fn interest(&self) -> Interest {
        if self.exclusive {
            Interest::READ_EXCLUSIVE
        } else {
            Interest::READ_LEVEL
        }
    }

    /// Adds or removes the listeners in `ep`.
    pub fn arm(&mut self, ep: &Epoll, on: bool) {
        if self.armed == on {
            return;
        }
        self.armed = on;
        for (i, l) in self.listeners.iter().enumerate() {
            // EPOLLEXCLUSIVE registrations cannot be modified, so pausing removes them.
            let r = if on { ep.add(l.fd(), self.token_base + i as u64, self.interest()) } else { ep.delete(l.fd()) };
            if let Err(e) = r {
                if !self.stop.load(Relaxed) {
                    eprintln!("corral: acceptor {}: epoll on {}: {e}", self.index, l.addr);
                }
            }
        }
    }

    /// When a paused acceptor wants to be woken to retry (descriptor backoff).
    pub fn resume_at(&self) -> Option<Instant> {
        if self.paused {
            self.resume_at
        } else {
            None
        }
    }

    /// Listener `k` is readable: accept a batch; pause on a full gate or starvation.
    pub fn on_ready(&mut self, ep: &Epoll, k: usize, deliver: &mut dyn FnMut(OwnedFd, SocketAddr)) {
        if self.paused || !self.armed || self.stop.load(Acquire) {
            return;
        }
        let outcome = accept_batch(&self.listeners[k], &self.gate, self.batch, &self.stop, deliver);
        if let Outcome::Done = outcome {
            self.backoff = BACKOFF_MIN;
            return;
        }
        self.listeners[k].counters.pauses.fetch_add(1, Relaxed);
        self.arm(ep, false);
        self.paused = true;
        self.gate.waiters.fetch_add(1, SeqCst);
        if let Outcome::Throttled(wait) = outcome {
            self.listeners[k].counters.throttled.fetch_add(1, Relaxed);
            self.resume_at = Some(Instant::now() + wait);
        } else if let Outcome::Starved = outcome {
            self.resume_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        } else {
            self.resume_at = None;
            if self.gate.used() < self.gate.max {
                // A release raced with the pause: wake ourselves to re-check.
                self.waker.notify();
            }
        }
    }

    /// Woken (by a release, or the backoff timer): resume if paused and there is room.
    pub fn on_wake(&mut self, ep: &Epoll, woken: bool) {
        if !self.paused || self.stop.load(Acquire) {
            return;
        }
        let backoff_over = self.resume_at.is_some_and(|t| Instant::now() >= t);
        if (woken || backoff_over) && self.gate.used() < self.gate.max {
            self.paused = false;
            self.gate.waiters.fetch_sub(1, SeqCst);
            self.resume_at = None;
            self.arm(ep, true);
        }
    }

    /// Takes the listeners out of `ep` for good (shutdown), then
    /// [`Acceptor::take_last`].
    pub fn retire(&mut self, ep: &Epoll, deliver: &mut dyn FnMut(OwnedFd, SocketAddr)) {
        if self.paused {
            self.paused = false;
            self.gate.waiters.fetch_sub(1, SeqCst);
        }
        self.arm(ep, false);
        self.take_last(deliver);
    }

    /// Leaving for good, out of every epoll: accepts what waits on the inherited
    /// listeners. Another process serves those sockets too (a supervisor's next
    /// worker), and a wake-up the kernel already gave this one (`EPOLLEXCLUSIVE` wakes
    /// a single waiter) would leave with it: the connection would sit in the queue
    /// until another one arrived. What is taken here is served by the draining engine
    /// (answered with `connection: close`). Bound sockets need none of this: stopping
    /// them resets their queue.
    pub fn take_last(&mut self, deliver: &mut dyn FnMut(OwnedFd, SocketAddr)) {
        let go_on = AtomicBool::new(false);
        for l in self.listeners.iter().filter(|l| l.is_shared()) {
            let _ = accept_batch(l, &self.gate, LAST_BATCH, &go_on, deliver);
        }
    }

    /// An acceptor thread's loop; returns once the stop flag is set and the waker signalled.
    pub fn run(mut self, deliver: &mut dyn FnMut(usize, OwnedFd, SocketAddr)) {
        let ep = match Epoll::new() {
            Ok(ep) => ep,
            Err(e) => {
                eprintln!("corral: acceptor {} cannot create epoll: {e}", self.index);
                return;
            }
        };
        if let Err(e) = ep.add(self.waker.as_raw_fd(), CTL_TOKEN, Interest::READ_LEVEL) {
            eprintln!("corral: acceptor {} cannot watch its control fd: {e}", self.index);
            return;
        }
        let mut events = Events::with_capacity(self.listeners.len() + 1);
        self.arm(&ep, true);
        let index = self.index;
        while !self.stop.load(Acquire) {
            let timeout = self.resume_at().map(|t| t.saturating_duration_since(Instant::now()));
            if ep.wait(&mut events, timeout).is_err() {
                continue;
            }
            let mut woken = false;
            let mut ready = Vec::new();
            for ev in events.iter() {
                if ev.token == CTL_TOKEN {
                    self.waker.drain();
                    woken = true;
                } else if let Some(k) = self.listener_of(ev.token) {
                    ready.push(k);
                }
            }
            self.on_wake(&ep, woken);
            for k in ready {
                self.on_ready(&ep, k, &mut |fd, peer| deliver(index, fd, peer));
            }
        }
        self.arm(&ep, false);
        self.take_last(&mut |fd, peer| deliver(index, fd, peer));
    }
}
