//! Serving into Python: the handler bridge, the batched host boundary, and the
//! `Request` and `Responder` objects the Python dispatcher receives.
//!
//! Light requests never take the GIL on an I/O worker: they are queued
//! ([`Batches`]) and the host thread (`Engine.run_host`, started by `corral.serve`)
//! takes them in batches, attaching to the interpreter once per batch. Heavy requests
//! run on corral's CPU pool, each attaching for its own call, so work that releases the
//! GIL (hashlib, zlib, numpy) runs in parallel there. Websocket events (`ws`) take the
//! same queue and reach the host in the same batches.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use corral_core::{Cost, CostRule, Handler, Payload, Reply, Response, Sent, StreamError};

use crate::args::seconds;
use crate::body::BodyReader;
use crate::errors;
use crate::ws::{WebSocket, WsItem};

/// Light requests waiting for the host, events for streams it parked, websocket events,
/// and whether the engine is closed. The host is a thread waiting on the condvar (sync
/// handlers, WSGI), or an event loop watching `wake`'s other end (ASGI): one byte is
/// written on each empty → non-empty transition.
#[derive(Default)]
pub(crate) struct Batches {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// (writer, reader), made once on the first `wake_fd`; unset for a thread host.
    wake: OnceLock<(UnixStream, UnixStream)>,
}

#[derive(Default)]
struct Queue {
    requests: VecDeque<Pair>,
    /// Requests were queued on an I/O worker without waking the host: the worker's
    /// `end_of_round` wakes it (once for the round).
    unwoken: bool,
    events: Vec<(u64, Event)>,
    /// Websocket events, in the order the core made them.
    ws: Vec<WsItem>,
    /// The weight of the websocket events queued quietly (`unwoken`) since the host
    /// was last woken (see `push_ws`).
    quiet_ws: usize,
    closed: bool,
    /// Host threads waiting on the condvar (an event loop host never does: then a
    /// push makes no futex call for nobody).
    waiting: usize,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.events.is_empty() && self.ws.is_empty()
    }
}

/// What a host asked to hear about a request it parked (`Responder.notify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// A stream has room again (or its connection closed).
    Writable,
    /// The client finished sending, or the connection closed.
    Gone,
    /// A streamed request body has data, its end, or a failure to take
    /// (`BodyReader.notify`).
    Body,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Writable => "writable",
            Event::Gone => "gone",
            Event::Body => "body",
        }
    }
}

type Pair = (corral_core::Request, corral_core::Responder);

impl Batches {
    /// Runs `f` on the queue; wakes the host on the empty → non-empty transition.
    fn add(&self, f: impl FnOnce(&mut Queue)) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = q.is_empty() || q.unwoken;
        f(&mut q);
        q.unwoken = false;
        q.quiet_ws = 0;
        let waiting = q.waiting > 0;
        drop(q);
        if was_empty {
            self.wake(waiting);
        }
    }

    /// Queues one request, waking the host now — or, on an I/O worker, at the end of
    /// its round (one wake-up for the requests it framed in that round).
    fn push(&self, req: corral_core::Request, res: corral_core::Responder) {
        if corral_core::on_io_worker() {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.requests.push_back((req, res));
            q.unwoken = true;
        } else {
            self.add(|q| q.requests.push_back((req, res)));
        }
    }

    /// An I/O worker's round is over: wake the host for what it queued quietly.
    fn end_of_round(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if !std::mem::take(&mut q.unwoken) {
            return;
        }
        q.quiet_ws = 0;
        let waiting = q.waiting > 0;
        drop(q);
        self.wake(waiting);
    }

    /// Wakes the host: a waiting host thread, and an event loop's fd.
    fn wake(&self, waiting: bool) {
        if waiting {
            self.ready.notify_one();
        }
        if let Some((w, _)) = self.wake.get() {
            // Full means a wake-up is already pending: nothing is lost.
            let _ = (&*w).write(&[1]);
        }
    }

    /// Queues a websocket event: like a request, one queued on an I/O worker wakes the
    /// host at the end of the worker's round (one wake-up for every message decoded in
    /// that round) — or as soon as what it queued quietly weighs `WS_WAKE_AT`: a client
    /// that keeps sending keeps its worker's round going, and the host must see the
    /// messages (to pause the socket when its app is behind) before the round ends.
    pub(crate) fn push_ws(&self, item: WsItem) {
        if corral_core::on_io_worker() {
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.quiet_ws += item.weight();
            q.ws.push(item);
            q.unwoken = true;
            if q.quiet_ws >= WS_WAKE_AT {
                q.unwoken = false;
                q.quiet_ws = 0;
                let waiting = q.waiting > 0;
                drop(q);
                self.wake(waiting);
            }
        } else {
            self.add(|q| q.ws.push(item));
        }
    }

    /// Queues an event for the host (called on corral's threads: no GIL).
    pub(crate) fn push_event(&self, key: u64, event: Event) {
        self.add(|q| q.events.push((key, event)));
    }

    /// The fd an event loop watches (readable while a wake-up is pending), made on
    /// first use.
    pub(crate) fn wake_fd(&self) -> std::io::Result<i32> {
        if self.wake.get().is_none() {
            let (tx, rx) = UnixStream::pair()?;
            tx.set_nonblocking(true)?;
            rx.set_nonblocking(true)?;
            // Two first callers at once: one pair is kept, the other dropped.
            let _ = self.wake.set((tx, rx));
        }
        Ok(self.wake.get().map_or(-1, |(_, rx)| rx.as_raw_fd()))
    }

    /// Takes every queued event and up to `max` queued requests without waiting, after
    /// clearing pending wake-ups (the host drains until this returns none).
    fn take_now(&self, max: usize) -> Taken {
        if let Some((_, rx)) = self.wake.get() {
            let mut sink = [0u8; 64];
            while matches!((&*rx).read(&mut sink), Ok(n) if n > 0) {}
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let n = q.requests.len().min(max);
        Taken {
            events: std::mem::take(&mut q.events),
            ws: std::mem::take(&mut q.ws),
            requests: q.requests.drain(..n).collect(),
        }
    }

    /// Waits (without the GIL) for requests or events and takes every event and up to
    /// `max` requests; false once closed and empty.
    fn take(&self, max: usize, taken: &mut Taken) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        while q.is_empty() && !q.closed {
            q.waiting += 1;
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
            q.waiting -= 1;
        }
        let n = q.requests.len().min(max);
        taken.requests.extend(q.requests.drain(..n));
        taken.events.append(&mut q.events);
        taken.ws.append(&mut q.ws);
        if !q.requests.is_empty() && q.waiting > 0 {
            // Several host threads: pass the wake-up on to the next one.
            self.ready.notify_one();
        }
        !taken.is_empty() || !q.closed
    }

    /// No more requests will come: the host thread finishes what is queued and returns.
    pub(crate) fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.ready.notify_all();
    }
}

