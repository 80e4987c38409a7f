//! Websockets from C: a serve handler sees that a request offers one
//! (`corral_request_is_websocket`), accepts it through its responder
//! (`corral_ws_accept`) with callbacks, and may keep a `corral_ws`: a reference-counted
//! handle to send, close, subscribe and publish from any thread (core's `WebSocket`).
//!
//! Invariants:
//! - A socket has one `CorralWs` (in an `Arc`): the pointer every callback gets is the
//!   pointer `corral_ws_accept` returns, so C may compare them. The C app owns the
//!   references that accept and retain gave it. The handler owns one from the socket's
//!   first callback until `on_close` returns, then drops it: core's socket keeps its
//!   handler alive, so a reference held longer would be a cycle that is never freed.
//! - Once `on_close` returns no callback runs or will run, so C may free what `user`
//!   points at. Core runs `drain` on whichever thread wrote the backlog down, which may
//!   race the worker's `close`: the [`Gate`] lets no callback start after `close` began
//!   and makes `close` wait for one running on another thread.

use std::ffi::{c_char, c_void};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

use corral_core::ws::{Accept, Message, SendStatus, WebSocket, WsHandler};

use crate::engine::{engine, CorralEngine};
use crate::serve::{c_headers, out_bytes, request, slice, take, CorralHeader, CorralRequest, CorralResponder};
use crate::{boundary, boundary_value, boundary_void, path_arg, CorralStatus};

/// An accepted websocket. Thread-safe: every corral_ws_* function may be called on it
/// from any thread, concurrently, including from its own callbacks. Reference counted:
/// corral_ws_accept() and corral_ws_retain() each give you one reference, which you
/// give back with corral_ws_release(); the pointer a callback receives is valid during
/// that callback only (retain it to keep it). A handle outlives its socket and its
/// engine: once the socket is closed, sends answer CORRAL_STATUS_DROPPED, and it may be
/// released before or after corral_engine_free().
pub struct CorralWs {
    ws: WebSocket,
}

/// on_open and on_drain: the socket, and the `user` given to corral_ws_accept().
pub type CorralWsEventFn = Option<unsafe extern "C" fn(*mut CorralWs, *mut c_void)>;

/// on_message: the socket, whether the message is text (valid UTF-8) or binary, its
/// bytes (not NUL-terminated; valid during the callback), their number, and `user`.
pub type CorralWsMessageFn = Option<unsafe extern "C" fn(*mut CorralWs, bool, *const u8, usize, *mut c_void)>;

/// on_close: the socket, the close code, the reason (UTF-8, `len` bytes followed by a
/// NUL; valid during the callback), its length, and `user`.
pub type CorralWsCloseFn = Option<unsafe extern "C" fn(*mut CorralWs, u16, *const c_char, usize, *mut c_void)>;

/// What corral calls for an accepted websocket; each may be NULL (a NULL on_message
/// discards messages). They run on corral's threads and must be quick and never block
/// (queue work to a thread of your own): on_open, on_message and on_close run on the I/O
/// worker serving the connection, in order, one at a time per socket; on_drain runs on
/// whichever thread wrote the backlog down, possibly while on_message runs, and
/// possibly inside the corral_ws_send() call that answered CORRAL_STATUS_BACKPRESSURE
/// (so do not hold a lock around a send that on_drain also takes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CorralWsCallbacks {
    /// The socket is open (the 101 is queued ahead of anything sent from here on).
    pub on_open: CorralWsEventFn,
    /// A whole message from the client.
    pub on_message: CorralWsMessageFn,
    /// The backlog that made a send answer CORRAL_STATUS_BACKPRESSURE is written down:
    /// send more.
    pub on_drain: CorralWsEventFn,
    /// The socket is closed, called exactly once: the client's code (1005 if it sent
    /// none), the code corral failed it with (1002 protocol error, 1007 invalid UTF-8,
    /// 1009 message over ws_max_message, 1011 server error), or 1006 when the
    /// connection ended without a close handshake (including engine shutdown). No
    /// callback runs after it returns.
    pub on_close: CorralWsCloseFn,
}

/// How to accept a websocket. Start from corral_ws_accept_opts_default().
#[repr(C)]
pub struct CorralWsAcceptOpts {
    /// The subprotocol to answer with (Sec-WebSocket-Protocol): one the client offered
    /// (corral_request_ws_protocol()), NUL-terminated; NULL for none.
    pub protocol: *const c_char,
    /// Headers for the 101 reply (may be NULL when the count is 0); copied by the call.
    pub headers: *const CorralHeader,
    pub header_count: usize,
    /// Turns permessage-deflate off for this socket (the ws_deflate option and the
    /// client's offer decide otherwise).
    pub no_deflate: bool,
}

