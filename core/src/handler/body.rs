//! Streamed request bodies: the [`Body`] a handler reads while the connection is still
//! receiving it, with flow control.
//!
//! The connection decodes the body (`frame/body.rs`) and queues its data here; the
//! handler takes it, from any thread, three ways: [`Body::try_read`] (poll),
//! [`Body::when_ready`] (a callback once there is something to take), or blocking reads
//! ([`Body::read_blocking`], `std::io::Read`) on a thread of its own.
//!
//! Flow control: once `body_window` bytes are queued and not taken, the connection
//! stops reading the socket (TCP then holds the client back); taking data back under
//! half the window wakes it. So a body of any size costs the server its window.
//!
//! `Expect: 100-continue`: the interim `100 Continue` is sent when the handler first
//! asks for data (or calls [`Body::send_continue`]), not before: a handler that answers
//! without reading (a `401`, a `413`) never invites the upload.
//!
//! A handler may answer before the body is read: the rest is then read and discarded,
//! up to a bound (`DISCARD_LIMIT` in conn/body.rs), so the connection can serve its next
//! request; past the bound it closes after the reply. Dropping the `Body` unread does
//! the same.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::conn::Conn;
pub use crate::frame::BodyError;
use crate::sync::lock;

type Waiter = Box<dyn FnOnce() + Send>;

/// What a read of a [`Body`] gave.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyRead {
    /// The next piece of the body (never empty).
    Data(Vec<u8>),
    /// Nothing to take yet: the body goes on.
    Pending,
    /// The body is complete; its trailers (chunked bodies) are in [`Body::trailers`].
    End,
    /// The body will not complete.
    Failed(BodyError),
}

/// The state shared by the connection (producer) and the handler's [`Body`] (consumer).
pub(crate) struct BodyShared {
    state: Mutex<State>,
    ready: Condvar,
    /// Woken when the window reopens, data is asked for, or the reader leaves.
    conn: Weak<Conn>,
    window: usize,
    length: Option<u64>,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Vec<u8>>,
    queued: usize,
    /// Set once: the body's end, or why it will not end.
    end: Option<Result<(), BodyError>>,
    trailers: Vec<(String, Vec<u8>)>,
    /// Called once data, the end or a failure can be taken.
    waiter: Option<Waiter>,
    /// The connection stopped reading because the window is full.
    paused: bool,
    /// The reader asked for data (the cue for `100 Continue`).
    asked: bool,
    /// The reader is gone: what comes is discarded.
    abandoned: bool,
}

impl BodyShared {
    pub(crate) fn new(conn: Weak<Conn>, window: usize, length: Option<u64>) -> Arc<BodyShared> {
        Arc::new(BodyShared { state: Mutex::new(State::default()), ready: Condvar::new(), conn, window, length })
    }

    /// Connection: how many more bytes the reader has room for (0: stop reading; the
    /// reader wakes the connection once it has taken enough).
    pub(crate) fn room(&self) -> usize {
        let mut s = lock(&self.state);
        let room = self.window.saturating_sub(s.queued);
        if room == 0 {
            s.paused = true;
        }
        room
    }

    /// Connection: a piece of the body.
    pub(crate) fn push(&self, data: &[u8]) {
        if !data.is_empty() {
            self.push_vec(data.to_vec());
        }
    }

    /// Connection: a piece of the body, handed over whole.
    pub(crate) fn push_vec(&self, data: Vec<u8>) {
        if data.is_empty() {
            return;
        }
        let waiter = {
            let mut s = lock(&self.state);
            if s.abandoned || s.end.is_some() {
                return;
            }
            s.queued += data.len();
            s.chunks.push_back(data);
            s.waiter.take()
        };
        self.ready.notify_all();
        if let Some(w) = waiter {
            fire(w);
        }
    }

    /// Connection: the body ended (`Ok`, with its trailers) or will not end.
    pub(crate) fn finish(&self, end: Result<(), BodyError>, trailers: Vec<(String, Vec<u8>)>) {
        let waiter = {
            let mut s = lock(&self.state);
            if s.end.is_some() {
                return;
            }
            s.end = Some(end);
            s.trailers = trailers;
            s.waiter.take()
        };
        self.ready.notify_all();
        if let Some(w) = waiter {
            fire(w);
        }
    }

    /// Connection: the reader asked for data (send `100 Continue` if it is expected).
    pub(crate) fn asked(&self) -> bool {
        lock(&self.state).asked
    }

    /// Connection: the reader is gone, so the rest of the body is discarded.
    pub(crate) fn abandoned(&self) -> bool {
        lock(&self.state).abandoned
    }

    fn wake_conn(&self) {
        if let Some(c) = self.conn.upgrade() {
            c.wake_to_read();
        }
    }
}

/// Calls a front's callback, catching a panic (it runs on whichever thread saw the
/// event: an I/O worker lives on).
fn fire(w: Waiter) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(w));
}

/// A request body that is still arriving. One reader; `Send`, so it may move to any
/// thread. See the module doc.
pub struct Body {
    shared: Arc<BodyShared>,
    /// The rest of a piece a `std::io::Read` caller took only part of.
    partial: Vec<u8>,
    partial_pos: usize,
}

impl Body {
    pub(crate) fn new(shared: Arc<BodyShared>) -> Body {
        Body { shared, partial: Vec::new(), partial_pos: 0 }
    }

    /// The body's declared length (`Content-Length`), if it has one (chunked: `None`).
    pub fn length(&self) -> Option<u64> {
        self.shared.length
    }

