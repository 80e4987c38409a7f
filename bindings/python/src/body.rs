//! `BodyReader`: a streamed request body as Python reads it: a binary file (`read`,
//! `readinto`, `readline`, iteration by lines) whose reads wait with the GIL released,
//! for WSGI's `wsgi.input` and `Request.take_body()`; and `try_read` + `notify` for an
//! event loop (ASGI), which never waits.
//!
//! Threads: any Python thread may read (one at a time: a second waits for the first).
//! The blocking reads must not run on an I/O worker (corral's `Body` refuses to wait
//! there; this says so as a `BodyError`). The data is copied once, into the `bytes`
//! handed to Python; what is buffered here is at most one piece the engine delivered
//! plus a partial line, so memory stays near the engine's `body_window`.

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PySlice};

use corral_core::{BodyError, BodyRead};

use crate::errors;
use crate::serve::{Batches, Event};

/// What one attempt to get more of the body gave.
enum Fill {
    /// More bytes are buffered.
    Got,
    /// Nothing yet (only without waiting).
    Pending,
    /// The body ended.
    End,
    /// The body will not complete.
    Failed(BodyError),
}

struct Reader {
    /// `None` once closed by the app.
    body: Option<corral_core::Body>,
    buf: Vec<u8>,
    pos: usize,
    end: bool,
    failed: Option<BodyError>,
}

/// The message for a blocking read on a thread that must never wait.
const ON_IO_WORKER: &str = "a request body cannot be waited for on one of corral's I/O workers; \
     read it from a host thread or a thread of your own";

impl Reader {
    fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Gets more of the body into the buffer, waiting for it when `block`.
    fn fill(&mut self, block: bool) -> Fill {
        if self.end {
            return Fill::End;
        }
        if let Some(e) = &self.failed {
            return Fill::Failed(e.clone());
        }
        let Some(body) = self.body.as_mut() else { return Fill::Failed(BodyError::Closed) };
        let got = if block { body.read_blocking(None) } else { body.try_read() };
        match got {
            BodyRead::Data(d) => {
                if self.pos == self.buf.len() {
                    self.buf = d;
                    self.pos = 0;
                } else {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                    self.buf.extend_from_slice(&d);
                }
                Fill::Got
            }
            BodyRead::End => {
                self.end = true;
                Fill::End
            }
            BodyRead::Failed(e) => {
                self.failed = Some(e.clone());
                Fill::Failed(e)
            }
            BodyRead::Pending => Fill::Pending,
        }
    }

    /// Takes up to `n` buffered bytes.
    fn take(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.buffered());
        let out = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        out
    }
}

/// Why a read stopped short of what it asked for.
enum Stop {
    Failed(BodyError),
    /// A blocking read on an I/O worker.
    Worker,
    Closed,
}

fn stop_error(py: Python<'_>, s: Stop) -> PyErr {
    match s {
        Stop::Failed(e) => errors::body(py, &e),
        Stop::Worker => errors::body_msg(py, ON_IO_WORKER),
        Stop::Closed => pyo3::exceptions::PyValueError::new_err("I/O operation on a closed request body"),
    }
}

/// A request body still arriving, read as a binary file. See the module doc.
#[pyclass(frozen, module = "corral._corral")]
pub struct BodyReader {
    inner: Mutex<Reader>,
    length: Option<u64>,
    batches: Arc<Batches>,
}

impl BodyReader {
    pub(crate) fn new(body: corral_core::Body, batches: Arc<Batches>) -> BodyReader {
        let length = body.length();
        BodyReader {
            inner: Mutex::new(Reader { body: Some(body), buf: Vec::new(), pos: 0, end: false, failed: None }),
            length,
            batches,
        }
    }

