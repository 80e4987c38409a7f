//! The serving API: a [`Handler`] classifies each [`Request`] by [`Cost`] and answers it
//! through a [`Responder`].
//!
//! Threads: `cost` runs on the I/O worker that framed the request. `handle` runs there
//! too for `Cost::Light`, and on a CPU-pool thread for `Cost::Heavy` (inline on the
//! worker in models without a CPU pool). A `Responder` may be completed from any thread,
//! at any time after `handle` returns. Each request gets exactly one reply: completing
//! consumes the responder, and dropping it unanswered sends the protocol's error reply
//! (HTTP `500`; the other protocols close the connection). A panic in `cost` or `handle`
//! is caught, counted, and treated the same way; the worker lives on.

mod body;
mod stream;
pub(crate) mod topics;
pub(crate) mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

pub(crate) use body::BodyShared;
pub use body::{Body, BodyError, BodyRead};
pub use stream::{Sent, Stream, StreamError};
pub use ws::{Accept, Kind, Message, Offer, SendStatus, WebSocket, WsHandler};

use crate::conn::Conn;
use crate::frame::{HttpRequest, Payload, Reply, ReplyCtx, Response};

/// Where a request runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Cost {
    /// Inline on the I/O worker: for work of tens of microseconds at most.
    #[default]
    Light,
    /// On the CPU pool, so I/O workers stay responsive.
    Heavy,
}

/// One framed request.
#[derive(Debug)]
pub struct Request {
    pub(crate) conn: u64,
    pub(crate) seq: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) worker: usize,
    pub(crate) payload: Payload,
    pub(crate) proxy: Option<Arc<crate::accept::proxy::ProxyHeader>>,
    /// The connection's TLS session, once its handshake completed (`tls_cert`).
    pub(crate) tls: Option<Arc<crate::tls::TlsInfo>>,
    /// The body still arriving, for a handler that streams bodies.
    pub(crate) body: Option<Body>,
    /// The websocket the request asks for (a valid handshake), if it does.
    pub(crate) ws: Option<Arc<Offer>>,
    /// Its client's key for fair shares (0 until the engine decided it).
    pub(crate) client: u64,
}

impl Request {
    /// The engine-unique id of the connection the request came on.
    pub fn conn_id(&self) -> u64 {
        self.conn
    }
    /// The request's position on its connection, from 0; replies are written in this order.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// The client: the socket's peer, or with `proxy_protocol` the source the load
    /// balancer's header named (the socket's peer for its `LOCAL` health checks).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
    /// The PROXY header the connection began with (`proxy_protocol`), with its TLVs.
    pub fn proxy(&self) -> Option<&crate::accept::proxy::ProxyHeader> {
        self.proxy.as_deref()
    }
    /// The TLS session the request came over (version, cipher suite, SNI, ALPN), or
    /// `None` on a plain TCP connection.
    pub fn tls(&self) -> Option<&crate::tls::TlsInfo> {
        self.tls.as_deref()
    }
    /// The I/O worker that framed the request.
    pub fn worker(&self) -> usize {
        self.worker
    }
    /// Its client's key for fair shares and rate limits (docs/fairness.md: the
    /// handler's `client_key`, the `client_key_header`, or the address), for a front
    /// that queues requests of its own to serve clients fairly ([`crate::Drr`]).
    pub fn client_key(&self) -> u64 {
        self.client
    }
    pub fn payload(&self) -> &Payload {
        &self.payload
    }
    pub fn into_payload(self) -> Payload {
        self.payload
    }
    /// The parsed request, for `Http1`.
    pub fn http(&self) -> Option<&HttpRequest> {
        match &self.payload {
            Payload::Http(h) => Some(h),
            Payload::Bytes(_) => None,
        }
    }
    /// True when the body is still arriving: take it with [`Request::take_body`]
    /// ([`Request::bytes`] is then empty). Only for a handler that streams bodies.
    pub fn body_streams(&self) -> bool {
        self.body.is_some()
    }
    /// The body as a stream, when it is still arriving (see [`Handler::streams_bodies`]);
    /// `None` when it came whole (in [`Request::bytes`]) or was taken already. Dropping
    /// it unread discards the rest of the body.
    pub fn take_body(&mut self) -> Option<Body> {
        self.body.take()
    }
    /// The body's length: whole, its size; streamed, its `Content-Length` if it has
    /// one (`None` for a chunked body still arriving).
    pub fn body_length(&self) -> Option<u64> {
        match &self.body {
            Some(b) => b.length(),
            None => Some(self.bytes().len() as u64),
        }
    }
    /// The websocket this request asks for, when it is a valid upgrade request (and
    /// `ws` is on): accept it with [`Responder::upgrade`], or answer it as any request.
    pub fn websocket(&self) -> Option<&Offer> {
        self.ws.as_deref()
    }
    /// The frame's bytes (for HTTP, the body; empty while it streams).
    pub fn bytes(&self) -> &[u8] {
        match &self.payload {
            Payload::Http(h) => h.body(),
            Payload::Bytes(b) => b,
        }
    }
}

