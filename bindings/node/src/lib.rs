//! The native half of `require('corral')`: converts types and errors only; the
//! idiomatic API (EventEmitter, sockets, Promises, worker threads) is the JS layer in
//! `index.js`.
//!
//! Wake-ups into JS go through *weak* threadsafe functions (they never keep the process
//! alive), called non-blocking on a queue's empty→non-empty transition only; JS then
//! drains the whole batch with one call. Errors carry their kind as a `[CORRAL_…]`
//! prefix, which the JS layer turns into `err.code`.

mod serve;
mod threads;
mod ws;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use corral_core::metrics;
use corral_core::options::{self, Front, Value};
use corral_core::{Config, ConfigBuilder, Mode};

pub(crate) use serve::{JsEvent, JsRequest, ServeQueues};
pub use threads::{ThreadNext, ThreadPort, ThreadSlotStats};

/// A weak, non-blocking "there is work" call into JS.
pub(crate) type Wake = ThreadsafeFunction<(), (), (), Status, false, true>;

pub(crate) fn err(e: corral_core::Error) -> Error {
    Error::new(Status::GenericFailure, format!("[{}] {e}", e.kind().code()))
}

pub(crate) fn fail(code: &str, msg: impl std::fmt::Display) -> Error {
    Error::new(Status::GenericFailure, format!("[{code}] {msg}"))
}

fn config_error(msg: impl std::fmt::Display) -> Error {
    err(corral_core::Error::config(msg.to_string()))
}

/// One engine option as JS gave it: its key and its value, by JS type.
#[napi(object)]
pub struct OptionValue {
    pub name: String,
    pub boolean: Option<bool>,
    pub number: Option<f64>,
    pub text: Option<String>,
    /// `typeof` the value, for the message when it is none of the above.
    pub type_name: String,
}

/// Where to listen, the engine options (looked up in core's option table), and the
/// serve-only rules.
#[napi(object)]
pub struct EngineArgs {
    pub host: Option<String>,
    pub port: Option<f64>,
    pub options: Vec<OptionValue>,
    pub heavy_prefixes: Option<Vec<String>>,
    pub heavy_min_bytes: Option<f64>,
    /// Heavy requests go to JS threads that pull them (serve only).
    pub heavy_to_workers: Option<bool>,
    /// A listening socket to serve instead of binding host/port (a duplicate is
    /// taken; the caller's fd stays open): socket activation's, or an inherited one.
    pub fd: Option<i32>,
    /// A Unix socket path where a running engine offers its listening sockets
    /// (`handOver`): they are served instead of binding host/port.
    pub listeners_from: Option<String>,
    /// TLS with the certificate chain and key as PEM contents (`tls: { cert, key }`).
    pub tls: Option<TlsPem>,
}

/// A PEM certificate chain and its private key, as bytes (index.js made them from
/// strings or Buffers); given to the engine in memory, never written to a file.
#[napi(object)]
pub struct TlsPem {
    pub cert: Buffer,
    pub key: Buffer,
    /// The CA certificates client certificates are checked against (`ca` with
    /// `requestCert`), as PEM.
    pub ca: Option<Buffer>,
    /// `required` or `optional` (`rejectUnauthorized`), with `ca`.
    pub client_auth: Option<String>,
}

impl OptionValue {
    /// The value by its JS type; a type no option takes is refused with the option's range.
    fn value(&self) -> Result<Value<'_>> {
        if let Some(v) = self.boolean {
            Ok(Value::Bool(v))
        } else if let Some(v) = self.number {
            Ok(Value::Float(v))
        } else if let Some(t) = &self.text {
            Ok(Value::Text(t))
        } else {
            let opt = options::lookup(&Front::NODE, &self.name).map_err(err)?;
            Err(config_error(format!(
                "{} takes {}, not a value of type {}",
                self.name,
                opt.range(&Front::NODE),
                self.type_name
            )))
        }
    }
}

