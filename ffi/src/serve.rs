//! Serving from C: a handler callback (and an optional cost callback or a declarative
//! cost rule), the request it is handed, and the responder it completes once.

use std::ffi::{c_char, c_void, CStr};
use std::net::SocketAddr;

use corral_core::{Cost, CostRule, Handler, Payload, Reply, Request, Responder, Response};

use crate::{boundary, boundary_void, CorralBody, CorralStatus};

/// A request, valid only during the callback it is passed to. Read it with the
/// corral_request_* functions; copy what you need to keep.
pub struct CorralRequest {
    /// The request, owned by the handler call that made this view.
    inner: *const Request,
    /// The same request, mutable: only in the handler callback (which owns the
    /// request), for corral_request_take_body(); NULL in the cost callback.
    owned: *mut Request,
}

/// Completes one request. Owned by the caller from the handler callback on; complete
/// it exactly once, from any thread, at any time, with corral_responder_send(),
/// corral_responder_send_http() or corral_responder_close() (each also frees it), or
/// give it up with corral_responder_free() (the client then gets an error reply: HTTP
/// 500, or the connection closes for the other protocols).
pub struct CorralResponder {
    pub(crate) inner: Responder,
}

/// Where a request runs.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorralCost {
    /// Inline on the I/O worker thread: for work of tens of microseconds at most.
    Light = 0,
    /// On the CPU pool.
    Heavy = 1,
}

/// Handles one request. Runs on a corral I/O worker (light requests) or CPU-pool
/// thread (heavy requests), on several threads at once: `userdata` must be safe to use
/// from them. The request is valid until the callback returns; the responder is yours.
pub type CorralHandlerFn = Option<unsafe extern "C" fn(*mut c_void, *const CorralRequest, *mut CorralResponder)>;

/// Classifies a request; runs on the I/O worker that framed it, so it must be cheap.
pub type CorralCostFn = Option<unsafe extern "C" fn(*mut c_void, *const CorralRequest) -> CorralCost>;

/// What a serving engine calls. Start from corral_serve_default().
#[repr(C)]
pub struct CorralServe {
    /// Required.
    pub handler: CorralHandlerFn,
    /// Optional; when NULL the rule below decides.
    pub cost: CorralCostFn,
    /// Passed to both callbacks.
    pub userdata: *mut c_void,
    /// Rule: HTTP requests whose path starts with one of these are heavy (may be NULL
    /// when the count is 0). The strings are copied by corral_engine_new_serve().
    pub heavy_path_prefixes: *const *const c_char,
    pub heavy_path_prefix_count: usize,
    /// Rule: requests whose frame (HTTP: body) has at least this many bytes are heavy;
    /// 0 turns this part off. A streamed body counts by its Content-Length; a chunked
    /// one, whose length is unknown, counts as heavy.
    pub heavy_min_bytes: usize,
    /// HTTP request bodies stream (default false: every body comes whole, at most
    /// `max_frame` bytes, 413 above). When true, a request whose body has not arrived
    /// whole with its head (or is over `body_window`) reaches the handler at its head:
    /// take the body with corral_request_take_body() and read it as it arrives, up to
    /// `max_body`. Small bodies that came whole with the head still come whole, so the
    /// handler must handle both (corral_request_take_body() says which).
    pub stream_bodies: bool,
}

/// An all-default corral_serve: no callbacks, no rule (every request light), bodies
/// whole (`stream_bodies` false).
#[no_mangle]
pub extern "C" fn corral_serve_default() -> CorralServe {
    CorralServe {
        handler: None,
        cost: None,
        userdata: std::ptr::null_mut(),
        heavy_path_prefixes: std::ptr::null(),
        heavy_path_prefix_count: 0,
        heavy_min_bytes: 0,
        stream_bodies: false,
    }
}

/// The C handler as a core `Handler`.
pub(crate) struct CHandler {
    handler: unsafe extern "C" fn(*mut c_void, *const CorralRequest, *mut CorralResponder),
    cost: CorralCostFn,
    userdata: *mut c_void,
    rule: CostRule,
    streams: bool,
}

// SAFETY: the header documents that callbacks run on corral's threads concurrently and
// that `userdata` must be safe to share between them; the pointers themselves are inert.
unsafe impl Send for CHandler {}
unsafe impl Sync for CHandler {}

