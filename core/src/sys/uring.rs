//! io_uring: the ring of the completion backend, one per I/O worker.
//!
//! A [`Ring`] owns everything the kernel may touch while an operation is in flight: the
//! provided receive buffers (a registered buffer ring) and the bytes of every send. The
//! rest of the engine hands it values and gets values back, never a pointer, so nothing
//! outside this file can free memory the kernel still writes into.
//!
//! Operations: a multishot receive per connection (into the provided buffers; each
//! completion's bytes are copied out and the buffer goes straight back to the kernel),
//! sends (a short send is re-submitted from where it stopped, so the caller hears once,
//! when all is written or it failed), a multishot poll (the worker's epoll, where its
//! listeners and its wake-up fd live), and closing a connection (cancel whatever is
//! in flight on its fd, then close it, linked, on the ring: the fd number is not free
//! for reuse until every operation on it is gone).
//!
//! One thread issues: the ring is set up with `SINGLE_ISSUER` and `DEFER_TASKRUN`, made
//! disabled and enabled by its worker's thread ([`Ring::enable`]), which alone submits,
//! waits and reaps. The kernel then finishes completions only when that thread asks
//! for them, so no thread is ever interrupted for ring work (with plain or `COOP`
//! task running, a thread that submitted has its blocking calls cut short by `EINTR`
//! whenever the kernel needs it for ring work, handlers' calls included). Other threads
//! hand their operations to the owner as [`Op`]s (see `worker`). The state mutex is
//! uncontended; it makes the ring `Sync` for that hand-over without `unsafe` outside.
//!
//! Invariants: an operation's memory lives in the ring until its last completion; a
//! closed fd gets no further operation from the ring (its sends are marked cancelled
//! under the same lock the close is queued under); [`Ring::shutdown`] cancels
//! everything and waits for the kernel, and a ring dropped with operations still in
//! flight leaks its memory rather than free what the kernel may write.

use std::io;
use std::ops::Range;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use io_uring::types::{BufRingEntry, CancelBuilder, Fd};
use io_uring::{cqueue, opcode, squeue, IoUring};

/// User data with this bit clear is a connection's receive, keyed by its token.
const TAGGED: u64 = 1 << 63;
const KIND_SHIFT: u32 = 56;
const SEND: u64 = 1;
const POLL: u64 = 2;
/// Cancels and closes: nothing to report.
const QUIET: u64 = 3;
const WAKE: u64 = 4;
const INDEX_MASK: u64 = (1 << KIND_SHIFT) - 1;
const GROUP: u16 = 0;

fn tagged(kind: u64, index: u64) -> u64 {
    TAGGED | (kind << KIND_SHIFT) | (index & INDEX_MASK)
}

/// How a connection's receive ended or what it brought.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// Bytes, at this range of [`Reaped::data`].
    Data(Range<usize>),
    /// The peer finished sending.
    Eof,
    /// The provided buffers ran out: the receive stopped and must be armed again.
    NoBuffers,
    /// Cancelled (by [`Ring::cancel_recv`] or a close).
    Cancelled,
    /// The socket failed with this errno.
    Failed(i32),
}

/// An operation on a connection, as another thread hands it to the ring's owner.
pub enum Op {
    Recv { fd: RawFd, token: u64 },
    CancelRecv { token: u64 },
    Send { fd: RawFd, token: u64, buf: Vec<u8> },
    Close(OwnedFd),
}

/// One completion, as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    /// A connection's receive; `armed`: it goes on delivering.
    Recv { token: u64, got: Received, armed: bool },
    /// A send finished: every byte written, or the errno it failed with.
    Sent { token: u64, result: Result<usize, i32> },
    /// A polled fd is ready; `armed`: the poll goes on.
    Polled { tag: u64, armed: bool },
}

/// What a [`Ring::reap`] collected: the completions, and the received bytes they point
/// into (copied out of the provided buffers, which are already back with the kernel).
#[derive(Default)]
pub struct Reaped {
    pub data: Vec<u8>,
    pub done: Vec<Done>,
}

impl Reaped {
    pub fn clear(&mut self) {
        self.data.clear();
        self.done.clear();
    }
}

/// The provided buffers: a page-aligned ring of entries the kernel picks from, and the
/// memory the entries point into.
struct BufRing {
    entries: *mut BufRingEntry,
    map_len: usize,
    count: u16,
    size: usize,
    mem: Vec<u8>,
    tail: u16,
}

