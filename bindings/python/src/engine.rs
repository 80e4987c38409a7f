//! `Engine`: a native engine in handoff or serve mode, with every wait done with the
//! GIL released.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::IntoRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString};

use corral_core::metrics::{self, Metric, Scope};
use corral_core::options::{self, Front, Opt, Value, OPTIONS};
use corral_core::{Config, ConfigBuilder, CostRule, Mode};

use crate::args::seconds;
use crate::errors;
use crate::serve::PyHandler;

/// One engine. Thread-safe; close it (or use the Python wrappers as context managers).
#[pyclass(frozen, module = "corral._corral")]
pub struct Engine {
    inner: Mutex<Option<Arc<corral_core::Engine>>>,
    /// A serving engine's bridge (its host thread runs `run_host`).
    handler: Option<Arc<PyHandler>>,
}

fn resolve(py: Python<'_>, host: &str, port: u16) -> PyResult<SocketAddr> {
    let found = py.detach(|| (host, port).to_socket_addrs().map(|mut a| a.next()));
    match found {
        Ok(Some(a)) => Ok(a),
        _ => Err(errors::config(py, format!("cannot resolve {host:?} to an IP address"))),
    }
}

/// A Python value as the option table takes it.
fn value<'a>(py: Python<'_>, opt: &Opt, v: &'a Bound<'_, PyAny>, text: &'a mut String) -> PyResult<Value<'a>> {
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        return match v.extract::<i128>() {
            Ok(n) => Ok(Value::Int(n)),
            Err(_) => Err(errors::config(
                py,
                format!("{} = {} is out of range: use {}", opt.name, v.repr()?, opt.range(&Front::PYTHON)),
            )),
        };
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if v.is_instance_of::<PyString>() {
        *text = v.extract::<String>().map_err(|_| {
            errors::config(
                py,
                format!("{} takes {}, not text that is not valid Unicode", opt.name, opt.range(&Front::PYTHON)),
            )
        })?;
        return Ok(Value::Text(text));
    }
    let ty = v.get_type().name()?;
    Err(errors::config(py, format!("{} takes {}, not {ty} ({})", opt.name, opt.range(&Front::PYTHON), v.repr()?)))
}

/// Applies keyword options by name, through core's option table.
fn apply(py: Python<'_>, mut b: ConfigBuilder, options: &Bound<'_, PyDict>) -> PyResult<ConfigBuilder> {
    for (k, v) in options.iter() {
        let key: String = k.extract()?;
        if v.is_none() {
            continue;
        }
        let opt = options::lookup(&Front::PYTHON, &key).map_err(|e| errors::to_py(py, e))?;
        let mut text = String::new();
        let val = value(py, opt, &v, &mut text)?;
        b.set(&Front::PYTHON, &key, val).map_err(|e| errors::to_py(py, e))?;
    }
    Ok(b)
}

/// The metrics list as a dict: every metric's engine-wide value by name, and per-item
/// values in `listeners` and `workers` (a list of dicts each).
fn stats_dict<'py>(py: Python<'py>, s: &corral_core::Stats) -> PyResult<Bound<'py, PyDict>> {
    let number = |m: &Metric, v: f64| -> PyResult<Bound<'py, PyAny>> {
        if m.is_integer() {
            Ok((v as u64).into_pyobject(py)?.into_any())
        } else {
            Ok(v.into_pyobject(py)?.into_any())
        }
    };
    let d = PyDict::new(py);
    let listeners: Vec<Bound<'py, PyDict>> = s.listeners.iter().map(|_| PyDict::new(py)).collect();
    let workers: Vec<Bound<'py, PyDict>> = s.workers.iter().map(|_| PyDict::new(py)).collect();
    for (i, l) in s.listeners.iter().enumerate() {
        listeners[i].set_item("address", l.addr.map(|a| (a.ip().to_string(), a.port())))?;
    }
    for m in metrics::all() {
        d.set_item(m.name, number(m, m.total(s))?)?;
        let items = match m.scope() {
            Scope::Engine => continue,
            Scope::Listener => &listeners,
            Scope::Worker => &workers,
        };
        for (i, item) in items.iter().enumerate() {
            item.set_item(m.name, number(m, m.at(s, i).unwrap_or_default())?)?;
        }
    }
    d.set_item("listeners", PyList::new(py, listeners)?)?;
    d.set_item("workers", PyList::new(py, workers)?)?;
    Ok(d)
}

