'use strict'
// corral.threads(): an unchanged app (Express, Koa, Fastify, Hono, any request
// listener or http.Server) on N worker threads, each its own app instance, fed by
// corral's acceptors. Nothing crosses between threads per connection but an fd.
// Websockets (`ws`, Socket.IO) work as on a listening server: Node's parser emits
// 'upgrade', and the socket stays on the thread that took its connection (so a
// broadcast reaches that thread's sockets only, and Socket.IO long-polling, a session
// spread over several connections, needs threads: 1).
const os = require('node:os')
const path = require('node:path')
const { Worker } = require('node:worker_threads')

const binding = require('./native.js')
const { call, optionEntry, withCode } = require('./common.js')

// Engine options each thread's http.Server applies itself (checked against the table):
// headerTimeout → headersTimeout, replyTimeout → requestTimeout, idleTimeout →
// keepAliveTimeout, maxRequestsPerConnection → maxRequestsPerSocket, maxHeader →
// maxHeaderSize.
const SERVER_OPTIONS = ['headerTimeout', 'replyTimeout', 'idleTimeout', 'maxRequestsPerConnection', 'maxHeader']
// The grace an idle connection gets, once draining, for a request on its way.
const IDLE_GRACE_MS = 250
// How long past the drain deadline a thread that has not exited is given.
const STUCK_GRACE_MS = 1000

function optionValue(name, v) {
  return call(() => binding.optionValue(name, v === undefined ? undefined : optionEntry(name, v)))
}

/** Splits the options: what each thread's server applies, and the engine's own. */
function serverLimits(options) {
  const limits = {}
  for (const name of SERVER_OPTIONS) limits[name] = optionValue(name, options[name])
  return limits
}

