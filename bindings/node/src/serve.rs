//! Serving into JS: requests wait in a main-thread queue (or, when heavy and JS worker
//! threads are attached, in a heavy queue those workers pull from); responders wait in
//! a table by request id until JS answers.
//!
//! Request bodies stream (`Handler::streams_bodies`): a body not in whole when its head
//! is read waits in a table by request id, and JS takes what has come with `readBody`
//! (never blocking); when nothing has, the body's `when_ready` wakes JS through the same
//! weak threadsafe function as requests (a "body" event). JS asks only when its stream
//! is pulled, so the engine's window is the flow control. Answering drops the body: the
//! engine discards its rest (or closes the connection).
//!
//! A fetch request that asks for a websocket may instead be upgraded (`upgrade`): its
//! responder leaves the table, and the socket's events reach JS through `ws.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, Weak};

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use corral_core::ws::Accept;
use corral_core::{
    Body, BodyError, BodyRead, Cost, CostRule, Drr, Handler, Reply, Request, Responder, Response, Sent, Stream,
    StreamError,
};

use crate::ws::{JsWs, JsWsInfo, WsHub};
use crate::{fail, Wake};

/// A request as JS sees it. `rawHeaders` is flat: name, value, name, value…; `body` is
/// null when empty (the JS layer substitutes a shared empty Buffer), and the fields
/// are flat, so making one costs few property writes.
#[napi(object)]
pub struct JsRequest {
    pub id: i64,
    pub method: Option<String>,
    pub url: Option<String>,
    pub raw_headers: Vec<String>,
    pub body: Option<Buffer>,
    /// Set (true) when the body is still arriving: read it with `readBody`.
    pub streamed: Option<bool>,
    /// A streamed body's Content-Length (none: chunked).
    pub body_length: Option<f64>,
    pub conn_id: i64,
    pub seq: i64,
    pub worker: u32,
    pub remote_address: String,
    pub remote_port: u32,
    /// The TLS session the request came over (none on a plain engine).
    pub tls: Option<JsTls>,
}

/// What the TLS handshake agreed on, in the names of Node's `TLSSocket`
/// (`getProtocol()`, `getCipher().standardName`, `servername`, `alpnProtocol`,
/// `isSessionReused()`).
#[napi(object)]
pub struct JsTls {
    /// "TLSv1.3" or "TLSv1.2".
    pub protocol: String,
    /// The cipher suite's IANA name ("TLS_AES_128_GCM_SHA256").
    pub cipher: String,
    /// The server name the client asked for (SNI), if any.
    pub servername: Option<String>,
    /// The application protocol agreed by ALPN ("http/1.1"), if the client offered one.
    pub alpn_protocol: Option<String>,
    /// The session was resumed (a ticket or a cached session id).
    pub session_reused: bool,
    /// The verified client certificate's subject, RFC 4514 (`CN=alice,O=Example`); none
    /// without one (`tlsClientCa`).
    pub client_cert_name: Option<String>,
    /// The client's certificate chain as PEM, its own first; empty without one.
    pub client_cert_chain: Vec<String>,
}

fn tls_of(t: &corral_core::TlsInfo) -> JsTls {
    let protocol = match t.version() {
        corral_core::TlsVersion::Tls13 => "TLSv1.3",
        corral_core::TlsVersion::Tls12 => "TLSv1.2",
    };
    // rustls names TLS 1.3 suites "TLS13_..."; IANA (and Node's standardName) "TLS_...".
    let cipher =
        t.cipher_suite().strip_prefix("TLS13_").map_or_else(|| t.cipher_suite().to_string(), |s| format!("TLS_{s}"));
    JsTls {
        protocol: protocol.into(),
        cipher,
        servername: t.sni().map(str::to_string),
        alpn_protocol: t.alpn().map(|a| String::from_utf8_lossy(a).into_owned()),
        session_reused: t.resumed(),
        client_cert_name: t.client_subject().map(str::to_string),
        client_cert_chain: t.client_cert_pem(),
    }
}

pub struct Pending {
    id: u64,
    req: Request,
    /// The body streams (it waits in the body table under `id`); its Content-Length.
    streamed: Option<Option<u64>>,
}

/// The body as a Buffer; none when empty (the JS layer uses a shared empty one).
fn body_of(r: &Request) -> Option<Buffer> {
    let bytes = r.bytes();
    (!bytes.is_empty()).then(|| bytes.to_vec().into())
}

