import { EventEmitter } from 'node:events'
import { Socket } from 'node:net'

// The engine options of corral's option table, generated from it (`make generated`);
// a test fails when this block drifts. Durations are milliseconds, or text with a unit.
// options:begin (generated)
export interface EngineOptions {
  /** The concurrency model (see Models). One of single, thread-per-connection, pool, reuseport, stealing. Default stealing; applies to serve and handoff engines. */
  model?: 'single' | 'thread-per-connection' | 'pool' | 'reuseport' | 'stealing'
  /** How requests are framed. One of http, lines, length, raw. Default http; applies to serve engines. */
  protocol?: 'http' | 'lines' | 'length' | 'raw'
  /** Allow wildcard addresses (0.0.0.0, ::): off so nothing listens on every interface by accident. True or false. Default false; applies to serve and handoff engines. */
  allowPublic?: boolean
  /** Listening sockets: one SO_REUSEPORT socket per acceptor, one shared (EPOLLEXCLUSIVE), or one. One of reuseport, shared, single. Default reuseport; applies to serve and handoff engines. */
  listener?: 'reuseport' | 'shared' | 'single'
  /** Acceptor threads (or acceptors inside I/O workers). 1 to 256 threads. Default min(cores, 4); applies to serve and handoff engines. */
  acceptors?: number
  /** I/O worker threads: read, frame, run light requests, write. 1 to 1024 threads. Default cores; applies to serve engines. */
  ioWorkers?: number
  /** Scheduler slice I/O workers ask for (EEVDF, Linux >= 6.12): a waking worker preempts heavy work at once. 100 us to 100 ms, or 0 for the kernel's default (milliseconds as a number, or text with a unit such as "250ms"). Default 100 us; applies to serve engines. */
  ioSlice?: number | string
  /** Run acceptors inside the I/O workers (false: dedicated acceptor threads; measured 38k vs 52k conn/s). True or false. Default true; applies to serve engines. */
  acceptInWorkers?: boolean
  /** TCP_DEFER_ACCEPT: hand over a connection once its first bytes arrived (only where the client speaks first). True or false. Default false; applies to serve and handoff engines. */
  deferAccept?: boolean
  /** TCP_NODELAY on the listeners, inherited by every accepted socket (false: Nagle's algorithm batches small writes). True or false. Default true; applies to serve and handoff engines. */
  tcpNodelay?: boolean
  /** The PROXY protocol header (HAProxy, AWS NLB) each connection starts with: off, v1, v2, or any; the client's address is then the header's (handoff: read off the socket before the host gets it). One of off, v1, v2, any. Default off; applies to serve and handoff engines. */
  proxyProtocol?: 'off' | 'v1' | 'v2' | 'any'
  /** With proxy_protocol: the sources (balancers) allowed to send the header; a connection from any other is refused before it is read. A comma-separated list of addresses or address/prefix blocks (none: no source). Default 127.0.0.0/8,::1; applies to serve and handoff engines. */
  proxyTrusted?: string
  /** TLS: the PEM certificate chain (server certificate first) every served connection presents; empty: plain TCP. Needs tls_key. A path to a PEM certificate chain (empty: no TLS). Default none; applies to serve engines. */
  tlsCert?: string
  /** TLS: the PEM private key (PKCS#8, RSA or EC) of tls_cert's certificate. Needs tls_cert. A path to a PEM private key (empty: no TLS). Default none; applies to serve engines. */
  tlsKey?: string
  /** TLS: more certificate chains, each served to clients asking (SNI) for one of its DNS names; tls_cert serves the rest. A comma-separated list of cert.pem:key.pem pairs (or files holding both). Default none; applies to serve engines. */
  tlsSniCerts?: string
  /** TLS: the cipher suites allowed, by IANA or OpenSSL name, separated by : (empty: rustls's AEAD suites). A :-separated list of cipher suites (IANA or OpenSSL names). Default all; applies to serve engines. */
  tlsCiphers?: string
  /** TLS: the CA certificates client certificates are checked against (mutual TLS); the verified client's name reaches the app. A path to a PEM bundle of CA certificates (empty: no client certificates). Default none; applies to serve engines. */
  tlsClientCa?: string
  /** TLS: ask clients for a certificate from tls_client_ca: none, optional (one without is served) or required. One of none, optional, required. Default required with tls_client_ca, else none; applies to serve engines. */
  tlsClientAuth?: 'none' | 'optional' | 'required'
  /** TLS: the oldest version a client may use, 1.2 or 1.3 (older ones are always refused). One of 1.2, 1.3. Default 1.2; applies to serve engines. */
  tlsMinVersion?: '1.2' | '1.3'
  /** TLS: do handshakes (key exchange, signature: the heaviest step per connection) on the CPU pool, so keep-alive connections on the I/O workers do not wait behind a storm of new ones; inline when false or cpu_threads is 0. True or false. Default true; applies to serve engines. */
  tlsHandshakeOnPool?: boolean
  /** TLS: time for the handshake to complete, from the connection's start; a client slower than that is closed (tls_handshake_failures_abandoned). The first request's header_timeout also counts from the start. 1 ms to 365 days (milliseconds as a number, or text with a unit such as "250ms"). Default 10 s; applies to serve engines. */
  tlsHandshakeTimeout?: number | string
  /** Tell a service manager (NOTIFY_SOCKET) READY=1 once accepting (with MAINPID after a hand-over), RELOADING=1 when a successor takes the listeners, and STOPPING=1 when draining; off for engines embedded among others. True or false. Default false; applies to serve and handoff engines. */
  sdNotify?: boolean
  /** Listen backlog asked of the kernel (clamped to somaxconn; the effective value is in the stats). 1 to 1048576 connections. Default 1024; applies to serve and handoff engines. */
  backlog?: number
  /** Accepts per wake-up before an acceptor yields. 1 to 4096 connections. Default 64; applies to serve and handoff engines. */
  acceptBatch?: number
  /** Accepted connections the host queue holds before acceptors pause (the backlog absorbs). 1 to 16777216 connections. Default 1024; applies to handoff engines. */
  handoffCapacity?: number
  /** Open served connections; at the cap acceptors pause and the backlog absorbs. 1 to 16777216 connections. Default RLIMIT_NOFILE - 64; applies to serve engines. */
  maxConnections?: number
  /** Open served connections from one source address (see per_ip_scope); one over it is closed at once. 1 to 16777216 connections, or 0 for no cap. Default 1024; applies to serve engines. */
  maxConnectionsPerIp?: number
  /** Which sources the per-IP cap counts: public addresses only (loopback, private and link-local are not capped), or all. One of public, all. Default public; applies to serve engines. */
  perIpScope?: 'public' | 'all'
  /** New connections accepted per second over all acceptors; beyond it acceptors pause. 1 to 4294967295 connections per second, or 0 for no limit. Default 0; applies to serve and handoff engines. */
  maxAcceptRate?: number
  /** Requests served on one connection before it is closed, the last reply saying so. 1 to 1099511627776 requests, or 0 for no cap. Default 10000; applies to serve engines. */
  maxRequestsPerConnection?: number
  /** Requests on one connection awaiting replies before it is not read. 1 to 65536 requests. Default 64; applies to serve engines. */
  maxInFlight?: number
  /** Largest Length frame, Lines line, or HTTP body taken whole (streamed bodies: max_body). 1 to 1073741824 bytes. Default 1 MiB; applies to serve engines. */
  maxFrame?: number
  /** Largest streamed HTTP request body: over it, 413 (Content-Length: before the app is called). 1 to 1125899906842624 bytes. Default 1 GiB; applies to serve engines. */
  maxBody?: number
  /** Streamed request body bytes delivered and not yet taken at which reading stops (flow control). 1024 to 1073741824 bytes. Default 64 KiB; applies to serve engines. */
  bodyWindow?: number
  /** Slow-body grace: each such period the client must send min_body_rate x it (at least 1 byte), else 408. 1 ms to 365 days (milliseconds as a number, or text with a unit such as "250ms"). Default 30 s; applies to serve engines. */
  bodyTimeout?: number | string
  /** Slowest rate a streamed body may arrive at over each body_timeout period (0: only the timeout). 1 to 1099511627776 bytes per second, or 0 for only body_timeout. Default 1024; applies to serve engines. */
  minBodyRate?: number
  /** Websockets: upgrade requests are checked and offered to the handler (off: ordinary requests). True or false. Default true; applies to serve engines. */
  ws?: boolean
  /** Largest websocket message after decompression; over it the socket closes with 1009. 1 to 1073741824 bytes. Default 16 MiB; applies to serve engines. */
  wsMaxMessage?: number
  /** Websocket keep-alive: a ping after this long without a frame from the client. 1 ms to 365 days, or 0 for no pings (milliseconds as a number, or text with a unit such as "250ms"). Default 20 s; applies to serve engines. */
  wsPingInterval?: number | string
  /** Time for the client to answer a ping (else close 1011), and to answer a close frame. 1 ms to 365 days (milliseconds as a number, or text with a unit such as "250ms"). Default 20 s; applies to serve engines. */
  wsPingTimeout?: number | string
  /** Websocket with no message either way for this long is closed with 1001 (0: never). 1 ms to 365 days, or 0 for never (milliseconds as a number, or text with a unit such as "250ms"). Default 0; applies to serve engines. */
  wsIdleTimeout?: number | string
  /** Websocket permessage-deflate for clients that ask (each message compressed on its own). True or false. Default true; applies to serve engines. */
  wsDeflate?: boolean
  /** Websocket bytes queued unwritten at which send reports back-pressure; a send while over it is dropped. 1024 to 1073741824 bytes. Default 1 MiB; applies to serve engines. */
  wsMaxBackpressure?: number
  /** Largest HTTP request head (request line and headers). 64 to 16777216 bytes. Default 16 KiB; applies to serve engines. */
  maxHeader?: number
  /** Time for a request to arrive once begun, and for the first request (slowloris); in handoff, for the PROXY header (proxy_protocol). 1 ms to 365 days (milliseconds as a number, or text with a unit such as "250ms"). Default 10 s; applies to serve and handoff engines. */
  headerTimeout?: number | string
  /** Time a connection may sit idle, or not read its replies, before it is closed. 1 ms to 365 days (milliseconds as a number, or text with a unit such as "250ms"). Default 60 s; applies to serve engines. */
  idleTimeout?: number | string
  /** Time a handler has to answer; past it the engine answers 504 in its place and drops the late answer. 1 ms to 365 days, or 0 for no deadline (milliseconds as a number, or text with a unit such as "250ms"). Default 60 s; applies to serve engines. */
  replyTimeout?: number | string
  /** Requests dispatched per connection per turn before it yields to others. 1 to 65536 requests. Default 32; applies to serve engines. */
  budgetFrames?: number
  /** Bytes read per connection per turn before it yields to others. 512 to 1073741824 bytes. Default 256 KiB; applies to serve engines. */
  budgetBytes?: number
  /** Unwritten reply bytes at which a connection stops being read (back-pressure). 1 to 1073741824 bytes. Default 256 KiB; applies to serve engines. */
  writeHighWater?: number
  /** Share the I/O workers and the CPU pool per client (deficit round robin): many connections or queued heavy requests from one client get the share of one request while others wait. True or false. Default true; applies to serve engines. */
  fairShare?: boolean
  /** HTTP: the header whose value names the client for fair shares and rate limits (an API token); empty: the peer address (or the PROXY header's source). An HTTP header name (none: the address). Default none; applies to serve engines. */
  clientKeyHeader?: string
  /** Requests per second one client may make on average; over it (after rate_burst), 429 with Retry-After (0: no limit). 1 to 16777216 requests per second, or 0 for no limit. Default 0; applies to serve engines. */
  rateLimit?: number
  /** With rate_limit: requests one client may make at once beyond its average rate. 1 to 16777216 requests, or 0 for none. Default 10; applies to serve engines. */
  rateBurst?: number
  /** How connections are registered with epoll: edge-triggered, or EPOLLONESHOT re-armed per turn. One of edge, oneshot. Default edge; applies to serve engines. */
  readiness?: 'edge' | 'oneshot'
  /** Connection I/O: epoll readiness, io_uring completions, or auto (io_uring if the start-up probe passes, else epoll). CORRAL_BACKEND sets the default. One of epoll, io_uring, auto. Default epoll; applies to serve engines. */
  backend?: 'epoll' | 'io_uring' | 'auto'
}
// options:end

