'use strict'
// require('corral'): hand accept and heavy work from a single-threaded Node app to
// corral's threads. The native addon (found by lib/native.js: an explicit path, the
// local build, or the platform package corral-linux-x64-gnu) is private; this file is
// the API.
const { EventEmitter } = require('node:events')
const net = require('node:net')
const path = require('node:path')
const { Worker } = require('node:worker_threads')

const binding = require('./lib/native.js')
const { adoptSocket, call, makeRequest, NativeBody, optionEntry, reply, withCode } = require('./lib/common.js')
const { LazyRequest, respondWith, engineSink } = require('./lib/fetch.js')
const { Response: LightResponse, plainParts } = require('./lib/response.js')
const { WsHub, checkHandlers, bytesOf: toBytes } = require('./lib/ws.js')

const BATCH = 256

// Keys of an entry point that are not engine options; every other key is looked up in
// corral's option table natively (an unknown one is refused with CORRAL_INVALID_CONFIG).
const ENTRY_KEYS = new Set(['host', 'port', 'handler', 'fetch', 'websocket', 'heavy', 'heavyThreads', 'heavyModule', 'module', 'threads', 'resourceLimits', 'lightResponse', 'fd', 'listenersFrom', 'tls'])

// https.createServer's TLS options corral cannot honour, and why: refused, never
// ignored (a server that skipped what one asks is not the server configured).
const TLS_LATER = {
  passphrase: 'encrypted private keys are not read: give the key unencrypted (openssl pkey -in key.pem -out plain.pem)',
  pfx: 'PKCS#12 (pfx) is not read: give cert and key as PEM',
  minVersion: "set the engine option tlsMinVersion ('1.2' or '1.3') instead",
  SNICallback: 'corral chooses the certificate by SNI itself: name the extra certificate files in the engine option tlsSniCerts',
}
const TLS_KEYS = new Set(['cert', 'key', 'ca', 'requestCert', 'rejectUnauthorized', 'ciphers'])

/** PEM text as bytes: a string, a Buffer or other byte view, or (cert only) a list of them. */
function pemBytes(name, v, list) {
  if (typeof v === 'string') return Buffer.from(v)
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  if (list && Array.isArray(v) && v.length > 0) return Buffer.concat(v.map((p) => Buffer.concat([pemBytes(name, p, false), Buffer.from('\n')])))
  throw configError(`tls.${name} must be PEM contents (a string or a Buffer${list ? ', or a list of them' : ''}), not ${Array.isArray(v) ? 'this list' : typeof v}; read a file with fs.readFileSync(path)`)
}

/** `tls: { cert, key, ca, requestCert, rejectUnauthorized }` (https.createServer's names:
 * PEM contents, not paths) checked; `ciphers` is taken by nativeArgs. */
function tlsArgs(tls) {
  if (tls === undefined) return undefined
  if (tls === null || typeof tls !== 'object') throw configError(`tls must be an object { cert, key } of PEM contents, not ${tls === null ? 'null' : typeof tls}`)
  for (const k of Object.keys(tls)) {
    if (tls[k] === undefined || TLS_KEYS.has(k)) continue
    const why = TLS_LATER[k] || 'not an option corral knows: tls takes cert, key, ca, requestCert, rejectUnauthorized and ciphers'
    throw configError(`tls.${k}: ${why}`)
  }
  if (tls.cert === undefined || tls.key === undefined) throw configError('tls needs both cert (the PEM certificate chain) and key (its private key)')
  return { cert: pemBytes('cert', tls.cert, true), key: pemBytes('key', tls.key, false), ...clientAuth(tls) }
}

/** `ca` + `requestCert` (+ `rejectUnauthorized`) as corral's client certificate check:
 * required, or optional with rejectUnauthorized: false (stricter than Node: a
 * certificate the CAs did not issue is still refused, never handed to the app). */
function clientAuth(tls) {
  for (const k of ['requestCert', 'rejectUnauthorized']) {
    if (tls[k] !== undefined && typeof tls[k] !== 'boolean') throw configError(`tls.${k} must be true or false, not ${typeof tls[k]}`)
  }
  if (!tls.requestCert) {
    if (tls.ca !== undefined) throw configError('tls.ca without requestCert: true asks for no client certificate (as in Node): set requestCert, or leave out ca')
    if (tls.rejectUnauthorized === false) throw configError('tls.rejectUnauthorized has no effect without requestCert: true: leave it out')
    return {}
  }
  if (tls.ca === undefined) throw configError('tls.requestCert needs ca: the PEM certificates of the CAs that issue client certificates (corral does not trust the system roots for clients)')
  return { ca: pemBytes('ca', tls.ca, true), clientAuth: tls.rejectUnauthorized === false ? 'optional' : 'required' }
}

