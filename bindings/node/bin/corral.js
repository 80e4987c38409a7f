#!/usr/bin/env node
'use strict'
// npx corral [--threads N] [--host H] [--port P] [--ENGINE-OPTION VALUE ...] app.js
// Hosts an unchanged app (Express, Koa, Fastify, Hono, a request listener or an
// http.Server) on N worker threads; SIGTERM or SIGINT drains it and exits 0.
const path = require('node:path')
const corral = require('..')

const USAGE = `usage: corral [--threads N] [--host HOST] [--port PORT] [--drain-timeout MS] [--OPTION VALUE ...] APP

APP is a module exporting an Express app or another request listener, a Koa or
Fastify app, an http.Server that is not listening, or an object with fetch()
(Hono). It runs on N worker threads (default: the cores), each its own instance.

  --threads N          worker threads (default: the cores)
  --host HOST          address to listen on (default 127.0.0.1)
  --port PORT          port (default 8000; 0: the kernel picks)
  --drain-timeout MS   on SIGTERM/SIGINT, time for requests in flight (default 10000)
  --fd N               serve this inherited listening socket (socket activation's
                       LISTEN_FDS socket is taken without it)
  --listeners-from P   take the listening sockets a running corral offers at P
  --offer-listeners P  offer them at P to a successor; once it serves, drain and exit 0

Engine options (any of corral's table, as --kebab-case):`

function help() {
  const lines = corral.options().map((o) => {
    const flag = '--' + o.name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())
    return `  ${flag.padEnd(30)} ${o.range} (default ${o.default})`
  })
  return `${USAGE}\n${lines.join('\n')}\n`
}

function fail(message) {
  process.stderr.write(`corral: ${message}\n(corral --help lists the options)\n`)
  process.exit(2)
}

function parse(argv) {
  const table = new Map(corral.options().map((o) => [o.name, o]))
  const opts = { host: '127.0.0.1', port: 8000 }
  let drainTimeout = 10000
  let app = null
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--help' || a === '-h') {
      process.stdout.write(help())
      process.exit(0)
    }
    if (!a.startsWith('--')) {
      if (app !== null) fail(`one app module, not two (${app}, ${a})`)
      app = a
      continue
    }
    const name = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())
    const known = OWN.includes(name) || table.has(name)
    if (!known) fail(`unknown option ${a}`)
    const boolean = table.has(name) && /^True or false/.test(table.get(name).range)
    let value = argv[i + 1]
    if (boolean && (value === undefined || value.startsWith('--'))) value = 'true'
    else i++
    if (value === undefined) fail(`${a} needs a value`)
    let v = value
    if (value === 'true' || value === 'false') v = value === 'true'
    else if (/^-?\d+(\.\d+)?$/.test(value)) v = Number(value)
    if (name === 'drainTimeout') drainTimeout = v
    else if (name === 'offerListeners' || name === 'listenersFrom') opts[name] = String(value)
    else opts[name] = v
  }
  if (app === null) fail('which app? give the path of its module')
  // Socket activation: the service manager's socket (the first) is served, unless --fd names one.
  const activated = corral.listenFds()
  if (activated.length > 0 && opts.fd === undefined) opts.fd = activated[0].fd
  const offer = opts.offerListeners
  delete opts.offerListeners
  return { opts: { sdNotify: true, ...opts, module: path.resolve(app) }, drainTimeout, offer }
}

const OWN = ['threads', 'host', 'port', 'drainTimeout', 'fd', 'listenersFrom', 'offerListeners']

async function main() {
  const { opts, drainTimeout, offer } = parse(process.argv.slice(2))
  let t
  try {
    t = await corral.threads(opts)
  } catch (e) {
    process.stderr.write(`corral: ${e.code ? `${e.message}` : e.stack || e}\n`)
    process.exit(1)
  }
  const { address, port } = t.address()
  const host = address.includes(':') ? `[${address}]` : address
  process.stdout.write(`corral: ${t.stats().threads.length} threads of ${opts.module}, listening on http://${host}:${port}\n`)
  let stopping = false
  const stop = async (signal) => {
    if (stopping) return
    stopping = true
    process.stdout.write(`corral: ${signal}: draining (up to ${drainTimeout} ms)\n`)
    const r = await t.close({ timeout: drainTimeout })
    process.stdout.write(
      `corral: drained: ${r.requestsCompleted} requests, ${r.connectionsClosed} connections closed, ` +
        `${r.connectionsAborted} aborted, ${r.clean ? 'clean' : 'not clean'}\n`,
    )
    process.exit(0)
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  // Offer the sockets until a successor takes them, then drain: a restart without loss.
  while (offer && !stopping) {
    try {
      await t.handOver(offer, { timeout: 3600 * 1000 })
      process.stdout.write('corral: a successor serves the listeners now\n')
      return stop('hand-over')
    } catch (e) {
      if (e.code !== 'CORRAL_STATE') {
        process.stderr.write(`corral: hand-over: ${e.message}\n`)
        return
      }
    }
  }
}

main()