impl CHandler {
    /// Reads a `corral_serve`; NULL handler or prefix strings that are not UTF-8 are
    /// refused.
    pub(crate) unsafe fn from_c(serve: &CorralServe) -> Result<CHandler, CorralStatus> {
        let handler = serve.handler.ok_or(CorralStatus::NullArgument)?;
        let mut rule = CostRule::default();
        if serve.heavy_path_prefix_count > 0 {
            if serve.heavy_path_prefixes.is_null() {
                return Err(CorralStatus::NullArgument);
            }
            for i in 0..serve.heavy_path_prefix_count {
                // SAFETY: the caller passes `count` valid string pointers.
                let p = unsafe { *serve.heavy_path_prefixes.add(i) };
                if p.is_null() {
                    return Err(CorralStatus::NullArgument);
                }
                let s = unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| CorralStatus::InvalidArgument)?;
                rule.heavy_path_prefixes.push(s.to_owned());
            }
        }
        rule.heavy_min_bytes = (serve.heavy_min_bytes > 0).then_some(serve.heavy_min_bytes);
        Ok(CHandler { handler, cost: serve.cost, userdata: serve.userdata, rule, streams: serve.stream_bodies })
    }
}

impl Handler for CHandler {
    fn cost(&self, req: &Request) -> Cost {
        let Some(cost) = self.cost else { return self.rule.classify(req) };
        let view = CorralRequest { inner: req, owned: std::ptr::null_mut() };
        // SAFETY: the view points at a request that outlives the call.
        match unsafe { cost(self.userdata, &view) } {
            CorralCost::Heavy => Cost::Heavy,
            CorralCost::Light => Cost::Light,
        }
    }

    fn handle(&self, mut req: Request, res: Responder) {
        let owned: *mut Request = &mut req;
        let view = CorralRequest { inner: owned, owned };
        let res = Box::into_raw(Box::new(CorralResponder { inner: res }));
        // SAFETY: the callback gets a request valid for the call and a responder it owns.
        unsafe { (self.handler)(self.userdata, &view, res) };
        // A body not taken is dropped with the request: its rest is discarded.
    }

    fn streams_bodies(&self) -> bool {
        self.streams
    }
}

pub(crate) fn request<'a>(req: *const CorralRequest) -> Option<&'a Request> {
    // SAFETY: the caller passes the request it was handed, during the callback, and the
    // view's pointer is valid for that long.
    unsafe { req.as_ref().and_then(|r| r.inner.as_ref()) }
}

pub(crate) unsafe fn out_bytes(data: &[u8], ptr: *mut *const u8, len: *mut usize) -> CorralStatus {
    if ptr.is_null() || len.is_null() {
        return CorralStatus::NullArgument;
    }
    unsafe {
        *ptr = data.as_ptr();
        *len = data.len();
    }
    CorralStatus::Ok
}

/// The request's bytes: the frame for Raw, Lines and Length, the body for HTTP. The
/// pointer is valid until the callback returns. Any thread running the callback.
/// With `stream_bodies`, a body still arriving is not here (0 bytes): take it with
/// corral_request_take_body().
#[no_mangle]
pub unsafe extern "C" fn corral_request_body(
    req: *const CorralRequest,
    data: *mut *const u8,
    len: *mut usize,
) -> CorralStatus {
    boundary(|| match request(req) {
        Some(r) => unsafe { out_bytes(r.bytes(), data, len) },
        None => CorralStatus::NullArgument,
    })
}

