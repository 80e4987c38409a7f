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

/** The request object a handler receives; `headers` is built on first use. */
class Request {
  constructor(r) {
    this.method = r.method ?? undefined
    this.url = r.url ?? undefined
    this.rawHeaders = r.rawHeaders
    this.body = r.body || EMPTY
    this.connId = r.connId
    this.seq = r.seq
    this.worker = r.worker
    this.remoteAddress = r.remoteAddress
    this.remotePort = r.remotePort
    this._headers = null
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

function makeRequest(r) {
  return new Request(r)
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

module.exports = { adoptSocket, call, delegate, makeRequest, optionEntry, reply, withCode }