/// Serves requests. Implementations must be thread-safe: calls arrive on several
/// threads at once.
pub trait Handler: Send + Sync + 'static {
    /// Classifies a request; runs on the I/O worker, so it must be cheap.
    fn cost(&self, _req: &Request) -> Cost {
        Cost::Light
    }
    /// Answers a request, now or later, from any thread, through `res`.
    fn handle(&self, req: Request, res: Responder);

    /// Called by an I/O worker after a round of its tasks, before it polls or parks
    /// again. A handler that queues requests for a thread of its own can wake that
    /// thread once here rather than once per request: [`on_io_worker`] says whether a
    /// `handle` call may count on this call following it.
    fn end_of_round(&self) {}

    /// Whether this handler reads HTTP request bodies as streams. `false` (the default):
    /// every body comes whole in [`Request::bytes`], at most `max_frame` bytes (`413`
    /// above). `true`: a request whose body is not in whole when its head is (or is over
    /// `body_window`) is dispatched at once, its body to be read from
    /// [`Request::take_body`] as it arrives, with flow control, up to `max_body`. Asked
    /// once, when the engine starts.
    fn streams_bodies(&self) -> bool {
        false
    }

    /// Who this request comes from, for fair shares (`fair_share`) and the rate limit
    /// (`rate_limit`): a key of the app's own, such as a hash of the API token or the
    /// user id, so that one tenant behind many addresses is one client and many behind
    /// one address (a NAT, a proxy without PROXY headers) are many. `None` (the
    /// default): the `client_key_header` option's header where set and present, else
    /// the peer address (the PROXY header's source). Runs on the I/O worker: keep it
    /// cheap. The key also applies to the connection's later turns.
    fn client_key(&self, _req: &Request) -> Option<u64> {
        None
    }
}

thread_local! {
    static IO_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True on an engine's I/O worker threads: a `handle` call there is followed, before
/// the worker sleeps, by [`Handler::end_of_round`]. False on the CPU pool, and on the
/// threads that complete replies and so run connections' turns (handlers called there
/// must wake what they queue for at once).
pub fn on_io_worker() -> bool {
    IO_WORKER.with(std::cell::Cell::get)
}

pub(crate) fn mark_io_worker() {
    IO_WORKER.with(|c| c.set(true));
}

impl<T: Handler> Handler for Arc<T> {
    fn cost(&self, req: &Request) -> Cost {
        (**self).cost(req)
    }
    fn handle(&self, req: Request, res: Responder) {
        (**self).handle(req, res)
    }
    fn end_of_round(&self) {
        (**self).end_of_round()
    }
    fn streams_bodies(&self) -> bool {
        (**self).streams_bodies()
    }
    fn client_key(&self, req: &Request) -> Option<u64> {
        (**self).client_key(req)
    }
}

/// A declarative cost rule, decided natively on the I/O worker with no call into the
/// host: a request is `Heavy` if its HTTP path starts with one of `heavy_path_prefixes`,
/// or if its frame (HTTP: body) has at least `heavy_min_bytes` bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CostRule {
    pub heavy_path_prefixes: Vec<String>,
    pub heavy_min_bytes: Option<usize>,
}

impl CostRule {
    pub fn classify(&self, req: &Request) -> Cost {
        let by_path = req.http().is_some_and(|h| {
            let p = h.path_only();
            self.heavy_path_prefixes.iter().any(|pre| p.starts_with(pre.as_str()))
        });
        let by_size = self.heavy_min_bytes.is_some_and(|n| req.body_length().unwrap_or(u64::MAX) >= n as u64);
        if by_path || by_size {
            Cost::Heavy
        } else {
            Cost::Light
        }
    }
}

/// A handler from a closure: every request is `Light`.
pub fn handler_fn<F>(f: F) -> impl Handler
where
    F: Fn(Request, Responder) + Send + Sync + 'static,
{
    struct Fn_<F>(F);
    impl<F: Fn(Request, Responder) + Send + Sync + 'static> Handler for Fn_<F> {
        fn handle(&self, req: Request, res: Responder) {
            (self.0)(req, res)
        }
    }
    Fn_(f)
}

/// `f` once request `seq`'s client is gone (see [`Responder::when_gone`]); at once for a
/// reply already finished (no connection).
fn watch_gone(conn: Option<&Arc<Conn>>, seq: u64, f: impl FnOnce() + Send + 'static) {
    match conn {
        Some(c) => c.when_gone(seq, Box::new(f)),
        None => f(),
    }
}

