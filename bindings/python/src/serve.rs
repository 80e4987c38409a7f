//! Serving into Python: the handler bridge, the batched host boundary, and the
//! `Request` and `Responder` objects the Python dispatcher receives.
//!
//! Light requests never take the GIL on an I/O worker: they are queued
//! ([`Batches`]) and the host thread (`Engine.run_host`, started by `corral.serve`)
//! takes them in batches, attaching to the interpreter once per batch. Heavy requests
//! run on corral's CPU pool, each attaching for its own call, so work that releases the
//! GIL (hashlib, zlib, numpy) runs in parallel there.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use corral_core::{Cost, CostRule, Handler, Payload, Reply, Response};

use crate::errors;

/// Light requests waiting for the host thread, and whether the engine is closed.
#[derive(Default)]
pub(crate) struct Batches {
    queue: Mutex<(VecDeque<(corral_core::Request, corral_core::Responder)>, bool)>,
    ready: Condvar,
}

impl Batches {
    /// Queues one request; wakes the host thread on the empty → non-empty transition.
    fn push(&self, req: corral_core::Request, res: corral_core::Responder) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = q.0.is_empty();
        q.0.push_back((req, res));
        drop(q);
        if was_empty {
            self.ready.notify_one();
        }
    }

    /// Waits (without the GIL) for requests and takes up to `max`; `None` once closed
    /// and empty.
    fn take(&self, max: usize, out: &mut Vec<(corral_core::Request, corral_core::Responder)>) -> bool {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        while q.0.is_empty() && !q.1 {
            q = self.ready.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        let n = q.0.len().min(max);
        out.extend(q.0.drain(..n));
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
    fn call(&self, py: Python<'_>, req: corral_core::Request, res: corral_core::Responder) {
        let r = Request { inner: req };
        let s = Responder { inner: Mutex::new(Some(res)) };
        if let Err(e) = self.dispatch.call1(py, (r, s)) {
            // The dispatcher catches handler errors itself; this is a bug in it.
            e.write_unraisable(py, None);
        }
    }

    /// The host thread's loop: wait for a batch with the GIL released, run it with the
    /// GIL held once, until the engine is closed and the queue is empty.
    pub(crate) fn run_host(&self, py: Python<'_>) {
        let mut batch = Vec::with_capacity(BATCH);
        while py.detach(|| self.batches.take(BATCH, &mut batch)) {
            for (req, res) in batch.drain(..) {
                self.call(py, req, res);
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
            Cost::Heavy => Python::attach(|py| self.call(py, req, res)),
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
