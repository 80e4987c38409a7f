'use strict'
// What an app module exports, made into an http.Server that is not listening: corral
// emits 'connection' on it with each socket it hands over, so Node's own parser runs.
const http = require('node:http')
const { pathToFileURL } = require('node:url')
const { fetchListener } = require('./fetch.js')

/** Loads `file` (CommonJS or ES module) and returns its app export. */
async function load(file) {
  const ns = await import(pathToFileURL(file).href)
  // A CommonJS module's exports are `default`; an ES module may export `default` or `app`.
  let app = ns.default !== undefined ? ns.default : ns.app
  // A CommonJS module may export { app } or { default: app } (compiled TypeScript).
  for (const key of ['default', 'app']) {
    if (app && typeof app === 'object' && !isApp(app) && app[key] !== undefined) app = app[key]
  }
  return await app
}

function isApp(v) {
  return (
    typeof v === 'function' ||
    v instanceof http.Server ||
    (v && typeof v === 'object' && (typeof v.fetch === 'function' || typeof v.callback === 'function' || v.server instanceof http.Server))
  )
}

/**
 * The server for an export: an http.Server (used as is), a Fastify instance (its
 * `server`, once `ready()`), a Koa app (`callback()`), an object with `fetch`
 * (Hono and other fetch-style apps), or a request listener `(req, res)` (Express).
 */
async function serverFor(app, serverOptions, file) {
  if (app instanceof http.Server) {
    if (app.listening) throw new TypeError(`${file} exports an http.Server that is already listening: export it without calling listen()`)
    return app
  }
  if (app && typeof app === 'object' && app.server instanceof http.Server && typeof app.ready === 'function') {
    await app.ready()
    return serverFor(app.server, serverOptions, file)
  }
  if (app && typeof app === 'object' && typeof app.fetch === 'function') {
    return http.createServer(serverOptions, fetchListener((req) => app.fetch(req)))
  }
  if (app && typeof app === 'object' && typeof app.callback === 'function') {
    return http.createServer(serverOptions, app.callback())
  }
  if (typeof app === 'function') return http.createServer(serverOptions, app)
  throw new TypeError(
    `${file} must export a request listener (an Express app, koa.callback()), an http.Server that is not listening, ` +
      `a Fastify or Koa app, or an object with fetch(request) (a Hono app); it exports ${app === null ? 'null' : typeof app}`,
  )
}

module.exports = { load, serverFor }
