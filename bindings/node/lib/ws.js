'use strict'
// Websockets for fetch-style apps served on the main thread, in the shape Bun made
// common: `fetch(req, server)` calls `server.upgrade(req, { data, headers })`, and one
// `websocket: { open, message, drain, close }` object gets every socket's events.
//
// The engine's I/O workers queue the events natively; the serving engine's wake-up
// drains them here with one native call per batch (`takeWsEvents`). Each socket's JS
// object (and its `data`) lives in `sockets`, keyed by the engine's socket id, from the
// upgrade until its close event; the native side forgets the socket at its close, so a
// handle kept past it sends nothing (send returns 0).

/** `ws.readyState` values, as a browser WebSocket's. */
const CONNECTING = 0
const OPEN = 1
const CLOSING = 2
const CLOSED = 3

// Event kinds from the native side (src/ws.rs).
const EV_OPEN = 0
const EV_TEXT = 1
const EV_BINARY = 2
const EV_DRAIN = 3
const EV_CLOSE = 4

/** Bytes to send as binary: a Buffer as is, other views and ArrayBuffers wrapped (no copy). */
function bytesOf(v) {
  if (Buffer.isBuffer(v)) return v
  if (ArrayBuffer.isView(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength)
  if (v instanceof ArrayBuffer || v instanceof SharedArrayBuffer) return Buffer.from(v)
  throw new TypeError(`a websocket message must be a string, a Buffer, a typed array or an ArrayBuffer, not ${v === null ? 'null' : typeof v}`)
}

/** A message as the native calls take it: `[text, undefined]` or `[undefined, bytes]`. */
function parts(msg) {
  return typeof msg === 'string' ? [msg, undefined] : [undefined, bytesOf(msg)]
}

/**
 * A websocket accepted with `server.upgrade()` (Bun's ServerWebSocket): send, close,
 * topics, back-pressure. Usable until its close event; afterwards sends return 0.
 */
class ServerWebSocket {
  constructor(native, info, data) {
    this._native = native
    this._id = info.id
    this.data = data
    this.remoteAddress = info.remoteAddress
    this.remotePort = info.remotePort
    /** The subprotocol agreed ('' for none). */
    this.protocol = info.protocol || ''
    /** 'permessage-deflate' when agreed, else ''. */
    this.extensions = info.deflate ? 'permessage-deflate' : ''
    this.readyState = CONNECTING
  }

  /**
   * Sends a string as text, bytes as binary. Returns the bytes put on the wire, -1 when
   * queued past wsMaxBackpressure (wait for the handler's drain), 0 when dropped (the
   * socket was already over it, or is closing or closed).
   */
  send(msg) {
    return typeof msg === 'string' ? this._native.wsSendText(this._id, msg) : this._native.wsSend(this._id, bytesOf(msg))
  }

  sendText(text) {
    return this._native.wsSendText(this._id, String(text))
  }

  sendBinary(bytes) {
    return this._native.wsSend(this._id, bytesOf(bytes))
  }

  /**
   * Starts the closing handshake (default 1000). A code the protocol does not allow an
   * endpoint to send is sent as 1000; the reason is cut to 123 bytes.
   */
  close(code = 1000, reason = '') {
    if (this.readyState >= CLOSING) return
    this.readyState = CLOSING
    this._native.wsClose(this._id, Number.isInteger(code) && code >= 0 && code <= 65535 ? code : 1000, String(reason))
  }

  /** Subscribes to `topic`; false if already subscribed (or closed). */
  subscribe(topic) {
    return this._native.wsSubscribe(this._id, String(topic))
  }

  unsubscribe(topic) {
    return this._native.wsUnsubscribe(this._id, String(topic))
  }

  isSubscribed(topic) {
    return this._native.wsIsSubscribed(this._id, String(topic))
  }

  /**
   * Sends `msg` to every subscriber of `topic` but this socket, encoded (and compressed)
   * once in the engine; returns how many sockets it was queued for.
   */
  publish(topic, msg) {
    return this._native.wsPublish(this._id, String(topic), ...parts(msg))
  }

  publishText(topic, text) {
    return this.publish(topic, String(text))
  }

  publishBinary(topic, bytes) {
    return this.publish(topic, bytesOf(bytes))
  }

  /** Bytes queued on the connection and not yet written. */
  getBufferedAmount() {
    return this._native.wsBufferedAmount(this._id)
  }

  /**
   * Stops reading from the client until resume() (corral's own; TCP holds the client
   * back): for an app that cannot take more yet, such as one writing messages to a slow
   * store. Messages already read still arrive.
   */
  pause() {
    this._native.wsPause(this._id, true)
  }

  resume() {
    this._native.wsPause(this._id, false)
  }
}

/** Splits upgrade headers into the subprotocol (Sec-WebSocket-Protocol) and the rest, flat. */
function upgradeHeaders(headers) {
  let protocol
  const flat = []
  if (headers == null) return { protocol, flat }
  if (typeof headers !== 'object') throw new TypeError(`upgrade headers must be an object, a Headers or [name, value] pairs, not ${typeof headers}`)
  const entries = typeof headers[Symbol.iterator] === 'function' ? headers : Object.entries(headers)
  for (const [name, value] of entries) {
    if (String(name).toLowerCase() === 'sec-websocket-protocol') protocol = String(value)
    else for (const one of Array.isArray(value) ? value : [value]) flat.push(String(name), String(one))
  }
  return { protocol, flat }
}

const HANDLERS = ['open', 'message', 'drain', 'close']

/** Checks `websocket: { open, message, drain, close }` (message required, as Bun's). */
function checkHandlers(ws, configError) {
  if (ws === undefined) return null
  if (ws === null || typeof ws !== 'object') throw configError(`websocket must be an object of handlers ({ open, message, drain, close }), not ${ws === null ? 'null' : typeof ws}`)
  if (typeof ws.message !== 'function') throw configError('websocket needs a message(ws, message) handler')
  for (const h of HANDLERS) {
    if (ws[h] !== undefined && typeof ws[h] !== 'function') throw configError(`websocket.${h} must be a function, not ${typeof ws[h]}`)
  }
  return ws
}

/**
 * A serving engine's websockets: the upgrade, and the events' delivery to the app's
 * handlers. `report(err, what)` tells the app of a handler's failure.
 */
class WsHub {
  constructor(native, handlers, report) {
    this._native = native
    this._handlers = handlers
    this._report = report
    this._sockets = new Map()
  }

  /** Accepts `init`'s websocket (see Server#upgrade); true when it was one. */
  upgrade(init, opts) {
    const { protocol, flat } = upgradeHeaders(opts.headers)
    const info = this._native.wsUpgrade(init.id, protocol, flat)
    if (info === null) return false
    init.upgraded = true
    this._sockets.set(info.id, new ServerWebSocket(this._native, info, opts.data))
    return true
  }

  /** Runs every waiting event's handler, in order. */
  drain() {
    const events = this._native.takeWsEvents()
    try {
      for (let i = 0; i < events.length; i++) {
        const ev = events[i]
        const ws = this._sockets.get(ev.id)
        if (ws !== undefined) this._deliver(ws, ev)
      }
    } finally {
      // The batch's sends wake corral's workers once, now (held since takeWsEvents).
      this._native.releaseWakes()
    }
  }

  _deliver(ws, ev) {
    const h = this._handlers
    switch (ev.kind) {
      case EV_OPEN:
        ws.readyState = OPEN
        if (h.open) this._run(ws, 'open', () => h.open(ws))
        break
      case EV_TEXT:
        this._run(ws, 'message', () => h.message(ws, ev.text))
        break
      case EV_BINARY:
        this._run(ws, 'message', () => h.message(ws, ev.data))
        break
      case EV_DRAIN:
        if (h.drain) this._run(ws, 'drain', () => h.drain(ws))
        break
      case EV_CLOSE:
        ws.readyState = CLOSED
        this._sockets.delete(ev.id)
        if (h.close) this._run(ws, 'close', () => h.close(ws, ev.code, ev.text || ''))
        break
    }
  }

  /** Calls a handler; one that throws or rejects closes its socket with 1011. */
  _run(ws, what, fn) {
    let out
    try {
      out = fn()
    } catch (e) {
      return this._failed(ws, what, e)
    }
    if (out && typeof out.then === 'function') out.then(undefined, (e) => this._failed(ws, what, e))
  }

  _failed(ws, what, e) {
    if (ws.readyState < CLOSING) ws.close(1011, 'server error')
    this._report(e, `websocket ${what} handler failed:`)
  }
}

module.exports = { ServerWebSocket, WsHub, checkHandlers, bytesOf, CONNECTING, OPEN, CLOSING, CLOSED }