/// What the host takes from the queue in one go.
#[derive(Default)]
struct Taken {
    events: Vec<(u64, Event)>,
    ws: Vec<WsItem>,
    requests: Vec<Pair>,
}

impl Taken {
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.ws.is_empty() && self.requests.is_empty()
    }
}

/// The Python objects for one request. A streamed body is taken out of the request
/// here, to be handed out once (`Request.take_body`, or as `wsgi.input`).
fn wrap((mut req, res): Pair, batches: &Arc<Batches>) -> (Request, Responder) {
    let length = req.body_length();
    let body = req.take_body();
    let request =
        Request { streams: body.is_some(), length, body: Mutex::new(body), batches: Arc::clone(batches), inner: req };
    (request, Responder { state: Mutex::new(State::Pending(res)), batches: Arc::clone(batches) })
}

/// The bridge from corral's threads to the Python dispatcher. Classification is the
/// declarative rule, decided natively.
pub(crate) struct PyHandler {
    pub dispatch: Py<PyAny>,
    pub rule: CostRule,
    pub batches: Arc<Batches>,
    /// Whether requests' bodies are streamed (`Handler::streams_bodies`).
    pub streams: bool,
}

/// The weight of websocket events an I/O worker queues before it wakes the host
/// without waiting for the end of its round (`WsItem::weight`: 64 small messages, or
/// a read budget's worth of payload).
const WS_WAKE_AT: usize = 256 << 10;

/// Most requests the host thread runs per attachment to the interpreter.
const BATCH: usize = 256;

impl PyHandler {
    fn call(&self, py: Python<'_>, pair: Pair) {
        if let Err(e) = self.dispatch.call1(py, wrap(pair, &self.batches)) {
            // The dispatcher catches handler errors itself; this is a bug in it.
            e.write_unraisable(py, None);
        }
    }

    /// An event loop's take: every queued event as (key, "writable" | "gone"), and up to
    /// `max` requests as (Request, Responder) objects, without waiting. Websocket events
    /// are dispatched to their handlers here, before it returns.
    #[allow(clippy::type_complexity)]
    pub(crate) fn take_now(
        &self,
        py: Python<'_>,
        max: usize,
    ) -> PyResult<(Vec<(u64, &'static str)>, Vec<(Request, Responder)>)> {
        let taken = py.detach(|| self.batches.take_now(max));
        crate::ws::dispatch(py, taken.ws);
        let events = taken.events.into_iter().map(|(k, e)| (k, e.name())).collect();
        Ok((events, taken.requests.into_iter().map(|p| wrap(p, &self.batches)).collect()))
    }

    /// A host thread's loop: wait for up to `max` requests with the GIL released, run
    /// them with the GIL held once, until the engine is closed and the queue is empty.
    /// Events for parked requests go to `on_event(key, kind)`, then websocket events to
    /// their handlers, before the requests.
    pub(crate) fn run_host(&self, py: Python<'_>, max: usize, on_event: Option<&Bound<'_, PyAny>>) {
        let max = max.clamp(1, BATCH);
        let mut taken = Taken { requests: Vec::with_capacity(max), ..Taken::default() };
        while py.detach(|| self.batches.take(max, &mut taken)) {
            // Replies and sends made for this batch wake each I/O worker once, after it.
            corral_core::hold_wakes();
            for (key, event) in taken.events.drain(..) {
                let called = match on_event {
                    Some(f) => f.call1((key, event.name())).map(drop),
                    None => Ok(()),
                };
                if let Err(e) = called {
                    e.write_unraisable(py, None);
                }
            }
            crate::ws::dispatch(py, std::mem::take(&mut taken.ws));
            for pair in taken.requests.drain(..) {
                self.call(py, pair);
            }
            corral_core::release_wakes();
        }
    }
}

impl Handler for PyHandler {
    fn cost(&self, req: &corral_core::Request) -> Cost {
        self.rule.classify(req)
    }

