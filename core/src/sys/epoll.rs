//! epoll: one instance per I/O worker (and per acceptor), registrations keyed by a
//! `u64` token that the caller chooses.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{cvt, cvt_size};

/// What a registration waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest(u32);

impl Interest {
    /// Readable, level-triggered: reported while data (or a pending accept) is there.
    pub const READ_LEVEL: Interest = Interest(libc::EPOLLIN as u32);
    /// Readable, level-triggered, and only one of the waiters on this fd is woken
    /// (`EPOLLEXCLUSIVE`, for one listening socket shared by several acceptors).
    pub const READ_EXCLUSIVE: Interest = Interest((libc::EPOLLIN | libc::EPOLLEXCLUSIVE) as u32);
    /// Readable and peer hang-up, edge-triggered: reported once per change. A new
    /// connection starts with this; writability is added only once a write would block,
    /// so the socket's initial writability does not raise an event per connection.
    pub const READ_EDGE: Interest = Interest((libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLET) as u32);
    /// Readable, writable and peer hang-up, edge-triggered: reported once per change.
    pub const RW_EDGE: Interest = Interest((libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32);
    /// The one-shot interest a connection is re-armed with: readable and hang-up, and
    /// writable only while it has bytes waiting (a writable socket would report at once).
    pub fn oneshot(write: bool) -> Interest {
        let w = if write { libc::EPOLLOUT } else { 0 };
        Interest((libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT | w) as u32)
    }

    /// Registered but reporting nothing (used to pause a listener without removing it).
    pub const NONE: Interest = Interest(0);
}

/// One readiness report.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub token: u64,
    flags: u32,
}

impl Event {
    pub fn readable(&self) -> bool {
        self.flags & (libc::EPOLLIN as u32 | libc::EPOLLPRI as u32) != 0
    }
    pub fn writable(&self) -> bool {
        self.flags & libc::EPOLLOUT as u32 != 0
    }
    /// The peer closed (`EPOLLRDHUP`/`EPOLLHUP`) or the socket has an error pending.
    pub fn hangup(&self) -> bool {
        self.flags & (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32 != 0
    }
}

/// A reusable buffer of events filled by [`Epoll::wait`].
pub struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    pub fn with_capacity(cap: usize) -> Events {
        Events { buf: vec![libc::epoll_event { events: 0, u64: 0 }; cap.max(1)], len: 0 }
    }
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.buf[..self.len].iter().map(|e| Event { token: e.u64, flags: e.events })
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative return is a new fd we own.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: interest.0, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        cvt(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) }).map(|_| ())
    }

    pub fn add(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest, token)
    }

    /// Changes a registration's interest; also re-arms a one-shot registration.
    pub fn modify(&self, fd: RawFd, token: u64, interest: Interest) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest, token)
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, Interest::NONE, 0)
    }

    /// Waits for readiness. `None` waits without limit; `Some(ZERO)` only polls.
    /// An interrupted wait (`EINTR`) returns with no events.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        let ms: libc::c_int = match timeout {
            None => -1,
            // Round up so a 0.4 ms timer does not turn into a busy poll.
            Some(d) => d.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
        };
        // SAFETY: the buffer holds `buf.len()` initialised epoll_event slots.
        let n = unsafe {
            libc::epoll_wait(self.fd.as_raw_fd(), events.buf.as_mut_ptr(), events.buf.len() as libc::c_int, ms)
        };
        match cvt_size(n as libc::ssize_t) {
            Ok(n) => {
                events.len = n;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                events.len = 0;
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }
}

impl AsRawFd for Epoll {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
