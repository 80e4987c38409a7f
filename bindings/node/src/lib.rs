//! The native half of `require('corral')`: converts types and errors only; the
//! idiomatic API (EventEmitter, sockets, Promises, worker threads) is the JS layer in
//! `index.js`.
//!
//! Wake-ups into JS go through *weak* threadsafe functions (they never keep the process
//! alive), called non-blocking on a queue's empty→non-empty transition only; JS then
//! drains the whole batch with one call. Errors carry their kind as a `[CORRAL_…]`
//! prefix, which the JS layer turns into `err.code`.

mod serve;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use engine::{Config, ConfigBuilder, ErrorKind, Mode, Model, Protocol};

pub(crate) use serve::{JsRequest, ServeQueues};

/// A weak, non-blocking "there is work" call into JS.
pub(crate) type Wake = ThreadsafeFunction<(), (), (), Status, false, true>;

pub(crate) fn err(e: engine::Error) -> Error {
    let code = match e.kind() {
        ErrorKind::InvalidConfig => "CORRAL_INVALID_CONFIG",
        ErrorKind::PublicAddress => "CORRAL_PUBLIC_ADDRESS",
        ErrorKind::Bind => "CORRAL_BIND",
        ErrorKind::WrongMode => "CORRAL_WRONG_MODE",
        ErrorKind::State => "CORRAL_STATE",
        _ => "CORRAL_IO",
    };
    Error::new(Status::GenericFailure, format!("[{code}] {e}"))
}

pub(crate) fn fail(code: &str, msg: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, format!("[{code}] {msg}"))
}

/// Engine options; every one has a default.
#[napi(object)]
#[derive(Default)]
pub struct Options {
    pub host: Option<String>,
    pub port: Option<u32>,
    pub acceptors: Option<u32>,
    pub backlog: Option<u32>,
    pub capacity: Option<u32>,
    pub io_workers: Option<u32>,
    pub protocol: Option<String>,
    pub model: Option<String>,
    pub allow_public: Option<bool>,
    pub defer_accept: Option<bool>,
    pub max_connections: Option<u32>,
    pub max_in_flight: Option<u32>,
    pub max_connections_per_ip: Option<u32>,
    pub max_accept_rate: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub max_frame: Option<u32>,
    pub max_header: Option<u32>,
    pub header_timeout_ms: Option<u32>,
    pub idle_timeout_ms: Option<u32>,
    pub reply_timeout_ms: Option<u32>,
    pub io_slice_us: Option<u32>,
    pub lifo_threshold: Option<u32>,
    pub heavy_prefixes: Option<Vec<String>>,
    pub heavy_min_bytes: Option<u32>,
    /// Heavy requests go to JS worker threads that pull them (serve only).
    pub heavy_to_workers: Option<bool>,
}

fn build(o: &Options) -> Result<Config> {
    let host = o.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let port = o.port.unwrap_or(0);
    let port =
        u16::try_from(port).map_err(|_| fail("CORRAL_INVALID_CONFIG", format!("port {port} is out of range")))?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| fail("CORRAL_INVALID_CONFIG", format!("cannot resolve {host:?} to an IP address")))?;
    let mut b: ConfigBuilder = Config::builder().addr(addr);
    let n = |v: u32| v as usize;
    if let Some(v) = o.acceptors {
        b = b.acceptors(n(v));
    }
    if let Some(v) = o.backlog {
        b = b.backlog(v);
    }
    if let Some(v) = o.capacity {
        b = b.handoff_capacity(n(v));
    }
    if let Some(v) = o.io_workers {
        b = b.io_workers(n(v));
    }
    if let Some(v) = o.allow_public {
        b = b.allow_public(v);
    }
    if let Some(v) = o.defer_accept {
        b = b.defer_accept(v);
    }
    if let Some(v) = o.max_connections {
        b = b.max_connections(n(v));
    }
    if let Some(v) = o.max_in_flight {
        b = b.max_in_flight(n(v));
    }
    if let Some(v) = o.max_connections_per_ip {
        b = b.max_connections_per_ip(n(v));
    }
    if let Some(v) = o.max_accept_rate {
        b = b.max_accept_rate(v);
    }
    if let Some(v) = o.max_requests_per_connection {
        b = b.max_requests_per_connection(v.into());
    }
    if let Some(v) = o.max_frame {
        b = b.max_frame(n(v));
    }
    if let Some(v) = o.max_header {
        b = b.max_header(n(v));
    }
    if let Some(v) = o.header_timeout_ms {
        b = b.header_timeout(Duration::from_millis(v.into()));
    }
    if let Some(v) = o.idle_timeout_ms {
        b = b.idle_timeout(Duration::from_millis(v.into()));
    }
    if let Some(v) = o.reply_timeout_ms {
        b = b.reply_timeout(Duration::from_millis(v.into()));
    }
    if let Some(v) = o.lifo_threshold {
        b = b.lifo_threshold(n(v));
    }
    if let Some(v) = o.io_slice_us {
        b = b.io_slice(Duration::from_micros(v.into()));
    }
    if let Some(m) = &o.model {
        b = b.model(m.parse::<Model>().map_err(err)?);
    }
    if let Some(p) = &o.protocol {
        b = b.protocol(p.parse::<Protocol>().map_err(err)?);
    }
    // JS handlers never run on corral's CPU pool: heavy requests go to JS worker threads.
    b = b.cpu_threads(0);
    b.build().map_err(err)
}