export interface ListenOptions extends EngineOptions {
  /** Default '127.0.0.1'; wildcards ('0.0.0.0', '::') need allowPublic. */
  host?: string
  /** Default 0: the kernel picks a free port (read it with address()). */
  port?: number
  /**
   * A listening socket to serve instead of binding host/port (socket activation's, see
   * listenFds(), or an inherited one); corral takes a duplicate.
   */
  fd?: number
  /**
   * A Unix socket path where a running engine offers its listening sockets
   * (handOver): they are served instead of binding host/port.
   */
  listenersFrom?: string
}

export interface Address {
  address: string
  port: number
  family: 'IPv4' | 'IPv6'
}

/**
 * A PROXY header (proxyProtocol), read off the socket before the app gets it: the
 * socket's remoteAddress/remotePort/remoteFamily are then its source's, and it is
 * `socket.proxy` on sockets from listen() and threads().
 */
export interface ProxyInfo {
  version: 1 | 2
  /** The client at the balancer; undefined for LOCAL (a health check). */
  source?: Address
  destination?: Address
  /** v2 type-length-values in order, as raw bytes. */
  tlvs: Array<{ type: number; value: Buffer }>
  /** PP2_TYPE_AUTHORITY: the host name the client asked for. */
  authority?: string
}

declare module 'node:net' {
  interface Socket {
    /** Set by corral with proxyProtocol. */
    proxy?: ProxyInfo
  }
}

