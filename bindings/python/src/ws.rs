//! Websockets into Python: the bridge from the core's [`WsHandler`] callbacks to a
//! Python handler object, and `WebSocket`, the socket as Python sees it.
//!
//! The core calls `open`, `message`, `drain` and `close` on its own threads, where
//! Python must not be waited for. [`Bridge`] turns each call into a [`WsItem`] on the
//! engine's host queue ([`Batches`]), beside the queued requests: the host (the host
//! thread of `corral.serve`, or the event loop of an ASGI server) takes them in batches
//! and [`dispatch`] calls the handler's `on_open(ws)`, `on_message(ws, data)`,
//! `on_drain(ws)` and `on_close(ws, code, reason)` with the interpreter attached once
//! per batch, in the order the core made them (`corral.serve` and the ASGI front have
//! one host each; several host threads, as WSGI's, could take one socket's events
//! apart).
//!
//! Invariants: there is one Python `WebSocket` per socket (made on first use, by the
//! upgrade or the first event), so handlers may key state on it. The socket's handler
//! refers back to that object until `close`: the bridge gives its [`Target`] up when
//! the core calls `close` (exactly once), which breaks the reference cycle
//! socket → bridge → target → Python `WebSocket` → socket.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use corral_core::ws::{Accept, Message, SendStatus, WsHandler};

use crate::serve::Batches;

/// Payloads at least this long are encoded (and compressed) with the GIL released.
const DETACH_AT: usize = 16 << 10;

/// What happened to a socket, for its Python handler.
pub(crate) enum WsEvent {
    Open,
    Message(Message),
    Drain,
    Close(u16, String),
}

/// One event on the host queue, with what dispatching it needs.
pub(crate) struct WsItem {
    target: Arc<Target>,
    ws: corral_core::ws::WebSocket,
    event: WsEvent,
}

impl WsItem {
    /// What it costs the host to hold (see `Batches::push_ws`): its payload, and a
    /// share for the call it makes.
    pub(crate) fn weight(&self) -> usize {
        match &self.event {
            WsEvent::Message(m) => m.as_bytes().len() + 4096,
            _ => 4096,
        }
    }
}

/// The Python side of one socket: the handler's methods (looked up once, at the
/// upgrade; a missing one is skipped) and the socket's Python object.
struct Target {
    on_open: Option<Py<PyAny>>,
    on_message: Option<Py<PyAny>>,
    on_drain: Option<Py<PyAny>>,
    on_close: Option<Py<PyAny>>,
    handler: Py<PyAny>,
    ws: PyOnceLock<Py<WebSocket>>,
}

impl Target {
    fn new(handler: &Bound<'_, PyAny>) -> PyResult<Target> {
        let method = |name: &str| -> PyResult<Option<Py<PyAny>>> {
            Ok(handler.getattr_opt(name)?.filter(|m| !m.is_none()).map(Bound::unbind))
        };
        Ok(Target {
            on_open: method("on_open")?,
            on_message: method("on_message")?,
            on_drain: method("on_drain")?,
            on_close: method("on_close")?,
            handler: handler.clone().unbind(),
            ws: PyOnceLock::new(),
        })
    }

    /// The socket's one Python object.
    fn ws<'py>(&self, py: Python<'py>, ws: &corral_core::ws::WebSocket) -> PyResult<Bound<'py, WebSocket>> {
        let obj = self.ws.get_or_try_init(py, || Py::new(py, WebSocket { inner: ws.clone() }))?;
        Ok(obj.bind(py).clone())
    }
}

/// The core's handler for one socket: queues each event for the host.
struct Bridge {
    batches: Arc<Batches>,
    /// Given up at `close` (see the module doc).
    target: Mutex<Option<Arc<Target>>>,
}

impl Bridge {
    fn post(&self, ws: &corral_core::ws::WebSocket, event: WsEvent) {
        let target = self.target.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(target) = target {
            self.batches.push_ws(WsItem { target, ws: ws.clone(), event });
        }
    }
}

impl WsHandler for Bridge {
    fn open(&self, ws: &corral_core::ws::WebSocket) {
        self.post(ws, WsEvent::Open);
    }
    fn message(&self, ws: &corral_core::ws::WebSocket, msg: Message) {
        self.post(ws, WsEvent::Message(msg));
    }
    fn drain(&self, ws: &corral_core::ws::WebSocket) {
        self.post(ws, WsEvent::Drain);
    }
    fn close(&self, ws: &corral_core::ws::WebSocket, code: u16, reason: &str) {
        let target = self.target.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(target) = target {
            self.batches.push_ws(WsItem { target, ws: ws.clone(), event: WsEvent::Close(code, reason.to_owned()) });
        }
    }
}

