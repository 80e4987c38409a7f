'use strict'
const { test } = require('node:test')
const assert = require('node:assert')
const http = require('node:http')
const net = require('node:net')
const path = require('node:path')
const corral = require('..')

function request(port, { path: p = '/', method = 'GET', body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, agent: false }, (res) => {
      let data = ''
      res.on('data', (c) => (data += c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

test('a JS handler on the main thread: objects, strings, Buffers, Promises', async () => {
  const s = corral.serve({
    ioWorkers: 2,
    handler: (req) => {
      if (req.url === '/obj') return { status: 201, headers: { 'x-a': '1' }, body: `${req.method} ${req.body}` }
      if (req.url === '/buf') return Buffer.from('buf')
      if (req.url === '/async') return new Promise((r) => setImmediate(() => r('later')))
      return 'str'
    },
  })
  const { port } = s.address()
  const o = await request(port, { path: '/obj', method: 'POST', body: 'hi' })
  assert.deepStrictEqual([o.status, o.headers['x-a'], o.body], [201, '1', 'POST hi'])
  assert.strictEqual((await request(port, { path: '/buf' })).body, 'buf')
  assert.strictEqual((await request(port, { path: '/async' })).body, 'later')
  assert.strictEqual((await request(port)).body, 'str')
  const st = s.stats()
  assert.strictEqual(st.workerRequests, 4)
  assert.match(s.prometheus(), /corral_replies_total 4/)
  const report = await s.close({ timeout: 2000 })
  assert.ok(report.clean)
  assert.strictEqual(report.requestsCompleted, 4)
})

test('a handler that throws or rejects gets a 500 and the engine keeps serving', async () => {
  const errors = []
  const s = corral.serve({
    handler: (req) => {
      if (req.url === '/throw') throw new Error('thrown')
      if (req.url === '/reject') return Promise.reject(new Error('rejected'))
      return 'ok'
    },
  })
  s.on('error', (e) => errors.push(e.message))
  const { port } = s.address()
  assert.strictEqual((await request(port, { path: '/throw' })).status, 500)
  assert.strictEqual((await request(port, { path: '/reject' })).status, 500)
  assert.strictEqual((await request(port)).body, 'ok')
  assert.deepStrictEqual(errors.sort(), ['rejected', 'thrown'])
  await s.close()
})

test('pipelined requests on one connection come back in order', async () => {
  const s = corral.serve({ handler: (req) => (req.url === '/slow' ? new Promise((r) => setTimeout(() => r('slow'), 20)) : req.url) })
  const { port } = s.address()
  const sock = net.connect(port, '127.0.0.1')
  sock.write('GET /slow HTTP/1.1\r\n\r\nGET /fast HTTP/1.1\r\nConnection: close\r\n\r\n')
  let data = ''
  for await (const c of sock) data += c
  assert.ok(data.indexOf('slow') < data.indexOf('/fast'), data)
  await s.close()
})

test('lines protocol with a native heavy rule on worker threads', async () => {
  const s = corral.serve({
    protocol: 'lines',
    heavy: { minBytes: 5 },
    heavyThreads: 2,
    heavyModule: path.join(__dirname, 'fixtures', 'upper.js'),
    handler: (req) => `light:${req.body}`,
  })
  const { port } = s.address()
  const sock = net.connect(port, '127.0.0.1')
  sock.end('ab\nabcdefgh\nc\n')
  let data = ''
  for await (const c of sock) data += c
  assert.strictEqual(data, 'light:ab\nHEAVY:ABCDEFGH\nlight:c\n')
  await s.close()
})

test('bad options are refused', () => {
  assert.throws(() => corral.serve({ handler: () => '', protocol: 'smtp' }), { code: 'CORRAL_INVALID_CONFIG' })
  assert.throws(() => corral.serve({}), { code: 'CORRAL_INVALID_CONFIG' })
  assert.throws(() => corral.serve({ handler: () => '', heavyThreads: 2 }), { code: 'CORRAL_INVALID_CONFIG' })
  assert.throws(() => corral.serve({ handler: () => '', ioSlice: 0.005 }), { code: 'CORRAL_INVALID_CONFIG', message: /ioSlice/ }) // 5 us: under the 100 us floor
})

test('the backend option, and which backend runs', async () => {
  // auto: io_uring where the probe passes, else epoll with the fallback flag (the log says why).
  const s = corral.serve({ backend: 'auto', ioWorkers: 1, handler: () => 'x' })
  assert.strictEqual((await request(s.address().port)).body, 'x')
  const st = s.stats()
  assert.strictEqual(st.ioUring + st.ioUringFallback, 1)
  await s.close({ timeout: 2000 })
  const e = corral.serve({ backend: 'epoll', handler: () => 'x' })
  assert.strictEqual(e.stats().ioUring, 0)
  await e.close({ timeout: 2000 })
  assert.throws(() => corral.serve({ handler: () => '', backend: 'kqueue' }), {
    code: 'CORRAL_INVALID_CONFIG',
    message: /unknown backend "kqueue": use epoll, io_uring, auto/,
  })
})

test('waiting worker threads hold no thread of the shared pool', async () => {
  // More workers than libuv's default pool (4): file I/O and close() still run.
  const s = corral.serve({
    protocol: 'lines',
    heavy: { minBytes: 1 },
    heavyThreads: 6,
    heavyModule: path.join(__dirname, 'fixtures', 'upper.js'),
  })
  const fs = require('node:fs')
  assert.ok((await fs.promises.readFile(__filename, 'utf8')).length > 0)
  const sock = net.connect(s.address().port, '127.0.0.1')
  sock.end('abc\n')
  let data = ''
  for await (const c of sock) data += c
  assert.strictEqual(data, 'HEAVY:ABC\n')
  const report = await s.close({ timeout: 2000 })
  assert.ok(report.clean)
})
