'use strict'
// A CPU-heavy route served by worker threads: `/spin?us=N` runs spin.js in one of N
// worker threads (each pulls a request only when free); everything else is answered on
// the main thread.
//
//   node heavy_workers.js [PORT] [--heavy-threads N]   serve until Ctrl-C
//   node heavy_workers.js --self-test
const http = require('node:http')
const path = require('node:path')
const corral = require('../../bindings/node')

const args = process.argv.slice(2)
const selfTest = args.includes('--self-test')
const workersAt = args.indexOf('--heavy-threads')
const workers = workersAt >= 0 ? Number(args[workersAt + 1]) : 2
const port = selfTest ? 0 : Number(args.find((a) => /^\d+$/.test(a)) || 8080)

const server = corral.serve({
  port,
  heavy: ['/spin'],
  heavyThreads: workers,
  heavyModule: path.join(__dirname, 'spin.js'),
  handler: () => ({ status: 200, headers: { 'content-type': 'text/plain' }, body: 'hello\n' }),
})
console.log(`heavy_workers: serving on http://127.0.0.1:${server.address().port} with ${workers} heavy threads`)

if (selfTest) {
  const get = (p) =>
    new Promise((resolve, reject) =>
      http
        .get({ host: '127.0.0.1', port: server.address().port, path: p, agent: false }, (res) => {
          let body = ''
          res.on('data', (c) => (body += c))
          res.on('end', () => resolve(body))
        })
        .on('error', reject),
    )
  ;(async () => {
    const results = await Promise.all([...Array(8)].map(() => get('/spin?us=2000')))
    let passed = results.filter((b) => b === 'spun 2000 us\n').length
    if ((await get('/')) === 'hello\n') passed++
    await server.close()
    console.log(`heavy_workers: ${passed} passed, ${9 - passed} failed`)
    process.exitCode = passed === 9 ? 0 : 1
  })()
} else {
  process.on('SIGINT', () => server.close().then(() => process.exit(0)))
}
