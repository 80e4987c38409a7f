//! Acceptor threads: each waits on its listeners in its own epoll, accepts a bounded
//! batch per wake-up (`accept4`, non-blocking and close-on-exec, `TCP_NODELAY`), and
//! hands each connection to the engine's dispatch.
//!
//! Admission is a [`Gate`]: a counted resource (open connections, or host-queue slots
//! in handoff mode) reserved *before* each accept. When it is full the acceptor stops
//! accepting, the kernel backlog absorbs new connections, and the acceptor sleeps on its
//! control eventfd until a release crosses back under the cap. Descriptor exhaustion
//! (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`) pauses with exponential backoff (also ended
//! early by a release); it is counted and never spins.

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::listen::Listener;
use crate::sys::{self, Epoll, EventFd, Events, Interest};

const CTL_TOKEN: u64 = u64::MAX;
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A counted admission resource shared by all acceptors.
pub(crate) struct Gate {
    used: AtomicUsize,
    max: usize,
    /// Acceptors currently paused on this gate (or on descriptor exhaustion).
    waiters: AtomicUsize,
    wakers: Mutex<Vec<Arc<EventFd>>>,
}

impl Gate {
    pub fn new(max: usize) -> Gate {
        Gate { used: AtomicUsize::new(0), max, waiters: AtomicUsize::new(0), wakers: Mutex::new(Vec::new()) }
    }

    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    fn add_waker(&self, fd: Arc<EventFd>) {
        self.wakers.lock().unwrap().push(fd);
    }

    /// Takes one unit if one is free.
    pub fn try_reserve(&self) -> bool {
        self.used
            .fetch_update(SeqCst, Relaxed, |u| if u < self.max { Some(u + 1) } else { None })
            .is_ok()
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

    pub fn wake_all(&self) {
        for w in self.wakers.lock().unwrap().iter() {
            w.notify();
        }
    }
}

/// Where accepted connections go.
pub(crate) trait Sink: Send + Sync {
    fn deliver(&self, acceptor: usize, fd: OwnedFd, peer: SocketAddr);
}

pub(crate) struct Acceptor {
    pub index: usize,
    pub listeners: Vec<Arc<Listener>>,
    pub exclusive: bool,
    pub batch: usize,
    pub gate: Arc<Gate>,
    pub stop: Arc<AtomicBool>,
    pub ctl: Arc<EventFd>,
}

enum Outcome {
    /// Drained the listener (`EAGAIN`) or used up the batch.
    Done,
    /// The gate is full.
    Full,
    /// Out of descriptors or kernel memory.
    Starved,
}

impl Acceptor {
    /// Makes the control eventfd wake this acceptor when the gate frees up.
    pub fn new(
        index: usize,
        listeners: Vec<Arc<Listener>>,
        exclusive: bool,
        batch: usize,
        gate: Arc<Gate>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Acceptor> {
        let ctl = Arc::new(EventFd::new()?);
        gate.add_waker(Arc::clone(&ctl));
        Ok(Acceptor { index, listeners, exclusive, batch, gate, stop, ctl })
    }

    fn interest(&self) -> Interest {
        if self.exclusive { Interest::READ_EXCLUSIVE } else { Interest::READ_LEVEL }
    }

    fn arm(&self, ep: &Epoll, on: bool) {
        for (i, l) in self.listeners.iter().enumerate() {
            // EPOLLEXCLUSIVE registrations cannot be modified, so pausing removes them.
            let r = if on { ep.add(l.fd(), i as u64, self.interest()) } else { ep.delete(l.fd()) };
            if let Err(e) = r {
                if !self.stop.load(Relaxed) {
                    eprintln!("corral: acceptor {}: epoll on {}: {e}", self.index, l.addr);
                }
            }
        }
    }

    /// The acceptor thread's loop; returns once `stop` is set and the ctl fd signalled.
    pub fn run(self, sink: Arc<dyn Sink>) {
        let ep = match Epoll::new() {
            Ok(ep) => ep,
            Err(e) => {
                eprintln!("corral: acceptor {} cannot create epoll: {e}", self.index);
                return;
            }
        };
        if let Err(e) = ep.add(std::os::fd::AsRawFd::as_raw_fd(&*self.ctl), CTL_TOKEN, Interest::READ_LEVEL) {
            eprintln!("corral: acceptor {} cannot watch its control fd: {e}", self.index);
            return;
        }
        let mut events = Events::with_capacity(self.listeners.len() + 1);
        let mut armed = true;
        self.arm(&ep, true);
        let mut backoff = BACKOFF_MIN;
        let mut resume_at: Option<Instant> = None;
        while !self.stop.load(Acquire) {
            let timeout = resume_at.map(|t| t.saturating_duration_since(Instant::now()));
            if ep.wait(&mut events, timeout).is_err() {
                continue;
            }
            let mut ready: Vec<usize> = Vec::new();
            let mut woken = false;
            for ev in events.iter() {
                if ev.token == CTL_TOKEN {
                    self.ctl.drain();
                    woken = true;
                } else {
                    ready.push(ev.token as usize);
                }
            }
            if self.stop.load(Acquire) {
                break;
            }
            if !armed {
                // Paused: try again when a release woke us (a connection closed, so a
                // descriptor or a slot is free) or the backoff ran out, and the gate has room.
                let backoff_over = resume_at.is_some_and(|t| Instant::now() >= t);
                if (woken || backoff_over) && self.gate.used() < self.gate.max {
                    self.gate.waiters.fetch_sub(1, SeqCst);
                    resume_at = None;
                    armed = true;
                    self.arm(&ep, true);
                }
                continue;
            }
            let mut pause = None;
            for i in ready {
                match self.accept_batch(i, &*sink) {
                    Outcome::Done => {}
                    Outcome::Full => pause = Some((i, false)),
                    Outcome::Starved => {
                        pause = Some((i, true));
                        break;
                    }
                }
            }
            match pause {
                None => backoff = BACKOFF_MIN,
                Some((i, starved)) => {
                    self.listeners[i].counters.pauses.fetch_add(1, Relaxed);
                    self.arm(&ep, false);
                    armed = false;
                    self.gate.waiters.fetch_add(1, SeqCst);
                    if starved {
                        resume_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    } else if self.gate.used() < self.gate.max {
                        // A release raced with the pause: the re-check in the loop resumes.
                        self.ctl.notify();
                    }
                }
            }
        }
    }

    fn accept_batch(&self, i: usize, sink: &dyn Sink) -> Outcome {
        let l = &self.listeners[i];
        for _ in 0..self.batch {
            if !self.gate.try_reserve() {
                return Outcome::Full;
            }
            match sys::accept4(l.fd()) {
                Ok((fd, peer)) => {
                    l.counters.accepted();
                    let _ = sys::set_nodelay(std::os::fd::AsRawFd::as_raw_fd(&fd));
                    sink.deliver(self.index, fd, peer);
                }
                Err(e) => {
                    self.gate.release(1);
                    match e.raw_os_error().unwrap_or(0) {
                        libc::EAGAIN => return Outcome::Done,
                        libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM => {
                            l.counters.fd_exhausted.fetch_add(1, Relaxed);
                            return Outcome::Starved;
                        }
                        libc::EINVAL | libc::EBADF | libc::ENOTSOCK if self.stop.load(Acquire) => {
                            return Outcome::Done;
                        }
                        libc::EINVAL | libc::EBADF | libc::ENOTSOCK => {
                            // The socket stopped listening under us; back off rather than spin.
                            l.counters.errors.fetch_add(1, Relaxed);
                            return Outcome::Starved;
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
}
