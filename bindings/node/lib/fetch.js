'use strict'
// Fetch-style apps (`app.fetch(Request) -> Response`, Hono and the like): a request
// that behaves as a WHATWG Request but is built lazily, and the writing of a Response
// through a sink (corral's native responder, or Node's http.ServerResponse).
const { Readable } = require('node:stream')
const { delegate } = require('./common.js')
const { plainParts } = require('./response.js')

const EMPTY = Buffer.alloc(0)
const NO_BODY = new Set(['GET', 'HEAD'])

function unusable() {
  return new TypeError('Body is unusable: it has already been read')
}

/**
 * A Request for a fetch app. `method`, `url`, `headers`, the body readers and `signal`
 * are its own and cost nothing until read (no header copy until `headers` is asked
 * for); any other Request member is served by a real `Request`, made once on demand.
 * `instanceof Request` holds.
 */
class LazyRequest {
  /**
   * @param {object} init `method`, `path` (the request target), `rawHeaders` (name,
   *   value, ...), `host` (for the URL when the request has none), `scheme` ('https' on
   *   a TLS engine; default 'http'), and the body as
   *   `bytes` (a Buffer), `stream` (a Node Readable) or `source` (a NativeBody: a body
   *   still arriving in corral's engine); `signal` (an AbortSignal) or
   *   `makeSignal()` for one on demand.
   */
  constructor(init) {
    this._init = init
    this._url = null
    this._headers = null
    this._used = false
    this._body = undefined
    this._signal = init.signal || null
    this._realRequest = null
  }

  get method() {
    return this._init.method
  }

  /** name, value, ... (from `rawHeaders`, or split from `headerText` on first use). */
  _raw() {
    const init = this._init
    if (init.rawHeaders === undefined) init.rawHeaders = init.headerText ? init.headerText.split('\0') : []
    return init.rawHeaders
  }