fn to_js(p: Pending) -> JsRequest {
    let r = &p.req;
    let (method, url, raw_headers) = match r.http() {
        Some(h) => (
            Some(h.method().to_string()),
            Some(h.path().to_string()),
            h.headers().flat_map(|(n, v)| [n.to_string(), String::from_utf8_lossy(v).into_owned()]).collect(),
        ),
        None => (None, None, Vec::new()),
    };
    JsRequest {
        id: p.id as i64,
        method,
        url,
        raw_headers,
        body: body_of(r),
        streamed: p.streamed.map(|_| true),
        body_length: p.streamed.flatten().map(|n| n as f64),
        conn_id: r.conn_id() as i64,
        seq: r.seq() as i64,
        worker: r.worker() as u32,
        remote_address: r.peer().ip().to_string(),
        remote_port: r.peer().port().into(),
        tls: r.tls().map(tls_of),
    }
}

/// A request for a fetch-style app, in as few JS values as will do: its headers are
/// one string (name NUL value NUL ...), split only if the app asks for them.
#[napi(object)]
pub struct JsFetchRequest {
    pub id: i64,
    pub method: String,
    pub url: String,
    /// The Host header's value (empty without one), for the URL.
    pub authority: String,
    pub headers: String,
    pub body: Option<Buffer>,
    /// Set (true) when the body is still arriving: read it with `readBody`.
    pub streamed: Option<bool>,
    /// Set (true) when the request asks for a websocket (accept it with `wsUpgrade`).
    pub websocket: Option<bool>,
}

fn to_fetch(p: Pending) -> JsFetchRequest {
    let r = &p.req;
    let (method, url, authority, headers) = match r.http() {
        Some(h) => {
            let authority = h.header("host").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
            let mut joined = String::new();
            for (n, v) in h.headers() {
                if !joined.is_empty() {
                    joined.push('\0');
                }
                joined.push_str(n);
                joined.push('\0');
                joined.push_str(&String::from_utf8_lossy(v));
            }
            (h.method().to_string(), h.path().to_string(), authority, joined)
        }
        None => (String::new(), String::new(), String::new(), String::new()),
    };
    JsFetchRequest {
        id: p.id as i64,
        method,
        url,
        authority,
        headers,
        body: body_of(r),
        streamed: p.streamed.map(|_| true),
        websocket: r.websocket().map(|_| true),
    }
}

static NEXT_ENGINE: AtomicU32 = AtomicU32::new(1);
static REGISTRY: Mutex<Vec<(u32, Weak<ServeQueues>)>> = Mutex::new(Vec::new());

/// Heavy requests, and the worker threads waiting for one (each woken through its own
/// weak threadsafe function). Both under one lock, so a request pushed while a worker
/// goes idle is never missed.
/// Heavy requests waiting for a JS worker thread, shared per client by deficit round
/// robin (one request per visit), as corral's own CPU pool shares: a client that queues
/// many heavy requests gets the threads as often as one that queues a single request.
struct Heavy {
    queue: Drr<Pending>,
    idle: Vec<Arc<Wake>>,
}

/// A request JS has not finished answering: not started, or its body streaming.
enum Answer {
    Pending(Responder),
    Streaming(Stream),
}

/// What JS asked to be told about a request (`notify`), through the main queue's wake.
#[napi(object)]
pub struct JsEvent {
    pub id: i64,
    /// "writable": a streamed body has room again; "gone": the client finished sending
    /// or the connection closed; "body": the request's body has data, its end or its
    /// failure to take (`readBody`).
    pub kind: String,
}

#[derive(Clone, Copy)]
enum EventKind {
    Writable,
    Gone,
    Body,
}

/// What `readBody` took: the data queued now (if any), then whether the body ended or
/// failed. Neither, with no data: a "body" event (or the port's wake) says when to ask
/// again.
#[napi(object, object_from_js = false)]
pub struct JsBodyRead {
    #[napi(ts_type = "Buffer")]
    pub data: Option<Copied>,
    pub done: bool,
    /// The failure's `err.code` (`CORRAL_BODY_…`) and sentence.
    pub error_code: Option<String>,
    pub error: Option<String>,
}

/// Pieces of a body that cross into JS as one Buffer that V8 owns: copied into memory
/// V8 allocates, so its collector counts them like its own. (A Buffer over a Rust `Vec`
/// is external memory that V8 does not weigh: 64 uploads of 20 MB at once held about
/// 1 GB of read, dropped Buffers until a collection came; copied, the server stays
/// bounded, and the pieces go back to the I/O workers' allocator at once.)
pub struct Copied(Vec<Vec<u8>>);

