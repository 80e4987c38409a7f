'use strict'
// The corral side of `corral-bench ws judge`'s Node comparisons, written for corral's
// Bun-style websocket API (corral.serve({ fetch, websocket }) with server.upgrade,
// ws.subscribe and server.publish); it runs once that API exists:
//   node node_fetch.js PORT   (CORRAL_NODE: the path of bindings/node; default ../../bindings/node)
// Routes as node_ws.js: /ws echoes; /broadcast and /pub send every message to every
// client of that route, sender included, as one publish to the route's topic (the
// fan-out stays in the engine, not a loop in JS); GET answers "ok".
const path = require('node:path')
const corral = require(process.env.CORRAL_NODE || path.join(__dirname, '..', '..', 'bindings', 'node'))

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`usage: node node_fetch.js PORT (not ${JSON.stringify(process.argv[2])})`)
  process.exit(2)
}
const ROUTES = new Set(['/ws', '/broadcast', '/pub'])

const server = corral.serve({
  host: '127.0.0.1',
  port,
  fetch(req, server) {
    const route = new URL(req.url).pathname
    if (ROUTES.has(route) && server.upgrade(req, { data: { route } })) return
    if (req.headers.get('upgrade')) return new Response('no such websocket route\n', { status: 404 })
    return new Response('ok\n')
  },
  websocket: {
    open(ws) {
      if (ws.data.route !== '/ws') ws.subscribe(ws.data.route)
    },
    message(ws, msg) {
      if (ws.data.route === '/ws') ws.send(msg)
      else server.publish(ws.data.route, msg)
    },
  },
})