  get url() {
    if (this._url === null) {
      const { path } = this._init
      if (/^https?:\/\//i.test(path)) this._url = path
      else this._url = `${this._init.scheme || 'http'}://${this._authority()}${path}`
    }
    return this._url
  }

  /** The Host header (given apart by the engine, or found), else the server's address. */
  _authority() {
    const init = this._init
    if (init.authority) return init.authority
    if (init.authority === undefined) {
      const raw = this._raw()
      for (let i = 0; i + 1 < raw.length; i += 2) {
        if (raw[i].length === 4 && raw[i].toLowerCase() === 'host') return raw[i + 1]
      }
    }
    return init.host
  }

  get headers() {
    if (this._headers === null) {
      const h = new Headers()
      const raw = this._raw()
      for (let i = 0; i + 1 < raw.length; i += 2) {
        try {
          h.append(raw[i], raw[i + 1])
        } catch {
          // A header a WHATWG Headers cannot hold (a byte it forbids) is left out.
        }
      }
      this._headers = h
    }
    return this._headers
  }

  get signal() {
    if (this._signal === null) {
      this._signal = this._init.makeSignal ? this._init.makeSignal(this._init) : new AbortController().signal
    }
    return this._signal
  }

  get bodyUsed() {
    return this._realRequest !== null ? this._realRequest.bodyUsed : this._used
  }

  /** The body as a ReadableStream, null for a GET or HEAD without one. */
  get body() {
    // Once a real Request holds the body, it is the one to read.
    if (this._realRequest !== null) return this._realRequest.body
    if (this._body === undefined) {
      const { bytes, stream, source } = this._init
      if (source) this._body = source.stream()
      else if (stream) this._body = NO_BODY.has(this.method) && stream.readableEnded ? null : Readable.toWeb(stream)
      else if (!bytes || bytes.length === 0) this._body = NO_BODY.has(this.method) ? null : new ReadableStream({ start: (c) => c.close() })
      else
        this._body = new ReadableStream({
          start(c) {
            c.enqueue(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
            c.close()
          },
        })
    }
    return this._body
  }

  /** The whole body as one Buffer. */
  async _bytes() {
    if (this._realRequest !== null) return Buffer.from(await this._realRequest.arrayBuffer())
    if (this._used) throw unusable()
    this._used = true
    const { bytes, stream, source } = this._init
    // A body still arriving is read whole without a stream in between.
    if (this._body === undefined && source) return source.all()
    if (this._body === undefined && !stream) return bytes || EMPTY
    if (this._body === undefined) {
      const parts = []
      for await (const c of stream) parts.push(c)
      return Buffer.concat(parts)
    }
    if (this._body === null) return EMPTY
    const parts = []
    for await (const c of this._body) parts.push(c)
    return Buffer.concat(parts)
  }

  async text() {
    return (await this._bytes()).toString('utf8')
  }

  async json() {
    return JSON.parse(await this.text())
  }

  async arrayBuffer() {
    const b = await this._bytes()
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)
  }

  async bytes() {
    return new Uint8Array(await this.arrayBuffer())
  }

  /** A real WHATWG Request with this request's method, URL, headers, body and signal. */
  _real() {
    if (this._realRequest === null) {
      const init = { method: this.method, headers: this.headers, signal: this.signal }
      if (!NO_BODY.has(this.method)) {
        if (this._used) throw unusable()
        init.body = this.body
        init.duplex = 'half'
      }
      this._realRequest = new Request(this.url, init)
    }
    return this._realRequest
  }
}

// Everything else a Request has is answered by the real one.
delegate(LazyRequest, Request, '_real')

/** A Response's headers as a flat list (name, value, ...), `set-cookie` kept apart. */
function flatResponseHeaders(headers) {
  const out = []
  for (const [k, v] of headers) out.push(k, v)
  return out
}

function toChunk(v) {
  if (Buffer.isBuffer(v)) return v
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  if (typeof v === 'string') return Buffer.from(v)
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  if (v instanceof ArrayBuffer) return Buffer.from(v)
  throw new TypeError(`a response body chunk must be bytes or a string, not ${typeof v}`)
}

/**
 * Writes `response` through `sink`: `whole(status, headers, body)` when the body is
 * known at once, else `start(status, headers, length)` then `write(chunk)` (a Promise
 * while the client is behind, or false once it left), then `end()`; `abort()` when
 * the body fails mid-way (the client sees a cut-off body).
 */
async function respondWith(response, sink) {
  if (!response || typeof response.status !== 'number' || !response.headers) {
    throw new TypeError(`a fetch handler must return a Response, not ${response === null ? 'null' : typeof response}`)
  }
  const plain = plainParts(response)
  if (plain !== null) return sink.whole(plain.status, plain.headers, toChunk(plain.body))
  const status = response.status
  const headers = flatResponseHeaders(response.headers)
  const body = response.body
  if (body === null || body === undefined) return sink.whole(status, headers, EMPTY)
  const reader = body.getReader()
  const first = await reader.read()
  if (first.done) return sink.whole(status, headers, EMPTY)
  const second = await reader.read()
  if (second.done) return sink.whole(status, headers, toChunk(first.value))
  const declared = response.headers.get('content-length')
  sink.start(status, headers, declared === null ? -1 : Number(declared))
  try {
    for (let part = first; !part.done; part = part === first ? second : await reader.read()) {
      let room = sink.write(toChunk(part.value))
      if (room && typeof room.then === 'function') room = await room
      if (room === false) {
        // The client left: stop the producer.
        await reader.cancel().catch(() => {})
        return
      }
    }
  } catch (e) {
    sink.abort()
    throw e
  }
  sink.end()
}

/** A sink over Node's http.ServerResponse. */
function nodeSink(res) {
  return {
    whole(status, headers, body) {
      if (!headers.some((h, i) => i % 2 === 0 && h === 'content-length')) headers.push('content-length', String(body.length))
      res.writeHead(status, headers)
      res.end(body)
    },
    start(status, headers) {
      res.writeHead(status, headers)
    },
    write(chunk) {
      if (res.destroyed) return false
      if (res.write(chunk)) return true
      return new Promise((resolve) => {
        const done = (v) => {
          res.off('drain', onDrain)
          res.off('close', onClose)
          resolve(v)
        }
        const onDrain = () => done(true)
        const onClose = () => done(false)
        res.on('drain', onDrain)
        res.on('close', onClose)
      })
    },
    end() {
      res.end()
    },
    abort() {
      res.destroy()
    },
  }
}

/**
 * A sink over a native serving engine (the main thread's or a heavy port's) for the
 * request `id`; `waitFor(id, kind)` resolves on the engine's "writable" event.
 */
function engineSink(native, id, waitFor) {
  return {
    whole(status, headers, body) {
      native.respond(id, status, headers, body)
    },
    start(status, headers, length) {
      native.startStream(id, status, headers, Number.isInteger(length) && length >= 0 ? length : -1)
    },
    write(chunk) {
      const room = native.streamSend(id, chunk)
      if (room === 0) return true
      if (room === 2) return false
      native.notify(id, 'writable')
      return waitFor(id, 'writable').then(() => true)
    },
    end() {
      native.streamEnd(id)
    },
    abort() {
      native.abort(id)
    },
  }
}

/** An http request listener that serves a fetch app, for an http.Server. */
function fetchListener(fetch) {
  return (req, res) => {
    let controller = null
    const request = new LazyRequest({
      method: req.method,
      path: req.url,
      rawHeaders: req.rawHeaders,
      host: 'localhost',
      stream: req,
      makeSignal() {
        controller = new AbortController()
        res.once('close', () => {
          if (!res.writableFinished) controller.abort()
        })
        return controller.signal
      },
    })
    Promise.resolve()
      .then(() => fetch(request))
      .then((response) => respondWith(response, nodeSink(res)))
      .catch((e) => {
        console.error('corral: fetch handler failed:', e)
        if (!res.headersSent) {
          res.writeHead(500, { 'content-type': 'text/plain', 'content-length': '22' })
          res.end('internal server error\n')
        } else res.destroy()
      })
  }
}

module.exports = { LazyRequest, respondWith, fetchListener, engineSink, toChunk }
