'use strict'
// Conversions shared by the main thread and the heavy worker threads.

/** Moves the `[CORRAL_…]` prefix of a native error into `err.code`. */
function withCode(err) {
  const m = /^\[(CORRAL_[A-Z_]+)\] /.exec(err && err.message)
  if (m) {
    err.code = m[1]
    err.message = err.message.slice(m[0].length)
  }
  return err
}

/** An engine option as the native side takes it: its name, and its value by JS type. */
function optionEntry(name, v) {
  return {
    name,
    boolean: typeof v === 'boolean' ? v : undefined,
    number: typeof v === 'number' ? v : undefined,
    text: typeof v === 'string' ? v : undefined,
    typeName: v === null ? 'null' : typeof v,
  }
}

/** Calls a native function, giving its errors their `code`. */
function call(fn) {
  try {
    return fn()
  } catch (e) {
    throw withCode(e)
  }
}

const EMPTY = Buffer.alloc(0)

// The most body bytes one native read takes (the engine's window is usually less).
const READ_MAX = 1 << 20

/** The Error for a body that will not complete: `code` CORRAL_BODY_…, the engine's sentence. */
function bodyError(code, message) {
  return Object.assign(new Error(message), { code })
}

/**
 * A request body still arriving, read from the engine only when asked: `target`
 * (the main thread's engine or a heavy port) has `readBody(id, max)` and
 * `discardBody(id)`; `wait()` resolves once a read that found nothing may be retried.
 * One reader: `next()`, `stream()` (a web ReadableStream, pulled), `all()`.
 */
class NativeBody {
  constructor(target, id, wait, length) {
    this._target = target
    this._id = id
    this._wait = wait
    this.length = length
    this._done = false
    this._error = null
    this._stream = null
    this._used = false
  }

  /** The next piece (a Buffer), or null at the end; rejects with a coded Error if the body fails. */
  async next() {
    for (;;) {
      if (this._error) throw this._error
      if (this._done) return null
      const r = this._target.readBody(this._id, READ_MAX)
      if (r.error) this._error = bodyError(r.errorCode, r.error)
      else if (r.done) this._done = true
      if (r.data) return r.data
      if (this._error || this._done) continue
      await this._wait()
    }
  }

  /** The rest of the body as one Buffer. */
  async all() {
    const parts = []
    for (let c = await this.next(); c !== null; c = await this.next()) parts.push(c)
    return parts.length === 1 ? parts[0] : Buffer.concat(parts)
  }

  /** Stops reading: the engine discards the rest. */
  discard() {
    if (this._done || this._error) return
    this._error = bodyError('CORRAL_BODY_CLOSED', 'the request body was cancelled by its reader')
    try {
      this._target.discardBody(this._id)
    } catch {}
  }

  /** The body as a web ReadableStream of Uint8Array pieces, pulled from the engine. */
  stream() {
    if (this._stream === null) {
      this._stream = new ReadableStream({
        pull: async (c) => {
          const chunk = await this.next()
          if (chunk === null) c.close()
          else c.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
        },
        cancel: () => this.discard(),
      })
    }
    return this._stream
  }
}

/** A request's TLS facts with each absent one null, as index.d.ts says (napi leaves them out). */
function tlsFacts(t) {
  t.servername ??= null
  t.alpnProtocol ??= null
  t.clientCertName ??= null
  return t
}

function bodyUnusable() {
  return new TypeError('Body is unusable: it has already been read')
}

/**
 * The request object a handler receives; `headers` is built on first use. A body that
 * came whole is `body` (a Buffer); one still arriving (`streamed`) is read with
 * `stream()` (a ReadableStream, also an async iterator) or `buffer()`/`text()`/`json()`.
 */
class Request {
  constructor(r, source) {
    this.method = r.method ?? undefined
    this.url = r.url ?? undefined
    this.rawHeaders = r.rawHeaders
    this._body = r.body || EMPTY
    this._source = source || null
    this._read = false
    this.streamed = this._source !== null
    this.connId = r.connId
    this.seq = r.seq
    this.worker = r.worker
    this.remoteAddress = r.remoteAddress
    this.remotePort = r.remotePort
    // Over TLS: { protocol, cipher, servername, alpnProtocol, sessionReused,
    // clientCertName, clientCertChain }; else null.
    this.tls = r.tls ? tlsFacts(r.tls) : null
    this._headers = null
  }

  /** The whole body (a Buffer). Throws for a streamed body, which only stream() or buffer() can read. */
  get body() {
    if (this._source !== null) {
      throw Object.assign(
        new TypeError(
          'this request\'s body is streamed (larger than bodyWindow, or not yet in when the request came): ' +
            'read it with req.stream() or await req.buffer() / req.text() / req.json()',
        ),
        { code: 'CORRAL_STATE' },
      )
    }
    return this._body
  }