impl Copied {
    /// One piece (a websocket message).
    pub(crate) fn one(bytes: Vec<u8>) -> Copied {
        Copied(vec![bytes])
    }

    pub(crate) fn len(&self) -> usize {
        self.0.iter().map(Vec::len).sum()
    }
}

impl TypeName for Copied {
    fn type_name() -> &'static str {
        "Buffer"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for Copied {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        let len = val.len();
        let mut data: *mut std::ffi::c_void = std::ptr::null_mut();
        let mut buf = std::ptr::null_mut();
        // SAFETY: napi_create_buffer gives a buffer of `len` bytes at `data` (or fails);
        // the pieces are copied into it back to back, within `len`.
        unsafe {
            check_status!(sys::napi_create_buffer(env, len, &mut data, &mut buf), "could not make a body Buffer")?;
            let mut at = data.cast::<u8>();
            for part in &val.0 {
                std::ptr::copy_nonoverlapping(part.as_ptr(), at, part.len());
                at = at.add(part.len());
            }
        }
        Ok(buf)
    }
}

/// A streamed body waiting for JS, and whether JS waits for its readiness.
struct BodyEntry {
    body: Body,
    armed: bool,
}

pub struct ServeQueues {
    pub id: u32,
    wake: Wake,
    rule: CostRule,
    heavy_to_workers: bool,
    main: Mutex<VecDeque<Pending>>,
    events: Mutex<Vec<(u64, EventKind)>>,
    heavy: Mutex<Heavy>,
    responders: Mutex<HashMap<u64, Answer>>,
    bodies: Mutex<HashMap<u64, BodyEntry>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    /// Websockets accepted by the main thread's fetch app.
    pub(crate) ws: WsHub,
}

impl ServeQueues {
    pub fn new(wake: Wake, rule: CostRule, heavy_to_workers: bool) -> Arc<ServeQueues> {
        let id = NEXT_ENGINE.fetch_add(1, Relaxed);
        let q = Arc::new(ServeQueues {
            id,
            wake,
            rule,
            heavy_to_workers,
            main: Mutex::new(VecDeque::new()),
            events: Mutex::new(Vec::new()),
            heavy: Mutex::new(Heavy { queue: Drr::new(1), idle: Vec::new() }),
            responders: Mutex::new(HashMap::new()),
            bodies: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            ws: WsHub::default(),
        });
        let mut reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        reg.retain(|(_, w)| w.strong_count() > 0);
        reg.push((id, Arc::downgrade(&q)));
        q
    }

    fn attach(id: u32) -> Option<Arc<ServeQueues>> {
        let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        reg.iter().find(|(i, _)| *i == id).and_then(|(_, w)| w.upgrade())
    }