function configError(message) {
  return Object.assign(new TypeError(message), { code: 'CORRAL_INVALID_CONFIG' })
}

/** The native arguments: where to listen, and each engine option with its JS type. */
function nativeArgs(o, extra = {}) {
  if (o.host !== undefined && typeof o.host !== 'string') throw configError(`host must be a string, not ${typeof o.host}`)
  if (o.port !== undefined && typeof o.port !== 'number') throw configError(`port must be a number, not ${typeof o.port}`)
  const options = []
  for (const [name, v] of Object.entries(o)) {
    if (ENTRY_KEYS.has(name) || v === undefined) continue
    options.push(optionEntry(name, v))
  }
  if (o.tls && o.tls.ciphers !== undefined) {
    if (o.tlsCiphers !== undefined) throw configError('the cipher suites are given twice, as tls.ciphers and tlsCiphers: give them once')
    if (typeof o.tls.ciphers !== 'string') throw configError(`tls.ciphers must be a string of ':'-separated suite names, not ${typeof o.tls.ciphers}`)
    options.push(optionEntry('tlsCiphers', o.tls.ciphers))
  }
  if (o.fd !== undefined && !Number.isInteger(o.fd)) throw configError(`fd must be an integer descriptor, not ${typeof o.fd}`)
  if (o.listenersFrom !== undefined && typeof o.listenersFrom !== 'string') {
    throw configError(`listenersFrom must be a Unix socket path, not ${typeof o.listenersFrom}`)
  }
  return { host: o.host, port: o.port, options, fd: o.fd, listenersFrom: o.listenersFrom, tls: tlsArgs(o.tls), ...extra }
}

/** The metrics list as an object: engine-wide values by name, per-item ones in lists. */
function statsObject(metrics) {
  const out = { listeners: [], workers: [] }
  for (const m of metrics) {
    out[m.name] = m.total
    if (m.scope === 'engine') continue
    const list = m.scope === 'listener' ? out.listeners : out.workers
    m.items.forEach((v, i) => {
      if (!list[i]) list[i] = {}
      list[i][m.name] = v
    })
  }
  return out
}

class Engine extends EventEmitter {
  constructor() {
    super()
    this._native = null
    this._closing = null
    // An open engine keeps the process alive, like a listening net.Server; the native
    // wake-ups are weak, so once closed (or unref()'d) nothing of corral's does.
    this._keepAlive = setInterval(() => {}, 2 ** 31 - 1)
  }

  /** Lets the process exit even while this engine is open (as net.Server#unref). */
  unref() {
    this._keepAlive.unref()
    return this
  }

  ref() {
    if (!this._closing) this._keepAlive.ref()
    return this
  }

  /** `{ address, port, family }` of the listening socket. */
  address() {
    return call(() => this._native.address())
  }

  /**
   * Every metric of corral's metrics list (the same names as the Prometheus text, in
   * camelCase): engine-wide values by name, per-listener and per-worker ones in
   * `listeners` and `workers`.
   */
  stats() {
    return statsObject(call(() => this._native.stats()))
  }

  prometheus() {
    return call(() => this._native.prometheus())
  }

  get closed() {
    return this._closing !== null
  }

  /**
   * Offers the listening sockets to a successor (an engine started with
   * `listenersFrom: path`, usually in the next process) and resolves once it serves
   * them; then close() this engine: it drains while the successor takes every new
   * connection, so a restart loses none. Rejects (and this engine serves on) if no
   * successor came within `timeout` ms (code CORRAL_STATE) or it failed.
   */
  handOver(path, { timeout = 30000 } = {}) {
    if (typeof path !== 'string') return Promise.reject(configError(`handOver needs a Unix socket path, not ${typeof path}`))
    return call(() => this._native.handOver(path, timeout)).catch((e) => {
      throw withCode(e)
    })
  }

  /**
   * Reads the TLS certificates again: `{ cert, key }` (PEM contents, as in `tls`)
   * replace the ones given at start; the files the options name (tlsCert, tlsKey,
   * tlsSniCerts, tlsClientCa) are read again either way. New connections get them,
   * open ones keep theirs. Throws CORRAL_INVALID_CONFIG naming what is unusable, and
   * the certificates before serve on.
   */
  reloadTls(pem) {
    if (pem === undefined) return call(() => this._native.reloadTls(undefined, undefined))
    if (pem === null || typeof pem !== 'object' || pem.cert === undefined || pem.key === undefined) {
      throw configError('reloadTls takes { cert, key } (PEM contents), or nothing to read the files again')
    }
    const cert = pemBytes('cert', pem.cert, true)
    const key = pemBytes('key', pem.key, false)
    return call(() => this._native.reloadTls(cert, key))
  }