/**
 * Every metric of corral's metrics list by its camelCase name (the Prometheus names,
 * without `corral_` and `_total`): the engine-wide value, and per-item values in
 * `listeners` and `workers`.
 */
export interface Stats {
  [metric: string]: number | Array<Record<string, number>>
  listeners: Array<Record<string, number>>
  workers: Array<Record<string, number>>
}

export interface OptionInfo {
  name: string
  range: string
  default: string
  doc: string
  applies: 'both' | 'serve' | 'handoff'
}

export interface ShutdownReport {
  connectionsClosed: number
  connectionsAborted: number
  requestsCompleted: number
  requestsAborted: number
  handoffUnclaimed: number
  clean: boolean
}

/** Errors from corral carry a code such as 'CORRAL_BIND' or 'CORRAL_PUBLIC_ADDRESS'. */
export interface CorralError extends Error {
  code: string
}

/**
 * The error a streamed request body fails with (its ReadableStream errors, or
 * `req.buffer()`/`arrayBuffer()` rejects), `message` saying why:
 * - CORRAL_BODY_CLOSED: the client left (or the request was already answered);
 * - CORRAL_BODY_TOO_LARGE: over `maxBody` (the client got 413);
 * - CORRAL_BODY_TOO_SLOW: slower than `minBodyRate` over `bodyTimeout` (408);
 * - CORRAL_BODY_MALFORMED: a broken chunked encoding (400).
 */