/// Why an upgrade did not happen: the error to raise, and the responder when it is
/// still the caller's (the request asks for no websocket, or the client has gone).
pub(crate) type Refused = (Option<corral_core::Responder>, PyErr);

/// Accepts `res`'s websocket offer for the Python `handler`, with `protocol` and the
/// 101's extra `headers`.
pub(crate) fn upgrade(
    py: Python<'_>,
    res: corral_core::Responder,
    batches: &Arc<Batches>,
    handler: &Bound<'_, PyAny>,
    protocol: Option<String>,
    headers: Vec<(String, String)>,
) -> Result<Py<WebSocket>, Refused> {
    if !res.can_upgrade() {
        let e = crate::errors::state(py, "this request does not ask for a websocket (request.websocket is None)");
        return Err((Some(res), e));
    }
    let target = match Target::new(handler) {
        Ok(t) => Arc::new(t),
        Err(e) => return Err((Some(res), e)),
    };
    let mut accept = Accept::new();
    if let Some(p) = protocol {
        accept = accept.protocol(p);
    }
    for (name, value) in headers {
        accept = accept.header(name, value);
    }
    let bridge = Arc::new(Bridge { batches: Arc::clone(batches), target: Mutex::new(Some(Arc::clone(&target))) });
    match py.detach(|| res.upgrade(accept, bridge)) {
        Ok(ws) => target.ws(py, &ws).map(Bound::unbind).map_err(|e| {
            // Only when Python cannot make the object (out of memory): close what opened.
            ws.close(1011, "server error");
            (None, e)
        }),
        Err(res) => Err((Some(res), pyo3::exceptions::PyBrokenPipeError::new_err("the client closed the connection"))),
    }
}

/// Calls the Python handlers for a batch of events (on the host, attached once). A
/// handler that raises is logged on the `corral` logger and its socket closed with 1011.
pub(crate) fn dispatch(py: Python<'_>, items: Vec<WsItem>) {
    for item in items {
        if let Err(e) = call(py, &item) {
            report(py, &item.target.handler, e);
            item.ws.close(1011, "server error");
        }
    }
}

fn call(py: Python<'_>, item: &WsItem) -> PyResult<()> {
    let t = &item.target;
    let method = match &item.event {
        WsEvent::Open => &t.on_open,
        WsEvent::Message(_) => &t.on_message,
        WsEvent::Drain => &t.on_drain,
        WsEvent::Close(..) => &t.on_close,
    };
    let Some(method) = method else { return Ok(()) };
    let ws = t.ws(py, &item.ws)?;
    match &item.event {
        WsEvent::Open | WsEvent::Drain => method.call1(py, (ws,)),
        WsEvent::Message(Message::Text(s)) => method.call1(py, (ws, PyString::new(py, s))),
        WsEvent::Message(Message::Binary(b)) => method.call1(py, (ws, PyBytes::new(py, b))),
        WsEvent::Close(code, reason) => method.call1(py, (ws, *code, reason.as_str())),
    }
    .map(drop)
}

/// Logs a websocket handler's error as request handlers' errors are logged.
fn report(py: Python<'_>, handler: &Py<PyAny>, e: PyErr) {
    let logged = (|| -> PyResult<()> {
        let log = py.import("logging")?.call_method1("getLogger", ("corral",))?;
        let kw = PyDict::new(py);
        kw.set_item("exc_info", e.value(py))?;
        log.call_method("error", ("websocket handler %r failed; closing its socket with 1011", handler), Some(&kw))?;
        Ok(())
    })();
    if logged.is_err() {
        e.write_unraisable(py, Some(handler.bind(py)));
    }
}

