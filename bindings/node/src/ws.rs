//! Websockets for fetch-style apps served on the main thread (`corral.serve({ fetch,
//! websocket })`): the core calls [`JsWs`] on its I/O workers, which only queues an event
//! and wakes JS through the serving engine's weak threadsafe function (the same wake-up
//! as requests, on the queue's empty→non-empty transition); JS drains every event with
//! one `takeWsEvents()` call and runs the app's handlers.
//!
//! Invariants:
//! - A socket is in `sockets` from its `open` (on the I/O worker, before any of its
//!   messages) until its `close`; JS reaches it only by id, so a handle kept past the
//!   close finds nothing and its sends report "dropped".
//! - Receive flow control: each socket counts the messages (and bytes) queued for JS and
//!   not yet taken. Over [`QUEUE_HIGH`] messages or [`QUEUE_HIGH_BYTES`] the core stops
//!   reading it (`pause`); once JS takes the queue down to half, it reads again — unless
//!   the app itself paused it. So what waits for JS is bounded per socket (by the limits,
//!   plus one message of at most `ws_max_message`), and TCP holds the client back.
//! - Handlers hold the queues weakly: a socket kept open never keeps a closed engine's
//!   queues alive, and the queues' socket table never forms a cycle through them.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, Weak};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use corral_core::ws::{Accept, Message, SendStatus, WebSocket, WsHandler};

use crate::serve::{Copied, ServeQueues};
use crate::Engine;

/// Messages queued for JS on one socket at which the core stops reading it.
const QUEUE_HIGH: usize = 1024;
/// Bytes queued for JS on one socket at which the core stops reading it.
const QUEUE_HIGH_BYTES: usize = 4 << 20;

/// Event kinds as JS sees them (`JsWsEvent::kind`).
const OPEN: u32 = 0;
const TEXT: u32 = 1;
const BINARY: u32 = 2;
const DRAIN: u32 = 3;
const CLOSE: u32 = 4;

/// One websocket event for JS, flat so that making one costs few property writes.
#[napi(object, object_from_js = false)]
pub struct JsWsEvent {
    /// The socket (its connection's id).
    pub id: i64,
    /// 0 open, 1 a text message, 2 a binary message, 3 drain, 4 close.
    pub kind: u32,
    /// A text message, or a close's reason.
    pub text: Option<String>,
    /// A binary message.
    #[napi(ts_type = "Buffer")]
    pub data: Option<Copied>,
    /// A close's code.
    pub code: Option<u32>,
}

/// What `wsUpgrade` gives JS about the socket it accepted.
#[napi(object)]
pub struct JsWsInfo {
    pub id: i64,
    pub remote_address: String,
    pub remote_port: u32,
    /// The subprotocol agreed, if any.
    pub protocol: Option<String>,
    /// Whether permessage-deflate was agreed.
    pub deflate: bool,
}

impl JsWsInfo {
    pub(crate) fn of(ws: &WebSocket) -> JsWsInfo {
        JsWsInfo {
            id: ws.id() as i64,
            remote_address: ws.peer().ip().to_string(),
            remote_port: ws.peer().port().into(),
            protocol: ws.protocol().map(str::to_string),
            deflate: ws.deflate(),
        }
    }
}

/// An open socket, and what holds its reading back.
struct Sock {
    ws: WebSocket,
    queued: usize,
    queued_bytes: usize,
    /// The app called `ws.pause()`.
    app_paused: bool,
    /// Its queue for JS is over the limits.
    queue_paused: bool,
}

/// The serving engine's websockets: events waiting for JS and the open sockets.
#[derive(Default)]
pub(crate) struct WsHub {
    events: Mutex<Vec<JsWsEvent>>,
    sockets: Mutex<HashMap<u64, Sock>>,
}

impl WsHub {
    fn sockets(&self) -> MutexGuard<'_, HashMap<u64, Sock>> {
        self.sockets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an event; true when the queue was empty (JS must be woken).
    fn push(&self, ev: JsWsEvent) -> bool {
        let mut q = self.events.lock().unwrap_or_else(|e| e.into_inner());
        q.push(ev);
        q.len() == 1
    }

    /// Counts a message queued for JS; pauses reading when the socket's queue is full.
    fn count_in(&self, id: u64, bytes: usize) {
        let mut sockets = self.sockets();
        let Some(s) = sockets.get_mut(&id) else { return };
        s.queued += 1;
        s.queued_bytes += bytes;
        if !s.queue_paused && (s.queued >= QUEUE_HIGH || s.queued_bytes >= QUEUE_HIGH_BYTES) {
            s.queue_paused = true;
            s.ws.pause();
        }
    }

