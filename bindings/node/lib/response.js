'use strict'
// A light Response for fetch apps served by corral.serve({ fetch }): Node's own
// (undici's) builds a ReadableStream for every body at construction, which costs more
// than the rest of a small request together. This one keeps what it was given and
// answers `status`, `statusText`, `ok` and `headers` itself; corral writes a string or
// bytes body straight out. Any other member (body, text(), clone(), ...) is served by a
// real Response made once on demand, so an app that reads its own responses still works.
// `instanceof Response` holds for both kinds.

const { delegate } = require('./common.js')

const NodeResponse = globalThis.Response
const kReal = Symbol('corral.realResponse')
const kBody = Symbol('corral.body')
const kInit = Symbol('corral.init')
const kHeaders = Symbol('corral.headers')

const PLAIN = (v) => typeof v === 'string' || v instanceof Uint8Array || v instanceof ArrayBuffer || v == null

class Response {
  constructor(body = null, init = undefined) {
    this[kBody] = body
    this[kInit] = init || {}
    this[kHeaders] = null
    this[kReal] = null
    const status = this[kInit].status
    if (status !== undefined && !(Number.isInteger(status) && status >= 200 && status <= 599)) {
      // Node's own check and message.
      this._real()
    }
  }

  static [Symbol.hasInstance](v) {
    return v instanceof NodeResponse
  }

  static json(data, init) {
    return NodeResponse.json(data, init)
  }

  static error() {
    return NodeResponse.error()
  }

  static redirect(url, status) {
    return NodeResponse.redirect(url, status)
  }

  get status() {
    return this[kReal] ? this[kReal].status : (this[kInit].status ?? 200)
  }

  get statusText() {
    return this[kReal] ? this[kReal].statusText : (this[kInit].statusText ?? '')
  }

  get ok() {
    const s = this.status
    return s >= 200 && s <= 299
  }

  get headers() {
    if (this[kReal]) return this[kReal].headers
    if (this[kHeaders] === null) {
      const h = new Headers(this[kInit].headers)
      if (typeof this[kBody] === 'string' && !h.has('content-type')) h.set('content-type', 'text/plain;charset=UTF-8')
      this[kHeaders] = h
    }
    return this[kHeaders]
  }

  _real() {
    if (this[kReal] === null) {
      const init = this[kHeaders] ? { ...this[kInit], headers: this[kHeaders] } : this[kInit]
      this[kReal] = new NodeResponse(this[kBody], init)
    }
    return this[kReal]
  }
}
delegate(Response, NodeResponse, '_real')

/**
 * What corral can write at once without a stream: `{ status, headers (flat), body }`
 * for a light Response whose body is a string, bytes or nothing; otherwise null.
 */
function plainParts(r) {
  if (!(r && r[kInit] !== undefined) || r[kReal] !== null || !PLAIN(r[kBody])) return null
  const body = r[kBody]
  const out = []
  let typed = false
  const add = (k, v) => {
    out.push(k, String(v))
    if (!typed && k.length === 12 && k.toLowerCase() === 'content-type') typed = true
  }
  const given = r[kHeaders] !== null ? r[kHeaders] : r[kInit].headers
  if (given == null) {
    // nothing
  } else if (given instanceof Headers || Array.isArray(given)) {
    for (const [k, v] of given) add(k, v)
  } else if (typeof given === 'object') {
    for (const k of Object.keys(given)) add(k, given[k])
  } else return null
  if (typeof body === 'string' && !typed) out.push('content-type', 'text/plain;charset=UTF-8')
  let bytes
  if (body == null) bytes = Buffer.alloc(0)
  else if (typeof body === 'string') bytes = body
  else if (body instanceof ArrayBuffer) bytes = Buffer.from(body)
  else bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  return { status: r.status, headers: out, body: bytes }
}

module.exports = { Response, NodeResponse, plainParts }
