//! The host queue: in handoff mode the engine accepts and the host serves.
//!
//! Acceptors push accepted connections (fd + peer) into a bounded queue; the notify
//! eventfd becomes readable on the queue's empty→non-empty transition only, so a host
//! loop is woken once per batch, and [`HostQueue::take`] drains up to `max` at a time,
//! clearing the fd when it empties the queue. While the queue is full, acceptors pause
//! (its slots are an admission [`Gate`]) and the kernel backlog absorbs new arrivals.
//! A taken fd belongs to the host: the engine never touches it again.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use crate::accept::Gate;
use crate::sync::{lock, model};
use crate::sys::EventFd;

/// The level a host waits on: raised when the queue becomes non-empty, lowered when a
/// take empties it.
pub(crate) trait Signal {
    fn raise(&self);
    fn lower(&self);
}

impl Signal for EventFd {
    fn raise(&self) {
        self.notify();
    }
    fn lower(&self) {
        self.drain();
    }
}

/// The queue and its signal, changed together under one lock, so the signal is up
/// exactly while the queue holds something: a host that saw it down and the queue
/// empty cannot miss a push (the `loom` model below checks every interleaving).
pub(crate) struct Signalled<T, S> {
    queue: model::Mutex<VecDeque<T>>,
    pub signal: S,
}

impl<T, S: Signal> Signalled<T, S> {
    pub fn new(capacity: usize, signal: S) -> Signalled<T, S> {
        Signalled { queue: model::Mutex::new(VecDeque::with_capacity(capacity)), signal }
    }

    /// Queues `item`; true on the empty→non-empty transition (the signal was raised).
    pub fn push(&self, item: T) -> bool {
        let mut q = model::lock(&self.queue);
        let was_empty = q.is_empty();
        q.push_back(item);
        if was_empty {
            self.signal.raise();
        }
        was_empty
    }

    /// Takes up to `max`; lowers the signal if that empties the queue.
    pub fn take(&self, max: usize) -> Vec<T> {
        let mut q = model::lock(&self.queue);
        let n = max.min(q.len());
        let batch = q.drain(..n).collect();
        if q.is_empty() {
            self.signal.lower();
        }
        batch
    }

    pub fn len(&self) -> usize {
        model::lock(&self.queue).len()
    }
}

/// One accepted connection handed to the host.
#[derive(Debug)]
pub struct Accepted {
    /// The connected socket: non-blocking, close-on-exec, `TCP_NODELAY`. Yours to close.
    pub fd: OwnedFd,
    /// The client: with `proxy_protocol`, the source its PROXY header named (the
    /// balancer's address for a `LOCAL` header, such as a health check).
    pub peer: SocketAddr,
    /// With `proxy_protocol`: the header, already read off the socket (the host reads
    /// only the client's own bytes).
    pub proxy: Option<Arc<super::proxy::ProxyHeader>>,
}

/// Called on the queue's empty→non-empty transition, on the acceptor's thread.
pub(crate) type Waker = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct HostQueue {
    queue: Signalled<Accepted, EventFd>,
    waker: Mutex<Option<Waker>>,
    pub gate: Arc<Gate>,
}

impl HostQueue {
    pub fn new(capacity: usize, accept_rate: u32) -> std::io::Result<HostQueue> {
        Ok(HostQueue {
            queue: Signalled::new(capacity.min(4096), EventFd::new()?),
            waker: Mutex::new(None),
            gate: Arc::new(Gate::new(capacity).with_rate(accept_rate)),
        })
    }

    /// Queues a connection whose slot the acceptor already reserved on the gate.
    pub fn push(&self, a: Accepted) {
        if self.queue.push(a) {
            let waker = lock(&self.waker).clone();
            if let Some(w) = waker {
                w();
            }
        }
    }

    /// Also calls `w` on each empty→non-empty transition (for hosts whose loop cannot
    /// watch an fd, like Node's). Called at once if connections already wait.
    pub fn set_waker(&self, w: Waker) {
        *lock(&self.waker) = Some(Arc::clone(&w));
        if self.queue.len() > 0 {
            w();
        }
    }

    /// Takes up to `max` connections; resets the notify fd once the queue is empty.
    pub fn take(&self, max: usize) -> Vec<Accepted> {
        let batch = self.queue.take(max);
        self.gate.release(batch.len());
        batch
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn notify_fd(&self) -> RawFd {
        self.queue.signal.as_raw_fd()
    }

    /// Closes everything still queued (shutdown); returns how many there were.
    pub fn close_all(&self) -> usize {
        let n = self.take(usize::MAX).len();
        self.queue.signal.notify();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> Accepted {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, peer) = l.accept().unwrap();
        Accepted { fd: s.into(), peer, proxy: None }
    }

    fn readable(fd: RawFd) -> bool {
        crate::sys::poll_readable(fd, Some(std::time::Duration::ZERO)).unwrap()
    }

    #[test]
    fn notifies_on_empty_to_non_empty_only() {
        let q = HostQueue::new(8, 0).unwrap();
        assert!(!readable(q.notify_fd()));
        assert!(q.gate.try_reserve());
        q.push(pair());
        assert!(readable(q.notify_fd()));
        assert!(q.gate.try_reserve());
        q.push(pair());
        let got = q.take(1);
        assert_eq!(got.len(), 1);
        assert!(readable(q.notify_fd()), "one left: still readable");
        assert_eq!(q.take(10).len(), 1);
        assert!(!readable(q.notify_fd()), "drained: reset");
        assert_eq!(q.gate.used(), 0);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::{AtomicBool, Ordering::*};
    use loom::sync::Arc;

    struct Flag(AtomicBool);

    impl Signal for Flag {
        fn raise(&self) {
            self.0.store(true, Release);
        }
        fn lower(&self) {
            self.0.store(false, Release);
        }
    }

    /// Two acceptors push while the host takes whenever it sees the signal: once the
    /// pushes are done, every connection was taken or the signal is up, never a
    /// connection waiting with the signal down (a lost wake-up).
    #[test]
    fn a_push_is_never_left_unsignalled() {
        loom::model(|| {
            let q = Arc::new(Signalled::new(4, Flag(AtomicBool::new(false))));
            let pushers: Vec<_> = (0..2)
                .map(|i| {
                    let q = Arc::clone(&q);
                    loom::thread::spawn(move || {
                        q.push(i);
                    })
                })
                .collect();
            let mut taken = Vec::new();
            if q.signal.0.load(Acquire) {
                taken.extend(q.take(1));
            }
            for p in pushers {
                p.join().unwrap();
            }
            let left = q.len();
            assert!(left == 0 || q.signal.0.load(Acquire), "{left} queued with the signal down");
            taken.extend(q.take(usize::MAX));
            taken.sort_unstable();
            assert_eq!(taken, vec![0, 1], "each connection taken once");
            assert!(!q.signal.0.load(Acquire), "empty: the signal is down");
        });
    }
}
