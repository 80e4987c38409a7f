//! `Engine`: a native engine in handoff or serve mode, with every wait done with the
//! GIL released.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::IntoRawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use engine::{Config, ConfigBuilder, CostRule, Mode};

use crate::errors;
use crate::serve::PyHandler;

/// One engine. Thread-safe; close it (or use the Python wrappers as context managers).
#[pyclass(frozen, module = "corral._corral")]
pub struct Engine {
    inner: Mutex<Option<Arc<engine::Engine>>>,
}

fn resolve(py: Python<'_>, host: &str, port: u16) -> PyResult<SocketAddr> {
    let found = py.detach(|| (host, port).to_socket_addrs().map(|mut a| a.next()));
    match found {
        Ok(Some(a)) => Ok(a),
        _ => Err(errors::config(py, format!("cannot resolve {host:?} to an IP address"))),
    }
}

fn secs(py: Python<'_>, name: &str, v: &Bound<'_, PyAny>) -> PyResult<Duration> {
    let s: f64 = v.extract()?;
    if !s.is_finite() || s < 0.0 {
        return Err(errors::config(py, format!("{name} must be a non-negative number of seconds")));
    }
    Ok(Duration::from_secs_f64(s))
}

/// An option given by name (`protocol="lines"`), parsed by core so every front takes
/// the same names.
fn named<T: std::str::FromStr<Err = engine::Error>>(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<T> {
    let name: String = v.extract()?;
    name.parse().map_err(|e| errors::to_py(py, e))
}

fn apply(py: Python<'_>, mut b: ConfigBuilder, options: &Bound<'_, PyDict>) -> PyResult<ConfigBuilder> {
    for (k, v) in options.iter() {
        let key: String = k.extract()?;
        if v.is_none() {
            continue;
        }
        b = match key.as_str() {
            "allow_public" => b.allow_public(v.extract()?),
            "acceptors" => b.acceptors(v.extract()?),
            "workers" | "io_workers" => b.io_workers(v.extract()?),
            "cpu_threads" => b.cpu_threads(v.extract()?),
            "io_slice" => b.io_slice(secs(py, &key, &v)?),
            "backlog" => b.backlog(v.extract()?),
            "accept_batch" => b.accept_batch(v.extract()?),
            "accept_in_workers" => b.accept_in_workers(v.extract()?),
            "defer_accept" => b.defer_accept(v.extract()?),
            "capacity" | "handoff_capacity" => b.handoff_capacity(v.extract()?),
            "max_connections" => b.max_connections(v.extract()?),
            "max_in_flight" => b.max_in_flight(v.extract()?),
            "max_connections_per_ip" => b.max_connections_per_ip(v.extract()?),
            "max_accept_rate" => b.max_accept_rate(v.extract()?),
            "max_requests_per_connection" => b.max_requests_per_connection(v.extract()?),
            "max_frame" => b.max_frame(v.extract()?),
            "max_header" => b.max_header(v.extract()?),
            "budget_frames" => b.budget_frames(v.extract()?),
            "budget_bytes" => b.budget_bytes(v.extract()?),
            "write_high_water" => b.write_high_water(v.extract()?),
            "header_timeout" => b.header_timeout(secs(py, &key, &v)?),
            "idle_timeout" => b.idle_timeout(secs(py, &key, &v)?),
            "reply_timeout" => b.reply_timeout(secs(py, &key, &v)?),
            "codel_target" => b.codel_target(Some(secs(py, &key, &v)?)),
            "codel_interval" => b.codel_interval(secs(py, &key, &v)?),
            "lifo_threshold" => b.lifo_threshold(v.extract()?),
            "model" => b.model(named(py, &v)?),
            "protocol" => b.protocol(named(py, &v)?),
            "listener" => b.listener(named(py, &v)?),
            "readiness" => b.readiness(named(py, &v)?),
            other => return Err(errors::config(py, format!("unknown option {other:?}"))),
        };
    }
    Ok(b)
}

fn stats_dict<'py>(py: Python<'py>, s: &engine::Stats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("uptime", s.uptime.as_secs_f64())?;
    let listeners = PyList::empty(py);
    for l in &s.listeners {
        let ld = PyDict::new(py);
        ld.set_item("address", l.addr.map(|a| (a.ip().to_string(), a.port())))?;
        ld.set_item("accepts", l.accepts)?;
        ld.set_item("pauses", l.pauses)?;
        ld.set_item("fd_exhausted", l.fd_exhausted)?;
        ld.set_item("errors", l.errors)?;
        ld.set_item("queue_len", l.queue_len)?;
        ld.set_item("queue_max", l.queue_max)?;
        listeners.append(ld)?;
    }
    d.set_item("listeners", listeners)?;
    let workers = PyList::empty(py);
    for w in &s.workers {
        let wd = PyDict::new(py);
        wd.set_item("connections", w.connections)?;
        wd.set_item("requests", w.requests)?;
        wd.set_item("tasks", w.tasks)?;
        wd.set_item("stolen", w.stolen)?;
        wd.set_item("steal_ops", w.steal_ops)?;
        wd.set_item("parks", w.parks)?;
        wd.set_item("busy", w.busy.as_secs_f64())?;
        wd.set_item("depth", w.depth)?;
        workers.append(wd)?;
    }
    d.set_item("workers", workers)?;
    let cpu = PyDict::new(py);
    cpu.set_item("threads", s.cpu.threads)?;
    cpu.set_item("queued", s.cpu.queued)?;
    cpu.set_item("submitted", s.cpu.submitted)?;
    cpu.set_item("run", s.cpu.run)?;
    cpu.set_item("stolen", s.cpu.stolen)?;
    cpu.set_item("shed", s.cpu.shed)?;
    cpu.set_item("min_delay_us", s.cpu.min_delay_us)?;
    cpu.set_item("overloaded", s.cpu.overloaded)?;
    d.set_item("cpu", cpu)?;
    d.set_item("accepts", s.accepts())?;
    d.set_item("requests", s.requests())?;
    d.set_item("replies", s.replies)?;
    d.set_item("open_connections", s.open_connections)?;
    d.set_item("connections_closed", s.connections_closed)?;
    d.set_item("connections_timed_out", s.connections_timed_out)?;
    d.set_item("requests_aborted", s.requests_aborted)?;
    d.set_item("requests_rejected", s.requests_rejected)?;
    d.set_item("handler_panics", s.handler_panics)?;
    d.set_item("handler_failures", s.handler_failures)?;
    d.set_item("connections_refused_per_ip", s.connections_refused_per_ip)?;
    d.set_item("handoff_queued", s.handoff_queued)?;
    for (name, l) in [("latency_light", &s.latency_light), ("latency_heavy", &s.latency_heavy)] {
        let ld = PyDict::new(py);
        ld.set_item("count", l.count)?;
        ld.set_item("p50_us", l.p50)?;
        ld.set_item("p99_us", l.p99)?;
        ld.set_item("p999_us", l.p999)?;
        ld.set_item("max_us", l.max)?;
        d.set_item(name, ld)?;
    }
    Ok(d)
}

