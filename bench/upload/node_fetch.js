'use strict'
// The fetch app of `corral-bench upload judge` on corral.serve({ fetch }):
//   node node_fetch.js PORT   (CORRAL_NODE: the path of bindings/node; default ../../bindings/node)
// GET: "ok". POST /echo: the whole body back. POST anything else: req.body read to its
// end and discarded; the answer is how many bytes came.
const path = require('node:path')
const corral = require(process.env.CORRAL_NODE || path.join(__dirname, '..', '..', 'bindings', 'node'))

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`usage: node node_fetch.js PORT (not ${JSON.stringify(process.argv[2])})`)
  process.exit(2)
}

async function fetch(req) {
  if (req.method === 'GET') return new Response('ok\n')
  if (new URL(req.url).pathname === '/echo') return new Response(await req.arrayBuffer())
  let n = 0
  if (req.body) {
    const reader = req.body.getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      n += value.byteLength
    }
  }
  return new Response(String(n))
}

corral.serve({ fetch, host: '127.0.0.1', port })