    fn push(&self, mut req: Request, res: Responder) {
        if self.closed.load(Acquire) {
            return; // the responder drops: error reply
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        self.responders.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Answer::Pending(res));
        // Classified before the body is taken (the rule reads its length).
        let heavy = self.heavy_to_workers && self.rule.classify(&req) == Cost::Heavy;
        let streamed = req.take_body().map(|body| {
            let length = body.length();
            self.bodies_lock().insert(id, BodyEntry { body, armed: false });
            length
        });
        if heavy {
            let idle = {
                let mut h = self.heavy.lock().unwrap_or_else(|e| e.into_inner());
                h.queue.push(req.client_key(), Pending { id, req, streamed });
                h.idle.pop()
            };
            if let Some(w) = idle {
                let _ = w.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
            return;
        }
        let was_empty = {
            let mut q = self.main.lock().unwrap_or_else(|e| e.into_inner());
            let was_empty = q.is_empty();
            q.push_back(Pending { id, req, streamed });
            was_empty
        };
        if was_empty {
            let _ = self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    fn take_batch(&self, max: usize) -> Vec<Pending> {
        let mut q = self.main.lock().unwrap_or_else(|e| e.into_inner());
        let n = max.min(q.len());
        q.drain(..n).collect()
    }

    pub fn take_main(&self, max: usize) -> Vec<JsRequest> {
        self.take_batch(max).into_iter().map(to_js).collect()
    }

    pub fn take_fetch(&self, max: usize) -> Vec<JsFetchRequest> {
        self.take_batch(max).into_iter().map(to_fetch).collect()
    }

    /// A free worker asks for work: a request if one waits; otherwise it is recorded as
    /// idle (woken through `wake` when one comes). `closed` once the engine closed.
    fn take_or_wait(&self, wake: &Arc<Wake>) -> (Option<Pending>, bool) {
        let mut h = self.heavy.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, p)) = h.queue.pop(1) {
            return (Some(p), false);
        }
        if self.closed.load(Acquire) {
            return (None, true);
        }
        if !h.idle.iter().any(|w| Arc::ptr_eq(w, wake)) {
            h.idle.push(Arc::clone(wake));
        }
        (None, false)
    }

    fn bodies_lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, BodyEntry>> {
        self.bodies.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes what has come of request `id`'s streamed body, up to about `max` bytes
    /// (at least one piece), without waiting. When nothing has, `wake` runs once
    /// something can be taken. The body leaves the table at its end or failure.
    fn read_body(&self, id: i64, max: u32, wake: impl FnOnce() + Send + 'static) -> JsBodyRead {
        let key = id as u64;
        let mut bodies = self.bodies_lock();
        let Some(entry) = bodies.get_mut(&key) else {
            return JsBodyRead {
                data: None,
                done: false,
                error_code: Some(BodyError::Closed.code().into()),
                error: Some(format!(
                    "the body of request {id} can no longer be read: the request was answered (its rest was \
                     discarded), or its body was already read to the end"
                )),
            };
        };
        entry.armed = false;
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut taken = 0usize;
        let mut out = JsBodyRead { data: None, done: false, error_code: None, error: None };
        let mut finished = false;
        loop {
            match entry.body.try_read() {
                BodyRead::Data(d) => {
                    taken += d.len();
                    parts.push(d);
                    if taken >= max as usize {
                        break;
                    }
                }
                BodyRead::Pending => {
                    if parts.is_empty() {
                        entry.armed = true;
                        entry.body.when_ready(wake);
                    }
                    break;
                }
                BodyRead::End => {
                    out.done = true;
                    finished = true;
                    break;
                }
                BodyRead::Failed(e) => {
                    out.error_code = Some(e.code().into());
                    out.error = Some(e.to_string());
                    finished = true;
                    break;
                }
            }
        }
        if finished {
            bodies.remove(&key);
        }
        drop(bodies);
        out.data = (!parts.is_empty()).then_some(Copied(parts));
        out
    }

    /// JS will not read request `id`'s body (it cancelled its stream, or answered):
    /// the engine discards the rest. A reader waiting for it is woken (to find it gone).
    fn drop_body(&self, id: u64) {
        let gone = self.bodies_lock().remove(&id);
        if let Some(entry) = gone {
            let armed = entry.armed;
            drop(entry);
            if armed {
                self.push_event(id, EventKind::Body);
            }
        }
    }

    /// Main thread: as `read_body`, woken by a "body" event.
    pub fn read_body_main(self: &Arc<Self>, id: i64, max: u32) -> JsBodyRead {
        let q = Arc::clone(self);
        self.read_body(id, max, move || q.push_event(id as u64, EventKind::Body))
    }

    pub fn discard_body(&self, id: i64) {
        self.drop_body(id as u64);
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Answer>> {
        self.responders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The responder of a request about to be answered whole: its body, if JS left
    /// any unread, is dropped (the engine discards the rest).
    fn responder(&self, id: i64) -> Result<Responder> {
        let r = self.responder_keep_body(id)?;
        self.drop_body(id as u64);
        Ok(r)
    }

    /// The responder, leaving the body readable (a streamed reply may echo it).
    fn responder_keep_body(&self, id: i64) -> Result<Responder> {
        let mut answers = self.answers();
        match answers.remove(&(id as u64)) {
            Some(Answer::Pending(r)) => Ok(r),
            Some(streaming) => {
                answers.insert(id as u64, streaming);
                Err(fail("CORRAL_STATE", format!("request {id} is streaming its reply: send parts, then end it")))
            }
            None => Err(fail("CORRAL_STATE", format!("request {id} was already answered (or never existed)"))),
        }
    }

    /// Starts a streamed reply: the head goes out now; `length` (if any) frames the
    /// body with content-length, else it is chunked.
    pub fn start_stream(&self, id: i64, status: u32, headers: Vec<String>, length: Option<u64>) -> Result<()> {
        let head = head(status, headers)?;
        let r = self.responder_keep_body(id)?;
        match r.stream(&head, length) {
            Ok(stream) => {
                self.answers().insert(id as u64, Answer::Streaming(stream));
                Ok(())
            }
            // Not HTTP: a stream has no meaning; answer with the error reply.
            Err(r) => {
                drop(r);
                self.drop_body(id as u64);
                Err(fail("CORRAL_WRONG_MODE", "only HTTP replies can be streamed"))
            }
        }
    }

    /// Sends a part: 0 there is room, 1 wait for "writable", 2 the client left.
    pub fn stream_send(&self, id: i64, data: &[u8]) -> Result<u32> {
        let mut answers = self.answers();
        match answers.get_mut(&(id as u64)) {
            Some(Answer::Streaming(s)) => Ok(match s.send(data) {
                Ok(Sent::Ready) => 0,
                Ok(Sent::Full) => 1,
                Err(_) => 2,
            }),
            _ => Err(fail("CORRAL_STATE", format!("request {id} is not streaming"))),
        }
    }

    /// Ends a streamed body; false if the client left first.
    pub fn stream_end(&self, id: i64) -> Result<bool> {
        let s = match self.answers().remove(&(id as u64)) {
            Some(Answer::Streaming(s)) => s,
            _ => return Err(fail("CORRAL_STATE", format!("request {id} is not streaming"))),
        };
        self.drop_body(id as u64);
        match s.finish() {
            Ok(()) => Ok(true),
            Err(StreamError::Gone) => Ok(false),
            Err(e @ StreamError::Short { .. }) => Err(fail("CORRAL_STATE", e)),
        }
    }

    /// Gives up on a request: a stream is cut off, one not started gets the error reply.
    pub fn abort(&self, id: i64) {
        let answer = self.answers().remove(&(id as u64));
        self.drop_body(id as u64);
        match answer {
            Some(Answer::Streaming(s)) => s.abort(),
            Some(Answer::Pending(r)) => drop(r),
            None => {}
        }
    }

    /// Asks for `kind` ("writable" or "gone") about request `id` as an event; at once
    /// if that is already so (or the request is answered).
    pub fn notify(self: &Arc<Self>, id: i64, kind: &str) -> Result<()> {
        let kind = match kind {
            "writable" => EventKind::Writable,
            "gone" => EventKind::Gone,
            other => {
                return Err(fail("CORRAL_INVALID_ARGUMENT", format!("unknown event {other:?}: use writable or gone")))
            }
        };
        let q = Arc::clone(self);
        let key = id as u64;
        let tell = move || q.push_event(key, kind);
        match (self.answers().get(&key), kind) {
            (Some(Answer::Streaming(s)), EventKind::Writable) => s.when_writable(tell),
            (Some(Answer::Streaming(s)), EventKind::Gone) => s.when_gone(tell),
            (Some(Answer::Pending(r)), EventKind::Gone) => r.when_gone(tell),
            _ => tell(),
        }
        Ok(())
    }

    fn push_event(&self, id: u64, kind: EventKind) {
        let was_empty = {
            let mut e = self.events.lock().unwrap_or_else(|e| e.into_inner());
            e.push((id, kind));
            e.len() == 1
        };
        if was_empty {
            self.wake_js();
        }
    }

    /// Wakes the main thread (weakly, non-blocking): it drains requests and events.
    pub(crate) fn wake_js(&self) {
        let _ = self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }

    /// Accepts request `id`'s websocket (events go to the main thread's queue); none
    /// when the request does not ask for one or its connection is gone (the request
    /// stays unanswered: answer it as any request).
    pub fn upgrade(self: &Arc<Self>, id: i64, accept: Accept) -> Result<Option<JsWsInfo>> {
        let res = self.responder_keep_body(id)?;
        let handler = Arc::new(JsWs(Arc::downgrade(self)));
        match res.upgrade(accept, handler) {
            Ok(ws) => Ok(Some(JsWsInfo::of(&ws))),
            Err(res) => {
                self.answers().insert(id as u64, Answer::Pending(res));
                Ok(None)
            }
        }
    }

    pub fn take_events(&self) -> Vec<JsEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .map(|(id, k)| JsEvent {
                id: id as i64,
                kind: match k {
                    EventKind::Writable => "writable",
                    EventKind::Gone => "gone",
                    EventKind::Body => "body",
                }
                .into(),
            })
            .collect()
    }

    pub fn respond(&self, id: i64, status: u32, headers: Vec<String>, body: &[u8]) -> Result<()> {
        let resp = head(status, headers)?.body(body.to_vec());
        self.responder(id)?.respond(resp);
        Ok(())
    }

    pub fn respond_bytes(&self, id: i64, body: &[u8]) -> Result<()> {
        self.responder(id)?.respond(Reply::Bytes(body.to_vec()));
        Ok(())
    }

    pub fn fail(&self, id: i64) -> Result<()> {
        drop(self.responder(id)?);
        Ok(())
    }

    pub fn close_conn(&self, id: i64) -> Result<()> {
        self.responder(id)?.close();
        Ok(())
    }

    /// The engine shut down: wake pulling workers and answer what is left.
    pub fn close(&self) {
        self.closed.store(true, Release);
        let idle = std::mem::take(&mut self.heavy.lock().unwrap_or_else(|e| e.into_inner()).idle);
        for w in idle {
            let _ = w.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
        self.main.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.responders.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.bodies_lock().clear();
        self.ws.clear();
    }
}

/// A response head from JS: a status and flat headers (name, value, ...).
fn head(status: u32, headers: Vec<String>) -> Result<Response> {
    if !(100..=999).contains(&status) {
        return Err(fail("CORRAL_INVALID_ARGUMENT", format!("status {status} is not an HTTP status code")));
    }
    let mut resp = Response::new(status as u16);
    let mut it = headers.into_iter();
    while let (Some(n), Some(v)) = (it.next(), it.next()) {
        resp = resp.header(n, v);
    }
    Ok(resp)
}

/// Routes every request to a queue; JS does the work. Runs on corral's I/O workers and
/// only queues, so it never blocks them.
pub struct JsHandler(pub Arc<ServeQueues>);

impl Handler for JsHandler {
    fn handle(&self, req: Request, res: Responder) {
        self.0.push(req, res);
    }

    /// Bodies reach JS as they arrive (a ReadableStream), within `max_body`.
    fn streams_bodies(&self) -> bool {
        true
    }
}

/// A worker thread's end of a serving engine: takes heavy requests only when it is
/// free, and is woken (weakly, non-blocking) when one arrives while it waits. Nothing
/// blocks a thread of Node's shared thread pool.
#[napi]
pub struct HeavyPort {
    queues: Arc<ServeQueues>,
    wake: Arc<Wake>,
}

/// What `takeOrWait` found.
#[napi(object)]
pub struct HeavyNext {
    pub request: Option<JsRequest>,
    /// The engine closed: stop asking.
    pub closed: bool,
}

#[napi]
impl HeavyPort {
    /// Attaches to the serving engine with this id (from `engine.id()`); `onWork` is
    /// called when a request arrives while this worker waits.
    #[napi(factory)]
    pub fn attach(engine_id: u32, on_work: Function<(), ()>) -> Result<HeavyPort> {
        let queues = ServeQueues::attach(engine_id)
            .ok_or_else(|| fail("CORRAL_STATE", format!("no open engine with id {engine_id}")))?;
        let wake: Wake = on_work.build_threadsafe_function().weak::<true>().build()?;
        Ok(HeavyPort { queues, wake: Arc::new(wake) })
    }

    /// The next heavy request if one waits; otherwise null, and `onWork` will be called.
    #[napi]
    pub fn take_or_wait(&self) -> HeavyNext {
        let (p, closed) = self.queues.take_or_wait(&self.wake);
        HeavyNext { request: p.map(to_js), closed }
    }

    #[napi]
    pub fn respond(&self, id: i64, status: u32, headers: Vec<String>, body: Buffer) -> Result<()> {
        self.queues.respond(id, status, headers, &body)
    }

    #[napi]
    pub fn respond_bytes(&self, id: i64, body: Buffer) -> Result<()> {
        self.queues.respond_bytes(id, &body)
    }

    #[napi]
    pub fn respond_text(&self, id: i64, body: String) -> Result<()> {
        self.queues.respond_bytes(id, body.as_bytes())
    }

    #[napi]
    pub fn fail(&self, id: i64) -> Result<()> {
        self.queues.fail(id)
    }

    /// Takes what has come of a streamed request body (see `Engine.readBody`); when
    /// nothing has, `onWork` is called once something can be taken.
    #[napi]
    pub fn read_body(&self, id: i64, max: u32) -> JsBodyRead {
        let wake = Arc::clone(&self.wake);
        self.queues.read_body(id, max, move || {
            let _ = wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        })
    }

    /// Stops reading a streamed request body: the engine discards the rest.
    #[napi]
    pub fn discard_body(&self, id: i64) {
        self.queues.discard_body(id)
    }
}