export interface BodyError extends CorralError {
  code: 'CORRAL_BODY_CLOSED' | 'CORRAL_BODY_TOO_LARGE' | 'CORRAL_BODY_TOO_SLOW' | 'CORRAL_BODY_MALFORMED'
}

declare class Engine extends EventEmitter {
  address(): Address
  stats(): Stats
  prometheus(): string
  readonly closed: boolean
  /** An open engine keeps the process alive (like net.Server); unref() lets it exit. */
  unref(): this
  ref(): this
  /** Timeout in milliseconds (default 5000). Idempotent. */
  close(options?: { timeout?: number }): Promise<ShutdownReport>
  /**
   * Offers the listening sockets at `path` to a successor (started with
   * listenersFrom: path) and resolves once it serves them; then close() this engine.
   * Rejects with code CORRAL_STATE if none came within `timeout` ms (default 30000).
   */
  handOver(path: string, options?: { timeout?: number }): Promise<void>
  /**
   * Reads the TLS certificates again: `{ cert, key }` (PEM) replace the ones given in
   * `tls`; the files of tlsCert / tlsKey / tlsSniCerts / tlsClientCa are read again
   * either way. New connections get them, open ones keep theirs. Throws (code
   * CORRAL_INVALID_CONFIG, naming the file) on an unusable one; the old ones serve on.
   */
  reloadTls(pem?: { cert: string | Buffer | Uint8Array | Array<string | Buffer | Uint8Array>; key: string | Buffer | Uint8Array }): void
}