fn conn_gone(conn: Option<&Arc<Conn>>) -> bool {
    conn.map_or(true, |c| c.is_closed())
}

/// Completes one request, once, from any thread.
pub struct Responder {
    conn: Option<Arc<Conn>>,
    seq: u64,
    ctx: ReplyCtx,
    /// The request asks for a websocket.
    ws: Option<Arc<Offer>>,
}

impl Responder {
    pub(crate) fn new(conn: Arc<Conn>, seq: u64, ctx: ReplyCtx, ws: Option<Arc<Offer>>) -> Responder {
        Responder { conn: Some(conn), seq, ctx, ws }
    }

    /// Accepts the websocket the request asks for: the `101` is sent (with `accept`'s
    /// subprotocol and headers, and permessage-deflate where agreed), and `handler` gets
    /// the socket's events from `open` on. The responder is given back when the request
    /// is not a websocket offer ([`Request::websocket`] is `None`) or its connection
    /// is gone.
    pub fn upgrade(mut self, accept: Accept, handler: Arc<dyn WsHandler>) -> Result<WebSocket, Responder> {
        let (Some(offer), Some(conn)) = (self.ws.clone(), self.conn.as_ref()) else { return Err(self) };
        if conn.is_closed() {
            return Err(self);
        }
        let conn = self.conn.take().expect("checked");
        Ok(conn.upgrade(self.seq, &offer, accept, handler))
    }

    /// Whether the request this responder answers asks for a websocket.
    pub fn can_upgrade(&self) -> bool {
        self.ws.is_some()
    }

    /// Sends the reply. Replies are written in request order, so this one waits for
    /// the replies to earlier requests on the same connection.
    pub fn respond(mut self, reply: impl Into<Reply>) {
        if let Some(conn) = self.conn.take() {
            let bytes = self.ctx.protocol.encode(reply.into(), &self.ctx);
            conn.complete(self.seq, bytes, self.ctx.close, false);
        }
    }

    /// Closes the connection once the replies to earlier requests are written.
    pub fn close(self) {
        self.respond(Reply::Close)
    }

    /// Refuses the request because the server is overloaded: HTTP `503` with
    /// `retry-after: 1`; the other protocols close the connection.
    /// Answers `429 Too Many Requests` for a client over the rate limit, saying in
    /// `retry-after` when to come back (`wait_us` rounded up to whole seconds, as the
    /// header takes); other protocols close the connection.
    pub(crate) fn refuse_rate_limited(self, wait_us: u64) {
        if self.ctx.protocol == crate::Protocol::Http1 {
            let secs = wait_us.div_ceil(1_000_000).max(1).to_string();
            let r = Response::new(429).header("retry-after", secs).header("content-type", "text/plain");
            self.respond(r.body("too many requests from this client, retry later\n"))
        } else {
            self.close()
        }
    }

    pub fn refuse_overloaded(self) {
        if self.ctx.protocol == crate::Protocol::Http1 {
            let r = Response::new(503).header("retry-after", "1").header("content-type", "text/plain");
            self.respond(r.body("overloaded, retry later\n"))
        } else {
            self.close()
        }
    }

    /// Starts a streamed HTTP reply: `head`'s status and headers are sent now (its body
    /// is ignored), the body follows through the [`Stream`]. `length`: the body's
    /// length if known (`content-length`); otherwise it is chunked (HTTP/1.0: ended by
    /// closing the connection). Other protocols have no streamed form: the responder
    /// is given back.
    pub fn stream(mut self, head: &Response, length: Option<u64>) -> Result<Stream, Responder> {
        if self.ctx.protocol != crate::Protocol::Http1 {
            return Err(self);
        }
        let Some(conn) = self.conn.take() else { return Err(self) };
        Ok(Stream::start(conn, self.seq, &self.ctx, head, length))
    }

    /// Calls `f` once the client has finished sending (it closed, or half-closed, its
    /// side) or the connection closed; at once if that already happened. For handlers
    /// that wait a long time (long polls, event streams): they can stop when nobody is
    /// left to answer. `f` runs on an I/O worker: it must be quick and must not block.
    pub fn when_gone(&self, f: impl FnOnce() + Send + 'static) {
        watch_gone(self.conn.as_ref(), self.seq, f)
    }

    /// True once the connection is closed: a reply now would go nowhere.
    pub fn is_gone(&self) -> bool {
        conn_gone(self.conn.as_ref())
    }

    /// The sequence number of the request this responder answers.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let bytes = self.ctx.protocol.error_reply(&self.ctx);
            conn.complete(self.seq, bytes, self.ctx.close, true);
        }
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder").field("seq", &self.seq).field("answered", &self.conn.is_none()).finish()
    }
}