/// A message from Python: `str` is text, `bytes` or `bytearray` binary.
enum Data<'a> {
    Text(std::borrow::Cow<'a, str>),
    Binary(std::borrow::Cow<'a, [u8]>),
}

impl<'a> Data<'a> {
    fn of(data: &'a Bound<'_, PyAny>) -> PyResult<Data<'a>> {
        if let Ok(s) = data.cast::<PyString>() {
            return Ok(Data::Text(s.to_cow()?));
        }
        if let Ok(b) = data.cast::<PyBytes>() {
            return Ok(Data::Binary(std::borrow::Cow::Borrowed(b.as_bytes())));
        }
        if let Ok(b) = data.cast::<PyByteArray>() {
            return Ok(Data::Binary(std::borrow::Cow::Owned(b.to_vec())));
        }
        Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "a websocket message is str (text) or bytes (binary), not {}",
            data.get_type().name()?
        )))
    }

    fn len(&self) -> usize {
        match self {
            Data::Text(s) => s.len(),
            Data::Binary(b) => b.len(),
        }
    }

    fn message(self) -> Message {
        match self {
            Data::Text(s) => Message::Text(s.into_owned()),
            Data::Binary(b) => Message::Binary(b.into_owned()),
        }
    }
}

/// An open websocket: send, close, subscribe and publish from any thread.
#[pyclass(frozen, module = "corral._corral")]
pub struct WebSocket {
    inner: corral_core::ws::WebSocket,
}

#[pymethods]
impl WebSocket {
    /// Sends `data` (str: a text message, bytes: binary). Returns the bytes it took on
    /// the wire; -1: queued, but the client is not keeping up, wait for `on_drain`
    /// before sending more; 0: dropped (the socket is closing or closed, or a send was
    /// made while over the back-pressure limit).
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<i64> {
        let data = Data::of(data)?;
        let ws = &self.inner;
        let send = || match &data {
            Data::Text(s) => ws.send_text(s),
            Data::Binary(b) => ws.send_binary(b),
        };
        let status = if data.len() >= DETACH_AT { py.detach(send) } else { send() };
        Ok(match status {
            SendStatus::Sent(n) => n as i64,
            SendStatus::Backpressure => -1,
            SendStatus::Dropped => 0,
        })
    }
    /// Starts the closing handshake with `code` (an invalid one is sent as 1000) and
    /// `reason` (cut to 123 bytes); `on_close` follows once the client answers.
    #[pyo3(signature = (code=1000, reason=""))]
    fn close(&self, code: u16, reason: &str) {
        self.inner.close(code, reason);
    }
    /// Stops reading from the client until `resume()` (the client is held back by TCP).
    fn pause(&self) {
        self.inner.pause();
    }
    fn resume(&self) {
        self.inner.resume();
    }
    /// Subscribes to `topic`; False if already subscribed (or closed).
    fn subscribe(&self, topic: &str) -> bool {
        self.inner.subscribe(topic)
    }
    /// Unsubscribes from `topic`; False if not subscribed.
    fn unsubscribe(&self, topic: &str) -> bool {
        self.inner.unsubscribe(topic)
    }
    fn is_subscribed(&self, topic: &str) -> bool {
        self.inner.is_subscribed(topic)
    }
    /// Sends `data` to every subscriber of `topic` but this socket (fanned out natively,
    /// encoded once); returns how many it was queued for.
    fn publish(&self, py: Python<'_>, topic: &str, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let msg = Data::of(data)?.message();
        Ok(py.detach(|| self.inner.publish(topic, &msg)))
    }
    /// True until the closing handshake begins.
    #[getter]
    fn is_open(&self) -> bool {
        self.inner.is_open()
    }
    /// Bytes queued to the client and not yet written.
    #[getter]
    fn buffered_amount(&self) -> usize {
        self.inner.buffered_amount()
    }
    /// The engine-unique id of the connection (as `Request.conn_id`).
    #[getter]
    fn id(&self) -> u64 {
        self.inner.id()
    }
    /// The subprotocol agreed, or None.
    #[getter]
    fn protocol(&self) -> Option<&str> {
        self.inner.protocol()
    }
    /// Whether permessage-deflate was agreed.
    #[getter]
    fn deflate(&self) -> bool {
        self.inner.deflate()
    }
    #[getter]
    fn peer(&self) -> (String, u16) {
        let p = self.inner.peer();
        (p.ip().to_string(), p.port())
    }
    fn __repr__(&self) -> String {
        format!("<WebSocket id={} open={}>", self.inner.id(), self.inner.is_open())
    }
}

/// A message for `Engine.publish`.
pub(crate) fn message(data: &Bound<'_, PyAny>) -> PyResult<Message> {
    Data::of(data).map(Data::message)
}