/// With `stream_bodies` on: takes the request's body, which is still arriving, into
/// `*body` (CORRAL_STATUS_OK). It is then yours, beyond the handler call: read it from
/// any thread (corral_body_read(), corral_body_read_blocking(),
/// corral_body_when_ready()) and free it with corral_body_free(); reply with the
/// responder whenever you choose (a reply before the body's end discards its rest).
/// CORRAL_STATUS_NOT_FOUND: there is no body to take: it came whole with the request
/// (read it with corral_request_body(), which may be 0 bytes), or it was taken already,
/// or `stream_bodies` is off. CORRAL_STATUS_WRONG_MODE from the cost callback: the body
/// can be taken only in the handler callback, on the thread that runs it.
///
/// A handler on an I/O worker (light) must not wait for the body there: hand it to a
/// thread of your own, or read it with corral_body_when_ready(). A heavy handler (CPU
/// pool) may read it blocking, holding a pool thread while the client sends.
#[no_mangle]
pub unsafe extern "C" fn corral_request_take_body(
    req: *const CorralRequest,
    body: *mut *mut CorralBody,
) -> CorralStatus {
    boundary(|| {
        // SAFETY: the caller passes the request it was handed, during the callback.
        let Some(view) = (unsafe { req.as_ref() }) else { return CorralStatus::NullArgument };
        if body.is_null() {
            return CorralStatus::NullArgument;
        }
        // SAFETY: `owned` is the handler call's own request, alive during the callback;
        // no other reference to it is held while this one lives.
        let Some(r) = (unsafe { view.owned.as_mut() }) else { return CorralStatus::WrongMode };
        match r.take_body() {
            Some(b) => {
                unsafe { *body = Box::into_raw(Box::new(CorralBody::new(b))) };
                CorralStatus::Ok
            }
            None => CorralStatus::NotFound,
        }
    })
}

fn http_part(
    req: *const CorralRequest,
    data: *mut *const u8,
    len: *mut usize,
    part: fn(&corral_core::HttpRequest) -> &str,
) -> CorralStatus {
    boundary(|| {
        let Some(r) = request(req) else { return CorralStatus::NullArgument };
        match r.payload() {
            Payload::Http(h) => unsafe { out_bytes(part(h).as_bytes(), data, len) },
            Payload::Bytes(_) => CorralStatus::WrongMode,
        }
    })
}

/// HTTP only: the method (not NUL-terminated; `len` bytes). CORRAL_STATUS_WRONG_MODE for
/// other protocols.
#[no_mangle]
pub unsafe extern "C" fn corral_request_method(
    req: *const CorralRequest,
    data: *mut *const u8,
    len: *mut usize,
) -> CorralStatus {
    http_part(req, data, len, |h| h.method())
}

/// HTTP only: the request target as sent, path and query (not NUL-terminated).
#[no_mangle]
pub unsafe extern "C" fn corral_request_path(
    req: *const CorralRequest,
    data: *mut *const u8,
    len: *mut usize,
) -> CorralStatus {
    http_part(req, data, len, |h| h.path())
}

/// HTTP only: the value of the first header called `name` (a NUL-terminated string,
/// matched case-insensitively) into `*data` / `*len` (not NUL-terminated), or
/// CORRAL_STATUS_NOT_FOUND. The bytes belong to the request: valid until the handler
/// callback returns, on the thread that runs it; copy them to keep them longer or to
/// use them from another thread.
#[no_mangle]
pub unsafe extern "C" fn corral_request_header(
    req: *const CorralRequest,
    name: *const c_char,
    data: *mut *const u8,
    len: *mut usize,
) -> CorralStatus {
    boundary(|| {
        let Some(r) = request(req) else { return CorralStatus::NullArgument };
        if name.is_null() {
            return CorralStatus::NullArgument;
        }
        let Ok(name) = unsafe { CStr::from_ptr(name) }.to_str() else { return CorralStatus::InvalidArgument };
        match r.payload() {
            Payload::Http(h) => match h.header(name) {
                Some(v) => unsafe { out_bytes(v, data, len) },
                None => CorralStatus::NotFound,
            },
            Payload::Bytes(_) => CorralStatus::WrongMode,
        }
    })
}

/// A socket address: `family` is 4 or 6; `addr` holds 4 or 16 bytes in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CorralPeer {
    pub family: u8,
    pub port: u16,
    pub addr: [u8; 16],
}

impl From<SocketAddr> for CorralPeer {
    fn from(a: SocketAddr) -> CorralPeer {
        let mut addr = [0u8; 16];
        let family = match a {
            SocketAddr::V4(v4) => {
                addr[..4].copy_from_slice(&v4.ip().octets());
                4
            }
            SocketAddr::V6(v6) => {
                addr.copy_from_slice(&v6.ip().octets());
                6
            }
        };
        CorralPeer { family, port: a.port(), addr }
    }
}

/// Where a request came from and where it is in its connection.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct CorralRequestInfo {
    /// Engine-unique connection id.
    pub conn_id: u64,
    /// Position on the connection from 0; replies are written in this order.
    pub seq: u64,
    /// The I/O worker that framed it.
    pub worker: u32,
    pub peer: CorralPeer,
}