impl BufRing {
    fn new(count: u16, size: usize) -> io::Result<BufRing> {
        debug_assert!(count.is_power_of_two());
        let map_len = (usize::from(count) * std::mem::size_of::<BufRingEntry>()).max(page_size());
        // SAFETY: an anonymous private mapping; checked for failure below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mut b =
            BufRing { entries: p.cast(), map_len, count, size, mem: vec![0; usize::from(count) * size], tail: 0 };
        for bid in 0..count {
            b.put(bid);
        }
        b.publish();
        Ok(b)
    }

    /// Hands buffer `bid` back (visible to the kernel at the next `publish`).
    fn put(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: slot < count, inside the mapping; the kernel reads entries only up to
        // the published tail, and this one is past it.
        let e = unsafe { &mut *self.entries.add(slot) };
        e.set_addr(self.mem[usize::from(bid) * self.size..].as_ptr() as u64);
        e.set_len(self.size as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field overlays the first entry's reserved field, inside the
        // mapping, and is only ever accessed atomically (the kernel reads it with acquire).
        let tail = unsafe { &*(BufRingEntry::tail(self.entries).cast::<AtomicU16>()) };
        tail.store(self.tail, Ordering::Release);
    }

    fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let at = usize::from(bid) * self.size;
        &self.mem[at..at + len.min(self.size)]
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once (the ring unregistered it
        // first, or it is leaked instead of dropped).
        if !self.entries.is_null() {
            unsafe { libc::munmap(self.entries.cast(), self.map_len) };
        }
    }
}

struct SendOp {
    token: u64,
    fd: RawFd,
    buf: Vec<u8>,
    off: usize,
    /// Its fd was closed: a short send is not continued.
    cancelled: bool,
}

struct State {
    bufs: BufRing,
    /// Where the wake-up eventfd's counter is read into.
    wake: Box<u64>,
    sends: Vec<Option<SendOp>>,
    free: Vec<usize>,
    /// Operations submitted or queued whose last completion has not come.
    in_flight: usize,
    /// Entries queued since the last submit.
    queued: usize,
}

// SAFETY: the raw pointer in `BufRing` is a private mapping only this state touches,
// always under the ring's mutex.
unsafe impl Send for State {}

pub struct Ring {
    /// Declared first, so dropped first: the ring is closed before `st` frees its memory.
    uring: IoUring,
    st: Mutex<State>,
}

/// `struct io_uring_getevents_arg`.
#[repr(C)]
struct GeteventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

const ENTER_GETEVENTS: u32 = 1;
const ENTER_EXT_ARG: u32 = 8;

impl Ring {
    /// A ring of `entries` submission slots (and four times as many completion slots)
    /// with `buffers` provided receive buffers of `buffer_size` bytes.
    /// Made disabled: the thread that will own it calls [`Ring::enable`] first.
    ///
    /// Made on a short-lived thread of its own: the kernel interrupts a ring's creator
    /// once when the ring closes (to drop its per-thread ring state), which a blocking
    /// call with a timeout sees as `EINTR`; the host's thread must not be that creator.
    pub fn new(entries: u32, buffers: u16, buffer_size: usize) -> io::Result<Ring> {
        std::thread::Builder::new()
            .name("corral-ring".into())
            .spawn(move || Ring::create(entries, buffers, buffer_size))?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("setting up an io_uring panicked")))
    }

    fn create(entries: u32, buffers: u16, buffer_size: usize) -> io::Result<Ring> {
        // DEFER_TASKRUN: completions are finished when the owner enters the kernel for
        // them, never by interrupting a thread (measured with plain task running: 0.85x
        // epoll, keep-alive on 2 cores; with cooperative, about 1.05x).
        let uring = IoUring::builder()
            .setup_cqsize(entries * 4)
            .setup_clamp()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .setup_r_disabled()
            .build(entries)?;
        let bufs = BufRing::new(buffers, buffer_size)?;
        // SAFETY: the entries live in `bufs`, owned by the ring's state, which is dropped
        // after the ring (field order) and leaks them instead if operations remain.
        unsafe { uring.submitter().register_buf_ring_with_flags(bufs.entries as u64, buffers, GROUP, 0)? };
        let st = State { bufs, wake: Box::new(0), sends: Vec::new(), free: Vec::new(), in_flight: 0, queued: 0 };
        Ok(Ring { uring, st: Mutex::new(st) })
    }

    /// Makes the calling thread the ring's one issuer.
    pub fn enable(&self) -> io::Result<()> {
        self.uring.submitter().register_enable_rings()
    }

    /// Carries out an operation another thread handed over.
    pub fn apply(&self, op: Op) {
        match op {
            Op::Recv { fd, token } => self.recv(fd, token),
            Op::CancelRecv { token } => self.cancel_recv(token),
            Op::Send { fd, token, buf } => self.send(fd, token, buf),
            Op::Close(fd) => self.close(fd),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an entry (submitting first if the queue is full).
    fn push(&self, st: &mut State, e: squeue::Entry) {
        loop {
            // SAFETY: the only submission queue handle while the state lock is held; the
            // entry's memory (buffers, send bytes) is owned by the state until its
            // completion.
            let pushed = unsafe { self.uring.submission_shared().push(&e) };
            if pushed.is_ok() {
                st.queued += 1;
                st.in_flight += 1;
                return;
            }
            if self.uring.submitter().submit().is_err() {
                // The kernel takes nothing now (out of memory): retry after a moment
                // rather than lose the entry.
                std::thread::yield_now();
            }
            st.queued = 0;
        }
    }

    /// Starts delivering what arrives on `fd` as [`Done::Recv`] for `token`.
    pub fn recv(&self, fd: RawFd, token: u64) {
        debug_assert!(token & TAGGED == 0);
        let e = opcode::RecvMulti::new(Fd(fd), GROUP).build().user_data(token);
        self.push(&mut self.state(), e);
    }

    /// Stops `token`'s receive (it ends with [`Received::Cancelled`]).
    pub fn cancel_recv(&self, token: u64) {
        let e = opcode::AsyncCancel::new(token).build().user_data(tagged(QUIET, 0));
        self.push(&mut self.state(), e);
    }

    /// Writes all of `buf` to `fd`; [`Done::Sent`] for `token` says when.
    pub fn send(&self, fd: RawFd, token: u64, buf: Vec<u8>) {
        let mut st = self.state();
        let op = SendOp { token, fd, buf, off: 0, cancelled: false };
        let slot = match st.free.pop() {
            Some(i) => {
                st.sends[i] = Some(op);
                i
            }
            None => {
                st.sends.push(Some(op));
                st.sends.len() - 1
            }
        };
        let e = Self::send_entry(st.sends[slot].as_ref().expect("just stored"), slot);
        self.push(&mut st, e);
    }

    fn send_entry(op: &SendOp, slot: usize) -> squeue::Entry {
        let rest = &op.buf[op.off..];
        let len = rest.len().min(u32::MAX as usize) as u32;
        opcode::Send::new(Fd(op.fd), rest.as_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(tagged(SEND, slot as u64))
    }

    /// Watches `fd` for readability until [`Done::Polled`] says it stopped.
    pub fn poll(&self, fd: RawFd, tag: u64) {
        let e = opcode::PollAdd::new(Fd(fd), libc::POLLIN as u32).multi(true).build().user_data(tagged(POLL, tag));
        self.push(&mut self.state(), e);
    }

    /// Reads the eventfd `fd` once (which resets it): [`Done::Polled`] for `tag`, not
    /// armed, says it was signalled; watch it again then.
    pub fn watch_eventfd(&self, fd: RawFd, tag: u64) {
        let mut st = self.state();
        let buf: *mut u64 = &mut *st.wake;
        // The counter lands in the state's box, which lives as long as the ring.
        let e = opcode::Read::new(Fd(fd), buf.cast(), 8).build().user_data(tagged(WAKE, tag));
        self.push(&mut st, e);
    }

    /// Closes `fd` on the ring, after cancelling every operation on it.
    pub fn close(&self, fd: OwnedFd) {
        let fd = fd.into_raw_fd();
        let mut st = self.state();
        for op in st.sends.iter_mut().flatten().filter(|op| op.fd == fd) {
            op.cancelled = true;
        }
        let cancel = opcode::AsyncCancel2::new(CancelBuilder::fd(Fd(fd)).all())
            .build()
            .user_data(tagged(QUIET, 0))
            .flags(squeue::Flags::IO_HARDLINK);
        self.push(&mut st, cancel);
        self.push(&mut st, opcode::Close::new(Fd(fd)).build().user_data(tagged(QUIET, 0)));
    }

    /// Hands what is queued to the kernel, and lets it post completions whose work it
    /// deferred to this thread (nothing to do, no syscall, if neither is there).
    pub fn submit(&self) -> io::Result<()> {
        let mut st = self.state();
        // SAFETY: the only submission queue handle while the state lock is held.
        let sq = unsafe { self.uring.submission_shared() };
        // Completions the kernel holds back (deferred work, or a full completion queue).
        let deferred = sq.taskrun() || sq.cq_overflow();
        drop(sq);
        if st.queued > 0 || deferred {
            st.queued = 0;
            self.uring.submitter().submit()?;
        }
        Ok(())
    }

    /// Submits what is queued, then waits until a completion is there or `timeout`
    /// passes (`None`: no limit). Takes no lock while it waits.
    pub fn wait(&self, timeout: Option<Duration>) -> io::Result<()> {
        {
            let mut st = self.state();
            if st.queued > 0 {
                st.queued = 0;
                self.uring.submitter().submit()?;
            }
            // SAFETY: the only completion queue handle while the lock is held.
            if !unsafe { self.uring.completion_shared() }.is_empty() {
                return Ok(());
            }
        }
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        });
        let arg = GeteventsArg {
            sigmask: 0,
            sigmask_sz: 0,
            min_wait_usec: 0,
            ts: ts.as_ref().map_or(0, |t| t as *const libc::timespec as u64),
        };
        // SAFETY: submits nothing (so the queues are not touched) and waits for one
        // completion; `arg` and the timespec it points to outlive the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                self.uring.as_raw_fd(),
                0u32,
                1u32,
                ENTER_GETEVENTS | ENTER_EXT_ARG,
                &arg as *const GeteventsArg,
                std::mem::size_of::<GeteventsArg>(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY) => Ok(()),
                _ => Err(e),
            };
        }
        Ok(())
    }

    /// Takes every completion there is into `out` (appending).
    pub fn reap(&self, out: &mut Reaped) {
        let mut st = self.state();
        let st = &mut *st;
        let mut recycled = false;
        let mut again = Vec::new();
        {
            // SAFETY: the only completion queue handle while the lock is held.
            let cq = unsafe { self.uring.completion_shared() };
            for cqe in cq {
                let (data, res, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
                let more = cqueue::more(flags);
                if !more {
                    st.in_flight = st.in_flight.saturating_sub(1);
                }
                if data & TAGGED == 0 {
                    let got = if res > 0 {
                        match cqueue::buffer_select(flags) {
                            Some(bid) => {
                                let at = out.data.len();
                                out.data.extend_from_slice(st.bufs.bytes(bid, res as usize));
                                st.bufs.put(bid);
                                recycled = true;
                                Received::Data(at..out.data.len())
                            }
                            None => Received::Failed(libc::EIO),
                        }
                    } else if res == 0 {
                        Received::Eof
                    } else if res == -libc::ENOBUFS {
                        Received::NoBuffers
                    } else if res == -libc::ECANCELED {
                        Received::Cancelled
                    } else {
                        Received::Failed(-res)
                    };
                    out.done.push(Done::Recv { token: data, got, armed: more });
                    continue;
                }
                let index = (data & INDEX_MASK) as usize;
                match (data & !TAGGED) >> KIND_SHIFT {
                    SEND => {
                        let Some(mut op) = st.sends.get_mut(index).and_then(Option::take) else { continue };
                        if res > 0 && op.off + (res as usize) < op.buf.len() && !op.cancelled {
                            op.off += res as usize;
                            again.push(Self::send_entry(&op, index));
                            st.sends[index] = Some(op);
                            continue;
                        }
                        st.free.push(index);
                        let result = match res {
                            r if r > 0 => Ok(op.buf.len()),
                            0 if op.buf.len() == op.off => Ok(op.buf.len()),
                            0 => Err(libc::EPIPE),
                            r => Err(-r),
                        };
                        out.done.push(Done::Sent { token: op.token, result });
                    }
                    POLL => out.done.push(Done::Polled { tag: index as u64, armed: more }),
                    WAKE => out.done.push(Done::Polled { tag: index as u64, armed: false }),
                    _ => {}
                }
            }
        }
        if recycled {
            st.bufs.publish();
        }
        for e in again {
            self.push(st, e);
        }
    }
}