fn build(a: &EngineArgs) -> Result<Config> {
    let mut b: ConfigBuilder = Config::builder();
    if let Some(path) = &a.listeners_from {
        b = b.listeners_from(path, Duration::from_secs(30)).map_err(err)?;
    }
    if let Some(fd) = a.fd {
        if fd < 0 {
            return Err(config_error(format!("fd = {fd} is not a descriptor: give an open listening socket's fd")));
        }
        // SAFETY: `fd` is borrowed only for F_DUPFD_CLOEXEC; if it is not open the
        // duplication fails and says so. The duplicate is the engine's alone.
        let owned = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .map_err(|e| config_error(format!("fd = {fd}: cannot take it ({e}); give an open listening socket")))?;
        b = b.listener_fd(owned);
    }
    if !b.has_listeners() {
        b = b.addr(address(a)?);
    }
    if let Some(t) = &a.tls {
        b = b.tls_pem(t.cert.to_vec(), t.key.to_vec());
        if let Some(ca) = &t.ca {
            b = b.tls_client_ca_pem(ca.to_vec());
        }
        if let Some(auth) = &t.client_auth {
            b.set(&Front::NODE, "tlsClientAuth", Value::Text(auth)).map_err(err)?;
        }
    }
    for o in &a.options {
        b.set(&Front::NODE, &o.name, o.value()?).map_err(err)?;
    }
    // JS handlers never run on corral's CPU pool: heavy requests go to JS threads.
    b = b.without_cpu_pool();
    b.build().map_err(err)
}

fn address(a: &EngineArgs) -> Result<std::net::SocketAddr> {
    let host = a.host.clone().unwrap_or_else(|| "127.0.0.1".into());
    let port = a.port.unwrap_or(0.0);
    if !(port.fract() == 0.0 && (0.0..=65535.0).contains(&port)) {
        return Err(config_error(format!("port = {port} is out of range: use 0 to 65535 (0: the kernel picks)")));
    }
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port as u16))
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| config_error(format!("cannot resolve {host:?} to an IP address")))?;
    Ok(addr)
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
    /// The client: with proxyProtocol, the source its PROXY header named.
    pub remote: Address,
    /// With proxyProtocol: the header, already read off the socket.
    pub proxy: Option<ProxyInfo>,
}

/// A PROXY header (HAProxy's protocol, v1 or v2).
#[napi(object)]
pub struct ProxyInfo {
    pub version: u32,
    /// The client at the balancer; none for LOCAL (a health check).
    pub source: Option<Address>,
    pub destination: Option<Address>,
    /// v2 type-length-values in order, as raw bytes (0x01 ALPN, 0x02 authority, 0x05
    /// unique id, 0x20 SSL, 0xE0-0xEF the cloud vendors' own).
    pub tlvs: Vec<ProxyTlv>,
    /// PP2_TYPE_AUTHORITY: the host name the client asked for.
    pub authority: Option<String>,
}

#[napi(object)]
pub struct ProxyTlv {
    #[napi(js_name = "type")]
    pub kind: u32,
    pub value: Buffer,
}

impl From<corral_core::Accepted> for Accepted {
    fn from(a: corral_core::Accepted) -> Accepted {
        let proxy = a.proxy.as_deref().map(|p| ProxyInfo {
            version: p.version.into(),
            source: p.source.map(Address::from),
            destination: p.destination.map(Address::from),
            tlvs: p.tlvs().iter().map(|(k, v)| ProxyTlv { kind: (*k).into(), value: v.clone().into() }).collect(),
            authority: p.authority().map(str::to_string),
        });
        Accepted { fd: std::os::fd::IntoRawFd::into_raw_fd(a.fd), remote: a.peer.into(), proxy }
    }
}

/// One metric of the metrics list: its value for the engine and per listener or worker.
#[napi(object)]
pub struct MetricValue {
    /// The camelCase of the metric's name.
    pub name: String,
    /// engine, listener or worker.
    pub scope: String,
    pub total: f64,
    pub items: Vec<f64>,
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
    inner: Mutex<Option<Arc<corral_core::Engine>>>,
    serve: Option<Arc<ServeQueues>>,
    threads: Option<Arc<threads::Dispatch>>,
}

impl Engine {
    fn get(&self) -> Result<Arc<corral_core::Engine>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.clone().ok_or_else(|| fail("CORRAL_STATE", "the engine is closed"))
    }
}

pub struct Shutdown {
    engine: Option<Arc<corral_core::Engine>>,
    serve: Option<Arc<ServeQueues>>,
    threads: Option<Arc<threads::Dispatch>>,
    timeout: Duration,
}

impl Task for Shutdown {
    type Output = corral_core::ShutdownReport;
    type JsValue = Report;