  /**
   * Stops accepting, lets in-flight work finish for up to `timeout` ms, closes the
   * rest; resolves with the shutdown report. Emits 'close'. Idempotent.
   */
  close({ timeout = 5000 } = {}) {
    if (!this._closing) {
      clearInterval(this._keepAlive)
      const started = Date.now()
      this._closing = this._native.close(timeout).then(
        async (engineReport) => {
          const report = await this._afterClose(engineReport, Math.max(0, timeout - (Date.now() - started)))
          this._closed()
          this.emit('close', report)
          return report
        },
        (e) => {
          throw withCode(e)
        },
      )
    }
    return this._closing
  }

  /** What a subclass still drains once the native engine is closed (`left` ms remain). */
  async _afterClose(report, left) {
    return report
  }

  _closed() {}
}

/** A handoff engine: emits 'connection' with a net.Socket; an async iterator of them. */
class Listener extends Engine {
  _drain() {
    if (this._closing) return
    for (let batch = this._native.take(BATCH); batch.length > 0; batch = this._native.take(BATCH)) {
      for (const a of batch) {
        this.emit('connection', adoptSocket(net, a))
      }
    }
  }

  async *[Symbol.asyncIterator]() {
    const queue = []
    let wake = null
    const push = (s) => {
      queue.push(s)
      if (wake) wake()
    }
    const end = () => wake && wake()
    this.on('connection', push)
    this.once('close', end)
    try {
      for (;;) {
        while (queue.length) yield queue.shift()
        if (this._closing) return
        await new Promise((resolve) => (wake = resolve))
        wake = null
      }
    } finally {
      this.off('connection', push)
      this.off('close', end)
    }
  }
}

/**
 * Starts a handoff engine. `onSocket(socket)` (optional) is a 'connection' listener;
 * an existing `http.Server` takes the sockets with `socket => server.emit('connection', socket)`.
 */
function listen(options = {}, onSocket) {
  const native = nativeArgs(options || {})
  const l = new Listener()
  if (onSocket) l.on('connection', onSocket)
  try {
    l._native = call(() => binding.Engine.handoff(native, () => l._drain()))
  } catch (e) {
    clearInterval(l._keepAlive)
    throw e
  }
  return l
}

/** A serving engine: requests reach the handler on this thread in batches. */
class Server extends Engine {
  _drain() {
    // Events come through the same wake-up as requests; taken every time (once any
    // can come: fetch apps, or a streamed body seen), so the native list is always
    // emptied and its next event wakes this thread again.
    if (this._fetch || this._bodyEvents) {
      for (const ev of this._native.takeEvents()) {
        const key = `${ev.kind} ${ev.id}`
        const w = this._waiting.get(key)
        if (w) {
          this._waiting.delete(key)
          w()
        }
      }
    }
    if (this._ws) this._ws.drain()
    if (this._fetch) {
      for (let batch = this._native.takeFetch(BATCH); batch.length > 0; batch = this._native.takeFetch(BATCH)) {
        for (const r of batch) this._handleFetch(r)
      }
      return
    }
    for (let batch = this._native.takeRequests(BATCH); batch.length > 0; batch = this._native.takeRequests(BATCH)) {
      for (const r of batch) this._handle(r)
    }
  }

  /** Resolves on the engine's `kind` event for request `id` (asked with notify, or readBody). */
  _waitFor(id, kind) {
    return new Promise((resolve) => this._waiting.set(`${kind} ${id}`, resolve))
  }

  /** A request body still arriving, read through this engine. */
  _bodyOf(r) {
    this._bodyEvents = true
    return new NativeBody(this._native, r.id, this._waitBody(r.id), r.bodyLength)
  }

  _waitBody(id) {
    return () => this._waitFor(id, 'body')
  }

