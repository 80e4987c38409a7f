//! PROXY headers in handoff mode: each connection's header is read — exactly its
//! bytes, no more — before the host gets the fd, so the host reads only the client's
//! own bytes, and [`Accepted::peer`] is the client the balancer saw.
//!
//! The acceptor tries at once (the header usually comes with the handshake's last
//! segment). A connection whose header is not all there yet waits in this module's
//! thread, on its own epoll, until the header is whole, turns out bad, or
//! `header_timeout` passes. The slot the acceptor reserved on the host queue's gate is
//! held meanwhile and given back for a connection that is refused.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::handoff::{Accepted, HostQueue};
use super::proxy::{self, Preamble, ProxyHeader};
use crate::config::{Cidr, ProxyMode};
use crate::stats::Counters;
use crate::sync::lock;
use crate::sys::{self, Epoll, EventFd, Events, Interest};

/// What one look at a connection's first bytes found.
enum Look {
    /// The header was whole and is consumed: the client and what it said.
    Whole(SocketAddr, ProxyHeader),
    /// Not all there yet.
    Wait,
    /// Closed by the client, or not a valid header.
    Refused,
}

struct Waiting {
    fd: OwnedFd,
    peer: SocketAddr,
    deadline: Instant,
}

pub(crate) struct Preambles {
    mode: ProxyMode,
    trusted: Vec<Cidr>,
    limit: usize,
    timeout: Duration,
    epoll: Epoll,
    wake: EventFd,
    inbox: Mutex<Vec<Waiting>>,
    /// Connections waiting for their header (in the inbox or the thread's epoll).
    pending: AtomicUsize,
    stop: AtomicBool,
}

const WAKE: u64 = u64::MAX;
/// The first look's size: a whole v1 header (107 bytes at most) or a v2 one with a
/// few TLVs.
const SMALL: usize = 512;

impl Preambles {
    pub fn new(mode: ProxyMode, trusted: Vec<Cidr>, limit: usize, timeout: Duration) -> io::Result<Preambles> {
        let p = Preambles {
            mode,
            trusted,
            limit,
            timeout,
            epoll: Epoll::new()?,
            wake: EventFd::new()?,
            inbox: Mutex::new(Vec::new()),
            pending: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        };
        p.epoll.add(p.wake.as_raw_fd(), WAKE, Interest::READ_LEVEL)?;
        Ok(p)
    }

    /// A connection accepted for the host (its gate slot reserved): refused unread if
    /// its source is not trusted, queued once its header is read, else left to wait.
    pub fn admit(&self, fd: OwnedFd, peer: SocketAddr, host: &HostQueue, counters: &Counters) {
        if !self.trusted.iter().any(|c| c.contains(peer.ip())) {
            counters.proxy_untrusted.fetch_add(1, Relaxed);
            host.gate.release(1);
            return;
        }
        match self.try_read(&fd, peer) {
            Look::Whole(client, header) => host.push(Accepted { fd, peer: client, proxy: Some(Arc::new(header)) }),
            Look::Wait => {
                let deadline = Instant::now() + self.timeout;
                self.pending.fetch_add(1, SeqCst);
                lock(&self.inbox).push(Waiting { fd, peer, deadline });
                self.wake.notify();
            }
            Look::Refused => {
                counters.proxy_bad_headers.fetch_add(1, Relaxed);
                host.gate.release(1);
            }
        }
    }

    /// Peeks at what arrived and, once it holds a whole header, consumes exactly it. A
    /// v1 header and a v2 one without long TLVs fit the first, small look.
    fn try_read(&self, fd: &OwnedFd, peer: SocketAddr) -> Look {
        let mut small = [0u8; SMALL];
        match self.look(fd, peer, &mut small) {
            Some(look) => look,
            None => self.look(fd, peer, &mut vec![0u8; self.limit + 1]).unwrap_or(Look::Refused),
        }
    }