    /// Every event waiting, in order; sockets whose queue fell to half read again.
    pub(crate) fn take(&self) -> Vec<JsWsEvent> {
        let events = std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()));
        let mut sockets = self.sockets();
        for ev in events.iter().filter(|e| e.kind == TEXT || e.kind == BINARY) {
            let Some(s) = sockets.get_mut(&(ev.id as u64)) else { continue };
            let bytes = ev.text.as_ref().map_or(0, String::len) + ev.data.as_ref().map_or(0, Copied::len);
            s.queued = s.queued.saturating_sub(1);
            s.queued_bytes = s.queued_bytes.saturating_sub(bytes);
            if s.queue_paused && s.queued <= QUEUE_HIGH / 2 && s.queued_bytes <= QUEUE_HIGH_BYTES / 2 {
                s.queue_paused = false;
                if !s.app_paused {
                    s.ws.resume();
                }
            }
        }
        events
    }

    /// The open socket `id`, cloned out so no lock is held while the core works.
    pub(crate) fn get(&self, id: i64) -> Option<WebSocket> {
        self.sockets().get(&(id as u64)).map(|s| s.ws.clone())
    }

    /// The app stops (true) or restarts (false) reading socket `id`; false if it is closed.
    pub(crate) fn app_pause(&self, id: i64, pause: bool) -> bool {
        let mut sockets = self.sockets();
        let Some(s) = sockets.get_mut(&(id as u64)) else { return false };
        if s.app_paused != pause {
            s.app_paused = pause;
            if pause {
                s.ws.pause();
            } else if !s.queue_paused {
                s.ws.resume();
            }
        }
        true
    }

    /// The engine closed: the sockets are let go (events already queued still reach JS).
    pub(crate) fn clear(&self) {
        self.sockets().clear();
    }
}

/// A send's result as Bun gives it: the bytes put on the wire, -1 when queued past the
/// back-pressure limit (wait for drain), 0 when dropped.
pub(crate) fn sent(s: SendStatus) -> i64 {
    match s {
        SendStatus::Sent(n) => n as i64,
        SendStatus::Backpressure => -1,
        SendStatus::Dropped => 0,
    }
}

/// A message from JS: a string is text, bytes are binary.
pub(crate) fn message(text: Option<String>, data: Option<&[u8]>) -> Message {
    match (text, data) {
        (Some(t), _) => Message::Text(t),
        (None, Some(d)) => Message::Binary(d.to_vec()),
        (None, None) => Message::Binary(Vec::new()),
    }
}

/// The core's websocket events into the serving engine's queue for JS. Runs on the I/O
/// workers: it only counts and queues.
pub(crate) struct JsWs(pub(crate) Weak<ServeQueues>);

impl JsWs {
    fn emit(&self, ev: JsWsEvent) {
        if let Some(q) = self.0.upgrade() {
            if q.ws.push(ev) {
                q.wake_js();
            }
        }
    }
}

fn event(id: u64, kind: u32) -> JsWsEvent {
    JsWsEvent { id: id as i64, kind, text: None, data: None, code: None }
}

impl WsHandler for JsWs {
    fn open(&self, ws: &WebSocket) {
        let Some(q) = self.0.upgrade() else { return };
        let sock = Sock { ws: ws.clone(), queued: 0, queued_bytes: 0, app_paused: false, queue_paused: false };
        q.ws.sockets().insert(ws.id(), sock);
        self.emit(event(ws.id(), OPEN));
    }

    fn message(&self, ws: &WebSocket, msg: Message) {
        let Some(q) = self.0.upgrade() else { return };
        q.ws.count_in(ws.id(), msg.as_bytes().len());
        let ev = match msg {
            Message::Text(t) => JsWsEvent { text: Some(t), ..event(ws.id(), TEXT) },
            Message::Binary(b) => JsWsEvent { data: Some(Copied::one(b)), ..event(ws.id(), BINARY) },
        };
        self.emit(ev);
    }

    fn drain(&self, ws: &WebSocket) {
        self.emit(event(ws.id(), DRAIN));
    }

    fn close(&self, ws: &WebSocket, code: u16, reason: &str) {
        if let Some(q) = self.0.upgrade() {
            q.ws.sockets().remove(&ws.id());
        }
        self.emit(JsWsEvent { text: Some(reason.to_string()), code: Some(code.into()), ..event(ws.id(), CLOSE) });
    }
}

