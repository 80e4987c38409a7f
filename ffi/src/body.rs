//! `corral_body`: a request body that is still arriving, read from C as it comes, with
//! the connection's flow control behind it (core's `Body`).
//!
//! Three ways to read, as in core: non-blocking (`corral_body_read`, which says
//! `CORRAL_STATUS_PENDING` when nothing is there yet), a callback once there is something
//! (`corral_body_when_ready`), and blocking reads on a thread of the app's own
//! (`corral_body_read_blocking`).
//!
//! What this layer adds to core's `Body`, and why:
//! - reads copy into the caller's buffer; a piece larger than it is kept here (`rest`)
//!   for the next read, so no byte is lost and none is copied twice;
//! - trailers are kept once the body ends, so C can borrow them by index;
//! - the ready callback passes through a [`Gate`], so that once `corral_body_free`
//!   returns no callback is running or will run: a C program may then free what its
//!   `userdata` points at. Core's waiter alone may be on its way on an I/O worker while
//!   the body is dropped.

use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::Duration;

use corral_core::{Body, BodyError, BodyRead};

use crate::{boundary, boundary_void, CorralStatus};

/// A request body still arriving. Take it in the handler with corral_request_take_body();
/// it is then yours, independent of the request and the handler call: read it from any
/// thread, one thread at a time (calls on one body must not overlap), and free it with
/// corral_body_free(). Freeing it before its end discards the rest of the upload.
pub struct CorralBody {
    inner: Body,
    /// The part of the last piece that did not fit the caller's buffer.
    rest: Vec<u8>,
    rest_pos: usize,
    /// The chunked body's trailer fields, once it ended.
    trailers: Vec<(String, Vec<u8>)>,
    gate: Arc<Gate>,
}

/// Called once a corral_body_read() would not return CORRAL_STATUS_PENDING. See
/// corral_body_when_ready().
pub type CorralBodyReadyFn = Option<unsafe extern "C" fn(*mut c_void)>;

/// corral_body_read_blocking()'s `timeout_ms` for "wait until something comes".
pub const CORRAL_WAIT_FOREVER: u64 = u64::MAX;

impl CorralBody {
    pub(crate) fn new(inner: Body) -> CorralBody {
        CorralBody { inner, rest: Vec::new(), rest_pos: 0, trailers: Vec::new(), gate: Arc::new(Gate::default()) }
    }

    /// Fills `buf` from what is kept, else from one read of the body.
    fn fill(&mut self, buf: &mut [u8], read: impl FnOnce(&mut Body) -> BodyRead) -> (CorralStatus, usize) {
        if self.rest_pos < self.rest.len() {
            return (CorralStatus::Ok, self.take_rest(buf));
        }
        match read(&mut self.inner) {
            BodyRead::Data(d) => {
                self.rest = d;
                self.rest_pos = 0;
                (CorralStatus::Ok, self.take_rest(buf))
            }
            BodyRead::Pending => (CorralStatus::Pending, 0),
            BodyRead::End => {
                self.trailers = self.inner.trailers();
                (CorralStatus::End, 0)
            }
            BodyRead::Failed(e) => (status_of(&e), 0),
        }
    }

    fn take_rest(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.rest.len() - self.rest_pos);
        buf[..n].copy_from_slice(&self.rest[self.rest_pos..self.rest_pos + n]);
        self.rest_pos += n;
        if self.rest_pos == self.rest.len() {
            self.rest = Vec::new();
            self.rest_pos = 0;
        }
        n
    }
}

/// The status for a body that will not complete.
fn status_of(e: &BodyError) -> CorralStatus {
    match e {
        BodyError::TooLarge { .. } => CorralStatus::BodyTooLarge,
        BodyError::Malformed(_) => CorralStatus::BodyMalformed,
        BodyError::TooSlow => CorralStatus::BodyTooSlow,
        BodyError::Closed => CorralStatus::BodyClosed,
    }
}

/// Lets ready callbacks run only while the body lives, and lets corral_body_free() wait
/// for one that is running on another thread.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    /// The body was freed: no callback runs any more.
    closed: bool,
    /// A thread is inside corral_body_when_ready(), holding the body.
    registering: Option<ThreadId>,
    /// The callback came while its own registration was under way on the same thread;
    /// it runs once the registration returns (no borrow of the body is alive then).
    deferred: bool,
    /// The threads running a callback now.
    running: Vec<ThreadId>,
}