/// Fills `out` with the request's connection id, sequence number, worker and peer.
#[no_mangle]
pub unsafe extern "C" fn corral_request_get_info(
    req: *const CorralRequest,
    out: *mut CorralRequestInfo,
) -> CorralStatus {
    boundary(|| {
        let Some(r) = request(req) else { return CorralStatus::NullArgument };
        if out.is_null() {
            return CorralStatus::NullArgument;
        }
        let info =
            CorralRequestInfo { conn_id: r.conn_id(), seq: r.seq(), worker: r.worker() as u32, peer: r.peer().into() };
        unsafe { *out = info };
        CorralStatus::Ok
    })
}

/// What the TLS handshake of a request's connection agreed on. The pointers are the
/// request's: valid until the handler's responder is completed or freed (copy what you
/// keep); the strings are not NUL-terminated except `cipher_suite_name`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct CorralTlsInfo {
    /// The protocol version as on the wire: 0x0304 (TLS 1.3) or 0x0303 (TLS 1.2).
    pub version: u16,
    /// The cipher suite's IANA number (0x1301: TLS_AES_128_GCM_SHA256).
    pub cipher_suite: u16,
    /// The cipher suite's name (rustls's: "TLS13_AES_128_GCM_SHA256"), NUL-terminated,
    /// static.
    pub cipher_suite_name: *const c_char,
    /// The server name the client asked for (SNI); NULL and 0 when it sent none.
    pub sni: *const u8,
    pub sni_len: usize,
    /// The protocol agreed by ALPN ("http/1.1"); NULL and 0 when none was.
    pub alpn: *const u8,
    pub alpn_len: usize,
    /// The session was resumed (a ticket or a cached session id), not a full handshake.
    pub resumed: bool,
    /// The verified client certificate's subject, RFC 4514 (`CN=alice,O=Example`); NULL
    /// and 0 without one (`tls_client_ca`).
    pub client_subject: *const u8,
    pub client_subject_len: usize,
    /// The client's own certificate, DER; NULL and 0 without one.
    pub client_cert: *const u8,
    pub client_cert_len: usize,
}

/// Fills `out` with what the TLS handshake of the request's connection agreed on.
/// CORRAL_STATUS_NOT_FOUND: the request did not come over TLS (a plain engine).
#[no_mangle]
pub unsafe extern "C" fn corral_request_tls(req: *const CorralRequest, out: *mut CorralTlsInfo) -> CorralStatus {
    boundary(|| {
        let Some(r) = request(req) else { return CorralStatus::NullArgument };
        if out.is_null() {
            return CorralStatus::NullArgument;
        }
        let Some(t) = r.tls() else { return CorralStatus::NotFound };
        let (sni, sni_len) = t.sni().map_or((std::ptr::null(), 0), |s| (s.as_ptr(), s.len()));
        let (alpn, alpn_len) = t.alpn().map_or((std::ptr::null(), 0), |a| (a.as_ptr(), a.len()));
        let (client_subject, client_subject_len) =
            t.client_subject().map_or((std::ptr::null(), 0), |s| (s.as_ptr(), s.len()));
        let (client_cert, client_cert_len) =
            t.client_cert_chain().first().map_or((std::ptr::null(), 0), |c| (c.as_ptr(), c.len()));
        let info = CorralTlsInfo {
            version: match t.version() {
                corral_core::TlsVersion::Tls13 => 0x0304,
                corral_core::TlsVersion::Tls12 => 0x0303,
            },
            cipher_suite: t.cipher_suite_id(),
            cipher_suite_name: suite_name(t.cipher_suite()),
            sni,
            sni_len,
            alpn,
            alpn_len,
            resumed: t.resumed(),
            client_subject,
            client_subject_len,
            client_cert,
            client_cert_len,
        };
        unsafe { *out = info };
        CorralStatus::Ok
    })
}

/// A suite's name as a static C string (the names are rustls's, few and fixed).
fn suite_name(name: &'static str) -> *const c_char {
    use std::collections::HashMap;
    use std::ffi::CString;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<&'static str, &'static std::ffi::CStr>>> = OnceLock::new();
    let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let c = names.entry(name).or_insert_with(|| {
        let owned = CString::new(name).unwrap_or_default();
        Box::leak(owned.into_boxed_c_str())
    });
    c.as_ptr()
}