/// The option table: one dict per option (name, kind, range, default, doc, applies).
#[pyfunction]
pub(crate) fn options_table(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for o in OPTIONS {
        let d = PyDict::new(py);
        d.set_item("name", o.name)?;
        d.set_item("range", o.range(&Front::PYTHON))?;
        d.set_item("default", o.default)?;
        d.set_item("doc", o.doc)?;
        let applies = match o.applies {
            options::Applies::Both => "both",
            options::Applies::Serve => "serve",
            options::Applies::Handoff => "handoff",
        };
        d.set_item("applies", applies)?;
        out.append(d)?;
    }
    Ok(out)
}

/// The metrics list: one dict per metric (name, kind, scope, unit, help).
#[pyfunction]
pub(crate) fn metrics_table(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let out = PyList::empty(py);
    for m in metrics::all() {
        let d = PyDict::new(py);
        d.set_item("name", m.name)?;
        d.set_item("kind", m.kind.name())?;
        d.set_item("scope", m.scope().name())?;
        d.set_item("unit", m.unit)?;
        d.set_item("help", m.help)?;
        out.append(d)?;
    }
    Ok(out)
}

impl Engine {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<corral_core::Engine>> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.clone().ok_or_else(|| errors::state(py, "the engine is closed"))
    }
}

