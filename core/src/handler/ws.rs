//! Websockets as the handler sees them: a request that asks for one carries an
//! [`Offer`]; its [`Responder`](super::Responder) accepts with [`Accept`] and a
//! [`WsHandler`] and gets a [`WebSocket`], a handle usable from any thread.
//!
//! Threads: `open`, `message` and `close` run on the I/O worker running the
//! connection, in order, one at a time per socket; `drain` runs on whichever thread
//! wrote the backlog down. They must be quick: a front queues to its own loop there. A
//! panic in one is caught and the socket closed with 1011.
//!
//! Sending: a message is encoded (and compressed, where agreed) on the caller's thread
//! and queued behind what the socket has not written yet. [`SendStatus`] says whether it
//! went under `ws_max_backpressure` (`Sent`), over it (`Backpressure`: wait for
//! `drain`), or was dropped (the socket was already over it, or closing).

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::*};
use std::sync::{Arc, Mutex, Weak};

use crate::conn::Conn;
use crate::engine::Shared;
use crate::frame::ws::{encode_close, encode_message, valid_close_code, Compression};
pub use crate::frame::ws::{Kind, Offer};
use crate::stats::WsCounters;
use crate::sync::lock;

/// Receives a websocket's events. See the module doc for the threads they run on.
pub trait WsHandler: Send + Sync + 'static {
    /// The socket is open (the `101` is queued ahead of anything sent).
    fn open(&self, _ws: &WebSocket) {}
    /// A whole message from the client.
    fn message(&self, ws: &WebSocket, msg: Message);
    /// The backlog that made a send answer [`SendStatus::Backpressure`] is written
    /// down to half of `ws_max_backpressure`: send more.
    fn drain(&self, _ws: &WebSocket) {}
    /// The socket is closed: `code` as the client sent it (1005 for none), the code the
    /// server failed it with, or 1006 when it ended without a close handshake. Called
    /// once.
    fn close(&self, _ws: &WebSocket, _code: u16, _reason: &str) {}
}

/// A data message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Vec<u8>),
}

impl Message {
    pub fn kind(&self) -> Kind {
        match self {
            Message::Text(_) => Kind::Text,
            Message::Binary(_) => Kind::Binary,
        }
    }
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }
}

/// What became of a message handed to [`WebSocket::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued; this many bytes went on the wire for it.
    Sent(usize),
    /// Queued, but the socket's unwritten bytes are now over `ws_max_backpressure`:
    /// wait for [`WsHandler::drain`] before sending more.
    Backpressure,
    /// Not sent: the socket was already over `ws_max_backpressure`, or is closing.
    Dropped,
}

/// How a handler accepts an upgrade: the subprotocol it chose (one the client offered),
/// headers to add to the `101`, and whether permessage-deflate may be used
/// (`ws_deflate` and the client's offer decide otherwise).
#[derive(Clone, Debug, Default)]
pub struct Accept {
    pub(crate) protocol: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) no_deflate: bool,
}

impl Accept {
    pub fn new() -> Accept {
        Accept::default()
    }
    /// The subprotocol to answer with (`Sec-WebSocket-Protocol`).
    pub fn protocol(mut self, p: impl Into<String>) -> Accept {
        self.protocol = Some(p.into());
        self
    }
    /// A header for the `101` reply.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Accept {
        self.headers.push((name.into(), value.into()));
        self
    }
    /// Turns permessage-deflate off for this socket.
    pub fn without_deflate(mut self) -> Accept {
        self.no_deflate = true;
        self
    }
}

/// Where a socket is in its life.
pub(crate) const OPEN: u8 = 0;
/// The server sent its close frame; the client's answer is awaited.
pub(crate) const CLOSING: u8 = 1;
/// Both close frames are exchanged (or the connection is gone): nothing more is sent.
pub(crate) const CLOSED: u8 = 2;

/// One message as the frame for sockets with `compression`; what compression did is
/// counted (`ws_deflate_raw` / `ws_deflate_sent`).
pub(crate) fn frame(counters: &WsCounters, kind: Kind, payload: &[u8], compression: Compression) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    if encode_message(&mut out, kind, payload, compression) {
        counters.deflate_raw.fetch_add(payload.len() as u64, Relaxed);
        counters.deflate_sent.fetch_add(out.len() as u64, Relaxed);
    }
    out
}