    fn end_of_round(&self) {
        self.batches.end_of_round();
    }

    fn streams_bodies(&self) -> bool {
        self.streams
    }

    fn handle(&self, req: corral_core::Request, res: corral_core::Responder) {
        match self.rule.classify(&req) {
            // On the CPU pool: attach for this call; GIL-releasing work runs in parallel.
            Cost::Heavy => {
                keep_thread_state();
                Python::attach(|py| self.call(py, (req, res)))
            }
            // On an I/O worker: never wait for the GIL here.
            Cost::Light => self.batches.push(req, res),
        }
    }
}

/// A Python thread state kept for the life of a corral thread that calls into Python
/// (a CPU-pool thread). Without it every attach from that thread makes and frees a
/// thread state, and with it (in 3.11+) an mmap'd 16 KiB frame stack: an
/// `mmap`/`munmap` pair per heavy request, whose TLB shoot-downs cost more than a
/// tenth of the pool's time (measured on the `hash` row).
struct KeptThreadState {
    gil: pyo3::ffi::PyGILState_STATE,
    tstate: *mut pyo3::ffi::PyThreadState,
}

impl Drop for KeptThreadState {
    fn drop(&mut self) {
        // At thread exit. Once the interpreter is gone, so is the thread state.
        // SAFETY: this thread made `tstate` (PyGILState_Ensure) and released the GIL
        // with PyEval_SaveThread; restoring and releasing it pairs those calls.
        unsafe {
            if pyo3::ffi::Py_IsInitialized() != 0 {
                pyo3::ffi::PyEval_RestoreThread(self.tstate);
                pyo3::ffi::PyGILState_Release(self.gil);
            }
        }
    }
}

thread_local! {
    static KEPT: std::cell::OnceCell<KeptThreadState> = const { std::cell::OnceCell::new() };
}

/// Gives the calling (non-Python) thread a thread state that outlives each attach.
/// Call it without the GIL.
fn keep_thread_state() {
    KEPT.with(|k| {
        k.get_or_init(|| {
            // SAFETY: the interpreter is running (this module is loaded in it) and this
            // thread does not hold the GIL: Ensure takes it with a new thread state,
            // SaveThread releases it and leaves the state (its count at one) in place.
            unsafe {
                let gil = pyo3::ffi::PyGILState_Ensure();
                let tstate = pyo3::ffi::PyEval_SaveThread();
                KeptThreadState { gil, tstate }
            }
        });
    });
}

/// One framed request (read-only, but for its streamed body, which is handed out once).
#[pyclass(frozen, module = "corral._corral")]
pub struct Request {
    inner: corral_core::Request,
    /// The body is still arriving (taken out of `inner` into `body`).
    streams: bool,
    length: Option<u64>,
    body: Mutex<Option<corral_core::Body>>,
    batches: Arc<Batches>,
}

impl Request {
    fn take_reader(&self) -> Option<BodyReader> {
        let body = self.body.lock().unwrap_or_else(|e| e.into_inner()).take();
        body.map(|b| BodyReader::new(b, Arc::clone(&self.batches)))
    }
}

#[pymethods]
impl Request {
    /// HTTP method, or None for the other protocols.
    #[getter]
    fn method(&self) -> Option<&str> {
        self.inner.http().map(|h| h.method())
    }
    /// HTTP request target (path and query), or None.
    #[getter]
    fn path(&self) -> Option<&str> {
        self.inner.http().map(|h| h.path())
    }
    /// HTTP headers as (name, value) pairs in the order received; empty otherwise.
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> Vec<(String, Bound<'py, PyBytes>)> {
        match self.inner.http() {
            Some(h) => h.headers().map(|(n, v)| (n.to_string(), PyBytes::new(py, v))).collect(),
            None => Vec::new(),
        }
    }
    /// The first header called `name` (case-insensitive), or None.
    fn header<'py>(&self, py: Python<'py>, name: &str) -> Option<Bound<'py, PyBytes>> {
        self.inner.http().and_then(|h| h.header(name)).map(|v| PyBytes::new(py, v))
    }
    /// The frame (raw, lines, length) or the HTTP body when it came whole; b"" when
    /// the body streams (`body_streams`: read it from `take_body()`).
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.bytes())
    }
    /// True when the HTTP body is still arriving: read it from `take_body()`.
    #[getter]
    fn body_streams(&self) -> bool {
        self.streams
    }
    /// The body's length: whole, its size; streamed, its Content-Length (None when
    /// chunked).
    #[getter]
    fn body_length(&self) -> Option<u64> {
        self.length
    }
    /// The streamed body as a `BodyReader` (a binary file), once; None when the body
    /// came whole (in `body`) or was taken already. Not taken, it is discarded.
    fn take_body(&self) -> Option<BodyReader> {
        self.take_reader()
    }
    #[getter]
    fn conn_id(&self) -> u64 {
        self.inner.conn_id()
    }
    #[getter]
    fn seq(&self) -> u64 {
        self.inner.seq()
    }
    #[getter]
    fn worker(&self) -> usize {
        self.inner.worker()
    }
    #[getter]
    fn peer(&self) -> (String, u16) {
        let p = self.inner.peer();
        (p.ip().to_string(), p.port())
    }
    /// The PROXY header the connection began with (`proxy_protocol`), as a dict:
    /// version, source and destination ((host, port) or None), tlvs [(type, bytes)];
    /// None without one. `peer` is already the header's client.
    #[getter]
    fn proxy<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.inner.proxy().map(|p| proxy_dict(py, p)).transpose()
    }
    /// The TLS session the request came over (`tls_cert`), as a dict: version ("1.2",
    /// "1.3"), cipher_suite (its IANA name), sni and alpn (str, or None when the client
    /// sent none), resumed, client_cert_chain (the client's verified certificates as PEM
    /// strings, its own first; [] without one) and client_cert_name (its subject as RFC
    /// 4514 text, or None); None on a plain connection.
    #[getter]
    fn tls<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(t) = self.inner.tls() else { return Ok(None) };
        let d = PyDict::new(py);
        d.set_item("version", t.version().name())?;
        d.set_item("cipher_suite", t.cipher_suite())?;
        d.set_item("sni", t.sni())?;
        d.set_item("alpn", t.alpn().map(String::from_utf8_lossy))?;
        d.set_item("resumed", t.resumed())?;
        d.set_item("client_cert_chain", t.client_cert_pem())?;
        d.set_item("client_cert_name", t.client_subject())?;
        Ok(Some(d))
    }
    /// The subprotocols offered when the request asks for a websocket (a valid
    /// handshake; possibly none), else None. Accept it with `Responder.upgrade`.
    #[getter]
    fn websocket(&self) -> Option<Vec<String>> {
        self.inner.websocket().map(|o| o.protocols().to_vec())
    }
    #[getter]
    fn is_http(&self) -> bool {
        matches!(self.inner.payload(), Payload::Http(_))
    }
    /// A WSGI environ (PEP 3333) for this HTTP request: a new plain `dict` made from
    /// `base` (the keys that are the same for every request) plus this request's
    /// method, path, query, headers, peer and body (`wsgi.input`, an `input_type` over
    /// the body bytes). Strings are "native strings": the bytes as latin-1.
    fn wsgi_environ<'py>(
        &self,
        py: Python<'py>,
        base: &Bound<'py, PyDict>,
        input_type: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let h = self.inner.http().ok_or_else(|| errors::state(py, "a WSGI environ needs an HTTP request"))?;
        let env = base.copy()?;
        env.set_item(pyo3::intern!(py, "REQUEST_METHOD"), h.method())?;
        let (path, query) = h.path().split_once('?').unwrap_or((h.path(), ""));
        env.set_item(pyo3::intern!(py, "PATH_INFO"), latin1(py, &percent_decode(path.as_bytes()))?)?;
        env.set_item(pyo3::intern!(py, "QUERY_STRING"), query)?;
        env.set_item(pyo3::intern!(py, "RAW_URI"), h.path())?;
        env.set_item(
            pyo3::intern!(py, "SERVER_PROTOCOL"),
            if h.minor_version() == 0 { pyo3::intern!(py, "HTTP/1.0") } else { pyo3::intern!(py, "HTTP/1.1") },
        )?;
        if let Some(t) = self.inner.tls() {
            env.set_item(pyo3::intern!(py, "wsgi.url_scheme"), pyo3::intern!(py, "https"))?;
            env.set_item(pyo3::intern!(py, "HTTPS"), pyo3::intern!(py, "on"))?;
            wsgi_client_cert(py, &env, t)?;
        }
        let peer = self.inner.peer();
        env.set_item(pyo3::intern!(py, "REMOTE_ADDR"), peer.ip().to_string())?;
        env.set_item(pyo3::intern!(py, "REMOTE_PORT"), peer.port().to_string())?;
        for (name, value) in h.headers() {
            let key = if name.eq_ignore_ascii_case("content-type") {
                "CONTENT_TYPE".to_string()
            } else if name.eq_ignore_ascii_case("content-length") {
                "CONTENT_LENGTH".to_string()
            } else {
                let mut k = String::with_capacity(5 + name.len());
                k.push_str("HTTP_");
                k.extend(name.chars().map(|c| if c == '-' { '_' } else { c.to_ascii_uppercase() }));
                k
            };
            let v = latin1(py, value)?;
            // Repeated headers are joined with commas (RFC 9110 5.3).
            match env.get_item(&key)? {
                Some(prev) if key.starts_with("HTTP_") => {
                    let joined = format!("{},{}", prev.extract::<String>()?, v.extract::<String>()?);
                    env.set_item(&key, joined)?
                }
                _ => env.set_item(&key, v)?,
            }
        }
        if let Some(reader) = self.take_reader() {
            // Still arriving: a stream, CONTENT_LENGTH as sent (none for chunked).
            env.set_item(pyo3::intern!(py, "wsgi.input"), Bound::new(py, reader)?)?;
            return Ok(env);
        }
        let body = self.inner.bytes();
        if env.get_item("CONTENT_LENGTH")?.is_none() && !body.is_empty() {
            // A chunked body: corral has read it whole; say how long it is.
            env.set_item(pyo3::intern!(py, "CONTENT_LENGTH"), body.len().to_string())?;
        }
        env.set_item(pyo3::intern!(py, "wsgi.input"), input_type.call1((PyBytes::new(py, body),))?)?;
        Ok(env)
    }

    /// An ASGI HTTP connection scope (http spec 2.4) for this request: a new plain
    /// `dict` made from `base` (type, asgi, scheme, server, root_path) plus this
    /// request's method, path (decoded UTF-8), raw_path, query_string, headers
    /// (lower-cased names, as bytes) and client; over TLS, scheme "https" and the `tls`
    /// extension.
    fn asgi_scope<'py>(&self, py: Python<'py>, base: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
        let h = self.inner.http().ok_or_else(|| errors::state(py, "an ASGI scope needs an HTTP request"))?;
        let scope = base.copy()?;
        scope.set_item(
            pyo3::intern!(py, "http_version"),
            if h.minor_version() == 0 { pyo3::intern!(py, "1.0") } else { pyo3::intern!(py, "1.1") },
        )?;
        scope.set_item(pyo3::intern!(py, "method"), h.method())?;
        let (path, query) = h.path().split_once('?').unwrap_or((h.path(), ""));
        scope.set_item(pyo3::intern!(py, "path"), String::from_utf8_lossy(&percent_decode(path.as_bytes())))?;
        scope.set_item(pyo3::intern!(py, "raw_path"), PyBytes::new(py, path.as_bytes()))?;
        scope.set_item(pyo3::intern!(py, "query_string"), PyBytes::new(py, query.as_bytes()))?;
        let headers = pyo3::types::PyList::empty(py);
        for (name, value) in h.headers() {
            let lower = name.to_ascii_lowercase();
            headers.append((PyBytes::new(py, lower.as_bytes()), PyBytes::new(py, value)))?;
        }
        scope.set_item(pyo3::intern!(py, "headers"), headers)?;
        let peer = self.inner.peer();
        scope.set_item(pyo3::intern!(py, "client"), (peer.ip().to_string(), peer.port()))?;
        if let Some(t) = self.inner.tls() {
            scope.set_item(pyo3::intern!(py, "scheme"), pyo3::intern!(py, "https"))?;
            let extensions = PyDict::new(py);
            extensions.set_item(pyo3::intern!(py, "tls"), asgi_tls(py, t)?)?;
            scope.set_item(pyo3::intern!(py, "extensions"), extensions)?;
        }
        Ok(scope)
    }

    fn __repr__(&self) -> String {
        match self.inner.http() {
            Some(h) => {
                format!("<Request {} {} conn={} seq={}>", h.method(), h.path(), self.inner.conn_id(), self.inner.seq())
            }
            None => format!(
                "<Request {} bytes conn={} seq={}>",
                self.inner.bytes().len(),
                self.inner.conn_id(),
                self.inner.seq()
            ),
        }
    }
}