impl Ring {
    /// Cancels every operation and waits (up to a second) for the kernel to let go of
    /// their memory. Called by the owner as its worker leaves.
    pub fn shutdown(&self) {
        let mut st = self.state();
        for op in st.sends.iter_mut().flatten() {
            op.cancelled = true;
        }
        let all = opcode::AsyncCancel2::new(CancelBuilder::any()).build().user_data(tagged(QUIET, 0));
        self.push(&mut st, all);
        drop(st);
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut scratch = Reaped::default();
        loop {
            let _ = self.wait(Some(Duration::from_millis(10)));
            scratch.clear();
            self.reap(&mut scratch);
            if self.state().in_flight == 0 || Instant::now() >= deadline {
                break;
            }
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut st = self.state();
        if st.in_flight == 0 {
            // Nothing in flight: the kernel touches none of this memory again (closing
            // the ring, next, unregisters the buffers).
            return;
        }
        // The kernel may still hold operations: their memory must outlive them.
        std::mem::forget(std::mem::take(&mut st.bufs.mem));
        st.bufs.entries = std::ptr::null_mut();
        st.bufs.map_len = 0;
        std::mem::forget(std::mem::take(&mut st.sends));
        std::mem::forget(std::mem::replace(&mut st.wake, Box::new(0)));
    }
}

fn page_size() -> usize {
    // SAFETY: no pointers.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// Whether this process can run the io_uring backend, and if not, why (in words an
/// operator can act on).
pub fn probe() -> Result<(), String> {
    if let Some((major, minor)) = kernel_version() {
        if (major, minor) < (6, 1) {
            return Err(format!(
                "kernel {major}.{minor} is older than 6.1, which the io_uring backend needs (deferred task running)"
            ));
        }
    }
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if v.trim() == "2" {
            return Err("io_uring is switched off on this machine (sysctl kernel.io_uring_disabled = 2)".into());
        }
    }
    let ring = Ring::new(8, 8, 4096).map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) => "io_uring_setup was refused with EPERM: a seccomp profile (container runtimes block \
                              io_uring by default) or kernel.io_uring_disabled forbids it"
            .to_string(),
        Some(libc::ENOSYS) => "this kernel has no io_uring (ENOSYS)".to_string(),
        Some(libc::EINVAL) => format!("this kernel lacks a ring feature the backend needs ({e})"),
        _ => format!("cannot set up a ring: {e}"),
    })?;
    let mut p = io_uring::Probe::new();
    ring.uring.submitter().register_probe(&mut p).map_err(|e| format!("cannot probe the ring's operations: {e}"))?;
    let needed = [
        (opcode::RecvMulti::CODE, "recv"),
        (opcode::Send::CODE, "send"),
        (opcode::PollAdd::CODE, "poll"),
        (opcode::AsyncCancel::CODE, "cancel"),
        (opcode::Close::CODE, "close"),
    ];
    for (code, name) in needed {
        if !p.is_supported(code) {
            return Err(format!("this kernel's io_uring lacks the {name} operation"));
        }
    }
    Ok(())
}