/// One HTTP response header; both strings NUL-terminated, copied by the call.
#[repr(C)]
pub struct CorralHeader {
    pub name: *const c_char,
    pub value: *const c_char,
}

pub(crate) unsafe fn take(res: *mut CorralResponder) -> Option<Responder> {
    // SAFETY: a non-NULL responder came from a handler callback and is completed once.
    (!res.is_null()).then(|| unsafe { Box::from_raw(res) }.inner)
}

pub(crate) unsafe fn slice<'a>(data: *const u8, len: usize) -> Option<&'a [u8]> {
    if len == 0 {
        Some(&[])
    } else if data.is_null() {
        None
    } else {
        // SAFETY: the caller passes `len` readable bytes.
        Some(unsafe { std::slice::from_raw_parts(data, len) })
    }
}

/// Replies with `len` bytes, framed by the protocol (HTTP: a 200 with this body), and
/// frees the responder. Any thread. On an error status the responder is still freed
/// and the client gets the error reply.
#[no_mangle]
pub unsafe extern "C" fn corral_responder_send(res: *mut CorralResponder, data: *const u8, len: usize) -> CorralStatus {
    boundary(|| {
        let Some(r) = (unsafe { take(res) }) else { return CorralStatus::NullArgument };
        let Some(bytes) = (unsafe { slice(data, len) }) else { return CorralStatus::NullArgument };
        r.respond(Reply::Bytes(bytes.to_vec()));
        CorralStatus::Ok
    })
}

/// Replies with an HTTP response (status, `count` headers, body) and frees the
/// responder. corral writes content-length, connection and date itself. Any thread.
/// On an error status the responder is still freed and the client gets the error reply.
#[no_mangle]
pub unsafe extern "C" fn corral_responder_send_http(
    res: *mut CorralResponder,
    status: u16,
    headers: *const CorralHeader,
    count: usize,
    body: *const u8,
    len: usize,
) -> CorralStatus {
    boundary(|| {
        let Some(r) = (unsafe { take(res) }) else { return CorralStatus::NullArgument };
        let Some(body) = (unsafe { slice(body, len) }) else { return CorralStatus::NullArgument };
        if !(100..=999).contains(&status) {
            return CorralStatus::InvalidArgument;
        }
        let hs = match unsafe { c_headers(headers, count) } {
            Ok(hs) => hs,
            Err(s) => return s,
        };
        let resp = hs.into_iter().fold(Response::new(status).body(body.to_vec()), |r, (n, v)| r.header(n, v));
        r.respond(resp);
        CorralStatus::Ok
    })
}

/// Reads `count` C headers: NULL strings are refused, as are strings that are not UTF-8.
///
/// # Safety
/// `headers` points at `count` headers whose strings outlive the returned borrows.
pub(crate) unsafe fn c_headers<'a>(
    headers: *const CorralHeader,
    count: usize,
) -> Result<Vec<(&'a str, &'a str)>, CorralStatus> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if headers.is_null() {
        return Err(CorralStatus::NullArgument);
    }
    (0..count)
        .map(|i| {
            // SAFETY: the caller passes `count` headers.
            let h = unsafe { &*headers.add(i) };
            if h.name.is_null() || h.value.is_null() {
                return Err(CorralStatus::NullArgument);
            }
            match (unsafe { CStr::from_ptr(h.name) }.to_str(), unsafe { CStr::from_ptr(h.value) }.to_str()) {
                (Ok(n), Ok(v)) => Ok((n, v)),
                _ => Err(CorralStatus::InvalidArgument),
            }
        })
        .collect()
}

/// Closes the connection once the replies to earlier requests are written, and frees
/// the responder. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_responder_close(res: *mut CorralResponder) -> CorralStatus {
    boundary(|| match unsafe { take(res) } {
        Some(r) => {
            r.close();
            CorralStatus::Ok
        }
        None => CorralStatus::NullArgument,
    })
}

/// Gives up a responder without answering: the client gets the error reply (HTTP 500;
/// other protocols: the connection closes). NULL is a no-op. Any thread.
#[no_mangle]
pub unsafe extern "C" fn corral_responder_free(res: *mut CorralResponder) {
    boundary_void(|| drop(unsafe { take(res) }))
}