/// mod_ssl's names for the client certificate: `SSL_CLIENT_VERIFY` (`SUCCESS`: verified
/// against `tls_client_ca`; `NONE`: none presented), and with one, `SSL_CLIENT_S_DN` (RFC
/// 4514) and `SSL_CLIENT_CERT` (PEM).
fn wsgi_client_cert(py: Python<'_>, env: &Bound<'_, PyDict>, t: &corral_core::TlsInfo) -> PyResult<()> {
    let Some(name) = t.client_subject() else {
        return env.set_item(pyo3::intern!(py, "SSL_CLIENT_VERIFY"), pyo3::intern!(py, "NONE"));
    };
    env.set_item(pyo3::intern!(py, "SSL_CLIENT_VERIFY"), pyo3::intern!(py, "SUCCESS"))?;
    env.set_item(pyo3::intern!(py, "SSL_CLIENT_S_DN"), name)?;
    env.set_item(pyo3::intern!(py, "SSL_CLIENT_CERT"), t.client_cert_pem().swap_remove(0))
}

/// The ASGI TLS extension (asgiref's tls.rst): the version and cipher suite by their
/// numbers; the client's verified chain as PEM and its subject (RFC 4514) when it
/// presented a certificate (a certificate that fails verification ends the handshake,
/// so `client_cert_error` is always None); no server certificate (the spec allows None).
fn asgi_tls<'py>(py: Python<'py>, t: &corral_core::TlsInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let version: u16 = match t.version() {
        corral_core::TlsVersion::Tls12 => 0x0303,
        corral_core::TlsVersion::Tls13 => 0x0304,
    };
    d.set_item("server_cert", py.None())?;
    d.set_item("client_cert_chain", t.client_cert_pem())?;
    d.set_item("client_cert_name", t.client_subject())?;
    d.set_item("client_cert_error", py.None())?;
    d.set_item("tls_version", version)?;
    d.set_item("cipher_suite", t.cipher_suite_id())?;
    Ok(d)
}