export declare class Listener extends Engine implements AsyncIterable<Socket> {
  on(event: 'connection', listener: (socket: Socket) => void): this
  on(event: 'close', listener: (report: ShutdownReport) => void): this
  on(event: 'error', listener: (err: CorralError) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
  [Symbol.asyncIterator](): AsyncIterator<Socket>
}

export interface Request {
  /** HTTP only. */
  method?: string
  /** HTTP only: path and query as sent. */
  url?: string
  /** Lower-cased names; the first value of each. */
  headers: Record<string, string>
  /** name, value, name, value, … as received. */
  rawHeaders: string[]
  /**
   * The frame (raw, lines, length) or the HTTP body, when it came whole. A streamed
   * body (`streamed`) is not here: reading `body` then throws (code CORRAL_STATE);
   * use stream() or buffer().
   */
  readonly body: Buffer
  /**
   * True when the HTTP body is still arriving as the handler runs (it was larger than
   * `bodyWindow`, or not yet in with the head): read it with stream() or buffer(),
   * each pulled from the engine as the handler reads (flow control), up to `maxBody`.
   */
  readonly streamed: boolean
  /** The body's size when known: its length when whole, the Content-Length when streamed (undefined: chunked). */
  readonly bodyLength: number | undefined
  /**
   * The body as a web ReadableStream of Uint8Array pieces (async-iterable:
   * `for await (const chunk of req.stream())`), whole or streamed; once. A failing
   * body errors it with a BodyError. Cancelling it discards the rest.
   */
  stream(): ReadableStream<Uint8Array>
  /** The whole body as one Buffer (reads a streamed one to its end; rejects with a BodyError). */
  buffer(): Promise<Buffer>
  text(): Promise<string>
  json(): Promise<unknown>
  connId: number
  seq: number
  worker: number
  remoteAddress: string
  remotePort: number
  /** What the TLS handshake agreed on (an engine with `tls`), else null. */
  tls: RequestTls | null
}

/** A request's TLS session, in the names of Node's TLSSocket. */
export interface RequestTls {
  /** 'TLSv1.3' or 'TLSv1.2' (`getProtocol()`). */
  protocol: string
  /** The suite's IANA name, e.g. 'TLS_AES_128_GCM_SHA256' (`getCipher().standardName`). */
  cipher: string
  /** The server name the client asked for (SNI), if any. */
  servername: string | null
  /** The protocol agreed by ALPN ('http/1.1'), if the client offered one. */
  alpnProtocol: string | null
  /** The session was resumed (`isSessionReused()`). */
  sessionReused: boolean
  /** The verified client certificate's subject, RFC 4514 ('CN=alice,O=Example'); null without one. */
  clientCertName: string | null
  /** The client's certificate chain as PEM strings, its own first; empty without one. */
  clientCertChain: string[]
}

export type Reply =
  | Buffer
  | Uint8Array
  | string
  | { status?: number; headers?: Record<string, string | string[]>; body?: Buffer | Uint8Array | string }
  | null
  | undefined

export type Handler = (req: Request) => Reply | Promise<Reply>

/**
 * A WHATWG Request (`instanceof Request` holds), built lazily: `method`, `url`,
 * `headers`, the body readers and `signal` (aborted when the client leaves) cost
 * nothing until read; any other member is served by a real Request made on demand.
 * Its `body` is a ReadableStream pulled from the engine as the app reads (a body of
 * any size costs about `bodyWindow`); `arrayBuffer()`, `text()`, `json()` and
 * `formData()` read it whole. A failing body errors them with a BodyError. An app may
 * answer without reading: the engine discards the rest (or closes the connection).
 */
export type FetchHandler = (
  request: globalThis.Request,
  server: Server,
) => globalThis.Response | undefined | void | Promise<globalThis.Response | undefined | void>

/** A websocket message: text arrives as a string, binary as a Buffer. */
export type WebSocketMessage = string | Buffer

/** What a websocket send takes: a string goes as text, bytes as binary. */
export type WebSocketData = string | Buffer | ArrayBufferView | ArrayBuffer | SharedArrayBuffer

/**
 * A websocket accepted with `server.upgrade()` (the shape of Bun's ServerWebSocket).
 * Usable until its close handler; afterwards sends return 0.
 */
export interface ServerWebSocket<T = undefined> {
  /** What `server.upgrade(req, { data })` gave. */
  data: T
  readonly remoteAddress: string
  readonly remotePort: number
  /** The subprotocol agreed ('' for none). */
  readonly protocol: string
  /** 'permessage-deflate' when agreed, else ''. */
  readonly extensions: string
  /** 0 until open, 1 open, 2 closing (close() called), 3 closed. */
  readonly readyState: 0 | 1 | 2 | 3
  /**
   * Sends a string as text, bytes as binary. Returns the bytes put on the wire, -1 when
   * queued past wsMaxBackpressure (wait for the drain handler before sending more), 0
   * when dropped (already over it, or closing or closed).
   */
  send(message: WebSocketData): number
  sendText(text: string): number
  sendBinary(data: Buffer | ArrayBufferView | ArrayBuffer | SharedArrayBuffer): number
  /**
   * Starts the closing handshake (default 1000). A code an endpoint may not send is sent
   * as 1000; the reason is cut to 123 bytes.
   */
  close(code?: number, reason?: string): void
  /** False if already subscribed (or closed). */
  subscribe(topic: string): boolean
  /** False if not subscribed. */
  unsubscribe(topic: string): boolean
  isSubscribed(topic: string): boolean
  /**
   * Sends to every subscriber of `topic` but this socket, encoded (and compressed) once
   * in the engine; returns how many sockets it was queued for.
   */
  publish(topic: string, message: WebSocketData): number
  publishText(topic: string, text: string): number
  publishBinary(topic: string, data: Buffer | ArrayBufferView | ArrayBuffer | SharedArrayBuffer): number
  /** Bytes queued on the connection and not yet written. */
  getBufferedAmount(): number
  /**
   * Stops reading from the client until resume() (TCP then holds the client back).
   * corral's own, for an app that cannot take more yet; independent of the engine's
   * own flow control (it stops reading a socket while 1024 messages or 4 MiB wait for
   * the main thread).
   */
  pause(): void
  resume(): void
}

/**
 * The websocket handlers of a fetch app (Bun's shape). They run on the main thread, in
 * order per socket. One that throws (or rejects) closes its socket with 1011 and is
 * reported on the server's 'error' event (or the console).
 */
export interface WebSocketHandler<T = any> {
  open?(ws: ServerWebSocket<T>): void | Promise<void>
  message(ws: ServerWebSocket<T>, message: WebSocketMessage): void | Promise<void>
  /** A send returned -1 and the backlog is written: send more. */
  drain?(ws: ServerWebSocket<T>): void | Promise<void>
  /**
   * The socket closed: the client's code (1005 for none), the code the server failed it
   * with (1002, 1007, 1009, 1011), or 1006 when the connection ended without a close.
   */
  close?(ws: ServerWebSocket<T>, code: number, reason: string): void | Promise<void>
}

export interface UpgradeOptions<T = any> {
  /** Becomes `ws.data`. */
  data?: T
  /**
   * Headers for the 101 reply; a Sec-WebSocket-Protocol among them chooses the
   * subprotocol (one the client offered).
   */
  headers?: Record<string, string | string[]> | Headers | Iterable<[string, string]>
}

/** PEM contents (not paths), as https.createServer takes them. */
export interface TlsOptions {
  /** The certificate chain, the server's certificate first (a list is joined in order). */
  cert: string | Buffer | Uint8Array | Array<string | Buffer | Uint8Array>
  /** Its private key (PKCS#8, RSA or EC; unencrypted). */
  key: string | Buffer | Uint8Array
  /** With requestCert: the PEM certificates of the CAs that issue client certificates. */
  ca?: string | Buffer | Uint8Array | Array<string | Buffer | Uint8Array>
  /** Ask clients for a certificate issued by `ca` (needs ca). */
  requestCert?: boolean
  /**
   * With requestCert: false serves a client without a certificate (one whose
   * certificate `ca` did not issue is still refused). Default true: one is required.
   */
  rejectUnauthorized?: boolean
  /** The cipher suites allowed, OpenSSL or IANA names separated by ':' (as the tlsCiphers option). */
  ciphers?: string
}

export interface ServeOptions extends ListenOptions {
  /**
   * Serve every connection over TLS with this certificate and key (PEM contents; the
   * tlsCert / tlsKey options name PEM files instead), client certificates checked
   * against `ca` with requestCert. Other https options (passphrase, pfx, SNICallback,
   * minVersion) are refused with CORRAL_INVALID_CONFIG.
   */
  tls?: TlsOptions
  /** corral's own signature: `handler(req)` returns a Reply. */
  handler?: Handler
  /**
   * A fetch-style app instead (`app.fetch` of a Hono app): the Response is written at
   * once for a string or bytes body, streamed with back-pressure for a ReadableStream.
   */
  fetch?: FetchHandler
  /**
   * With fetch: the handlers of the websockets it accepts with `server.upgrade(req)`.
   * The ws* engine options (wsMaxMessage, wsDeflate, wsMaxBackpressure, ...) apply.
   */
  websocket?: WebSocketHandler
  /**
   * With fetch: replace globalThis.Response with corral's light one (default true),
   * which keeps its body as given instead of building a stream, as @hono/node-server
   * does. Every Response member still works; `instanceof Response` holds for both.
   */
  lightResponse?: boolean
  /** Decided natively: HTTP path prefixes, or { pathPrefixes, minBytes }. */
  heavy?: string[] | { pathPrefixes?: string[]; minBytes?: number }
  /** JS worker threads for heavy requests (needs heavyModule; 0..1024). */
  heavyThreads?: number
  /** Path of a module exporting the heavy handler (function, or { handler }), or a fetch app (an object with fetch). */
  heavyModule?: string
}

export interface ThreadsOptions extends ListenOptions {
  /**
   * Path of the app module (CommonJS or ES). Its export (or default): a request
   * listener (an Express app, koa.callback()), a Koa or Fastify app, an http.Server
   * that is not listening, or an object with fetch (Hono).
   */
  module: string
  /** Worker threads, each its own instance of the app (1..1024; default: the cores). */
  threads?: number
  /**
   * Each thread's V8 limits (Node's Worker `resourceLimits`); corral's default keeps
   * the young generation at 16 MiB (Node's: 48), which measured the same Express
   * throughput with 15% less memory.
   */
  resourceLimits?: import('node:worker_threads').ResourceLimits
}

/** One thread slot's share (a type, not an interface: it fits Stats' index signature). */
export type ThreadStats = {
  /** Connections its threads took. */
  connections: number
  /** Connections its current thread holds open. */
  open: number
  /** Requests its threads started. */
  requests: number
  /** Times its thread was replaced after dying. */
  restarts: number
}

export interface ThreadsStats extends Stats {
  threads: ThreadStats[]
  threadRequests: number
}

export declare class Threads extends Engine {
  stats(): ThreadsStats
  /** A thread died (err.thread is its slot) and was replaced. */
  on(event: 'error', listener: (err: Error & { thread?: number }) => void): this
  on(event: 'close', listener: (report: ShutdownReport) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

export declare class Server extends Engine {
  /**
   * Accepts the websocket `request` asks for (one given to this server's fetch) and
   * returns true: what fetch returns is then not sent, and the socket's events go to the
   * `websocket` handlers. False when it is not a websocket request (answer it with a
   * Response). Throws (code CORRAL_INVALID_CONFIG) without `websocket` handlers.
   */
  upgrade<T = undefined>(request: globalThis.Request, options?: UpgradeOptions<T>): boolean
  /**
   * Sends to every websocket subscribed to `topic` (a string as text, bytes as binary),
   * encoded once in the engine; returns how many sockets it was queued for.
   */
  publish(topic: string, message: WebSocketData): number
  /** Websockets subscribed to `topic` now. */
  subscriberCount(topic: string): number
  on(event: 'close', listener: (report: ShutdownReport) => void): this
  on(event: 'error', listener: (err: Error) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

export declare function listen(options?: ListenOptions, onSocket?: (socket: Socket) => void): Listener
export declare function serve(options: ServeOptions): Server
/**
 * Hosts an unchanged app on worker threads fed by corral's acceptors; resolves once
 * every thread loaded it, rejects with the module's error if one cannot. headerTimeout,
 * replyTimeout, idleTimeout, maxRequestsPerConnection and maxHeader become each
 * thread's http.Server headersTimeout, requestTimeout, keepAliveTimeout,
 * maxRequestsPerSocket and maxHeaderSize.
 */
export declare function threads(options: ThreadsOptions): Promise<Threads>
/** The sockets socket activation passed (LISTEN_FDS); the variables are removed. */
export declare function listenFds(): Array<{ fd: number; name?: string }>
/** corral's engine options: camelCase name, values (durations in ms), default, doc, applies. */
export declare function options(): OptionInfo[]
export declare const version: string