    /// Locks the reader; called without the GIL (a reader may hold the lock while it
    /// waits for the network).
    fn lock(&self) -> MutexGuard<'_, Reader> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the reader with the GIL released; the bytes it returns become `bytes`.
    /// Data read before a failure is returned first; the failure is raised by the next
    /// read (it is kept).
    fn blocking(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Reader) -> Result<Vec<u8>, Stop> + Send,
    ) -> PyResult<Py<PyBytes>> {
        let got = py.detach(|| {
            let mut r = self.lock();
            if r.body.is_none() {
                return Err(Stop::Closed);
            }
            f(&mut r)
        });
        match got {
            Ok(data) => Ok(PyBytes::new(py, &data).unbind()),
            Err(s) => Err(stop_error(py, s)),
        }
    }
}

/// One waiting fill: `Ok(true)` when more came, `Ok(false)` when no more will for now
/// (the end, or a failure or a refused wait with bytes buffered to return first); a
/// failure or a wait refused is an error only when nothing was buffered to return.
fn fill_step(r: &mut Reader) -> Result<bool, Stop> {
    match r.fill(true) {
        Fill::Got => Ok(true),
        Fill::End => Ok(false),
        Fill::Failed(e) if r.buffered() == 0 => Err(Stop::Failed(e)),
        Fill::Pending if r.buffered() == 0 => Err(Stop::Worker),
        Fill::Failed(_) | Fill::Pending => Ok(false),
    }
}

/// Fills until `enough` says so or no more will come (see [`fill_step`]).
fn fill_until(r: &mut Reader, enough: impl Fn(&Reader) -> bool) -> Result<(), Stop> {
    while !enough(r) && fill_step(r)? {}
    Ok(())
}