/// Bytes as a Python `str` of the same code points (latin-1), as WSGI wants.
fn latin1<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let s: String = b.iter().map(|&c| c as char).collect();
    Ok(pyo3::types::PyString::new(py, &s).into_any())
}

/// `%XX` escapes decoded (a malformed escape is kept as it is).
fn percent_decode(p: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        if p[i] == b'%' && i + 2 < p.len() {
            if let (Some(a), Some(b)) = (hex(p[i + 1]), hex(p[i + 2])) {
                out.push(a * 16 + b);
                i += 3;
                continue;
            }
        }
        out.push(p[i]);
        i += 1;
    }
    out
}

/// Where a Python responder is in its request's reply.
enum State {
    /// Nothing sent yet.
    Pending(corral_core::Responder),
    /// The head is sent; the body goes out in parts.
    Streaming(corral_core::Stream),
    /// Answered (or given up on).
    Done,
}

/// Completes one request, once, from any thread: whole (`respond_*`) or streamed
/// (`start`, `send`..., `finish`). Dropped unanswered, it sends the error reply (HTTP
/// 500; the other protocols close the connection); dropped mid-stream, it closes the
/// connection (the client sees a cut-off body).
#[pyclass(frozen, module = "corral._corral")]
pub struct Responder {
    state: Mutex<State>,
    batches: Arc<Batches>,
}