/// A C pointer that core's waiter carries to whichever thread fires it.
#[derive(Clone, Copy)]
struct UserData(*mut c_void);
// SAFETY: corral_body_when_ready() documents that the callback runs on a corral thread
// with this userdata: the caller vouches for using it there.
unsafe impl Send for UserData {}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the callback, unless the body is freed; waits out a registration under way
    /// on another thread (that thread still holds the body).
    fn fire(&self, cb: unsafe extern "C" fn(*mut c_void), ud: UserData) {
        let me = std::thread::current().id();
        let mut s = self.lock();
        loop {
            if s.closed {
                return;
            }
            match s.registering {
                Some(t) if t == me => {
                    s.deferred = true;
                    return;
                }
                Some(_) => s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner()),
                None => break,
            }
        }
        s.running.push(me);
        drop(s);
        // A C function does not unwind; the guard is for the Rust around it.
        let _ = std::panic::catch_unwind(|| unsafe { cb(ud.0) });
        let mut s = self.lock();
        if let Some(i) = s.running.iter().position(|t| *t == me) {
            s.running.swap_remove(i);
        }
        drop(s);
        self.changed.notify_all();
    }

    /// No callback starts from now on; returns once those running on other threads are
    /// done (one running on this thread is the caller itself).
    fn close(&self) {
        let me = std::thread::current().id();
        let mut s = self.lock();
        s.closed = true;
        while s.running.iter().any(|t| *t != me) {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn body_mut<'a>(body: *mut CorralBody) -> Option<&'a mut CorralBody> {
    // SAFETY: the caller passes a body from corral_request_take_body(), not yet freed,
    // used by one thread at a time (the header's contract).
    unsafe { body.as_mut() }
}

/// A read's common checks; `n` is written for every outcome of the read itself.
unsafe fn read_into(
    body: *mut CorralBody,
    buf: *mut u8,
    cap: usize,
    n: *mut usize,
    read: impl FnOnce(&mut Body) -> BodyRead,
) -> CorralStatus {
    let Some(b) = body_mut(body) else { return CorralStatus::NullArgument };
    if buf.is_null() || n.is_null() {
        return CorralStatus::NullArgument;
    }
    if cap == 0 {
        return CorralStatus::InvalidArgument;
    }
    // SAFETY: the caller passes `cap` writable bytes at `buf`.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, cap) };
    let (status, got) = b.fill(out, read);
    unsafe { *n = got };
    status
}

/// Reads what has arrived of the body into `buf` (`cap` bytes, at least 1), without
/// waiting. `*n` gets the number of bytes copied; it is written for each of these
/// outcomes (0 unless CORRAL_STATUS_OK):
/// - CORRAL_STATUS_OK: `*n` (1 to `cap`) bytes; read again for more;
/// - CORRAL_STATUS_PENDING: nothing yet; wait with corral_body_when_ready() (or read
///   blocking on a thread of your own) and read again;
/// - CORRAL_STATUS_END: the whole body was read; its trailers are now available;
/// - CORRAL_STATUS_BODY_TOO_LARGE, _BODY_MALFORMED, _BODY_TOO_SLOW, _BODY_CLOSED: the body
///   will not complete (corral_status_message() says why); for the first three corral
///   has answered the client itself (413, 400, 408), so your reply is not sent.
///
/// Taking data reopens the connection's window: while the body's unread data fills
/// `body_window`, corral stops reading the socket (TCP then holds the client back).
/// The first read sends `100 Continue` if the client asked for it.
/// Any thread, one at a time per body (it never blocks: fine on an I/O worker).
#[no_mangle]
pub unsafe extern "C" fn corral_body_read(
    body: *mut CorralBody,
    buf: *mut u8,
    cap: usize,
    n: *mut usize,
) -> CorralStatus {
    boundary(|| unsafe { read_into(body, buf, cap, n, Body::try_read) })
}

/// Like corral_body_read(), but waits up to `timeout_ms` milliseconds for something to
/// read (CORRAL_WAIT_FOREVER: no limit); CORRAL_STATUS_PENDING only if the time ran
/// out. Blocks the calling thread: call it from a thread of your own, or from a handler
/// that runs on the CPU pool (CORRAL_COST_HEAVY, which holds a pool thread while the
/// client sends). From a handler on an I/O worker (light) it never waits, and returns
/// CORRAL_STATUS_PENDING at once when nothing is there: blocking there would hold up
/// the very connection it waits for.
#[no_mangle]
pub unsafe extern "C" fn corral_body_read_blocking(
    body: *mut CorralBody,
    buf: *mut u8,
    cap: usize,
    timeout_ms: u64,
    n: *mut usize,
) -> CorralStatus {
    let timeout = (timeout_ms != CORRAL_WAIT_FOREVER).then(|| Duration::from_millis(timeout_ms));
    boundary(|| unsafe { read_into(body, buf, cap, n, |b| b.read_blocking(timeout)) })
}

/// Calls `callback(userdata)` once, when a corral_body_read() would not return
/// CORRAL_STATUS_PENDING (data, the end, or a failure): at once, on the calling thread,
/// before this returns, if that is so now; else later, on the corral thread that sees
/// the data come (usually an I/O worker). One callback at a time: a second call
/// replaces a callback that has not run yet. The callback must be quick and must not
/// block: it should only wake your reader (signal a condition variable, write an
/// eventfd, post to your event loop). It may itself read the body with
/// corral_body_read(), register again, or free the body, when no other thread is
/// using the body then (a reader driven only by callbacks).
///
/// Once corral_body_free() has returned, no callback is running or will run, so
/// `userdata` may be freed then. Any thread, one at a time per body.
#[no_mangle]
pub unsafe extern "C" fn corral_body_when_ready(
    body: *mut CorralBody,
    callback: CorralBodyReadyFn,
    userdata: *mut c_void,
) -> CorralStatus {
    boundary(|| {
        let Some(b) = body_mut(body) else { return CorralStatus::NullArgument };
        let Some(cb) = callback else { return CorralStatus::NullArgument };
        let ud = UserData(userdata);
        let gate = Arc::clone(&b.gate);
        if b.rest_pos < b.rest.len() {
            // Kept bytes are readable now; core does not know of them.
            gate.fire(cb, ud);
            return CorralStatus::Ok;
        }
        gate.lock().registering = Some(std::thread::current().id());
        let waiter = Arc::clone(&gate);
        b.inner.when_ready(move || waiter.fire(cb, ud));
        // From here the body may be in a callback's hands: only the gate is touched.
        let deferred = {
            let mut s = gate.lock();
            s.registering = None;
            std::mem::take(&mut s.deferred)
        };
        gate.changed.notify_all();
        if deferred {
            gate.fire(cb, ud);
        }
        CorralStatus::Ok
    })
}

/// The body's declared length (its `Content-Length`) into `*len`, or
/// CORRAL_STATUS_NOT_FOUND for a chunked body, whose length is known only at its end.
/// Any thread, one at a time per body.
#[no_mangle]
pub unsafe extern "C" fn corral_body_length(body: *const CorralBody, len: *mut u64) -> CorralStatus {
    boundary(|| {
        // SAFETY: as body_mut, read only.
        let Some(b) = (unsafe { body.as_ref() }) else { return CorralStatus::NullArgument };
        if len.is_null() {
            return CorralStatus::NullArgument;
        }
        match b.inner.length() {
            Some(n) => {
                unsafe { *len = n };
                CorralStatus::Ok
            }
            None => CorralStatus::NotFound,
        }
    })
}

/// Sends `100 Continue` now if the client asked for it (`Expect: 100-continue`); it is
/// otherwise sent when you first read or register a callback. A handler that answers
/// without reading (a 401, a 413) never invites the upload. Any thread, one at a time
/// per body.
#[no_mangle]
pub unsafe extern "C" fn corral_body_send_continue(body: *mut CorralBody) -> CorralStatus {
    boundary(|| match body_mut(body) {
        Some(b) => {
            b.inner.send_continue();
            CorralStatus::Ok
        }
        None => CorralStatus::NullArgument,
    })
}

/// The number of trailer fields of a chunked body into `*count`: known once a read
/// returned CORRAL_STATUS_END (0 before, and for bodies without trailers). Any thread,
/// one at a time per body.
#[no_mangle]
pub unsafe extern "C" fn corral_body_trailer_count(body: *const CorralBody, count: *mut usize) -> CorralStatus {
    boundary(|| {
        // SAFETY: as body_mut, read only.
        let Some(b) = (unsafe { body.as_ref() }) else { return CorralStatus::NullArgument };
        if count.is_null() {
            return CorralStatus::NullArgument;
        }
        unsafe { *count = b.trailers.len() };
        CorralStatus::Ok
    })
}

/// Trailer field `index` (from 0, below corral_body_trailer_count()): its name (as the
/// client wrote it: compare case-insensitively) into `*name` / `*name_len`, its value
/// into `*value` / `*value_len`, neither NUL-terminated; CORRAL_STATUS_NOT_FOUND past the end. The bytes belong to
/// the body: valid until corral_body_free(). Any thread, one at a time per body.
#[no_mangle]
pub unsafe extern "C" fn corral_body_trailer(
    body: *const CorralBody,
    index: usize,
    name: *mut *const u8,
    name_len: *mut usize,
    value: *mut *const u8,
    value_len: *mut usize,
) -> CorralStatus {
    boundary(|| {
        // SAFETY: as body_mut, read only.
        let Some(b) = (unsafe { body.as_ref() }) else { return CorralStatus::NullArgument };
        if name.is_null() || name_len.is_null() || value.is_null() || value_len.is_null() {
            return CorralStatus::NullArgument;
        }
        let Some((n, v)) = b.trailers.get(index) else { return CorralStatus::NotFound };
        unsafe {
            *name = n.as_ptr();
            *name_len = n.len();
            *value = v.as_ptr();
            *value_len = v.len();
        }
        CorralStatus::Ok
    })
}

/// Frees the body. If it has not ended, the rest of the upload is discarded: corral
/// reads and drops up to 1 MiB of it so the connection can serve its next request, or
/// closes the connection after the reply when more is left. Once this returns, no
/// ready callback is running or will run: it waits for one running on another thread,
/// so do not hold a lock that your callback takes while you call it. NULL is a no-op.
/// Any thread, including from the body's own ready callback.
#[no_mangle]
pub unsafe extern "C" fn corral_body_free(body: *mut CorralBody) {
    boundary_void(|| {
        if body.is_null() {
            return;
        }
        // SAFETY: a body from corral_request_take_body(), freed once.
        let b = unsafe { Box::from_raw(body) };
        b.gate.close();
        drop(b);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static CALLS: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn count(_: *mut c_void) {
        CALLS.fetch_add(1, Ordering::SeqCst);
    }

    #[test]
    fn a_closed_gate_runs_nothing_and_a_registration_defers_its_own_callback() {
        let gate = Gate::default();
        let before = CALLS.load(Ordering::SeqCst);
        gate.lock().registering = Some(std::thread::current().id());
        gate.fire(count, UserData(std::ptr::null_mut()));
        assert_eq!(CALLS.load(Ordering::SeqCst), before, "deferred while registering on this thread");
        assert!(std::mem::take(&mut gate.lock().deferred));
        gate.lock().registering = None;
        gate.fire(count, UserData(std::ptr::null_mut()));
        assert_eq!(CALLS.load(Ordering::SeqCst), before + 1);
        gate.close();
        gate.fire(count, UserData(std::ptr::null_mut()));
        assert_eq!(CALLS.load(Ordering::SeqCst), before + 1, "nothing runs once closed");
    }

    #[test]
    fn null_arguments_are_refused() {
        let mut buf = [0u8; 4];
        let mut n = 7usize;
        let mut len = 0u64;
        unsafe {
            assert_eq!(corral_body_read(std::ptr::null_mut(), buf.as_mut_ptr(), 4, &mut n), CorralStatus::NullArgument);
            assert_eq!(
                corral_body_read_blocking(std::ptr::null_mut(), buf.as_mut_ptr(), 4, 0, &mut n),
                CorralStatus::NullArgument
            );
            assert_eq!(
                corral_body_when_ready(std::ptr::null_mut(), Some(count), std::ptr::null_mut()),
                CorralStatus::NullArgument
            );
            assert_eq!(corral_body_length(std::ptr::null(), &mut len), CorralStatus::NullArgument);
            assert_eq!(corral_body_send_continue(std::ptr::null_mut()), CorralStatus::NullArgument);
            corral_body_free(std::ptr::null_mut());
        }
        assert_eq!(n, 7, "outputs untouched on an error");
    }
}
