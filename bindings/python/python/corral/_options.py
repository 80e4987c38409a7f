"""The engine options as a typed dict (``**Unpack[corral.Options]``), generated from
corral's option table (``make generated``); a test fails when this file drifts."""

from __future__ import annotations

from typing import Literal, TypedDict, Union

# options:begin (generated)
class Options(TypedDict, total=False):
    """The engine options every entry point takes by keyword."""

    # The concurrency model (see Models). One of single, thread-per-connection, pool, reuseport, stealing. Default stealing; applies to serve and handoff engines.
    model: Literal["single", "thread-per-connection", "pool", "reuseport", "stealing"]
    # How requests are framed. One of http, lines, length, raw. Default http; applies to serve engines.
    protocol: Literal["http", "lines", "length", "raw"]
    # Allow wildcard addresses (0.0.0.0, ::): off so nothing listens on every interface by accident. True or false. Default false; applies to serve and handoff engines.
    allow_public: bool
    # Listening sockets: one SO_REUSEPORT socket per acceptor, one shared (EPOLLEXCLUSIVE), or one. One of reuseport, shared, single. Default reuseport; applies to serve and handoff engines.
    listener: Literal["reuseport", "shared", "single"]
    # Acceptor threads (or acceptors inside I/O workers). 1 to 256 threads. Default min(cores, 4); applies to serve and handoff engines.
    acceptors: int
    # I/O worker threads: read, frame, run light requests, write. 1 to 1024 threads. Default cores; applies to serve engines.
    io_workers: int
    # CPU-pool threads for heavy requests (0: heavy requests run inline). 1 to 1024 threads, or 0 for none: heavy requests run inline. Default cores; applies to serve engines.
    cpu_threads: int
    # Scheduler slice I/O workers ask for (EEVDF, Linux >= 6.12): a waking worker preempts heavy work at once. 100 us to 100 ms, or 0 for the kernel's default (seconds as a number, or text with a unit such as "250ms"). Default 100 us; applies to serve engines.
    io_slice: Union[float, str]
    # Run acceptors inside the I/O workers (false: dedicated acceptor threads; measured 38k vs 52k conn/s). True or false. Default true; applies to serve engines.
    accept_in_workers: bool
    # TCP_DEFER_ACCEPT: hand over a connection once its first bytes arrived (only where the client speaks first). True or false. Default false; applies to serve and handoff engines.
    defer_accept: bool
    # TCP_NODELAY on the listeners, inherited by every accepted socket (false: Nagle's algorithm batches small writes). True or false. Default true; applies to serve and handoff engines.
    tcp_nodelay: bool
    # The PROXY protocol header (HAProxy, AWS NLB) each connection starts with: off, v1, v2, or any; the client's address is then the header's (handoff: read off the socket before the host gets it). One of off, v1, v2, any. Default off; applies to serve and handoff engines.
    proxy_protocol: Literal["off", "v1", "v2", "any"]
    # With proxy_protocol: the sources (balancers) allowed to send the header; a connection from any other is refused before it is read. A comma-separated list of addresses or address/prefix blocks (none: no source). Default 127.0.0.0/8,::1; applies to serve and handoff engines.
    proxy_trusted: str
    # TLS: the PEM certificate chain (server certificate first) every served connection presents; empty: plain TCP. Needs tls_key. A path to a PEM certificate chain (empty: no TLS). Default none; applies to serve engines.
    tls_cert: str
    # TLS: the PEM private key (PKCS#8, RSA or EC) of tls_cert's certificate. Needs tls_cert. A path to a PEM private key (empty: no TLS). Default none; applies to serve engines.
    tls_key: str
    # TLS: more certificate chains, each served to clients asking (SNI) for one of its DNS names; tls_cert serves the rest. A comma-separated list of cert.pem:key.pem pairs (or files holding both). Default none; applies to serve engines.
    tls_sni_certs: str
    # TLS: the cipher suites allowed, by IANA or OpenSSL name, separated by : (empty: rustls's AEAD suites). A :-separated list of cipher suites (IANA or OpenSSL names). Default all; applies to serve engines.
    tls_ciphers: str
    # TLS: the CA certificates client certificates are checked against (mutual TLS); the verified client's name reaches the app. A path to a PEM bundle of CA certificates (empty: no client certificates). Default none; applies to serve engines.
    tls_client_ca: str
    # TLS: ask clients for a certificate from tls_client_ca: none, optional (one without is served) or required. One of none, optional, required. Default required with tls_client_ca, else none; applies to serve engines.
    tls_client_auth: Literal["none", "optional", "required"]
    # TLS: the oldest version a client may use, 1.2 or 1.3 (older ones are always refused). One of 1.2, 1.3. Default 1.2; applies to serve engines.
    tls_min_version: Literal["1.2", "1.3"]
    # TLS: do handshakes (key exchange, signature: the heaviest step per connection) on the CPU pool, so keep-alive connections on the I/O workers do not wait behind a storm of new ones; inline when false or cpu_threads is 0. True or false. Default true; applies to serve engines.
    tls_handshake_on_pool: bool
    # TLS: time for the handshake to complete, from the connection's start; a client slower than that is closed (tls_handshake_failures_abandoned). The first request's header_timeout also counts from the start. 1 ms to 365 days (seconds as a number, or text with a unit such as "250ms"). Default 10 s; applies to serve engines.
    tls_handshake_timeout: Union[float, str]
    # Tell a service manager (NOTIFY_SOCKET) READY=1 once accepting (with MAINPID after a hand-over), RELOADING=1 when a successor takes the listeners, and STOPPING=1 when draining; off for engines embedded among others. True or false. Default false; applies to serve and handoff engines.
    sd_notify: bool
    # Listen backlog asked of the kernel (clamped to somaxconn; the effective value is in the stats). 1 to 1048576 connections. Default 1024; applies to serve and handoff engines.
    backlog: int
    # Accepts per wake-up before an acceptor yields. 1 to 4096 connections. Default 64; applies to serve and handoff engines.
    accept_batch: int
    # Accepted connections the host queue holds before acceptors pause (the backlog absorbs). 1 to 16777216 connections. Default 1024; applies to handoff engines.
    handoff_capacity: int
    # Open served connections; at the cap acceptors pause and the backlog absorbs. 1 to 16777216 connections. Default RLIMIT_NOFILE - 64; applies to serve engines.
    max_connections: int
    # Open served connections from one source address (see per_ip_scope); one over it is closed at once. 1 to 16777216 connections, or 0 for no cap. Default 1024; applies to serve engines.
    max_connections_per_ip: int
    # Which sources the per-IP cap counts: public addresses only (loopback, private and link-local are not capped), or all. One of public, all. Default public; applies to serve engines.
    per_ip_scope: Literal["public", "all"]
    # New connections accepted per second over all acceptors; beyond it acceptors pause. 1 to 4294967295 connections per second, or 0 for no limit. Default 0; applies to serve and handoff engines.
    max_accept_rate: int
    # Requests served on one connection before it is closed, the last reply saying so. 1 to 1099511627776 requests, or 0 for no cap. Default 10000; applies to serve engines.
    max_requests_per_connection: int
    # Requests on one connection awaiting replies before it is not read. 1 to 65536 requests. Default 64; applies to serve engines.
    max_in_flight: int
    # Largest Length frame, Lines line, or HTTP body taken whole (streamed bodies: max_body). 1 to 1073741824 bytes. Default 1 MiB; applies to serve engines.
    max_frame: int
    # Largest streamed HTTP request body: over it, 413 (Content-Length: before the app is called). 1 to 1125899906842624 bytes. Default 1 GiB; applies to serve engines.
    max_body: int
    # Streamed request body bytes delivered and not yet taken at which reading stops (flow control). 1024 to 1073741824 bytes. Default 64 KiB; applies to serve engines.
    body_window: int
    # Slow-body grace: each such period the client must send min_body_rate x it (at least 1 byte), else 408. 1 ms to 365 days (seconds as a number, or text with a unit such as "250ms"). Default 30 s; applies to serve engines.
    body_timeout: Union[float, str]
    # Slowest rate a streamed body may arrive at over each body_timeout period (0: only the timeout). 1 to 1099511627776 bytes per second, or 0 for only body_timeout. Default 1024; applies to serve engines.
    min_body_rate: int
    # Websockets: upgrade requests are checked and offered to the handler (off: ordinary requests). True or false. Default true; applies to serve engines.
    ws: bool
    # Largest websocket message after decompression; over it the socket closes with 1009. 1 to 1073741824 bytes. Default 16 MiB; applies to serve engines.
    ws_max_message: int
    # Websocket keep-alive: a ping after this long without a frame from the client. 1 ms to 365 days, or 0 for no pings (seconds as a number, or text with a unit such as "250ms"). Default 20 s; applies to serve engines.
    ws_ping_interval: Union[float, str]
    # Time for the client to answer a ping (else close 1011), and to answer a close frame. 1 ms to 365 days (seconds as a number, or text with a unit such as "250ms"). Default 20 s; applies to serve engines.
    ws_ping_timeout: Union[float, str]
    # Websocket with no message either way for this long is closed with 1001 (0: never). 1 ms to 365 days, or 0 for never (seconds as a number, or text with a unit such as "250ms"). Default 0; applies to serve engines.
    ws_idle_timeout: Union[float, str]
    # Websocket permessage-deflate for clients that ask (each message compressed on its own). True or false. Default true; applies to serve engines.
    ws_deflate: bool
    # Websocket bytes queued unwritten at which send reports back-pressure; a send while over it is dropped. 1024 to 1073741824 bytes. Default 1 MiB; applies to serve engines.
    ws_max_backpressure: int
    # Largest HTTP request head (request line and headers). 64 to 16777216 bytes. Default 16 KiB; applies to serve engines.
    max_header: int
    # Time for a request to arrive once begun, and for the first request (slowloris); in handoff, for the PROXY header (proxy_protocol). 1 ms to 365 days (seconds as a number, or text with a unit such as "250ms"). Default 10 s; applies to serve and handoff engines.
    header_timeout: Union[float, str]
    # Time a connection may sit idle, or not read its replies, before it is closed. 1 ms to 365 days (seconds as a number, or text with a unit such as "250ms"). Default 60 s; applies to serve engines.
    idle_timeout: Union[float, str]
    # Time a handler has to answer; past it the engine answers 504 in its place and drops the late answer. 1 ms to 365 days, or 0 for no deadline (seconds as a number, or text with a unit such as "250ms"). Default 60 s; applies to serve engines.
    reply_timeout: Union[float, str]
    # Requests dispatched per connection per turn before it yields to others. 1 to 65536 requests. Default 32; applies to serve engines.
    budget_frames: int
    # Bytes read per connection per turn before it yields to others. 512 to 1073741824 bytes. Default 256 KiB; applies to serve engines.
    budget_bytes: int
    # Unwritten reply bytes at which a connection stops being read (back-pressure). 1 to 1073741824 bytes. Default 256 KiB; applies to serve engines.
    write_high_water: int
    # Share the I/O workers and the CPU pool per client (deficit round robin): many connections or queued heavy requests from one client get the share of one request while others wait. True or false. Default true; applies to serve engines.
    fair_share: bool
    # HTTP: the header whose value names the client for fair shares and rate limits (an API token); empty: the peer address (or the PROXY header's source). An HTTP header name (none: the address). Default none; applies to serve engines.
    client_key_header: str
    # Requests per second one client may make on average; over it (after rate_burst), 429 with Retry-After (0: no limit). 1 to 16777216 requests per second, or 0 for no limit. Default 0; applies to serve engines.
    rate_limit: int
    # With rate_limit: requests one client may make at once beyond its average rate. 1 to 16777216 requests, or 0 for none. Default 10; applies to serve engines.
    rate_burst: int
    # CoDel on the CPU-pool queue: over it for an interval, heavy requests that waited 2x are refused (503). 100 us to 60 s, or 0 for off (seconds as a number, or text with a unit such as "250ms"). Default off; applies to serve engines.
    codel_target: Union[float, str]
    # CoDel's interval. 1 ms to 600 s (seconds as a number, or text with a unit such as "250ms"). Default 100 ms; applies to serve engines.
    codel_interval: Union[float, str]
    # Adaptive LIFO: once this many heavy jobs wait, new ones run first, newest first. 1 to 16777216 jobs, or 0 for off. Default 0; applies to serve engines.
    lifo_threshold: int
    # How connections are registered with epoll: edge-triggered, or EPOLLONESHOT re-armed per turn. One of edge, oneshot. Default edge; applies to serve engines.
    readiness: Literal["edge", "oneshot"]
    # Connection I/O: epoll readiness, io_uring completions, or auto (io_uring if the start-up probe passes, else epoll). CORRAL_BACKEND sets the default. One of epoll, io_uring, auto. Default epoll; applies to serve engines.
    backend: Literal["epoll", "io_uring", "auto"]
# options:end