fn gone_error() -> PyErr {
    pyo3::exceptions::PyBrokenPipeError::new_err(corral_core::StreamError::Gone.to_string())
}

const NOT_STREAMING: &str = "no streamed reply was started on this request (call start first)";

/// A stream's error as Python sees it: BrokenPipeError once the client left, StateError
/// for a body short of its declared length.
fn stream_error(py: Python<'_>, e: StreamError) -> PyErr {
    match e {
        StreamError::Gone => gone_error(),
        short => errors::state(py, &short.to_string()),
    }
}

impl Responder {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, py: Python<'_>) -> PyResult<corral_core::Responder> {
        let mut st = self.lock();
        match std::mem::replace(&mut *st, State::Done) {
            State::Pending(r) => Ok(r),
            other => {
                *st = other;
                Err(errors::state(py, "this request was already answered (or its reply started)"))
            }
        }
    }

    fn head(py: Python<'_>, status: u16, headers: Vec<(String, String)>) -> PyResult<Response> {
        if !(100..=999).contains(&status) {
            return Err(errors::config(py, format!("status {status} is not an HTTP status code (100..=999)")));
        }
        let mut resp = Response::new(status);
        resp.headers = headers;
        Ok(resp)
    }

    fn start_head(&self, py: Python<'_>, head: Response, length: Option<u64>) -> PyResult<()> {
        let r = self.take(py)?;
        match r.stream(&head, length) {
            Ok(s) => {
                *self.lock() = State::Streaming(s);
                Ok(())
            }
            Err(r) => {
                *self.lock() = State::Pending(r);
                Err(errors::state(py, "only HTTP replies can be streamed"))
            }
        }
    }

    fn with_stream<T>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut corral_core::Stream) -> Result<T, StreamError>,
    ) -> PyResult<T> {
        let mut st = self.lock();
        let State::Streaming(s) = &mut *st else {
            return Err(errors::state(py, NOT_STREAMING));
        };
        f(s).map_err(|e| {
            *st = State::Done;
            stream_error(py, e)
        })
    }
}

/// A header name or value as a Rust string: the bytes themselves when they are UTF-8
/// (so they go out unchanged), else each byte as its latin-1 character.
fn header_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => b.iter().map(|&c| c as char).collect(),
    }
}

