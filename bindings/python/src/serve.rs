//! Serving into Python: the handler bridge, the batched host boundary, and the
//! `Request` and `Responder` objects the Python dispatcher receives.
//!
//! Light requests never take the GIL on an I/O worker: they are queued
//! ([`Batches`]) and the host thread (`Engine.run_host`, started by `corral.serve`)
//! takes them in batches, attaching to the interpreter once per batch. Heavy requests
//! run on corral's CPU pool, each attaching for its own call, so work that releases the
//! GIL (hashlib, zlib, numpy) runs in parallel there.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{Condvar, Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use corral_core::{Cost, CostRule, Handler, Payload, Reply, Response};

use crate::errors;

/// Light requests waiting for the host, and whether the engine is closed. The host is a
/// thread waiting on the condvar (sync handlers, WSGI), or an event loop watching
/// `wake`'s other end (ASGI): one byte is written on each empty → non-empty transition.
#[derive(Default)]
pub(crate) struct Batches {
    queue: Mutex<(VecDeque<Pair>, bool)>,
    ready: Condvar,
    /// (writer, reader), made once on the first `wake_fd`; unset for a thread host.
    wake: OnceLock<(UnixStream, UnixStream)>,
}

type Pair = (corral_core::Request, corral_core::Responder);

/// The Python objects for one queued request.
fn wrap((req, res): Pair) -> (Request, Responder) {
    (Request { inner: req }, Responder { inner: Mutex::new(Some(res)) })
}

impl Batches {
    /// Queues one request; wakes the host on the empty → non-empty transition.
    fn push(&self, req: corral_core::Request, res: corral_core::Responder) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = q.0.is_empty();
        q.0.push_back((req, res));
        drop(q);
        if was_empty {
            self.ready.notify_one();
            if let Some((w, _)) = self.wake.get() {
                // Full means a wake-up is already pending: nothing is lost.
                let _ = (&*w).write(&[1]);
            }
        }
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

    /// Takes up to `max` queued requests without waiting, after clearing pending
    /// wake-ups (the host drains until this returns none).
    fn take_now(&self, max: usize) -> Vec<Pair> {
        if let Some((_, rx)) = self.wake.get() {
            let mut sink = [0u8; 64];
            while matches!((&*rx).read(&mut sink), Ok(n) if n > 0) {}
        }
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let n = q.0.len().min(max);
        q.0.drain(..n).collect()
    }

    /// Waits (without the GIL) for requests and takes up to `max` into `out`; false
    /// once closed and empty.
    fn take(&self, max: usize, out: &mut Vec<Pair>) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        while q.0.is_empty() && !q.1 {
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        let n = q.0.len().min(max);
        out.extend(q.0.drain(..n));
        if !q.0.is_empty() {
            // Several host threads: pass the wake-up on to the next one.
            self.ready.notify_one();
        }
        !out.is_empty() || !q.1
    }

    /// No more requests will come: the host thread finishes what is queued and returns.
    pub(crate) fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.ready.notify_all();
    }
}

/// The bridge from corral's threads to the Python dispatcher. Classification is the
/// declarative rule, decided natively.
pub(crate) struct PyHandler {
    pub dispatch: Py<PyAny>,
    pub rule: CostRule,
    pub batches: std::sync::Arc<Batches>,
}

/// Most requests the host thread runs per attachment to the interpreter.
const BATCH: usize = 256;

impl PyHandler {
    fn call(&self, py: Python<'_>, pair: Pair) {
        if let Err(e) = self.dispatch.call1(py, wrap(pair)) {
            // The dispatcher catches handler errors itself; this is a bug in it.
            e.write_unraisable(py, None);
        }
    }

    /// An event loop's take: up to `max` requests as (Request, Responder) objects,
    /// without waiting (empty when none are queued).
    pub(crate) fn take_now<'py>(&self, py: Python<'py>, max: usize) -> PyResult<Vec<(Request, Responder)>> {
        let got = py.detach(|| self.batches.take_now(max));
        Ok(got.into_iter().map(wrap).collect())
    }

    /// A host thread's loop: wait for up to `max` requests with the GIL released, run
    /// them with the GIL held once, until the engine is closed and the queue is empty.
    pub(crate) fn run_host(&self, py: Python<'_>, max: usize) {
        let max = max.clamp(1, BATCH);
        let mut batch = Vec::with_capacity(max);
        while py.detach(|| self.batches.take(max, &mut batch)) {
            for pair in batch.drain(..) {
                self.call(py, pair);
            }
        }
    }
}

impl Handler for PyHandler {
    fn cost(&self, req: &corral_core::Request) -> Cost {
        self.rule.classify(req)
    }