module.exports = function makeThreads({ Engine, nativeArgs, configError }) {
  class Threads extends Engine {
    constructor() {
      super()
      this._workers = []
      this._ready = []
      this._requestCounts = null
      this._drained = []
    }

    /**
     * The engine's metrics, plus `threads`: per thread, the connections it took, the
     * ones it holds open, its requests, and how many times it was replaced.
     */
    stats() {
      const s = super.stats()
      const slots = call(() => this._native.threadStats())
      s.threads = slots.map((t, i) => ({ ...t, requests: this._requestCounts[i] }))
      s.threadRequests = s.threads.reduce((a, t) => a + t.requests, 0)
      return s
    }

    _spawn(slot, opts) {
      const w = new Worker(path.join(__dirname, 'thread_worker.js'), {
        resourceLimits: opts.resourceLimits,
        workerData: {
          engineId: this._native.id(),
          slot,
          file: opts.file,
          server: opts.limits,
          counters: this._counters,
        },
      })
      this._workers[slot] = w
      let ready = false
      let failure = null
      w.on('message', (m) => {
        if (m.type === 'ready') {
          ready = true
          this._ready[slot].resolve()
        } else if (m.type === 'failed') {
          failure = m.error
        } else if (m.type === 'drained') {
          this._drained[slot] = m
        }
      })
      w.on('error', (e) => (failure = e))
      w.on('exit', (code) => {
        if (this._workers[slot] === w) this._workers[slot] = null
        if (!ready) {
          // A module that cannot load fails threads() once; no respawn loop.
          this._ready[slot].reject(failure || new Error(`thread ${slot} exited with code ${code} before loading ${opts.file}`))
          return
        }
        if (this._closing) return
        // The thread threw or died: its connections closed with it; a new one takes its slot.
        call(() => this._native.detachThread(slot))
        const e = failure || new Error(`thread ${slot} exited with code ${code}`)
        this._report(Object.assign(withCode(e), { thread: slot }), `thread ${slot} died; starting a new one:`)
        this._ready[slot] = deferred()
        this._ready[slot].promise.catch((err) => this._report(err, `thread ${slot} could not restart:`))
        this._spawn(slot, opts)
      })
    }

    _report(e, what) {
      if (this.listenerCount('error') > 0) this.emit('error', e)
      else console.error(`corral: ${what}`, e)
    }

    /**
     * Once the engine stopped accepting, drains every thread's server: requests in
     * flight finish (answered with `connection: close`), idle connections close, and
     * when the time is up what is left is destroyed. One report for engine and threads.
     */
    async _afterClose(report, left) {
      const workers = this._workers.filter(Boolean)
      const exits = workers.map(
        (w) =>
          new Promise((resolve) => {
            w.once('exit', resolve)
            w.postMessage({ type: 'drain', timeout: left, idleGrace: Math.min(IDLE_GRACE_MS, left) })
          }),
      )
      // A thread stuck in JS past the deadline (and a second's grace) is terminated.
      let terminated = 0
      const stuck = setTimeout(() => {
        for (const w of workers) if (w.threadId !== -1 && w.terminate()) terminated++
      }, left + STUCK_GRACE_MS)
      await Promise.all(exits)
      clearTimeout(stuck)
      const drained = this._drained.filter(Boolean)
      const closed = drained.reduce((a, d) => a + d.closed, 0)
      const aborted = drained.reduce((a, d) => a + d.aborted, 0)
      return {
        ...report,
        connectionsClosed: report.connectionsClosed + closed,
        connectionsAborted: report.connectionsAborted + aborted,
        requestsCompleted: this._requestCounts.reduce((a, b) => a + b, 0),
        clean: report.clean && aborted === 0 && terminated === 0,
      }
    }
  }

  function deferred() {
    let resolve, reject
    const promise = new Promise((a, b) => ((resolve = a), (reject = b)))
    return { promise, resolve, reject }
  }

  /**
   * Hosts `module`'s app on `threads` worker threads (default: the cores). Resolves once
   * every thread has loaded it; rejects with the module's error if one cannot.
   */
  async function threads(options) {
    const opts = options || {}
    const { module: mod, threads: n = os.availableParallelism() } = opts
    if (typeof mod !== 'string' || mod === '') throw configError('threads() needs module: the path of the app module')
    if (opts.tls !== undefined) {
      // The threads own the sockets (handoff): TLS there is the kernel's (kTLS), not yet.
      throw configError('threads() does not take tls yet: its threads read the sockets themselves, which needs kernel TLS (kTLS, planned); serve TLS with serve({ tls })')
    }
    if (!Number.isInteger(n) || n < 1 || n > 1024) throw configError(`threads = ${n} is out of range: use 1 to 1024`)
    if (opts.resourceLimits !== undefined && (typeof opts.resourceLimits !== 'object' || opts.resourceLimits === null)) {
      throw configError('resourceLimits must be an object of Worker resource limits (maxYoungGenerationSizeMb, ...)')
    }
    const limits = serverLimits(opts)
    const engineOptions = Object.fromEntries(Object.entries(opts).filter(([k]) => !SERVER_OPTIONS.includes(k)))
    const t = new Threads()
    try {
      t._native = call(() => binding.Engine.threads(nativeArgs(engineOptions), n))
    } catch (e) {
      clearInterval(t._keepAlive)
      throw e
    }
    t._counters = new SharedArrayBuffer(8 * n)
    t._requestCounts = new Float64Array(t._counters)
    // Each thread is a V8 isolate; its young generation (48 MiB at most by default)
    // is most of its memory under load. 16 MiB measured the same throughput for
    // Express with 15% less memory; `resourceLimits` (Node's Worker option) overrides.
    const resourceLimits = { maxYoungGenerationSizeMb: 16, ...(opts.resourceLimits || {}) }
    const spawnOpts = { file: path.resolve(mod), limits, resourceLimits }
    for (let slot = 0; slot < n; slot++) {
      t._ready[slot] = deferred()
      t._spawn(slot, spawnOpts)
    }
    try {
      await Promise.all(t._ready.map((d) => d.promise))
    } catch (e) {
      for (const w of t._workers) if (w) w.terminate()
      await t.close({ timeout: 0 }).catch(() => {})
      throw e
    }
    return t
  }

  return { threads, Threads }
}
