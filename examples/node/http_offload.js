'use strict'
// An existing http.createServer app whose accept moves to corral with a two-line change.
//
//   node http_offload.js [PORT]       serve until Ctrl-C
//   node http_offload.js --self-test  serve, send requests, check, exit
const http = require('node:http')
const corral = require('../../bindings/node') // change 1 of 2 (require('corral') when installed)

const app = http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain')
  res.end(`hello from ${req.url}\n`)
})

const selfTest = process.argv.includes('--self-test')
const port = selfTest ? 0 : Number(process.argv[2] || 8080)
// was: app.listen(port, '127.0.0.1')
const engine = corral.listen({ port }, (socket) => app.emit('connection', socket)) // change 2 of 2
console.log(`http_offload: serving on http://127.0.0.1:${engine.address().port}`)

if (selfTest) {
  const get = (path) =>
    new Promise((resolve, reject) =>
      http
        .get({ host: '127.0.0.1', port: engine.address().port, path, agent: false }, (res) => {
          let body = ''
          res.on('data', (c) => (body += c))
          res.on('end', () => resolve(body))
        })
        .on('error', reject),
    )
  ;(async () => {
    let passed = 0
    for (let i = 0; i < 10; i++) if ((await get(`/${i}`)) === `hello from /${i}\n`) passed++
    await engine.close()
    app.close()
    console.log(`http_offload: ${passed} passed, ${10 - passed} failed`)
    process.exitCode = passed === 10 ? 0 : 1
  })()
}
