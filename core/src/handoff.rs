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
use crate::sync::lock;
use crate::sys::EventFd;

/// One accepted connection handed to the host.
#[derive(Debug)]
pub struct Accepted {
    /// The connected socket: non-blocking, close-on-exec, `TCP_NODELAY`. Yours to close.
    pub fd: OwnedFd,
    pub peer: SocketAddr,
}

/// Called on the queue's empty→non-empty transition, on the acceptor's thread.
pub(crate) type Waker = Arc<dyn Fn() + Send + Sync>;

pub(crate) struct HostQueue {
    queue: Mutex<VecDeque<Accepted>>,
    notify: EventFd,
    waker: Mutex<Option<Waker>>,
    pub gate: Arc<Gate>,
}

impl HostQueue {
    pub fn new(capacity: usize, accept_rate: u32) -> std::io::Result<HostQueue> {
        Ok(HostQueue {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            notify: EventFd::new()?,
            waker: Mutex::new(None),
            gate: Arc::new(Gate::new(capacity).with_rate(accept_rate)),
        })
    }

    /// Queues a connection whose slot the acceptor already reserved on the gate.
    pub fn push(&self, a: Accepted) {
        let was_empty = {
            let mut q = lock(&self.queue);
            let was_empty = q.is_empty();
            q.push_back(a);
            if was_empty {
                self.notify.notify();
            }
            was_empty
        };
        if was_empty {
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
        if !lock(&self.queue).is_empty() {
            w();
        }
    }

    /// Takes up to `max` connections; resets the notify fd once the queue is empty.
    pub fn take(&self, max: usize) -> Vec<Accepted> {
        let batch: Vec<Accepted> = {
            let mut q = lock(&self.queue);
            let n = max.min(q.len());
            let batch = q.drain(..n).collect();
            if q.is_empty() {
                self.notify.drain();
            }
            batch
        };
        self.gate.release(batch.len());
        batch
    }

    pub fn len(&self) -> usize {
        lock(&self.queue).len()
    }

    pub fn notify_fd(&self) -> RawFd {
        self.notify.as_raw_fd()
    }

    /// Closes everything still queued (shutdown); returns how many there were.
    pub fn close_all(&self) -> usize {
        let n = self.take(usize::MAX).len();
        self.notify.notify();
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
        Accepted { fd: s.into(), peer }
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