/// A size argument: negative (or None) means "all".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl BodyReader {
    /// Reads up to `size` bytes, waiting (GIL released) until that many came or the
    /// body ended: fewer only at the end. `size` < 0 or None: the rest of the body.
    /// Raises `BodyError` if the body will not complete.
    #[pyo3(signature = (size=-1))]
    fn read(&self, py: Python<'_>, size: Option<isize>) -> PyResult<Py<PyBytes>> {
        let want = limit(size);
        self.blocking(py, move |r| {
            if want == Some(0) {
                return Ok(Vec::new());
            }
            fill_until(r, |r| want.is_some_and(|n| r.buffered() >= n))?;
            Ok(r.take(want.unwrap_or(usize::MAX)))
        })
    }

    /// Reads up to `size` bytes, waiting only until some came (or the end: b"").
    #[pyo3(signature = (size=-1))]
    fn read1(&self, py: Python<'_>, size: Option<isize>) -> PyResult<Py<PyBytes>> {
        let want = limit(size).unwrap_or(usize::MAX);
        self.blocking(py, move |r| {
            if want == 0 {
                return Ok(Vec::new());
            }
            fill_until(r, |r| r.buffered() > 0)?;
            Ok(r.take(want))
        })
    }

    /// Reads into a writable buffer (bytearray, memoryview) what came, waiting only
    /// until some did; returns the count (0 at the end).
    fn readinto(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let n = buffer.len()?;
        let data = self.read1(py, Some(isize::try_from(n).unwrap_or(isize::MAX)))?;
        let data = data.bind(py);
        let got = data.as_bytes().len();
        if got > 0 {
            buffer.set_item(PySlice::new(py, 0, got as isize, 1), data)?;
        }
        Ok(got)
    }

    /// Reads one line (up to and with b"\n"), at most `size` bytes when `size` >= 0;
    /// b"" at the end.
    #[pyo3(signature = (size=-1))]
    fn readline(&self, py: Python<'_>, size: Option<isize>) -> PyResult<Py<PyBytes>> {
        let max = limit(size).unwrap_or(usize::MAX);
        self.blocking(py, move |r| {
            if max == 0 {
                return Ok(Vec::new());
            }
            // Where the search for b"\n" resumes, so a long line is scanned once.
            let mut scanned = 0;
            let mut cut = None;
            loop {
                let avail = &r.buf[r.pos..];
                if let Some(i) = avail[scanned..].iter().position(|&c| c == b'\n') {
                    cut = Some((scanned + i + 1).min(max));
                    break;
                }
                scanned = avail.len();
                if avail.len() >= max {
                    cut = Some(max);
                    break;
                }
                if !fill_step(r)? {
                    break;
                }
            }
            let n = cut.unwrap_or(r.buffered());
            Ok(r.take(n))
        })
    }

    /// The remaining lines as a list (stopping once `hint` bytes were read, if > 0).
    #[pyo3(signature = (hint=-1))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let out = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.readline(py, None)?;
            let n = line.bind(py).as_bytes().len();
            if n == 0 {
                break;
            }
            out.append(line)?;
            total += n;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(out)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        let line = self.readline(py, None)?;
        Ok((!line.bind(py).as_bytes().is_empty()).then_some(line))
    }

    /// For an event loop: what has arrived (pieces joined up to about `max` bytes)
    /// without waiting; b"" at the end of the body; None when nothing has arrived yet
    /// (ask for `notify`). Raises `BodyError` once the body will not complete (after
    /// returning what came before).
    #[pyo3(signature = (max=65536))]
    fn try_read(&self, py: Python<'_>, max: usize) -> PyResult<Option<Py<PyBytes>>> {
        let max = max.max(1);
        let got = py.detach(|| {
            let mut r = self.lock();
            if r.body.is_none() {
                return Err(Stop::Closed);
            }
            while r.buffered() < max {
                match r.fill(false) {
                    Fill::Got => {}
                    Fill::Pending | Fill::End => break,
                    Fill::Failed(e) if r.buffered() == 0 => return Err(Stop::Failed(e)),
                    Fill::Failed(_) => break,
                }
            }
            if r.buffered() > 0 {
                Ok(Some(r.take(max)))
            } else if r.end {
                Ok(Some(Vec::new()))
            } else {
                Ok(None)
            }
        });
        match got {
            Ok(d) => Ok(d.map(|d| PyBytes::new(py, &d).unbind())),
            Err(s) => Err(stop_error(py, s)),
        }
    }

    /// True once the whole body was read (the next read gives b"").
    #[getter]
    fn at_end(&self, py: Python<'_>) -> bool {
        py.detach(|| {
            let r = self.lock();
            r.end && r.buffered() == 0
        })
    }

    /// Asks for the event `(key, "body")` through the host's queue (the event loop's
    /// `take_requests`) once `try_read` would not say None: data, the end, or a
    /// failure. At once if so now. One request at a time: a second replaces the first.
    fn notify(&self, py: Python<'_>, key: u64) {
        let batches = Arc::clone(&self.batches);
        py.detach(|| {
            let r = self.lock();
            let tell = move || batches.push_event(key, Event::Body);
            match &r.body {
                Some(b) if r.buffered() == 0 && !r.end && r.failed.is_none() => b.when_ready(tell),
                _ => tell(),
            }
        });
    }

    /// The body's declared length (Content-Length), None for a chunked one.
    #[getter]
    fn length(&self) -> Option<u64> {
        self.length
    }

    /// The trailer fields of a chunked body, once it has been read to its end.
    fn trailers<'py>(&self, py: Python<'py>) -> Vec<(String, Bound<'py, PyBytes>)> {
        let t = py.detach(|| self.lock().body.as_ref().map(|b| b.trailers()).unwrap_or_default());
        t.into_iter().map(|(n, v)| (n, PyBytes::new(py, &v))).collect()
    }

    /// Stops reading: the engine discards the rest of the body (a short rest) or closes
    /// the connection after the reply (a long one). Reads then raise ValueError.
    fn close(&self, py: Python<'_>) {
        let body = py.detach(|| self.lock().body.take());
        py.detach(|| drop(body));
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.lock().body.is_none())
    }

    fn readable(&self) -> bool {
        true
    }

    fn writable(&self) -> bool {
        false
    }

    fn seekable(&self) -> bool {
        false
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) {
        self.close(py)
    }

    fn __repr__(&self) -> String {
        match self.length {
            Some(n) => format!("<BodyReader length={n}>"),
            None => "<BodyReader chunked>".to_string(),
        }
    }
}