/// Where an engine listens, or a connection comes from.
#[napi(object)]
pub struct Address {
    pub address: String,
    pub port: u32,
    pub family: String,
}

impl From<std::net::SocketAddr> for Address {
    fn from(a: std::net::SocketAddr) -> Address {
        Address {
            address: a.ip().to_string(),
            port: a.port().into(),
            family: if a.is_ipv4() { "IPv4" } else { "IPv6" }.into(),
        }
    }
}

/// One accepted connection: the fd is the caller's.
#[napi(object)]
pub struct Accepted {
    pub fd: i32,
    pub remote: Address,
}

/// Totals from the engine's counters.
#[napi(object)]
pub struct Stats {
    pub accepts: i64,
    pub requests: i64,
    pub replies: i64,
    pub open_connections: i64,
    pub connections_closed: i64,
    pub requests_aborted: i64,
    pub requests_rejected: i64,
    pub handler_failures: i64,
    pub tasks_stolen: i64,
    pub handoff_queued: i64,
    pub workers: u32,
    pub backlog: u32,
}

/// What a shutdown did.
#[napi(object)]
pub struct Report {
    pub connections_closed: i64,
    pub connections_aborted: i64,
    pub requests_completed: i64,
    pub requests_aborted: i64,
    pub handoff_unclaimed: i64,
    pub clean: bool,
}

/// A native engine (handoff or serve).
#[napi]
pub struct Engine {
    inner: Mutex<Option<Arc<engine::Engine>>>,
    serve: Option<Arc<ServeQueues>>,
}

impl Engine {
    fn get(&self) -> Result<Arc<engine::Engine>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.clone().ok_or_else(|| fail("CORRAL_STATE", "the engine is closed"))
    }
}

pub struct Shutdown {
    engine: Option<Arc<engine::Engine>>,
    serve: Option<Arc<ServeQueues>>,
    timeout: Duration,
}

impl Task for Shutdown {
    type Output = engine::ShutdownReport;
    type JsValue = Report;

    fn compute(&mut self) -> Result<Self::Output> {
        let e = self.engine.take().ok_or_else(|| fail("CORRAL_STATE", "the engine is already closed"))?;
        let r = e.shutdown(self.timeout).map_err(err)?;
        if let Some(s) = &self.serve {
            s.close();
        }
        Ok(r)
    }

    fn resolve(&mut self, _env: Env, r: Self::Output) -> Result<Report> {
        Ok(Report {
            connections_closed: r.connections_closed as i64,
            connections_aborted: r.connections_aborted as i64,
            requests_completed: r.requests_completed as i64,
            requests_aborted: r.requests_aborted as i64,
            handoff_unclaimed: r.handoff_unclaimed as i64,
            clean: r.clean,
        })
    }
}

#[napi]
impl Engine {
    /// A started handoff engine; `onReady` is called (weakly, non-blocking) when
    /// accepted connections start waiting. Drain them with `take()`.
    #[napi(factory)]
    pub fn handoff(options: Options, on_ready: Function<(), ()>) -> Result<Engine> {
        let config = build(&options)?;
        let wake: Wake = on_ready.build_threadsafe_function().weak::<true>().build()?;
        let e = engine::Engine::new(config, Mode::Handoff).map_err(err)?;
        e.set_handoff_waker(move || {
            let _ = wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        })
        .map_err(err)?;
        e.start().map_err(err)?;
        Ok(Engine { inner: Mutex::new(Some(Arc::new(e))), serve: None })
    }