    /// Takes the next piece, if one is there, without waiting. Taking data opens the
    /// window: the connection reads more once the reader is under half of it.
    pub fn try_read(&mut self) -> BodyRead {
        if self.partial_pos < self.partial.len() {
            let rest = self.partial.split_off(self.partial_pos);
            self.partial = Vec::new();
            self.partial_pos = 0;
            return BodyRead::Data(rest);
        }
        let (read, wake) = {
            let mut s = lock(&self.shared.state);
            let first_ask = !s.asked;
            s.asked = true;
            match s.chunks.pop_front() {
                Some(chunk) => {
                    s.queued -= chunk.len();
                    let reopen = s.paused && s.queued <= self.shared.window / 2;
                    if reopen {
                        s.paused = false;
                    }
                    (BodyRead::Data(chunk), reopen || first_ask)
                }
                None => match &s.end {
                    Some(Ok(())) => (BodyRead::End, false),
                    Some(Err(e)) => (BodyRead::Failed(e.clone()), false),
                    None => (BodyRead::Pending, first_ask),
                },
            }
        };
        if wake {
            self.shared.wake_conn();
        }
        read
    }

    /// Calls `f` once a [`Body::try_read`] would not say `Pending` (at once if so now).
    /// One callback at a time: a second replaces the first. `f` runs on whichever
    /// thread sees the data come (usually an I/O worker): it must be quick and must not
    /// block; it should only wake the reader.
    pub fn when_ready(&self, f: impl FnOnce() + Send + 'static) {
        let mut f: Option<Waiter> = Some(Box::new(f));
        let first_ask = {
            let mut s = lock(&self.shared.state);
            let first_ask = !s.asked;
            s.asked = true;
            let now = !s.chunks.is_empty() || s.end.is_some() || self.partial_pos < self.partial.len();
            if !now {
                s.waiter = f.take();
            }
            first_ask
        };
        self.wake_if(first_ask);
        if let Some(f) = f {
            fire(f);
        }
    }

    fn wake_if(&self, first_ask: bool) {
        if first_ask {
            self.shared.wake_conn();
        }
    }

    /// Waits for the next piece (or the end), up to `timeout` (`None`: no limit);
    /// `Pending` if the time ran out. Blocks the calling thread: never call it from a
    /// handler running on an I/O worker (`Cost::Light`), which would hold up the very
    /// connection it waits for; there it returns `Pending` at once.
    pub fn read_blocking(&mut self, timeout: Option<Duration>) -> BodyRead {
        let first = self.try_read();
        if first != BodyRead::Pending || super::on_io_worker() {
            return first;
        }
        let until = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut s = lock(&self.shared.state);
        loop {
            if !s.chunks.is_empty() || s.end.is_some() {
                drop(s);
                return self.try_read();
            }
            s = match until {
                None => self.shared.ready.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return BodyRead::Pending;
                    }
                    self.shared.ready.wait_timeout(s, left).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }

    /// Reads the rest of the body whole, blocking, up to `limit` bytes (more is an
    /// error: `TooLarge`). For handlers that need it all; the same rules as
    /// [`Body::read_blocking`].
    pub fn read_to_end(&mut self, limit: u64) -> Result<Vec<u8>, BodyError> {
        let mut all = Vec::new();
        loop {
            match self.read_blocking(None) {
                BodyRead::Data(d) => {
                    if all.len() as u64 + d.len() as u64 > limit {
                        return Err(BodyError::TooLarge { limit });
                    }
                    all.extend_from_slice(&d)
                }
                BodyRead::End => return Ok(all),
                BodyRead::Failed(e) => return Err(e),
                // Only on an I/O worker, which must not wait.
                BodyRead::Pending => return Err(BodyError::Closed),
            }
        }
    }

    /// The trailer fields of a chunked body, once it has ended (empty before, and for
    /// bodies without any).
    pub fn trailers(&self) -> Vec<(String, Vec<u8>)> {
        lock(&self.shared.state).trailers.clone()
    }

    /// Sends `100 Continue` now if the client asked for it (it is otherwise sent when
    /// the handler first reads).
    pub fn send_continue(&self) {
        let first_ask = {
            let mut s = lock(&self.shared.state);
            let first = !s.asked;
            s.asked = true;
            first
        };
        self.wake_if(first_ask);
    }
}

impl std::io::Read for Body {
    /// Blocking (see [`Body::read_blocking`]); `Ok(0)` at the end; an error of kind
    /// `InvalidData` for a body that will not complete; `WouldBlock` on an I/O worker.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.partial_pos >= self.partial.len() {
            match self.read_blocking(None) {
                BodyRead::Data(d) => {
                    self.partial = d;
                    self.partial_pos = 0;
                }
                BodyRead::End => return Ok(0),
                BodyRead::Failed(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
                BodyRead::Pending => return Err(std::io::ErrorKind::WouldBlock.into()),
            }
        }
        let n = buf.len().min(self.partial.len() - self.partial_pos);
        buf[..n].copy_from_slice(&self.partial[self.partial_pos..self.partial_pos + n]);
        self.partial_pos += n;
        Ok(n)
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        let wake = {
            let mut s = lock(&self.shared.state);
            s.abandoned = true;
            s.chunks.clear();
            s.queued = 0;
            s.waiter = None;
            s.end.is_none()
        };
        if wake {
            self.shared.wake_conn();
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body").field("length", &self.shared.length).finish_non_exhaustive()
    }
}