  /** The body's length in bytes when known (Content-Length), else undefined. */
  get bodyLength() {
    return this._source !== null ? (this._source.length ?? undefined) : this._body.length
  }

  /** The body as a web ReadableStream of Uint8Array (async-iterable); once. */
  stream() {
    if (this._read) throw bodyUnusable()
    this._read = true
    if (this._source !== null) return this._source.stream()
    const bytes = this._body
    return new ReadableStream({
      start(c) {
        if (bytes.length > 0) c.enqueue(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
        c.close()
      },
    })
  }

  /** The whole body as one Buffer, streamed or not; once. */
  async buffer() {
    if (this._source === null) return this._body
    if (this._read) throw bodyUnusable()
    this._read = true
    return this._source.all()
  }

  async text() {
    return (await this.buffer()).toString('utf8')
  }

  async json() {
    return JSON.parse(await this.text())
  }

  /** Lower-cased names; the first value of each. */
  get headers() {
    if (this._headers === null) {
      const h = {}
      for (let i = 0; i + 1 < this.rawHeaders.length; i += 2) {
        const name = this.rawHeaders[i].toLowerCase()
        if (!(name in h)) h[name] = this.rawHeaders[i + 1]
      }
      this._headers = h
    }
    return this._headers
  }
}

/**
 * The handler's request for a native one; `target` and `wait(id)` read a streamed body
 * (see NativeBody).
 */
function makeRequest(r, target, wait) {
  if (!r.streamed) return new Request(r)
  return new Request(r, new NativeBody(target, r.id, () => wait(r.id), r.bodyLength))
}

function toBuffer(v) {
  if (Buffer.isBuffer(v)) return v
  if (typeof v === 'string') return Buffer.from(v)
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  throw new TypeError(`a body must be a Buffer, Uint8Array or string, not ${typeof v}`)
}

function flatHeaders(headers) {
  // Already flat: name, value, ...
  if (Array.isArray(headers)) return headers.map(String)
  const out = []
  for (const [k, v] of Object.entries(headers || {})) {
    for (const one of Array.isArray(v) ? v : [v]) out.push(String(k), String(one))
  }
  return out
}

/** Sends a handler's return value through `target` (an engine or a heavy port). */
function reply(target, id, v) {
  if (v == null) {
    target.closeConnection ? target.closeConnection(id) : target.fail(id)
  } else if (typeof v === 'string') {
    target.respondText(id, v)
  } else if (v instanceof Uint8Array) {
    target.respondBytes(id, toBuffer(v))
  } else if (typeof v === 'object') {
    const { status = 200, headers = {}, body = '' } = v
    target.respond(id, status, flatHeaders(headers), toBuffer(body))
  } else {
    throw new TypeError(`a handler must return a Buffer, string, {status, headers, body} or null, not ${typeof v}`)
  }
}

/** Defines on `Light.prototype` every member of `Real.prototype` it lacks, served by `this[realOf]()`. */
function delegate(Light, Real, realOf) {
  for (const key of Reflect.ownKeys(Real.prototype)) {
    if (key === 'constructor' || Object.prototype.hasOwnProperty.call(Light.prototype, key)) continue
    const d = Object.getOwnPropertyDescriptor(Real.prototype, key)
    if (d.get) {
      Object.defineProperty(Light.prototype, key, {
        get() {
          return this[realOf]()[key]
        },
        configurable: true,
      })
    } else if (typeof d.value === 'function') {
      Object.defineProperty(Light.prototype, key, {
        value(...args) {
          return this[realOf]()[key](...args)
        },
        writable: true,
        configurable: true,
      })
    }
  }
  Object.setPrototypeOf(Light.prototype, Real.prototype)
}

/**
 * A net.Socket for a connection corral accepted. With a PROXY header, the socket
 * reports the client the header named as remoteAddress/remotePort/remoteFamily (what
 * Express's req.ip and loggers read) and carries the header as `socket.proxy`.
 */
function adoptSocket(net, a) {
  const socket = new net.Socket({ fd: a.fd, readable: true, writable: true })
  if (a.proxy) {
    socket.proxy = a.proxy
    const r = a.remote
    Object.defineProperties(socket, {
      remoteAddress: { value: r.address, configurable: true },
      remotePort: { value: r.port, configurable: true },
      remoteFamily: { value: r.family, configurable: true },
    })
  }
  return socket
}

module.exports = { adoptSocket, bodyError, call, delegate, makeRequest, NativeBody, optionEntry, reply, withCode }