/// Accept options with no subprotocol, no headers, and permessage-deflate allowed.
#[no_mangle]
pub extern "C" fn corral_ws_accept_opts_default() -> CorralWsAcceptOpts {
    CorralWsAcceptOpts { protocol: std::ptr::null(), headers: std::ptr::null(), header_count: 0, no_deflate: false }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lets callbacks start only until the socket closes, and lets the close wait for one
/// running on another thread.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    /// The threads running a callback now.
    running: Vec<ThreadId>,
}

/// Takes a running callback's thread off the gate, also if the Rust around it panics
/// (else a close would wait for it forever).
struct Running<'a>(&'a Gate, ThreadId);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut s = lock(&self.0.state);
        if let Some(i) = s.running.iter().position(|t| *t == self.1) {
            s.running.swap_remove(i);
        }
        drop(s);
        self.0.changed.notify_all();
    }
}

impl Gate {
    /// Runs `f` unless the socket closed.
    fn run(&self, f: impl FnOnce()) {
        let me = std::thread::current().id();
        {
            let mut s = lock(&self.state);
            if s.closed {
                return;
            }
            s.running.push(me);
        }
        let _running = Running(self, me);
        f();
    }

    /// No callback starts from now on; returns once those running on other threads are
    /// done (one running on this thread is the caller's own).
    fn close(&self) {
        let me = std::thread::current().id();
        let mut s = lock(&self.state);
        s.closed = true;
        while s.running.iter().any(|t| *t != me) {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The handler's own reference to the socket's handle (see the module doc).
enum Slot {
    /// No callback has run and accept has not returned yet.
    Empty,
    Held(Arc<CorralWs>),
    /// on_close ran: the reference was dropped.
    Closed,
}

/// The C callbacks as a core `WsHandler`.
struct CWsHandler {
    cbs: CorralWsCallbacks,
    user: *mut c_void,
    gate: Gate,
    slot: Mutex<Slot>,
}

// SAFETY: the header documents that the callbacks run on corral's threads with `user`:
// the caller vouches for using it there; the pointers themselves are inert.
unsafe impl Send for CWsHandler {}
unsafe impl Sync for CWsHandler {}

fn c_ptr(h: &Arc<CorralWs>) -> *mut CorralWs {
    // C gets a mutable pointer for its own API's sake; corral only ever reads through it.
    Arc::as_ptr(h).cast_mut()
}

impl CWsHandler {
    /// The socket's handle: the one the handler holds, made on first use. After the
    /// close a fresh one (only accept asks then: its socket closed before it returned).
    fn handle(&self, ws: &WebSocket) -> Arc<CorralWs> {
        let mut slot = lock(&self.slot);
        match &*slot {
            Slot::Held(h) => Arc::clone(h),
            Slot::Empty => {
                let h = Arc::new(CorralWs { ws: ws.clone() });
                *slot = Slot::Held(Arc::clone(&h));
                h
            }
            Slot::Closed => Arc::new(CorralWs { ws: ws.clone() }),
        }
    }

    fn event(&self, ws: &WebSocket, cb: CorralWsEventFn) {
        let Some(cb) = cb else { return };
        self.gate.run(|| {
            let h = self.handle(ws);
            // SAFETY: the handle lives until the call returns; `user` is the caller's.
            unsafe { cb(c_ptr(&h), self.user) }
        });
    }
}

impl WsHandler for CWsHandler {
    fn open(&self, ws: &WebSocket) {
        self.event(ws, self.cbs.on_open);
    }

    fn message(&self, ws: &WebSocket, msg: Message) {
        let Some(cb) = self.cbs.on_message else { return };
        let is_text = matches!(msg, Message::Text(_));
        let data = msg.as_bytes();
        self.gate.run(|| {
            let h = self.handle(ws);
            // SAFETY: the handle and the bytes live until the call returns.
            unsafe { cb(c_ptr(&h), is_text, data.as_ptr(), data.len(), self.user) }
        });
    }

    fn drain(&self, ws: &WebSocket) {
        self.event(ws, self.cbs.on_drain);
    }

    fn close(&self, ws: &WebSocket, code: u16, reason: &str) {
        self.gate.close();
        let h = match std::mem::replace(&mut *lock(&self.slot), Slot::Closed) {
            Slot::Held(h) => h,
            _ => Arc::new(CorralWs { ws: ws.clone() }),
        };
        if let Some(cb) = self.cbs.on_close {
            let mut text = Vec::with_capacity(reason.len() + 1);
            text.extend_from_slice(reason.as_bytes());
            text.push(0);
            // SAFETY: the handle and the reason live until the call returns.
            unsafe { cb(c_ptr(&h), code, text.as_ptr().cast(), reason.len(), self.user) };
        }
    }
}

/// True if the request asks for a websocket (a valid RFC 6455 upgrade request, with the
/// `ws` option on): accept it with corral_ws_accept(), or answer it as any request.
/// Malformed upgrade requests are answered 400/426 by corral and never reach the
/// handler. False for NULL. In the handler callback, on the thread running it.
#[no_mangle]
pub unsafe extern "C" fn corral_request_is_websocket(req: *const CorralRequest) -> bool {
    boundary_value(false, || request(req).is_some_and(|r| r.websocket().is_some()))
}

/// The `index`-th subprotocol the websocket request offers (Sec-WebSocket-Protocol, in
/// the client's order of preference) into `*data` / `*len` (not NUL-terminated; valid
/// until the handler callback returns). CORRAL_STATUS_NOT_FOUND past the last one, or
/// when the request is not a websocket offer. In the handler callback.
#[no_mangle]
pub unsafe extern "C" fn corral_request_ws_protocol(
    req: *const CorralRequest,
    index: usize,
    data: *mut *const u8,
    len: *mut usize,
) -> CorralStatus {
    boundary(|| {
        let Some(r) = request(req) else { return CorralStatus::NullArgument };
        match r.websocket().and_then(|o| o.protocols().get(index)) {
            Some(p) => unsafe { out_bytes(p.as_bytes(), data, len) },
            None if data.is_null() || len.is_null() => CorralStatus::NullArgument,
            None => CorralStatus::NotFound,
        }
    })
}

/// True if the request this responder answers asks for a websocket (as
/// corral_request_is_websocket(), for code that kept only the responder). False for
/// NULL. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_responder_can_upgrade(res: *const CorralResponder) -> bool {
    // SAFETY: the caller passes a responder it owns, not yet completed, or NULL.
    boundary_value(false, || unsafe { res.as_ref() }.is_some_and(|r| r.inner.can_upgrade()))
}

unsafe fn accept_from_c(opts: *const CorralWsAcceptOpts) -> Result<Accept, CorralStatus> {
    // SAFETY: the caller passes accept options or NULL.
    let Some(o) = (unsafe { opts.as_ref() }) else { return Ok(Accept::new()) };
    let mut accept = Accept::new();
    if !o.protocol.is_null() {
        accept = accept.protocol(unsafe { path_arg(o.protocol) }?);
    }
    for (name, value) in unsafe { c_headers(o.headers, o.header_count) }? {
        accept = accept.header(name, value);
    }
    Ok(if o.no_deflate { accept.without_deflate() } else { accept })
}

/// Accepts the websocket the request asks for and frees the responder: the 101 is
/// queued and `callbacks` get the socket's events from on_open on, each with `user`.
/// `opts` may be NULL (the defaults); `callbacks` is copied. `out` may be NULL; else it
/// gets a reference to the socket, yours to give back with corral_ws_release() (the
/// callbacks get the same pointer). Any thread, any time before `reply_timeout`.
///
/// `user` is used until on_close returns (on_close is called exactly once for every
/// accept that returned CORRAL_STATUS_OK, possibly before this call returns when
/// accepting from another thread); after that corral never touches it again.
///
/// The responder is consumed whatever the status (as by corral_responder_send()); on an
/// error the client gets HTTP 500 and no callback is ever called.
/// CORRAL_STATUS_INVALID_ARGUMENT: the request is not a websocket offer (check with
/// corral_request_is_websocket() or corral_responder_can_upgrade()), or the protocol or
/// a header is not UTF-8. CORRAL_STATUS_DROPPED: the connection is gone.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_accept(
    res: *mut CorralResponder,
    opts: *const CorralWsAcceptOpts,
    callbacks: *const CorralWsCallbacks,
    user: *mut c_void,
    out: *mut *mut CorralWs,
) -> CorralStatus {
    boundary(|| {
        let Some(r) = (unsafe { take(res) }) else { return CorralStatus::NullArgument };
        // SAFETY: the caller passes callbacks or NULL.
        let Some(cbs) = (unsafe { callbacks.as_ref() }).copied() else { return CorralStatus::NullArgument };
        let accept = match unsafe { accept_from_c(opts) } {
            Ok(a) => a,
            Err(s) => return s,
        };
        let handler = Arc::new(CWsHandler { cbs, user, gate: Gate::default(), slot: Mutex::new(Slot::Empty) });
        match r.upgrade(accept, Arc::clone(&handler) as Arc<dyn WsHandler>) {
            Ok(ws) => {
                if !out.is_null() {
                    unsafe { *out = Arc::into_raw(handler.handle(&ws)).cast_mut() };
                }
                CorralStatus::Ok
            }
            Err(r) if r.can_upgrade() => CorralStatus::Dropped,
            Err(_) => CorralStatus::InvalidArgument,
        }
    })
}

fn ws_ref<'a>(ws: *const CorralWs) -> Option<&'a WebSocket> {
    // SAFETY: the caller passes a handle it holds a reference to (or is in a callback
    // that received it), or NULL.
    unsafe { ws.as_ref() }.map(|w| &w.ws)
}

/// A message's bytes from C: text must be UTF-8 (it goes on the wire as a text frame).
unsafe fn message_arg(is_text: bool, data: *const u8, len: usize) -> Result<Message, CorralStatus> {
    let bytes = unsafe { slice(data, len) }.ok_or(CorralStatus::NullArgument)?;
    if is_text {
        let s = std::str::from_utf8(bytes).map_err(|_| CorralStatus::InvalidArgument)?;
        Ok(Message::Text(s.to_owned()))
    } else {
        Ok(Message::Binary(bytes.to_vec()))
    }
}

/// Sends a message: text (`is_text`: `data` must be valid UTF-8) or binary, `len`
/// bytes (`data` may be NULL when `len` is 0), copied before the call returns. Any
/// thread, including the socket's callbacks.
/// CORRAL_STATUS_OK: queued. CORRAL_STATUS_BACKPRESSURE: queued, but the socket's
/// unwritten bytes are now over `ws_max_backpressure`: wait for on_drain before sending
/// more. CORRAL_STATUS_DROPPED: not sent: the socket is closing or closed, or was
/// already over `ws_max_backpressure`. CORRAL_STATUS_INVALID_ARGUMENT: text that is not
/// UTF-8 (nothing is sent).
#[no_mangle]
pub unsafe extern "C" fn corral_ws_send(
    ws: *const CorralWs,
    is_text: bool,
    data: *const u8,
    len: usize,
) -> CorralStatus {
    boundary(|| {
        let Some(w) = ws_ref(ws) else { return CorralStatus::NullArgument };
        let Some(bytes) = (unsafe { slice(data, len) }) else { return CorralStatus::NullArgument };
        let sent = if is_text {
            match std::str::from_utf8(bytes) {
                Ok(s) => w.send_text(s),
                Err(_) => return CorralStatus::InvalidArgument,
            }
        } else {
            w.send_binary(bytes)
        };
        match sent {
            SendStatus::Sent(_) => CorralStatus::Ok,
            SendStatus::Backpressure => CorralStatus::Backpressure,
            SendStatus::Dropped => CorralStatus::Dropped,
        }
    })
}

/// Starts the closing handshake: a close frame with `code` (1000, 1001, 1002, 1003,
/// 1007-1014 or 3000-4999; another is sent as 1000) and `reason` (NUL-terminated UTF-8,
/// cut to 123 bytes; NULL for none). The connection closes when the client answers, or
/// after `ws_ping_timeout`; on_close then reports the client's code. A no-op on a socket
/// already closing. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_close(ws: *const CorralWs, code: u16, reason: *const c_char) -> CorralStatus {
    boundary(|| {
        let Some(w) = ws_ref(ws) else { return CorralStatus::NullArgument };
        let reason = if reason.is_null() {
            ""
        } else {
            match unsafe { path_arg(reason) } {
                Ok(r) => r,
                Err(s) => return s,
            }
        };
        w.close(code, reason);
        CorralStatus::Ok
    })
}

