'use strict'
// A worker thread that runs the heavy handler. It takes a heavy request only when it is
// free (so a busy worker takes nothing) and is woken through a weak threadsafe function
// when one arrives while it waits; no thread of Node's shared pool is ever blocked.
const { workerData } = require('node:worker_threads')
const binding = require('./native.js')
const { makeRequest, NativeBody, reply, withCode } = require('./common.js')
const { LazyRequest, respondWith } = require('./fetch.js')

const mod = require(workerData.module)
const fetchApp = mod && typeof mod.fetch === 'function' ? mod : mod && mod.default && typeof mod.default.fetch === 'function' ? mod.default : null
const handler = fetchApp ? fetchHandler(fetchApp) : typeof mod === 'function' ? mod : mod.handler || mod.default
if (typeof handler !== 'function') {
  throw new TypeError(`${workerData.module} must export a handler function, or an object with fetch (a Hono app)`)
}

/** A fetch app as a heavy handler: its Response, streamed or not, is answered whole. */
function fetchHandler(app) {
  return async (r) => {
    const request = new LazyRequest({
      method: r.method,
      path: r.url,
      rawHeaders: r.rawHeaders,
      host: 'localhost',
      scheme: workerData.scheme,
      bytes: r.body,
      source: r.streamed ? new NativeBody(port, r.id, () => bodyReady(), r.bodyLength) : undefined,
    })
    const response = await app.fetch(request)
    let out = null
    const parts = []
    await respondWith(response, {
      whole: (status, headers, body) => (out = { status, headers, body }),
      start: (status, headers) => (out = { status, headers, body: null }),
      write: (chunk) => parts.push(chunk) > 0,
      end: () => (out.body = Buffer.concat(parts)),
      abort: () => {},
    })
    return out
  }
}

// Attached to an open engine, this worker stays alive; it lets go once the engine closes.
const keepAlive = setInterval(() => {}, 2 ** 31 - 1)
let busy = false

// A streamed request body that had nothing to read waits for the port's next wake-up
// (readBody asks the engine to call onWork once there is); one request at a time here.
let bodyWaiter = null
function bodyReady() {
  return new Promise((resolve) => (bodyWaiter = resolve))
}
function onWork() {
  if (bodyWaiter !== null) {
    const w = bodyWaiter
    bodyWaiter = null
    w()
  }
  pump()
}

async function pump() {
  if (busy) return
  busy = true
  try {
    for (;;) {
      const next = port.takeOrWait()
      if (next.closed) {
        clearInterval(keepAlive)
        return
      }
      if (!next.request) return // woken again by onWork
      const r = next.request
      try {
        reply(port, r.id, await handler(makeRequest(r, port, () => bodyReady())))
      } catch (e) {
        try {
          port.fail(r.id)
        } catch {}
        console.error('corral: heavy handler failed:', withCode(e))
      }
    }
  } finally {
    busy = false
  }
}

const port = binding.HeavyPort.attach(workerData.engineId, onWork)
pump()