  _handleFetch(r) {
    const init = {
      id: r.id,
      method: r.method,
      path: r.url,
      authority: r.authority,
      headerText: r.headers,
      host: this._host,
      scheme: this._scheme,
      bytes: r.body,
      source: r.streamed ? this._bodyOf(r) : undefined,
      makeSignal: this._makeSignal,
      signalled: false,
      websocket: r.websocket === true,
      owner: this,
      upgraded: false,
    }
    let out
    try {
      out = this._fetch(new LazyRequest(init), this)
      // Upgraded to a websocket: what the handler returns is not sent.
      if (init.upgraded) return this._fetched(init)
      // A Response ready at once with a plain body (Hono's usual): answered now, with
      // no promise in between.
      if (out && typeof out.then !== 'function' && this._answerPlain(r.id, out)) return this._fetched(init)
    } catch (e) {
      return this._fetchFailed(r, e, init)
    }
    Promise.resolve(out)
      .then((response) => {
        if (init.upgraded) return
        if (!this._answerPlain(r.id, response)) {
          return respondWith(response, engineSink(this._native, r.id, (id, kind) => this._waitFor(id, kind)))
        }
      })
      .then(
        () => this._fetched(init),
        (e) => this._fetchFailed(r, e, init),
      )
  }

  /** Answers with a light Response's string or bytes body at once; false otherwise. */
  _answerPlain(id, response) {
    const p = plainParts(response)
    if (p === null) return false
    if (typeof p.body === 'string') this._native.respondHttpText(id, p.status, p.headers, p.body)
    else this._native.respond(id, p.status, p.headers, p.body)
    return true
  }

  /** The request is answered: its client-left watch, if the app asked, is done. */
  _fetched(init) {
    if (init.signalled) this._waiting.delete(`gone ${init.id}`)
  }

  /** A request's `signal`, made when the app first reads it: aborted when the client leaves. */
  _signalFor(init) {
    init.signalled = true
    const c = new AbortController()
    this._native.notify(init.id, 'gone')
    this._waitFor(init.id, 'gone').then(() => c.abort())
    return c.signal
  }

  _fetchFailed(r, e, init) {
    if (init === undefined || init.signalled) this._waiting.delete(`gone ${r.id}`)
    this._waiting.delete(`writable ${r.id}`)
    this._waiting.delete(`body ${r.id}`)
    // An upgraded request has no reply to abort: its websocket stays open.
    if (init === undefined || !init.upgraded) {
      try {
        this._native.abort(r.id)
      } catch {}
    }
    this._report(e, 'fetch handler failed:')
  }

  _report(e, what) {
    if (this.listenerCount('error') > 0) this.emit('error', withCode(e))
    else console.error(`corral: ${what}`, e)
  }

  /**
   * Accepts the websocket `req` asks for (a request given to this server's fetch) and
   * returns true; then what fetch returns is not sent, and the socket's events go to
   * the `websocket` handlers, with `opts.data` as `ws.data`. `opts.headers` go on the
   * 101 (a Sec-WebSocket-Protocol among them chooses the subprotocol). False when
   * `req` is not a websocket request (answer it with a Response).
   */
  upgrade(req, opts = {}) {
    const init = req && req._init
    if (!init || init.owner !== this || !init.websocket || init.upgraded) return false
    if (this._ws === null) {
      throw configError('server.upgrade() needs serve({ fetch, websocket: { message(ws, msg) {...} } }): no websocket handlers were given')
    }
    return call(() => this._ws.upgrade(init, opts || {}))
  }

  /**
   * Sends `msg` (a string as text, bytes as binary) to every websocket subscribed to
   * `topic`, encoded once in the engine; returns how many sockets it was queued for.
   */
  publish(topic, msg) {
    if (typeof msg === 'string') return call(() => this._native.publish(String(topic), msg, undefined))
    return call(() => this._native.publish(String(topic), undefined, toBytes(msg)))
  }

  /** Websockets subscribed to `topic` now. */
  subscriberCount(topic) {
    return call(() => this._native.subscribers(String(topic)))
  }

  _handle(r) {
    let out
    if (r.streamed) this._bodyEvents = true
    try {
      out = this._handler(makeRequest(r, this._native, this._waitBodyFor))
    } catch (e) {
      return this._failed(r, e)
    }
    if (out && typeof out.then === 'function') {
      out.then(
        (v) => this._reply(r, v),
        (e) => this._failed(r, e),
      )
    } else {
      this._reply(r, out)
    }
  }

  _reply(r, v) {
    try {
      reply(this._native, r.id, v)
    } catch (e) {
      this._failed(r, e)
    }
  }

  _failed(r, e) {
    try {
      this._native.fail(r.id)
    } catch {}
    // The client got an error reply; the engine keeps serving.
    this._report(e, 'handler failed:')
  }

  _closed() {
    for (const w of this._workers || []) w.unref()
  }
}

function heavyRule(heavy) {
  if (heavy == null) return {}
  if (Array.isArray(heavy)) return { heavyPrefixes: heavy.map(String) }
  return {
    heavyPrefixes: (heavy.pathPrefixes || []).map(String),
    heavyMinBytes: heavy.minBytes,
  }
}