/// A topic argument and an optional "did it change" output.
unsafe fn topic_op(
    ws: *const CorralWs,
    topic: *const c_char,
    changed: *mut bool,
    op: fn(&WebSocket, &str) -> bool,
) -> CorralStatus {
    boundary(|| {
        let Some(w) = ws_ref(ws) else { return CorralStatus::NullArgument };
        let topic = match unsafe { path_arg(topic) } {
            Ok(t) => t,
            Err(s) => return s,
        };
        let did = op(w, topic);
        if !changed.is_null() {
            unsafe { *changed = did };
        }
        CorralStatus::Ok
    })
}

/// Subscribes the socket to `topic` (NUL-terminated UTF-8): messages published to it
/// (corral_ws_publish(), corral_engine_publish()) are sent to this socket. `changed`
/// (may be NULL) gets false if it was subscribed already or is closed. A socket leaves
/// its topics when it closes. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_subscribe(
    ws: *const CorralWs,
    topic: *const c_char,
    changed: *mut bool,
) -> CorralStatus {
    unsafe { topic_op(ws, topic, changed, WebSocket::subscribe) }
}

/// Unsubscribes the socket from `topic`; `changed` (may be NULL) gets false if it was
/// not subscribed. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_unsubscribe(
    ws: *const CorralWs,
    topic: *const c_char,
    changed: *mut bool,
) -> CorralStatus {
    unsafe { topic_op(ws, topic, changed, WebSocket::unsubscribe) }
}