/// The websocket half of a serving engine's API (see `lib/ws.js`). Main thread only.
#[napi]
impl Engine {
    /// Accepts request `id`'s websocket with subprotocol `protocol` and `headers` (name,
    /// value, ...) on the `101`; null when the request does not ask for one (or its
    /// client left): it is then still to be answered.
    #[napi]
    pub fn ws_upgrade(
        &self,
        id: i64,
        protocol: Option<String>,
        headers: Vec<String>,
    ) -> napi::Result<Option<JsWsInfo>> {
        let mut accept = Accept::new();
        if let Some(p) = protocol {
            accept = accept.protocol(p);
        }
        let mut it = headers.into_iter();
        while let (Some(n), Some(v)) = (it.next(), it.next()) {
            accept = accept.header(n, v);
        }
        self.queues()?.upgrade(id, accept)
    }

    /// Every websocket event waiting, in order (see `JsWsEvent`). The sends their
    /// handlers make wake each I/O worker once, at `releaseWakes()` after the batch,
    /// rather than once per message (`corral::hold_wakes`).
    #[napi]
    pub fn take_ws_events(&self) -> napi::Result<Vec<JsWsEvent>> {
        corral_core::hold_wakes();
        Ok(self.queues()?.ws.take())
    }

    /// Wakes the I/O workers the batch's sends were queued for (see takeWsEvents).
    #[napi]
    pub fn release_wakes(&self) {
        corral_core::release_wakes();
    }

    /// Sends a binary message: bytes on the wire, -1 past the back-pressure limit, 0 dropped.
    #[napi]
    pub fn ws_send(&self, id: i64, data: Buffer) -> napi::Result<i64> {
        Ok(self.socket(id)?.map_or(0, |ws| sent(ws.send_binary(&data))))
    }

    /// Sends a text message (see wsSend).
    #[napi]
    pub fn ws_send_text(&self, id: i64, text: String) -> napi::Result<i64> {
        Ok(self.socket(id)?.map_or(0, |ws| sent(ws.send_text(&text))))
    }

    /// Starts the closing handshake (a code the protocol does not allow is sent as 1000).
    #[napi]
    pub fn ws_close(&self, id: i64, code: u32, reason: String) -> napi::Result<()> {
        if let Some(ws) = self.socket(id)? {
            ws.close(u16::try_from(code).unwrap_or(1000), &reason);
        }
        Ok(())
    }

    /// Stops (true) or restarts (false) reading the client; false if the socket is closed.
    #[napi]
    pub fn ws_pause(&self, id: i64, pause: bool) -> napi::Result<bool> {
        Ok(self.queues()?.ws.app_pause(id, pause))
    }

    #[napi]
    pub fn ws_subscribe(&self, id: i64, topic: String) -> napi::Result<bool> {
        Ok(self.socket(id)?.is_some_and(|ws| ws.subscribe(&topic)))
    }

    #[napi]
    pub fn ws_unsubscribe(&self, id: i64, topic: String) -> napi::Result<bool> {
        Ok(self.socket(id)?.is_some_and(|ws| ws.unsubscribe(&topic)))
    }

    #[napi]
    pub fn ws_is_subscribed(&self, id: i64, topic: String) -> napi::Result<bool> {
        Ok(self.socket(id)?.is_some_and(|ws| ws.is_subscribed(&topic)))
    }

    /// Publishes to every subscriber of `topic` but socket `id` (`text`, else `data` as
    /// binary); returns how many it was queued for.
    #[napi]
    pub fn ws_publish(&self, id: i64, topic: String, text: Option<String>, data: Option<Buffer>) -> napi::Result<u32> {
        let msg = message(text, data.as_deref());
        Ok(self.socket(id)?.map_or(0, |ws| ws.publish(&topic, &msg) as u32))
    }

    /// Bytes queued on the socket and not yet written (0 once closed).
    #[napi]
    pub fn ws_buffered_amount(&self, id: i64) -> napi::Result<f64> {
        Ok(self.socket(id)?.map_or(0.0, |ws| ws.buffered_amount() as f64))
    }

    /// Publishes to every subscriber of `topic` (`text`, else `data` as binary);
    /// returns how many it was queued for.
    #[napi]
    pub fn publish(&self, topic: String, text: Option<String>, data: Option<Buffer>) -> napi::Result<u32> {
        Ok(self.get()?.publish(&topic, &message(text, data.as_deref())) as u32)
    }

    /// Websockets subscribed to `topic` now.
    #[napi]
    pub fn subscribers(&self, topic: String) -> napi::Result<u32> {
        Ok(self.get()?.subscribers(&topic) as u32)
    }
}

impl Engine {
    /// The open socket `id` of this serving engine (none once it closed).
    fn socket(&self, id: i64) -> napi::Result<Option<WebSocket>> {
        Ok(self.queues()?.ws.get(id))
    }
}