/// A header name or value given as str or bytes (bytes as `header_text` reads them).
struct HeaderText(String);

impl<'a, 'py> FromPyObject<'a, 'py> for HeaderText {
    type Error = PyErr;
    fn extract(ob: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<HeaderText> {
        if let Ok(b) = ob.cast::<PyBytes>() {
            return Ok(HeaderText(header_text(b.as_bytes())));
        }
        Ok(HeaderText(ob.extract::<String>()?))
    }
}

/// The parts of an ASGI `http.response.start` message: the status (an int, 100 to 999)
/// and headers (pairs of byte strings), as a response head and the body length the app
/// declared (its `content-length`, which corral writes itself).
fn asgi_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<(Response, Option<u64>)> {
    let code = match status.extract::<i64>() {
        Ok(s) if (100..=999).contains(&s) && !status.is_instance_of::<pyo3::types::PyBool>() => s as u16,
        _ => {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "http.response.start needs an int status 100 to 999, not {}",
                status.repr()?
            )))
        }
    };
    let mut resp = Response::new(code);
    let mut length = None;
    for item in headers.try_iter()? {
        let item = item?;
        let (name, value): (std::borrow::Cow<'_, [u8]>, std::borrow::Cow<'_, [u8]>) = item.extract().map_err(|_| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "an ASGI header must be a pair of byte strings, not {}",
                item.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(&value).ok().and_then(|v| v.trim().parse::<u64>().ok());
            length = Some(n.ok_or_else(|| {
                pyo3::exceptions::PyRuntimeError::new_err(format!(
                    "content-length {:?} is not a number",
                    String::from_utf8_lossy(&value)
                ))
            })?);
        } else {
            resp.headers.push((header_text(&name), header_text(&value)));
        }
    }
    Ok((resp, length))
}