fn kernel_version() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    fn reap_until(ring: &Ring, out: &mut Reaped, f: impl Fn(&Reaped) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f(out) {
            assert!(Instant::now() < deadline, "no completion in 10 s: {:?}", out.done);
            ring.wait(Some(Duration::from_millis(100))).unwrap();
            ring.reap(out);
        }
    }

    #[test]
    fn receives_sends_and_closes() {
        if let Err(why) = probe() {
            eprintln!("skipped: {why}");
            return;
        }
        let ring = Ring::new(64, 8, 16).unwrap();
        ring.enable().unwrap();
        let (mut client, server) = pair();
        let fd = server.as_fd().as_raw_fd();
        ring.recv(fd, 7);
        // More than the buffers hold at once: the receive stops with NoBuffers or goes on.
        client.write_all(b"hello, ring").unwrap();
        let mut out = Reaped::default();
        reap_until(&ring, &mut out, |o| o.data.len() >= 11);
        assert_eq!(&out.data[..11], b"hello, ring");
        let big = vec![b'x'; 1 << 20];
        ring.send(fd, 7, big.clone());
        ring.submit().unwrap();
        let mut got = vec![0; big.len()];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, big);
        out.clear();
        reap_until(&ring, &mut out, |o| o.done.iter().any(|d| matches!(d, Done::Sent { .. })));
        assert!(out.done.contains(&Done::Sent { token: 7, result: Ok(1 << 20) }), "{:?}", out.done);
        ring.close(OwnedFd::from(server));
        ring.submit().unwrap();
        out.clear();
        reap_until(&ring, &mut out, |o| o.done.iter().any(|d| matches!(d, Done::Recv { token: 7, armed: false, .. })));
        // Closed on the ring: the client reads end of stream.
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
        ring.shutdown();
    }
}