    fn handle(&self, req: corral_core::Request, res: corral_core::Responder) {
        match self.rule.classify(&req) {
            // On the CPU pool: attach for this call; GIL-releasing work runs in parallel.
            Cost::Heavy => Python::attach(|py| self.call(py, (req, res))),
            // On an I/O worker: never wait for the GIL here.
            Cost::Light => self.batches.push(req, res),
        }
    }
}

/// One framed request (read-only).
#[pyclass(frozen, module = "corral._corral")]
pub struct Request {
    inner: corral_core::Request,
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
    /// The frame (raw, lines, length) or the HTTP body.
    #[getter]
    fn body<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.bytes())
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
        env.set_item("REQUEST_METHOD", h.method())?;
        let (path, query) = h.path().split_once('?').unwrap_or((h.path(), ""));
        env.set_item("PATH_INFO", latin1(py, &percent_decode(path.as_bytes()))?)?;
        env.set_item("QUERY_STRING", query)?;
        env.set_item("RAW_URI", h.path())?;
        env.set_item("SERVER_PROTOCOL", if h.minor_version() == 0 { "HTTP/1.0" } else { "HTTP/1.1" })?;
        let peer = self.inner.peer();
        env.set_item("REMOTE_ADDR", peer.ip().to_string())?;
        env.set_item("REMOTE_PORT", peer.port().to_string())?;
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
        let body = self.inner.bytes();
        if env.get_item("CONTENT_LENGTH")?.is_none() && !body.is_empty() {
            // A chunked body: corral has read it whole; say how long it is.
            env.set_item("CONTENT_LENGTH", body.len().to_string())?;
        }
        env.set_item("wsgi.input", input_type.call1((PyBytes::new(py, body),))?)?;
        Ok(env)
    }

    /// An ASGI HTTP connection scope (http spec 2.4) for this request: a new plain
    /// `dict` made from `base` (type, asgi, scheme, server, root_path) plus this
    /// request's method, path (decoded UTF-8), raw_path, query_string, headers
    /// (lower-cased names, as bytes) and client.
    fn asgi_scope<'py>(&self, py: Python<'py>, base: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
        let h = self.inner.http().ok_or_else(|| errors::state(py, "an ASGI scope needs an HTTP request"))?;
        let scope = base.copy()?;
        scope.set_item("http_version", if h.minor_version() == 0 { "1.0" } else { "1.1" })?;
        scope.set_item("method", h.method())?;
        let (path, query) = h.path().split_once('?').unwrap_or((h.path(), ""));
        scope.set_item("path", String::from_utf8_lossy(&percent_decode(path.as_bytes())))?;
        scope.set_item("raw_path", PyBytes::new(py, path.as_bytes()))?;
        scope.set_item("query_string", PyBytes::new(py, query.as_bytes()))?;
        let headers = pyo3::types::PyList::empty(py);
        for (name, value) in h.headers() {
            let lower = name.to_ascii_lowercase();
            headers.append((PyBytes::new(py, lower.as_bytes()), PyBytes::new(py, value)))?;
        }
        scope.set_item("headers", headers)?;
        let peer = self.inner.peer();
        scope.set_item("client", (peer.ip().to_string(), peer.port()))?;
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

/// Completes one request, once, from any thread. Dropped unanswered, it sends the
/// error reply (HTTP 500; the other protocols close the connection).
#[pyclass(frozen, module = "corral._corral")]
pub struct Responder {
    inner: Mutex<Option<corral_core::Responder>>,
}

impl Responder {
    fn take(&self, py: Python<'_>) -> PyResult<corral_core::Responder> {
        let taken = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        taken.ok_or_else(|| errors::state(py, "this request was already answered"))
    }
}

#[pymethods]
impl Responder {
    /// Replies with bytes, framed by the protocol (HTTP: a 200 with this body).
    fn respond_bytes(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let r = self.take(py)?;
        let data = data.to_vec();
        py.detach(|| r.respond(Reply::Bytes(data)));
        Ok(())
    }
    /// Replies with an HTTP response.
    fn respond_http(&self, py: Python<'_>, status: u16, headers: Vec<(String, String)>, body: &[u8]) -> PyResult<()> {
        if !(100..=999).contains(&status) {
            return Err(errors::config(py, format!("status {status} is not an HTTP status code (100..=999)")));
        }
        let r = self.take(py)?;
        let mut resp = Response::new(status).body(body.to_vec());
        for (n, v) in headers {
            resp = resp.header(n, v);
        }
        py.detach(|| r.respond(resp));
        Ok(())
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
    /// Whether a reply was already sent.
    #[getter]
    fn answered(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}