#[pymethods]
impl Responder {
    /// ASGI: the whole response in one call (`http.response.start`'s status and
    /// headers, the one body). The body is cut to the app's content-length if it
    /// declared a shorter one. False if the client already left (nothing was sent).
    fn respond_asgi(
        &self,
        py: Python<'_>,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        body: &[u8],
    ) -> PyResult<bool> {
        let (head, length) = asgi_head(status, headers)?;
        let cut = length.map_or(body.len(), |n| body.len().min(usize::try_from(n).unwrap_or(usize::MAX)));
        let r = self.take(py)?;
        if r.is_gone() {
            return Ok(false);
        }
        let resp = head.body(body[..cut].to_vec());
        py.detach(|| r.respond(resp));
        Ok(true)
    }
    /// ASGI: starts a streamed response from `http.response.start`'s status and
    /// headers (with the app's content-length, if it gave one).
    fn start_asgi(&self, py: Python<'_>, status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<()> {
        let (head, length) = asgi_head(status, headers)?;
        self.start_head(py, head, length)
    }
    /// Replies with bytes, framed by the protocol (HTTP: a 200 with this body).
    fn respond_bytes(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let r = self.take(py)?;
        let data = data.to_vec();
        py.detach(|| r.respond(Reply::Bytes(data)));
        Ok(())
    }
    /// Replies with an HTTP response.
    fn respond_http(&self, py: Python<'_>, status: u16, headers: Vec<(String, String)>, body: &[u8]) -> PyResult<()> {
        let resp = Self::head(py, status, headers)?.body(body.to_vec());
        let r = self.take(py)?;
        py.detach(|| r.respond(resp));
        Ok(())
    }
    /// Starts a streamed HTTP reply: the status and headers go out now, the body
    /// through `send` and `finish`. `length`: the body's length if known (sent as
    /// Content-Length; more is cut off, less closes the connection); otherwise the body
    /// is chunked (HTTP/1.0: ended by closing the connection).
    #[pyo3(signature = (status, headers, length=None))]
    fn start(&self, py: Python<'_>, status: u16, headers: Vec<(String, String)>, length: Option<u64>) -> PyResult<()> {
        let head = Self::head(py, status, headers)?;
        self.start_head(py, head, length)
    }
    /// Sends a part of a streamed body. True: there is room for more; False: the
    /// client is not keeping up, wait for `notify(key, "writable")`'s event (or
    /// `wait_writable`) before sending more. Raises BrokenPipeError once the client left.
    fn send(&self, py: Python<'_>, data: &[u8]) -> PyResult<bool> {
        self.with_stream(py, |s| s.send(data)).map(|sent| sent == Sent::Ready)
    }
    /// Ends a streamed body. Raises BrokenPipeError if the client left, StateError if
    /// the body is shorter than its declared length (the connection was closed).
    fn finish(&self, py: Python<'_>) -> PyResult<()> {
        let s = {
            let mut st = self.lock();
            match std::mem::replace(&mut *st, State::Done) {
                State::Streaming(s) => s,
                other => {
                    *st = other;
                    return Err(errors::state(py, NOT_STREAMING));
                }
            }
        };
        s.finish().map_err(|e| stream_error(py, e))
    }
    /// Gives up: a streamed reply is cut off (the connection closes once what was sent
    /// is written); one not started gets the error reply (HTTP 500).
    fn abort(&self, py: Python<'_>) {
        let st = std::mem::replace(&mut *self.lock(), State::Done);
        py.detach(|| match st {
            State::Streaming(s) => s.abort(),
            other => drop(other),
        });
    }
    /// Asks for the event `(key, kind)` through the host's queue (the host thread's
    /// `on_event`, or the event loop's `take_requests`): kind "writable" once a
    /// streamed body has room again, "gone" once the client finished sending or the
    /// connection closed. At once if that is already so.
    fn notify(&self, py: Python<'_>, key: u64, kind: &str) -> PyResult<()> {
        let event = match kind {
            "writable" => Event::Writable,
            "gone" => Event::Gone,
            other => return Err(errors::config(py, format!("unknown event {other:?}: use writable or gone"))),
        };
        let batches = Arc::clone(&self.batches);
        let tell = move || batches.push_event(key, event);
        match (&*self.lock(), event) {
            (State::Streaming(s), Event::Writable) => s.when_writable(tell),
            (State::Streaming(s), Event::Gone) => s.when_gone(tell),
            (State::Pending(r), Event::Gone) => r.when_gone(tell),
            _ => tell(),
        }
        Ok(())
    }
    /// Waits, with the GIL released, until a streamed body has room again or the
    /// connection closed; False if `timeout` seconds passed first. For threads that may
    /// block (WSGI's `write`).
    fn wait_writable(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let timeout = seconds(py, "timeout", timeout)?;
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        {
            let st = self.lock();
            let State::Streaming(s) = &*st else { return Ok(true) };
            let p = Arc::clone(&pair);
            s.when_writable(move || {
                *p.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
                p.1.notify_all();
            });
        }
        Ok(py.detach(|| wait_flag(&pair, timeout)))
    }
    /// Accepts the websocket the request asks for: the 101 goes out with `protocol`
    /// (one the client offered) and `headers` ((name, value) pairs of str or bytes), and
    /// `handler`'s `on_open(ws)`, `on_message(ws, data)`, `on_drain(ws)` and
    /// `on_close(ws, code, reason)` (each optional) run on the host as the socket's
    /// events come. Raises StateError if the request asks for no websocket (or was
    /// answered), BrokenPipeError if the client has gone.
    #[pyo3(signature = (handler, protocol=None, headers=Vec::new()))]
    fn upgrade(
        &self,
        py: Python<'_>,
        handler: &Bound<'_, PyAny>,
        protocol: Option<String>,
        headers: Vec<(HeaderText, HeaderText)>,
    ) -> PyResult<Py<WebSocket>> {
        let r = self.take(py)?;
        let headers = headers.into_iter().map(|(n, v)| (n.0, v.0)).collect();
        crate::ws::upgrade(py, r, &self.batches, handler, protocol, headers).map_err(|(r, e)| {
            if let Some(r) = r {
                *self.lock() = State::Pending(r);
            }
            e
        })
    }
    /// Answers with the protocol's error reply (HTTP 500) now.
    fn fail(&self, py: Python<'_>) -> PyResult<()> {
        let r = self.take(py)?;
        py.detach(|| drop(r));
        Ok(())
    }
    /// Closes the connection once the replies to earlier requests are written.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let r = self.take(py)?;
        py.detach(|| r.close());
        Ok(())
    }
    /// Whether a reply was sent or started.
    #[getter]
    fn answered(&self) -> bool {
        !matches!(&*self.lock(), State::Pending(_))
    }
    /// True once the connection is closed (the client left, or shutdown).
    #[getter]
    fn gone(&self) -> bool {
        match &*self.lock() {
            State::Pending(r) => r.is_gone(),
            State::Streaming(s) => s.is_gone(),
            State::Done => false,
        }
    }
}

/// A PROXY header as Python sees it: version, source and destination ((host, port) or
/// None), tlvs [(type, bytes)].
pub(crate) fn proxy_dict<'py>(py: Python<'py>, p: &corral_core::ProxyHeader) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("version", p.version)?;
    let addr = |a: Option<std::net::SocketAddr>| a.map(|a| (a.ip().to_string(), a.port()));
    d.set_item("source", addr(p.source))?;
    d.set_item("destination", addr(p.destination))?;
    let tlvs: Vec<(u8, Bound<'py, PyBytes>)> = p.tlvs().iter().map(|(k, v)| (*k, PyBytes::new(py, v))).collect();
    d.set_item("tlvs", tlvs)?;
    Ok(d)
}

fn wait_flag(pair: &(Mutex<bool>, Condvar), timeout: Duration) -> bool {
    let guard = pair.0.lock().unwrap_or_else(|e| e.into_inner());
    let (guard, _) = pair.1.wait_timeout_while(guard, timeout, |set| !*set).unwrap_or_else(|e| e.into_inner());
    *guard
}