#[pymethods]
impl Engine {
    /// `mode` is "handoff" or "serve"; `addrs` a list of (host, port); `options` the
    /// engine options by name; `dispatch(request, responder)` is called on corral's
    /// threads (serve only); `heavy_prefixes` / `heavy_min_bytes` classify heavy requests.
    #[new]
    /// `listener`, when given, is a listening `socket.socket` the engine serves instead
    /// of binding `addrs` (a duplicate is taken; the caller keeps its socket).
    /// `listeners_from`, a Unix socket path where a running engine offers its listening
    /// sockets (`hand_over`): they are served instead of binding `addrs`.
    /// `streams_bodies`: HTTP bodies not in whole at their head (or over `body_window`)
    /// reach `dispatch` at once, to be read from `Request.take_body()` as they arrive.
    #[pyo3(signature = (mode, addrs, options, dispatch=None, heavy_prefixes=Vec::new(), heavy_min_bytes=None, listener=None, listeners_from=None, streams_bodies=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        mode: &str,
        addrs: Vec<(String, u16)>,
        options: &Bound<'_, PyDict>,
        dispatch: Option<Py<PyAny>>,
        heavy_prefixes: Vec<String>,
        heavy_min_bytes: Option<usize>,
        listener: Option<Bound<'_, PyAny>>,
        listeners_from: Option<std::path::PathBuf>,
        streams_bodies: bool,
    ) -> PyResult<Engine> {
        let mut b = Config::builder();
        if let Some(path) = listeners_from {
            b = py.detach(|| b.listeners_from(&path, Duration::from_secs(30))).map_err(|e| errors::to_py(py, e))?;
        }
        match listener {
            Some(sock) => {
                // A duplicate made natively: Python's `socket.dup()` would also reset the
                // shared file's blocking mode (it re-applies the socket's timeout), under
                // other processes serving the same socket.
                let fd: i32 = sock.call_method0("fileno")?.extract()?;
                if fd < 0 {
                    return Err(errors::config(py, "listener is a closed socket".into()));
                }
                // SAFETY: `fd` is the open descriptor of the caller's socket, borrowed only
                // for the duplication (F_DUPFD_CLOEXEC); the duplicate is ours alone.
                let owned = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
                    .try_clone_to_owned()
                    .map_err(|e| pyo3::exceptions::PyOSError::new_err(format!("cannot duplicate the listener: {e}")))?;
                b = b.listener_fd(owned);
            }
            None if b.has_listeners() => {}
            None => {
                for (host, port) in &addrs {
                    b = b.addr(resolve(py, host, *port)?);
                }
            }
        }
        let b = apply(py, b, options)?;
        let config = b.build().map_err(|e| errors::to_py(py, e))?;
        let mut handler = None;
        let mode = match (mode, dispatch) {
            ("handoff", _) => Mode::Handoff,
            ("serve", Some(d)) => {
                let rule = CostRule { heavy_path_prefixes: heavy_prefixes, heavy_min_bytes };
                let h = Arc::new(PyHandler { dispatch: d, rule, batches: Arc::default(), streams: streams_bodies });
                handler = Some(Arc::clone(&h));
                Mode::Serve(h)
            }
            ("serve", None) => return Err(errors::config(py, "a serving engine needs a handler".into())),
            (other, _) => return Err(errors::config(py, format!("unknown mode {other:?}: use handoff or serve"))),
        };
        let e = py.detach(|| corral_core::Engine::new(config, mode)).map_err(|e| errors::to_py(py, e))?;
        Ok(Engine { inner: Mutex::new(Some(Arc::new(e))), handler })
    }

    /// Serve: runs light requests on the calling thread (a host thread) in batches of
    /// up to `batch` until the engine is closed; events a responder asked for
    /// (`Responder.notify`) go to `on_event(key, kind)`. Returns at once for a handoff
    /// engine.
    #[pyo3(signature = (batch=256, on_event=None))]
    fn run_host(&self, py: Python<'_>, batch: usize, on_event: Option<Bound<'_, PyAny>>) {
        if let Some(h) = &self.handler {
            h.run_host(py, batch, on_event.as_ref());
        }
    }

    /// Serve, for an event loop: the fd to watch (readable while requests wait).
    fn host_fd(&self, py: Python<'_>) -> PyResult<i32> {
        let h = self.handler.as_ref().ok_or_else(|| errors::state(py, "a handoff engine has no request queue"))?;
        h.batches.wake_fd().map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))
    }

    /// Serve, for an event loop: the events responders asked for, as (key, kind), and
    /// up to `max` queued requests as (Request, Responder), without waiting.
    #[allow(clippy::type_complexity)]
    fn take_requests(
        &self,
        py: Python<'_>,
        max: usize,
    ) -> PyResult<(Vec<(u64, &'static str)>, Vec<(crate::serve::Request, crate::serve::Responder)>)> {
        let h = self.handler.as_ref().ok_or_else(|| errors::state(py, "a handoff engine has no request queue"))?;
        h.take_now(py, max)
    }

    /// Reads the TLS certificate and key files again (new connections get them, open
    /// ones keep theirs); a file that cannot be used raises ConfigError naming it, and
    /// the certificates before serve on.
    fn reload_tls(&self, py: Python<'_>) -> PyResult<()> {
        let e = self.get(py)?;
        py.detach(|| e.reload_tls()).map_err(|err| errors::to_py(py, err))
    }

    /// Offers the listening sockets at the Unix socket `path` and returns once a
    /// successor (an engine made with `listeners_from=path`) serves them, within
    /// `timeout` seconds; then close this engine to drain it.
    fn hand_over(&self, py: Python<'_>, path: std::path::PathBuf, timeout: f64) -> PyResult<()> {
        let timeout = seconds(py, "timeout", timeout)?;
        let e = self.get(py)?;
        py.detach(|| e.hand_over(&path, timeout)).map_err(|err| errors::to_py(py, err))
    }

    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let e = self.get(py)?;
        py.detach(|| e.start()).map_err(|err| errors::to_py(py, err))
    }

    /// Takes up to `max` accepted connections: (fd, family, host, port). Each fd is the
    /// caller's from here on.
    #[allow(clippy::type_complexity)]
    fn take<'py>(
        &self,
        py: Python<'py>,
        max: usize,
    ) -> PyResult<Vec<(i32, u8, String, u16, Option<Bound<'py, PyDict>>)>> {
        let e = self.get(py)?;
        let got = e.take(max).map_err(|err| errors::to_py(py, err))?;
        got.into_iter()
            .map(|a| {
                let family = if a.peer.is_ipv4() { 4 } else { 6 };
                let proxy = a.proxy.as_deref().map(|p| crate::serve::proxy_dict(py, p)).transpose()?;
                Ok((a.fd.into_raw_fd(), family, a.peer.ip().to_string(), a.peer.port(), proxy))
            })
            .collect()
    }

    /// Waits, with the GIL released, until a connection is queued (True) or `timeout`
    /// seconds pass (False; None waits without limit). Signal handlers run meanwhile, so
    /// Ctrl-C raises KeyboardInterrupt.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let e = self.get(py)?;
        // A timeout past what an Instant holds waits without limit.
        let deadline = match timeout {
            Some(t) => Instant::now().checked_add(seconds(py, "timeout", t)?),
            None => None,
        };
        const SLICE: Duration = Duration::from_millis(100);
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let slice = left.map_or(SLICE, |l| l.min(SLICE));
            let ready = py.detach(|| e.wait_readable(Some(slice))).map_err(|err| errors::to_py(py, err))?;
            if ready {
                return Ok(true);
            }
            py.check_signals()?;
            if left.is_some_and(|l| l <= slice) {
                return Ok(false);
            }
        }
    }

    /// The notify fd (handoff): readable while connections wait. Do not close it.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        let e = self.get(py)?;
        e.notify_fd().map_err(|err| errors::to_py(py, err))
    }

    /// The listening addresses as (host, port).
    fn addresses(&self, py: Python<'_>) -> PyResult<Vec<(String, u16)>> {
        let e = self.get(py)?;
        Ok(e.local_addrs().iter().map(|a| (a.ip().to_string(), a.port())).collect())
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let e = self.get(py)?;
        let s = py.detach(|| e.stats());
        stats_dict(py, &s)
    }

    /// Sends `data` (str: text, bytes: binary) to every websocket subscribed to `topic`
    /// (fanned out natively, encoded once); returns how many it was queued for.
    fn publish(&self, py: Python<'_>, topic: &str, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let e = self.get(py)?;
        let msg = crate::ws::message(data)?;
        Ok(py.detach(|| e.publish(topic, &msg)))
    }

    /// Websockets subscribed to `topic` now.
    fn subscribers(&self, py: Python<'_>, topic: &str) -> PyResult<usize> {
        Ok(self.get(py)?.subscribers(topic))
    }

    fn prometheus(&self, py: Python<'_>) -> PyResult<String> {
        let e = self.get(py)?;
        Ok(py.detach(|| e.stats().to_prometheus()))
    }

    /// Shuts down within `timeout` seconds (GIL released) and returns the report.
    /// Closing twice raises StateError.
    #[pyo3(signature = (timeout=5.0))]
    fn close<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyDict>> {
        let timeout = seconds(py, "timeout", timeout)?;
        let e = self.inner.lock().unwrap_or_else(|err| err.into_inner()).take();
        let e = e.ok_or_else(|| errors::state(py, "the engine is already closed"))?;
        let r = py.detach(|| e.shutdown(timeout));
        // The host thread finishes what is queued, then returns.
        if let Some(h) = &self.handler {
            h.batches.close();
        }
        let r = r.map_err(|err| errors::to_py(py, err))?;
        let d = PyDict::new(py);
        d.set_item("connections_closed", r.connections_closed)?;
        d.set_item("connections_aborted", r.connections_aborted)?;
        d.set_item("requests_completed", r.requests_completed)?;
        d.set_item("requests_aborted", r.requests_aborted)?;
        d.set_item("handoff_unclaimed", r.handoff_unclaimed)?;
        d.set_item("clean", r.clean)?;
        d.set_item("elapsed", r.elapsed.as_secs_f64())?;
        // The engine's threads are gone; dropping the last reference (with the GIL
        // released, as it may drop Python objects' references) frees the rest.
        py.detach(|| drop(e));
        Ok(d)
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }

    /// In a forked child: the engine's threads do not exist here, so forget the engine
    /// without shutting it down (which would wait for them).
    fn _forget(&self) {
        if let Some(e) = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take() {
            std::mem::forget(e);
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(h) = &self.handler {
            h.batches.close();
        }
        let e = self.inner.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(e) = e {
            // Shutting down joins threads that may be waiting for the GIL: release it.
            Python::attach(|py| py.detach(|| drop(e)));
        }
    }
}

/// Holds this thread's wake-ups of corral's I/O workers until `release_wakes()`: an
/// event loop answering many connections in one pass wakes each worker once, after it
/// (see `corral::hold_wakes`).
#[pyfunction]
pub(crate) fn hold_wakes() {
    corral_core::hold_wakes();
}

/// Wakes the I/O workers owed a wake-up since `hold_wakes()`.
#[pyfunction]
pub(crate) fn release_wakes() {
    corral_core::release_wakes();
}