    fn compute(&mut self) -> Result<Self::Output> {
        let e = self.engine.take().ok_or_else(|| fail("CORRAL_STATE", "the engine is already closed"))?;
        let started = std::time::Instant::now();
        if let Some(t) = &self.threads {
            t.hand_out_the_rest(self.timeout);
        }
        let r = e.shutdown(self.timeout.saturating_sub(started.elapsed())).map_err(err)?;
        if let Some(s) = &self.serve {
            s.close();
        }
        if let Some(t) = &self.threads {
            t.close();
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

pub struct HandOver {
    engine: Arc<corral_core::Engine>,
    path: String,
    timeout: Duration,
}

impl Task for HandOver {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        self.engine.hand_over(&self.path, self.timeout).map_err(err)
    }

    fn resolve(&mut self, _env: Env, _: ()) -> Result<()> {
        Ok(())
    }
}

#[napi]
impl Engine {
    /// A started handoff engine; `onReady` is called (weakly, non-blocking) when
    /// accepted connections start waiting. Drain them with `take()`.
    #[napi(factory)]
    pub fn handoff(options: EngineArgs, on_ready: Function<(), ()>) -> Result<Engine> {
        let config = build(&options)?;
        let wake: Wake = on_ready.build_threadsafe_function().weak::<true>().build()?;
        let e = corral_core::Engine::new(config, Mode::Handoff).map_err(err)?;
        e.set_handoff_waker(move || {
            let _ = wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        })
        .map_err(err)?;
        e.start().map_err(err)?;
        Ok(Engine { inner: Mutex::new(Some(Arc::new(e))), serve: None, threads: None })
    }

    /// A started handoff engine whose connections `threads` JS worker threads pull
    /// (each attaches with `ThreadPort.attach(engine.id(), slot)`).
    #[napi(factory)]
    pub fn threads(options: EngineArgs, threads: u32) -> Result<Engine> {
        if !(1..=1024).contains(&threads) {
            return Err(config_error(format!("threads = {threads} is out of range: use 1 to 1024")));
        }
        let config = build(&options)?;
        let e = Arc::new(corral_core::Engine::new(config, Mode::Handoff).map_err(err)?);
        let dispatch = threads::Dispatch::new(Arc::clone(&e), threads as usize)?;
        e.start().map_err(err)?;
        Ok(Engine { inner: Mutex::new(Some(e)), serve: None, threads: Some(dispatch) })
    }

    /// A started serving engine; `onRequests` is called (weakly, non-blocking) when
    /// requests start waiting for the main thread. Drain them with `takeRequests()`.
    #[napi(factory)]
    pub fn serve(options: EngineArgs, on_requests: Function<(), ()>) -> Result<Engine> {
        let config = build(&options)?;
        let wake: Wake = on_requests.build_threadsafe_function().weak::<true>().build()?;
        let rule = corral_core::CostRule {
            heavy_path_prefixes: options.heavy_prefixes.clone().unwrap_or_default(),
            heavy_min_bytes: match options.heavy_min_bytes {
                Some(n) if n.fract() == 0.0 && (0.0..=1e15).contains(&n) => Some(n as usize),
                Some(n) => {
                    return Err(config_error(format!(
                        "heavy.minBytes = {n} is out of range: use a whole number of bytes"
                    )))
                }
                None => None,
            },
        };
        let queues = ServeQueues::new(wake, rule, options.heavy_to_workers.unwrap_or(false));
        let handler = serve::JsHandler(Arc::clone(&queues));
        let e = corral_core::Engine::new(config, Mode::Serve(Arc::new(handler))).map_err(err)?;
        e.start().map_err(err)?;
        Ok(Engine { inner: Mutex::new(Some(Arc::new(e))), serve: Some(queues), threads: None })
    }

    /// Handoff: up to `max` accepted connections.
    #[napi]
    pub fn take(&self, max: u32) -> Result<Vec<Accepted>> {
        let e = self.get()?;
        let got = e.take(max as usize).map_err(err)?;
        Ok(got.into_iter().map(Accepted::from).collect())
    }

    /// Serve: up to `max` requests waiting for the main thread.
    #[napi]
    pub fn take_requests(&self, max: u32) -> Result<Vec<JsRequest>> {
        let s = self.serve.as_ref().ok_or_else(|| fail("CORRAL_WRONG_MODE", "this engine does not serve"))?;
        Ok(s.take_main(max as usize))
    }

    /// Serve, for a fetch-style app: up to `max` requests, headers as one string.
    #[napi]
    pub fn take_fetch(&self, max: u32) -> Result<Vec<serve::JsFetchRequest>> {
        Ok(self.queues()?.take_fetch(max as usize))
    }

    /// The id other threads use to attach to this engine (`HeavyPort.attach`,
    /// `ThreadPort.attach`).
    #[napi]
    pub fn id(&self) -> Result<u32> {
        match (&self.serve, &self.threads) {
            (Some(s), _) => Ok(s.id),
            (_, Some(t)) => Ok(t.id),
            _ => Err(fail("CORRAL_WRONG_MODE", "no other thread attaches to a listen() engine")),
        }
    }

    /// The thread in `slot` died or is being replaced: its connections no longer count.
    #[napi]
    pub fn detach_thread(&self, slot: u32) -> Result<()> {
        self.dispatch()?.detach(slot as usize);
        Ok(())
    }

    /// Each thread slot's connections.
    #[napi]
    pub fn thread_stats(&self) -> Result<Vec<ThreadSlotStats>> {
        Ok(self.dispatch()?.stats())
    }

    #[napi]
    pub fn respond(&self, id: i64, status: u32, headers: Vec<String>, body: Buffer) -> Result<()> {
        self.queues()?.respond(id, status, headers, &body)
    }

    /// Like respond, with a string body (UTF-8), without a Buffer in between.
    #[napi]
    pub fn respond_http_text(&self, id: i64, status: u32, headers: Vec<String>, body: String) -> Result<()> {
        self.queues()?.respond(id, status, headers, body.as_bytes())
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

    /// Starts a streamed reply (`length` < 0: unknown, chunked).
    #[napi]
    pub fn start_stream(&self, id: i64, status: u32, headers: Vec<String>, length: f64) -> Result<()> {
        let length = (length >= 0.0 && length.fract() == 0.0).then_some(length as u64);
        self.queues()?.start_stream(id, status, headers, length)
    }

    /// Sends a part of a streamed body: 0 room for more, 1 wait for its "writable"
    /// event, 2 the client left.
    #[napi]
    pub fn stream_send(&self, id: i64, data: Buffer) -> Result<u32> {
        self.queues()?.stream_send(id, &data)
    }

    /// Like streamSend, for a string (UTF-8).
    #[napi]
    pub fn stream_send_text(&self, id: i64, data: String) -> Result<u32> {
        self.queues()?.stream_send(id, data.as_bytes())
    }

    /// Ends a streamed body; false if the client had left.
    #[napi]
    pub fn stream_end(&self, id: i64) -> Result<bool> {
        self.queues()?.stream_end(id)
    }

    /// Cuts a streamed reply off, or answers one not started with the error reply.
    #[napi]
    pub fn abort(&self, id: i64) -> Result<()> {
        self.queues()?.abort(id);
        Ok(())
    }

    /// Asks for an event about request `id`: "writable" (a streamed body has room
    /// again) or "gone" (the client finished sending or left); read with takeEvents().
    #[napi]
    pub fn notify(&self, id: i64, kind: String) -> Result<()> {
        self.queues()?.notify(id, &kind)
    }

    /// Takes what has come of request `id`'s streamed body (about `max` bytes at most),
    /// never waiting: `{ data, done, errorCode, error }`. No data and neither done nor
    /// an error: a "body" event (takeEvents) says when to ask again. The first call
    /// sends `100 Continue` when the client waits for it.
    #[napi]
    pub fn read_body(&self, id: i64, max: u32) -> Result<serve::JsBodyRead> {
        Ok(self.queues()?.read_body_main(id, max))
    }

    /// Stops reading request `id`'s streamed body: the engine discards the rest (or
    /// closes the connection after the reply when the rest is long).
    #[napi]
    pub fn discard_body(&self, id: i64) -> Result<()> {
        self.queues()?.discard_body(id);
        Ok(())
    }

    #[napi]
    pub fn take_events(&self) -> Result<Vec<JsEvent>> {
        Ok(self.queues()?.take_events())
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

    /// Every metric of the metrics list (`index.js` shapes them into an object).
    #[napi]
    pub fn stats(&self) -> Result<Vec<MetricValue>> {
        let s = self.get()?.stats();
        Ok(metrics::all()
            .map(|m| MetricValue {
                name: options::camel(m.name),
                scope: m.scope().name().into(),
                total: m.total(&s),
                items: (0..m.scope().len(&s)).filter_map(|i| m.at(&s, i)).collect(),
            })
            .collect())
    }

    #[napi]
    pub fn prometheus(&self) -> Result<String> {
        Ok(self.get()?.stats().to_prometheus())
    }

    /// Shuts down off the main thread (so in-flight JS handlers can still answer) and
    /// resolves with the report.
    #[napi]
    pub fn close(&self, timeout_ms: f64) -> Result<AsyncTask<Shutdown>> {
        // Past what a deadline holds (or Infinity): no deadline.
        let timeout = options::seconds(timeout_ms / 1e3)
            .or_else(|| (timeout_ms > 0.0).then_some(Duration::MAX))
            .ok_or_else(|| config_error(format!("timeout = {timeout_ms} is out of range: use milliseconds from 0")))?;
        let engine = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        Ok(AsyncTask::new(Shutdown { engine, serve: self.serve.clone(), threads: self.threads.clone(), timeout }))
    }

    /// Reads the TLS certificates again: with `cert` and `key` (PEM), those replace the
    /// ones given at start; the files the options name are read again either way. New
    /// connections get them, open ones keep theirs; an unusable pair or file throws
    /// CORRAL_INVALID_CONFIG and the certificates before serve on.
    #[napi]
    pub fn reload_tls(&self, cert: Option<Buffer>, key: Option<Buffer>) -> Result<()> {
        let engine = self.get()?;
        match (cert, key) {
            (Some(cert), Some(key)) => engine.reload_tls_pem(cert.to_vec(), key.to_vec()),
            (None, None) => engine.reload_tls(),
            _ => return Err(config_error("reloadTls takes both cert and key, or neither")),
        }
        .map_err(err)
    }

    /// Offers this engine's listening sockets to a successor (an engine made with
    /// `listenersFrom: path`) and resolves once it serves them (within `timeoutMs`);
    /// then close() this one: it drains while the successor takes every new connection.
    #[napi]
    pub fn hand_over(&self, path: String, timeout_ms: f64) -> Result<AsyncTask<HandOver>> {
        let timeout = options::seconds(timeout_ms / 1e3)
            .ok_or_else(|| config_error(format!("timeout = {timeout_ms} is out of range: use milliseconds from 1")))?;
        Ok(AsyncTask::new(HandOver { engine: self.get()?, path, timeout }))
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}

impl Engine {
    fn dispatch(&self) -> Result<&Arc<threads::Dispatch>> {
        self.threads.as_ref().ok_or_else(|| fail("CORRAL_WRONG_MODE", "this engine has no threads"))
    }

    fn queues(&self) -> Result<&Arc<ServeQueues>> {
        self.serve.as_ref().ok_or_else(|| fail("CORRAL_WRONG_MODE", "this engine does not serve"))
    }
}

pub use serve::HeavyPort;

/// The option table for JS: camelCase name, values (durations in milliseconds), default,
/// doc, and which engines it applies to.
#[napi(object)]
pub struct OptionInfo {
    pub name: String,
    pub range: String,
    pub default: String,
    pub doc: String,
    pub applies: String,
}

#[napi]
pub fn option_table() -> Vec<OptionInfo> {
    options::OPTIONS
        .iter()
        .map(|o| OptionInfo {
            name: Front::NODE.spell(o.name),
            range: o.range(&Front::NODE),
            default: o.default.into(),
            doc: o.doc.into(),
            applies: match o.applies {
                options::Applies::Both => "both",
                options::Applies::Serve => "serve",
                options::Applies::Handoff => "handoff",
            }
            .into(),
        })
        .collect()
}

/// Each error kind's `err.code`.
#[napi]
pub fn error_codes() -> Vec<String> {
    corral_core::ErrorKind::ALL.iter().map(|k| k.code().to_string()).collect()
}

/// An engine option's value checked against the table, or its default: a number
/// (milliseconds for a duration, 0 for "none"), for the options the JS layer applies
/// itself (the timeouts and limits of each thread's `http.Server`).
#[napi]
pub fn option_value(name: String, value: Option<OptionValue>) -> Result<f64> {
    let opt = options::lookup(&Front::NODE, &name).map_err(err)?;
    let parsed = match value {
        Some(o) => opt.parse(&Front::NODE, o.value()?).map_err(err)?,
        None => opt
            .get(&Config::builder())
            .ok_or_else(|| fail("CORRAL_INVALID_CONFIG", format!("{name} has no default")))?,
    };
    Ok(match parsed {
        options::Parsed::Bool(b) => f64::from(u8::from(b)),
        options::Parsed::Count(n) => n as f64,
        options::Parsed::Duration(d) => d.as_secs_f64() * 1e3,
        options::Parsed::Choice(_) | options::Parsed::Text(_) => {
            return Err(fail("CORRAL_INVALID_CONFIG", format!("{name} is not a number")))
        }
    })
}

/// A socket passed by socket activation.
#[napi(object)]
pub struct ActivatedFd {
    pub fd: i32,
    /// Its name from LISTEN_FDNAMES, if any.
    pub name: Option<String>,
}

/// The sockets passed by socket activation (LISTEN_FDS from fd 3, when LISTEN_PID is
/// this process); the variables are removed so children do not take them again.
#[napi]
pub fn listen_fds() -> Result<Vec<ActivatedFd>> {
    let got = corral_core::os::listen_fds().map_err(|e| fail("CORRAL_IO", format!("socket activation: {e}")))?;
    Ok(got.into_iter().map(|a| ActivatedFd { fd: std::os::fd::IntoRawFd::into_raw_fd(a.fd), name: a.name }).collect())
}