/// Sends a message (as corral_ws_send()) to every socket subscribed to `topic` except
/// this one. `count` (may be NULL) gets how many it was queued for (those over
/// `ws_max_backpressure` are skipped). Encoded once, from the calling thread, and
/// queued on each subscriber's connection inside corral. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_publish(
    ws: *const CorralWs,
    topic: *const c_char,
    is_text: bool,
    data: *const u8,
    len: usize,
    count: *mut usize,
) -> CorralStatus {
    boundary(|| {
        let Some(w) = ws_ref(ws) else { return CorralStatus::NullArgument };
        unsafe { publish(topic, is_text, data, len, count, |t, m| w.publish(t, m)) }
    })
}

/// Sends a message (as corral_ws_send()) to every socket subscribed to `topic`.
/// `count` (may be NULL) gets how many it was queued for. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_publish(
    e: *const CorralEngine,
    topic: *const c_char,
    is_text: bool,
    data: *const u8,
    len: usize,
    count: *mut usize,
) -> CorralStatus {
    boundary(|| {
        let Some(e) = engine(e) else { return CorralStatus::NullArgument };
        unsafe { publish(topic, is_text, data, len, count, |t, m| e.publish(t, m)) }
    })
}

unsafe fn publish(
    topic: *const c_char,
    is_text: bool,
    data: *const u8,
    len: usize,
    count: *mut usize,
    to: impl FnOnce(&str, &Message) -> usize,
) -> CorralStatus {
    let topic = match unsafe { path_arg(topic) } {
        Ok(t) => t,
        Err(s) => return s,
    };
    let msg = match unsafe { message_arg(is_text, data, len) } {
        Ok(m) => m,
        Err(s) => return s,
    };
    let n = to(topic, &msg);
    if !count.is_null() {
        unsafe { *count = n };
    }
    CorralStatus::Ok
}

