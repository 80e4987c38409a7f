'use strict'
// A worker thread that runs the heavy handler: it attaches to the engine and pulls a
// heavy request only when it is free, so a busy worker takes nothing.
const { workerData } = require('node:worker_threads')
const binding = require('../binding.js')
const { makeRequest, reply, withCode } = require('./common.js')

const mod = require(workerData.module)
const handler = typeof mod === 'function' ? mod : mod.handler || mod.default
if (typeof handler !== 'function') {
  throw new TypeError(`${workerData.module} must export a handler function`)
}
const port = binding.HeavyPort.attach(workerData.engineId)

async function run() {
  for (;;) {
    const r = await port.next()
    if (r == null) return // the engine closed
    try {
      reply(port, r.id, await handler(makeRequest(r)))
    } catch (e) {
      try {
        port.fail(r.id)
      } catch {}
      console.error('corral: heavy handler failed:', withCode(e))
    }
  }
}

run()