/// A socket's state shared between the connection and its handles.
pub(crate) struct WsShared {
    pub(crate) conn: Weak<Conn>,
    pub(crate) engine: Arc<Shared>,
    /// The upgrade request's reply slot: the `101` and every frame after it.
    pub(crate) seq: u64,
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) protocol: Option<String>,
    pub(crate) compression: Compression,
    pub(crate) handler: Arc<dyn WsHandler>,
    pub(crate) state: AtomicU8,
    /// The app asked the connection not to read (its receive queue is full).
    pub(crate) paused: AtomicBool,
    /// A send answered `Backpressure`: `drain` is due once the backlog is down.
    drain_due: AtomicBool,
    /// `close` was called on the handler.
    close_told: AtomicBool,
    pub(crate) topics: Mutex<Vec<String>>,
}

impl WsShared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        conn: &Arc<Conn>,
        engine: Arc<Shared>,
        seq: u64,
        peer: SocketAddr,
        protocol: Option<String>,
        compression: Compression,
        handler: Arc<dyn WsHandler>,
    ) -> WsShared {
        WsShared {
            conn: Arc::downgrade(conn),
            engine,
            seq,
            id: conn.id,
            peer,
            protocol,
            compression,
            handler,
            state: AtomicU8::new(OPEN),
            paused: AtomicBool::new(false),
            drain_due: AtomicBool::new(false),
            close_told: AtomicBool::new(false),
            topics: Mutex::new(Vec::new()),
        }
    }

    fn counters(&self) -> &WsCounters {
        &self.engine.counters.ws
    }

    /// Queues an encoded data message of `payload_len` bytes (see [`SendStatus`]).
    pub(crate) fn send_encoded(self: &Arc<Self>, bytes: Vec<u8>, payload_len: usize) -> SendStatus {
        let c = self.counters();
        let Some(conn) = self.conn.upgrade().filter(|_| self.state.load(Acquire) == OPEN) else {
            c.dropped.fetch_add(1, Relaxed);
            return SendStatus::Dropped;
        };
        let limit = self.engine.config.limits.ws_max_backpressure;
        if conn.backlog() > limit {
            c.dropped.fetch_add(1, Relaxed);
            return SendStatus::Dropped;
        }
        let len = bytes.len();
        if !conn.append(self.seq, bytes) {
            c.dropped.fetch_add(1, Relaxed);
            return SendStatus::Dropped;
        }
        c.messages_out.fetch_add(1, Relaxed);
        c.bytes_out.fetch_add(payload_len as u64, Relaxed);
        if conn.backlog() <= limit {
            return SendStatus::Sent(len);
        }
        if !self.drain_due.swap(true, AcqRel) {
            let me = Arc::clone(self);
            conn.when_backlog_below(limit / 2, Box::new(move || me.drained()));
        }
        SendStatus::Backpressure
    }

    fn drained(self: &Arc<Self>) {
        self.drain_due.store(false, Release);
        if self.state.load(Acquire) == OPEN {
            let ws = WebSocket(Arc::clone(self));
            self.call(|h| h.drain(&ws));
        }
    }

    /// Encodes and queues one message.
    pub(crate) fn send(self: &Arc<Self>, kind: Kind, payload: &[u8]) -> SendStatus {
        let out = frame(self.counters(), kind, payload, self.compression);
        self.send_encoded(out, payload.len())
    }

    /// The server closes: its close frame goes out, the client's answer is awaited
    /// (the connection's websocket phase times that wait). False if already closing.
    pub(crate) fn start_close(&self, code: u16, reason: &str) -> bool {
        if self.state.compare_exchange(OPEN, CLOSING, AcqRel, Acquire).is_err() {
            return false;
        }
        if let Some(conn) = self.conn.upgrade() {
            let mut out = Vec::with_capacity(4 + reason.len());
            encode_close(&mut out, code, reason);
            conn.append(self.seq, out);
            conn.wake_to_read();
        }
        true
    }

    /// Calls the handler, catching a panic (the socket then closes with 1011).
    pub(crate) fn call(self: &Arc<Self>, f: impl FnOnce(&dyn WsHandler)) {
        if catch_unwind(AssertUnwindSafe(|| f(&*self.handler))).is_err() {
            self.engine.counters.handler_panics.fetch_add(1, Relaxed);
            self.start_close(1011, "server error");
        }
    }

    /// Tells the handler the socket closed, once; leaves its topics.
    pub(crate) fn closed(self: &Arc<Self>, code: u16, reason: &str) {
        self.state.store(CLOSED, Release);
        if self.close_told.swap(true, AcqRel) {
            return;
        }
        self.counters().closed.fetch_add(1, Relaxed);
        if code == 1006 {
            self.counters().abnormal.fetch_add(1, Relaxed);
        }
        self.engine.topics.leave_all(self);
        let ws = WebSocket(Arc::clone(self));
        if catch_unwind(AssertUnwindSafe(|| self.handler.close(&ws, code, reason))).is_err() {
            self.engine.counters.handler_panics.fetch_add(1, Relaxed);
        }
    }
}