    /// A started serving engine; `onRequests` is called (weakly, non-blocking) when
    /// requests start waiting for the main thread. Drain them with `takeRequests()`.
    #[napi(factory)]
    pub fn serve(options: Options, on_requests: Function<(), ()>) -> Result<Engine> {
        let config = build(&options)?;
        let wake: Wake = on_requests.build_threadsafe_function().weak::<true>().build()?;
        let rule = engine::CostRule {
            heavy_path_prefixes: options.heavy_prefixes.clone().unwrap_or_default(),
            heavy_min_bytes: options.heavy_min_bytes.map(|n| n as usize),
        };
        let queues = ServeQueues::new(wake, rule, options.heavy_to_workers.unwrap_or(false));
        let handler = serve::JsHandler(Arc::clone(&queues));
        let e = engine::Engine::new(config, Mode::Serve(Arc::new(handler))).map_err(err)?;
        e.start().map_err(err)?;
        Ok(Engine { inner: Mutex::new(Some(Arc::new(e))), serve: Some(queues) })
    }

    /// Handoff: up to `max` accepted connections.
    #[napi]
    pub fn take(&self, max: u32) -> Result<Vec<Accepted>> {
        let e = self.get()?;
        let got = e.take(max as usize).map_err(err)?;
        Ok(got
            .into_iter()
            .map(|a| Accepted { fd: std::os::fd::IntoRawFd::into_raw_fd(a.fd), remote: a.peer.into() })
            .collect())
    }

    /// Serve: up to `max` requests waiting for the main thread.
    #[napi]
    pub fn take_requests(&self, max: u32) -> Result<Vec<JsRequest>> {
        let s = self.serve.as_ref().ok_or_else(|| fail("CORRAL_WRONG_MODE", "this engine does not serve"))?;
        Ok(s.take_main(max as usize))
    }

    /// The id other threads use to attach to this engine (`HeavyPort.attach`).
    #[napi]
    pub fn id(&self) -> Result<u32> {
        let s = self.serve.as_ref().ok_or_else(|| fail("CORRAL_WRONG_MODE", "this engine does not serve"))?;
        Ok(s.id)
    }

    #[napi]
    pub fn respond(&self, id: i64, status: u32, headers: Vec<String>, body: Buffer) -> Result<()> {
        self.queues()?.respond(id, status, headers, &body)
    }

    #[napi]
    pub fn respond_bytes(&self, id: i64, body: Buffer) -> Result<()> {
        self.queues()?.respond_bytes(id, &body)
    }

    /// Like respondBytes, for a string (UTF-8), without a Buffer in between.
    #[napi]
    pub fn respond_text(&self, id: i64, body: String) -> Result<()> {
        self.queues()?.respond_bytes(id, body.as_bytes())
    }

    /// Answers with the error reply (HTTP 500; other protocols: close).
    #[napi]
    pub fn fail(&self, id: i64) -> Result<()> {
        self.queues()?.fail(id)
    }

    /// Closes the request's connection once earlier replies are written.
    #[napi]
    pub fn close_connection(&self, id: i64) -> Result<()> {
        self.queues()?.close_conn(id)
    }

    #[napi]
    pub fn address(&self) -> Result<Address> {
        Ok(self.get()?.local_addr().into())
    }

    #[napi]
    pub fn stats(&self) -> Result<Stats> {
        let s = self.get()?.stats();
        Ok(Stats {
            accepts: s.accepts() as i64,
            requests: s.requests() as i64,
            replies: s.replies as i64,
            open_connections: s.open_connections as i64,
            connections_closed: s.connections_closed as i64,
            requests_aborted: s.requests_aborted as i64,
            requests_rejected: s.requests_rejected as i64,
            handler_failures: s.handler_failures as i64,
            tasks_stolen: s.stolen() as i64,
            handoff_queued: s.handoff_queued as i64,
            workers: s.workers.len() as u32,
            backlog: s.listeners.first().map_or(0, |l| l.queue_max),
        })
    }

    #[napi]
    pub fn prometheus(&self) -> Result<String> {
        Ok(self.get()?.stats().to_prometheus())
    }

    /// Shuts down off the main thread (so in-flight JS handlers can still answer) and
    /// resolves with the report.
    #[napi]
    pub fn close(&self, timeout_ms: u32) -> AsyncTask<Shutdown> {
        let engine = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        AsyncTask::new(Shutdown {
            engine,
            serve: self.serve.clone(),
            timeout: Duration::from_millis(timeout_ms.into()),
        })
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}

impl Engine {
    fn queues(&self) -> Result<&Arc<ServeQueues>> {
        self.serve.as_ref().ok_or_else(|| fail("CORRAL_WRONG_MODE", "this engine does not serve"))
    }
}

pub use serve::HeavyPort;
