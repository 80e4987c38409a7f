'use strict'
// One thread of corral.threads(): loads the app, then pulls one connection at a time
// while its loop is free, wraps it as a net.Socket and emits 'connection' on the app's
// http.Server, so Node's own parser (llhttp) and the app run unchanged.
const { workerData, parentPort } = require('node:worker_threads')
const net = require('node:net')
const binding = require('./native.js')
const { load, serverFor } = require('./app.js')
const { adoptSocket } = require('./common.js')

const { engineId, slot, file, server: limits, counters } = workerData
// [requests] for this slot, read by the main thread for stats().
const requestCount = new Float64Array(counters, slot * 8, 1)

let setupConnectionsTracking = null
try {
  // Node tracks connections (for headersTimeout, requestTimeout, closeIdleConnections)
  // from 'listening' on; a server fed by 'connection' never listens, so start it here.
  setupConnectionsTracking = require('_http_server').setupConnectionsTracking
} catch {}

/** The engine's timeouts and limits on the app's server (0: none). */
function applyLimits(server) {
  server.headersTimeout = limits.headerTimeout
  server.requestTimeout = limits.replyTimeout
  server.keepAliveTimeout = limits.idleTimeout
  server.maxRequestsPerSocket = limits.maxRequestsPerConnection
  if (server.maxHeaderSize === undefined) server.maxHeaderSize = limits.maxHeader
  if (typeof setupConnectionsTracking === 'function') setupConnectionsTracking.call(server)
}

async function main() {
  const app = await load(file)
  const server = await serverFor(app, { maxHeaderSize: limits.maxHeader }, file)
  applyLimits(server)

  // Each open connection: requests in progress, and since when it has had none.
  const sockets = new Map()
  let draining = false
  server.prependListener('request', (req, res) => {
    requestCount[0]++
    if (draining) res.setHeader('connection', 'close')
    const st = sockets.get(req.socket)
    if (st) {
      st.busy++
      res.once('close', () => {
        st.busy--
        st.since = Date.now()
      })
    }
  })

  let scheduled = false
  const port = binding.ThreadPort.attach(engineId, slot, () => {
    if (!scheduled) pump()
  })

  // One connection per pull, then the loop runs before the next: a thread busy in JS
  // takes nothing, and the other threads get their share of a burst.
  function pump() {
    scheduled = false
    const next = port.take()
    if (next.closed || !next.conn) return
    const socket = adoptSocket(net, next.conn)
    sockets.set(socket, { busy: 0, since: Date.now() })
    socket.once('close', () => {
      sockets.delete(socket)
      port.released()
      if (draining && sockets.size === 0) finish()
    })
    server.emit('connection', socket)
    scheduled = true
    setImmediate(pump)
  }

  let report = null
  let sweep = null
  let deadline = null
  function finish() {
    if (!report) return
    clearInterval(sweep)
    clearTimeout(deadline)
    parentPort.postMessage({ type: 'drained', slot, ...report })
    report = null
    parentPort.close()
  }

  parentPort.on('message', (m) => {
    if (m.type !== 'drain' || draining) return
    // The engine stopped handing out connections. Requests that come are answered with
    // `connection: close`; a connection idle for the whole grace is closed; at the
    // deadline what is left is destroyed.
    draining = true
    report = { closed: sockets.size, aborted: 0 }
    // Only a connection idle for the whole grace is closed: one whose client just got
    // an answer may have its next request on the way (that one gets `connection: close`).
    sweep = setInterval(() => {
      const now = Date.now()
      for (const [s, st] of sockets) if (st.busy === 0 && now - st.since >= m.idleGrace) s.destroy()
    }, Math.max(1, m.idleGrace / 4))
    deadline = setTimeout(() => {
      report.aborted = sockets.size
      report.closed -= sockets.size
      for (const s of sockets.keys()) s.destroy()
      finish()
    }, m.timeout)
    if (sockets.size === 0) finish()
  })

  parentPort.postMessage({ type: 'ready', slot })
  pump()
}

main().catch((e) => {
  parentPort.postMessage({ type: 'failed', slot, error: e })
})