    /// One look into `buf`; None if the header may be longer than `buf` holds.
    fn look(&self, fd: &OwnedFd, peer: SocketAddr, buf: &mut [u8]) -> Option<Look> {
        let n = match sys::recv_peek(fd.as_raw_fd(), buf) {
            Ok(0) => return Some(Look::Refused),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {
                return Some(Look::Wait)
            }
            Err(_) => return Some(Look::Refused),
        };
        Some(match proxy::parse(self.mode, &buf[..n], self.limit) {
            Preamble::NeedMore if n < buf.len() => Look::Wait,
            Preamble::NeedMore if buf.len() <= self.limit => return None,
            Preamble::NeedMore | Preamble::Bad(_) => Look::Refused,
            Preamble::Done { used, header } => {
                // The bytes were peeked, so they are there: one read takes exactly them.
                match sys::recv(fd.as_raw_fd(), &mut buf[..used]) {
                    Ok(got) if got == used => Look::Whole(header.source.unwrap_or(peer), header),
                    _ => Look::Refused,
                }
            }
        })
    }

    /// The thread: waits for headers still on their way, until `stop`.
    pub fn run(&self, host: &HostQueue, counters: &Counters) {
        let mut waiting: HashMap<u64, Waiting> = HashMap::new();
        let mut next_token = 0u64;
        let mut events = Events::with_capacity(64);
        while !self.stop.load(Acquire) {
            let now = Instant::now();
            let soonest = waiting.values().map(|w| w.deadline).min();
            let timeout = soonest.map(|d| d.saturating_duration_since(now));
            if self.epoll.wait(&mut events, timeout).is_err() {
                continue;
            }
            for ev in events.iter() {
                if ev.token == WAKE {
                    self.wake.drain();
                    for w in std::mem::take(&mut *lock(&self.inbox)) {
                        let token = next_token;
                        next_token += 1;
                        // Edge-triggered: a part of a header stays readable, and only
                        // more bytes (or the client leaving) should wake this thread.
                        if self.epoll.add(w.fd.as_raw_fd(), token, Interest::READ_EDGE).is_ok() {
                            waiting.insert(token, w);
                        } else {
                            self.refuse(host, counters);
                        }
                    }
                    continue;
                }
                let Some(w) = waiting.remove(&ev.token) else { continue };
                match self.try_read(&w.fd, w.peer) {
                    // The client stopped sending with its header unfinished.
                    Look::Wait if ev.hangup() => {
                        let _ = self.epoll.delete(w.fd.as_raw_fd());
                        self.refuse(host, counters);
                    }
                    Look::Wait => {
                        waiting.insert(ev.token, w);
                    }
                    Look::Whole(client, header) => {
                        let _ = self.epoll.delete(w.fd.as_raw_fd());
                        host.push(Accepted { fd: w.fd, peer: client, proxy: Some(Arc::new(header)) });
                        self.pending.fetch_sub(1, SeqCst);
                    }
                    Look::Refused => {
                        let _ = self.epoll.delete(w.fd.as_raw_fd());
                        self.refuse(host, counters);
                    }
                }
            }
            // No header in time: closed, like a serving engine's header deadline.
            let now = Instant::now();
            let late: Vec<u64> = waiting.iter().filter(|(_, w)| w.deadline <= now).map(|(t, _)| *t).collect();
            for t in late {
                if let Some(w) = waiting.remove(&t) {
                    let _ = self.epoll.delete(w.fd.as_raw_fd());
                    self.refuse(host, counters);
                }
            }
        }
        // Stopped: what still waits is closed unread.
        let left = waiting.len() + lock(&self.inbox).drain(..).count();
        self.pending.fetch_sub(left, SeqCst);
        host.gate.release(left);
    }

    /// A waiting connection closed without its header (bad, or too late).
    fn refuse(&self, host: &HostQueue, counters: &Counters) {
        counters.proxy_bad_headers.fetch_add(1, Relaxed);
        host.gate.release(1);
        self.pending.fetch_sub(1, SeqCst);
    }

    /// Connections whose header has not come yet.
    pub fn waiting(&self) -> usize {
        self.pending.load(SeqCst)
    }

    /// Ends the thread; what still waits for its header is closed.
    pub fn stop(&self) {
        self.stop.store(true, Release);
        self.wake.notify();
    }
}