impl Engine {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<engine::Engine>> {
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
    #[pyo3(signature = (mode, addrs, options, dispatch=None, heavy_prefixes=Vec::new(), heavy_min_bytes=None))]
    fn new(
        py: Python<'_>,
        mode: &str,
        addrs: Vec<(String, u16)>,
        options: &Bound<'_, PyDict>,
        dispatch: Option<Py<PyAny>>,
        heavy_prefixes: Vec<String>,
        heavy_min_bytes: Option<usize>,
    ) -> PyResult<Engine> {
        let mut b = Config::builder();
        for (host, port) in &addrs {
            b = b.addr(resolve(py, host, *port)?);
        }
        let b = apply(py, b, options)?;
        let config = b.build().map_err(|e| errors::to_py(py, e))?;
        let mode = match (mode, dispatch) {
            ("handoff", _) => Mode::Handoff,
            ("serve", Some(d)) => {
                let rule = CostRule { heavy_path_prefixes: heavy_prefixes, heavy_min_bytes };
                Mode::Serve(Arc::new(PyHandler { dispatch: d, rule }))
            }
            ("serve", None) => return Err(errors::config(py, "a serving engine needs a handler".into())),
            (other, _) => return Err(errors::config(py, format!("unknown mode {other:?}: use handoff or serve"))),
        };
        let e = py.detach(|| engine::Engine::new(config, mode)).map_err(|e| errors::to_py(py, e))?;
        Ok(Engine { inner: Mutex::new(Some(Arc::new(e))) })
    }

    fn start(&self, py: Python<'_>) -> PyResult<()> {
        let e = self.get(py)?;
        py.detach(|| e.start()).map_err(|err| errors::to_py(py, err))
    }

    /// Takes up to `max` accepted connections: (fd, family, host, port). Each fd is the
    /// caller's from here on.
    fn take(&self, py: Python<'_>, max: usize) -> PyResult<Vec<(i32, u8, String, u16)>> {
        let e = self.get(py)?;
        let got = e.take(max).map_err(|err| errors::to_py(py, err))?;
        Ok(got
            .into_iter()
            .map(|a| {
                let family = if a.peer.is_ipv4() { 4 } else { 6 };
                (a.fd.into_raw_fd(), family, a.peer.ip().to_string(), a.peer.port())
            })
            .collect())
    }

    /// Waits, with the GIL released, until a connection is queued (True) or `timeout`
    /// seconds pass (False; None waits without limit). Signal handlers run meanwhile, so
    /// Ctrl-C raises KeyboardInterrupt.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let e = self.get(py)?;
        let deadline = match timeout {
            Some(t) if t.is_finite() && t >= 0.0 => Some(Instant::now() + Duration::from_secs_f64(t)),
            Some(_) => return Err(errors::config(py, "timeout must be a non-negative number of seconds".into())),
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

    fn prometheus(&self, py: Python<'_>) -> PyResult<String> {
        let e = self.get(py)?;
        Ok(py.detach(|| e.stats().to_prometheus()))
    }

    /// Shuts down within `timeout` seconds (GIL released) and returns the report.
    /// Closing twice raises StateError.
    #[pyo3(signature = (timeout=5.0))]
    fn close<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyDict>> {
        if !timeout.is_finite() || timeout < 0.0 {
            return Err(errors::config(py, "timeout must be a non-negative number of seconds".into()));
        }
        let e = self.inner.lock().unwrap_or_else(|err| err.into_inner()).take();
        let e = e.ok_or_else(|| errors::state(py, "the engine is already closed"))?;
        let r = py.detach(|| e.shutdown(Duration::from_secs_f64(timeout))).map_err(|err| errors::to_py(py, err))?;
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
        let e = self.inner.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(e) = e {
            // Shutting down joins threads that may be waiting for the GIL: release it.
            Python::attach(|py| py.detach(|| drop(e)));
        }
    }
}