/// The number of sockets subscribed to `topic` now, into `*out`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_engine_subscribers(
    e: *const CorralEngine,
    topic: *const c_char,
    out: *mut usize,
) -> CorralStatus {
    boundary(|| {
        let Some(e) = engine(e) else { return CorralStatus::NullArgument };
        let topic = match unsafe { path_arg(topic) } {
            Ok(t) => t,
            Err(s) => return s,
        };
        if out.is_null() {
            return CorralStatus::NullArgument;
        }
        unsafe { *out = e.subscribers(topic) };
        CorralStatus::Ok
    })
}

/// Writes `value(ws)` into `*out`.
fn get<T>(ws: *const CorralWs, out: *mut T, value: impl FnOnce(&WebSocket) -> T) -> CorralStatus {
    boundary(|| {
        let Some(w) = ws_ref(ws) else { return CorralStatus::NullArgument };
        if out.is_null() {
            return CorralStatus::NullArgument;
        }
        // SAFETY: the caller passes a writable `T`.
        unsafe { out.write(value(w)) };
        CorralStatus::Ok
    })
}

/// The bytes queued on the socket's connection and not yet written, into `*out`. Any
/// thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_buffered_amount(ws: *const CorralWs, out: *mut usize) -> CorralStatus {
    get(ws, out, WebSocket::buffered_amount)
}

/// The engine-unique id of the socket's connection (as corral_request_info's
/// `conn_id`), into `*out`. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_id(ws: *const CorralWs, out: *mut u64) -> CorralStatus {
    get(ws, out, WebSocket::id)
}