/**
 * Starts a serving engine. `handler(req)` returns a Buffer or string, an HTTP
 * `{ status, headers, body }`, null (close the connection), or a Promise of one.
 * `heavy` (path prefixes, or `{ pathPrefixes, minBytes }`) is decided natively;
 * with `heavyThreads: N, heavyModule: path`, heavy requests run in N worker threads
 * that each pull one when free (the module exports the heavy handler). A fetch app
 * (`fetch(request, server)`) may accept websockets with `server.upgrade(request)`; their
 * events go to `websocket: { open, message, drain, close }` (see lib/ws.js). Every other
 * key is an engine option of corral's table (`ioWorkers`, `idleTimeout` in ms,
 * `wsMaxMessage`, ...). `tls: { cert, key }` (PEM contents, as https.createServer takes
 * them) serves every connection over TLS; `tlsCert` / `tlsKey` name PEM files instead.
 */
function serve(options) {
  const opts = options || {}
  const { handler, fetch, heavyThreads = 0, heavyModule: mod, heavy } = opts
  if (!Number.isInteger(heavyThreads) || heavyThreads < 0 || heavyThreads > 1024) {
    throw configError(`heavyThreads = ${heavyThreads} is out of range: use 0 to 1024`)
  }
  if (handler !== undefined && fetch !== undefined) throw configError('serve() takes a handler or a fetch function, not both')
  if (fetch !== undefined && typeof fetch !== 'function') throw configError(`fetch must be a function, not ${typeof fetch}`)
  const websocket = checkHandlers(opts.websocket, configError)
  if (websocket !== null && typeof fetch !== 'function') {
    throw configError('websocket needs a fetch function: it accepts websockets with server.upgrade(req)')
  }
  if (typeof handler !== 'function' && typeof fetch !== 'function' && !(heavyThreads > 0)) {
    throw configError('serve() needs a handler function (or fetch, for a fetch-style app such as Hono)')
  }
  if (heavyThreads > 0 && typeof mod !== 'string') {
    throw configError('heavyThreads needs heavyModule: the path of the heavy handler module')
  }
  const native = nativeArgs(opts, { ...heavyRule(heavy), heavyToWorkers: heavyThreads > 0 })
  const s = new Server()
  s._handler = handler || (() => ({ status: 404, body: 'not found\n' }))
  s._fetch = fetch || null
  s._makeSignal = (init) => s._signalFor(init)
  s._bodyEvents = false
  s._waitBodyFor = (id) => s._waitFor(id, 'body')
  // Node's Response builds a stream per body; the light one (see lib/response.js) lets
  // corral write a string or bytes body at once. Process-wide, as @hono/node-server does.
  if (fetch && opts.lightResponse !== false) globalThis.Response = LightResponse
  s._waiting = new Map()
  s._ws = null
  try {
    s._native = call(() => binding.Engine.serve(native, () => s._drain()))
  } catch (e) {
    clearInterval(s._keepAlive)
    throw e
  }
  if (websocket !== null) s._ws = new WsHub(s._native, websocket, (e, what) => s._report(e, what))
  // The URL's authority when a request has no Host header.
  const where = s._native.address()
  s._host = where.family === 'IPv6' ? `[${where.address}]:${where.port}` : `${where.address}:${where.port}`
  // Every connection of a TLS engine is TLS: the scheme of every request's URL.
  s._scheme = native.tls || opts.tlsCert ? 'https' : 'http'
  s._workers = []
  for (let i = 0; i < heavyThreads; i++) {
    const w = new Worker(path.join(__dirname, 'lib', 'heavy_worker.js'), {
      workerData: { engineId: s._native.id(), module: path.resolve(mod), scheme: s._scheme },
    })
    w.on('error', (e) => (s.listenerCount('error') > 0 ? s.emit('error', e) : console.error('corral:', e)))
    w.unref() // the process exits by itself once the engine is closed
    s._workers.push(w)
  }
  return s
}

const { threads, Threads } = require('./lib/threads.js')({ Engine, nativeArgs, configError })

/**
 * The sockets a service manager passed (socket activation: LISTEN_FDS, from fd 3,
 * when LISTEN_PID is this process) as `{ fd, name }`; the variables are removed so
 * child processes do not take them again. Give one to an entry point as `fd`.
 */
function listenFds() {
  return call(() => binding.listenFds())
}

/** corral's engine options: camelCase name, values (durations in ms), default, doc, applies. */
function options() {
  return binding.optionTable()
}

module.exports = { listen, serve, threads, options, listenFds, Listener, Server, Threads, version: require('./package.json').version }