/// An open websocket: send, close, subscribe and publish from any thread. Cheap to
/// clone; every clone is the same socket.
#[derive(Clone)]
pub struct WebSocket(pub(crate) Arc<WsShared>);

impl WebSocket {
    /// Sends a text message.
    pub fn send_text(&self, text: &str) -> SendStatus {
        self.0.send(Kind::Text, text.as_bytes())
    }
    /// Sends a binary message.
    pub fn send_binary(&self, data: &[u8]) -> SendStatus {
        self.0.send(Kind::Binary, data)
    }
    /// Sends a message of either kind.
    pub fn send(&self, msg: &Message) -> SendStatus {
        self.0.send(msg.kind(), msg.as_bytes())
    }

    /// Starts the closing handshake with `code` (1000, 1001, 1002, 1003, 1007-1014 or
    /// 3000-4999; another is sent as 1000) and `reason` (cut to 123 bytes). The
    /// connection closes when the client answers, or after `ws_ping_timeout`.
    pub fn close(&self, code: u16, reason: &str) {
        let code = if valid_close_code(code) { code } else { 1000 };
        self.0.start_close(code, reason);
    }

    /// True until the closing handshake begins.
    pub fn is_open(&self) -> bool {
        self.0.state.load(Acquire) == OPEN && self.0.conn.strong_count() > 0
    }

    /// Bytes queued on the connection and not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.0.conn.upgrade().map_or(0, |c| c.backlog())
    }

    /// Stops reading from the client until [`WebSocket::resume`]: a front whose app has
    /// not taken what was delivered uses this, so nothing buffers without bound (TCP
    /// holds the client back).
    pub fn pause(&self) {
        self.0.paused.store(true, Release);
    }
    /// Reads again after [`WebSocket::pause`].
    pub fn resume(&self) {
        if self.0.paused.swap(false, AcqRel) {
            if let Some(conn) = self.0.conn.upgrade() {
                conn.wake_to_read();
            }
        }
    }

    /// Subscribes to `topic`; false if already subscribed (or closed).
    pub fn subscribe(&self, topic: &str) -> bool {
        self.0.state.load(Acquire) != CLOSED && self.0.engine.topics.subscribe(&self.0, topic)
    }
    /// Unsubscribes from `topic`; false if not subscribed.
    pub fn unsubscribe(&self, topic: &str) -> bool {
        self.0.engine.topics.unsubscribe(&self.0, topic)
    }
    pub fn is_subscribed(&self, topic: &str) -> bool {
        lock(&self.0.topics).iter().any(|t| t == topic)
    }
    /// Sends `msg` to every subscriber of `topic` but this socket; returns how many it
    /// was queued for. Encoded (and compressed) once for all of them.
    pub fn publish(&self, topic: &str, msg: &Message) -> usize {
        self.0.engine.topics.publish(topic, msg.kind(), msg.as_bytes(), Some(self.0.id))
    }

    /// The engine-unique id of the connection (as [`Request::conn_id`](super::Request::conn_id)).
    pub fn id(&self) -> u64 {
        self.0.id
    }
    /// The client (see [`Request::peer`](super::Request::peer)).
    pub fn peer(&self) -> SocketAddr {
        self.0.peer
    }
    /// The subprotocol agreed, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.0.protocol.as_deref()
    }
    /// Whether permessage-deflate was agreed.
    pub fn deflate(&self) -> bool {
        self.0.compression != Compression::Off
    }
}

impl std::fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket").field("id", &self.0.id).field("open", &self.is_open()).finish()
    }
}

impl PartialEq for WebSocket {
    fn eq(&self, other: &WebSocket) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for WebSocket {}