/// Whether the socket is open (true until its closing handshake begins), into `*out`.
/// Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_is_open(ws: *const CorralWs, out: *mut bool) -> CorralStatus {
    get(ws, out, WebSocket::is_open)
}

/// Stops reading from the client until corral_ws_resume(): for an app whose queue of
/// received messages is full, so nothing buffers without bound (TCP holds the client
/// back). Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_pause(ws: *const CorralWs) -> CorralStatus {
    boundary(|| match ws_ref(ws) {
        Some(w) => {
            w.pause();
            CorralStatus::Ok
        }
        None => CorralStatus::NullArgument,
    })
}

/// Reads from the client again after corral_ws_pause(). Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_resume(ws: *const CorralWs) -> CorralStatus {
    boundary(|| match ws_ref(ws) {
        Some(w) => {
            w.resume();
            CorralStatus::Ok
        }
        None => CorralStatus::NullArgument,
    })
}

/// Takes another reference to the socket (give it back with corral_ws_release()) and
/// returns `ws`: use it to keep the pointer a callback received. NULL gives NULL. Any
/// thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_retain(ws: *mut CorralWs) -> *mut CorralWs {
    if !ws.is_null() {
        // SAFETY: the caller holds a reference (or is in a callback that got `ws`), so
        // the count is at least one.
        boundary_void(|| unsafe { Arc::increment_strong_count(ws.cast_const()) });
    }
    ws
}

/// Gives back one reference from corral_ws_accept() or corral_ws_retain(); the handle
/// is freed with the last one (the socket itself lives on while its connection does).
/// Never release the pointer a callback received without retaining it. NULL is a
/// no-op. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_ws_release(ws: *mut CorralWs) {
    if !ws.is_null() {
        // SAFETY: the caller gives back a reference it holds.
        boundary_void(|| unsafe { Arc::decrement_strong_count(ws.cast_const()) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_runs_nothing_after_it_closes() {
        let gate = Gate::default();
        let mut ran = 0;
        gate.run(|| ran += 1);
        gate.close();
        gate.run(|| ran += 1);
        assert_eq!(ran, 1);
    }

    #[test]
    fn the_gate_closes_from_inside_a_callback_on_its_own_thread() {
        let gate = Gate::default();
        gate.run(|| gate.close());
        assert!(lock(&gate.state).running.is_empty());
    }

    #[test]
    fn the_gate_waits_for_a_callback_running_on_another_thread() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        use std::sync::mpsc;
        let gate = Arc::new(Gate::default());
        let done = Arc::new(AtomicBool::new(false));
        let (started_tx, started) = mpsc::channel();
        let (release_tx, release) = mpsc::channel::<()>();
        let t = {
            let (gate, done) = (Arc::clone(&gate), Arc::clone(&done));
            std::thread::spawn(move || {
                gate.run(|| {
                    started_tx.send(()).unwrap();
                    release.recv().unwrap();
                    done.store(true, SeqCst);
                })
            })
        };
        started.recv().unwrap();
        let closer = {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || gate.close())
        };
        // The closer marks the gate closed and checks for running callbacks under one
        // lock: once it is marked, the closer is waiting.
        while !lock(&gate.state).closed {
            std::thread::yield_now();
        }
        release_tx.send(()).unwrap();
        closer.join().unwrap();
        assert!(done.load(SeqCst), "close returned while a callback was running");
        t.join().unwrap();
    }

    #[test]
    fn null_arguments_are_statuses() {
        unsafe {
            assert_eq!(corral_ws_send(std::ptr::null(), true, std::ptr::null(), 0), CorralStatus::NullArgument);
            assert_eq!(corral_ws_close(std::ptr::null(), 1000, std::ptr::null()), CorralStatus::NullArgument);
            assert!(!corral_request_is_websocket(std::ptr::null()));
            assert!(!corral_responder_can_upgrade(std::ptr::null()));
            assert!(corral_ws_retain(std::ptr::null_mut()).is_null());
            corral_ws_release(std::ptr::null_mut());
        }
    }

    #[test]
    fn text_must_be_utf8() {
        assert_eq!(unsafe { message_arg(true, b"\xff".as_ptr(), 1) }, Err(CorralStatus::InvalidArgument));
        assert_eq!(unsafe { message_arg(false, b"\xff".as_ptr(), 1) }, Ok(Message::Binary(vec![0xff])));
        assert_eq!(unsafe { message_arg(true, std::ptr::null(), 1) }, Err(CorralStatus::NullArgument));
    }
}
