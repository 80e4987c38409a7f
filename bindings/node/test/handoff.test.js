'use strict'
const { test } = require('node:test')
const assert = require('node:assert')
const http = require('node:http')
const net = require('node:net')
const { spawnSync } = require('node:child_process')
const corral = require('..')

function get(port, path = '/') {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode, body }))
      })
      .on('error', reject)
  })
}

test('an existing http.Server takes its connections from corral', async () => {
  const app = http.createServer((req, res) => res.end(`hello ${req.url}`))
  const l = corral.listen({ acceptors: 2 }, (socket) => app.emit('connection', socket))
  const { port } = l.address()
  for (let i = 0; i < 10; i++) assert.deepStrictEqual(await get(port, `/${i}`), { status: 200, body: `hello /${i}` })
  assert.strictEqual(l.stats().accepts, 10)
  const report = await l.close()
  assert.strictEqual(report.handoffUnclaimed, 0)
  assert.ok(l.closed)
})

test('sockets are readable and writable net.Sockets, also as an async iterator', async () => {
  const l = corral.listen()
  const { port } = l.address()
  const clients = [0, 1, 2].map(() => net.connect(port, '127.0.0.1'))
  const got = []
  for await (const socket of l) {
    assert.ok(socket instanceof net.Socket && socket.readable && socket.writable)
    got.push(socket)
    if (got.length === 3) break
  }
  const echoed = got.map(
    (s) =>
      new Promise((resolve) => {
        s.write('x')
        s.end()
        resolve()
      }),
  )
  await Promise.all(echoed)
  await Promise.all(
    clients.map((c) => new Promise((resolve) => c.once('data', (d) => resolve(assert.strictEqual(String(d), 'x'))))),
  )
  clients.forEach((c) => c.destroy())
  await l.close()
})

test('errors carry CORRAL_ codes', async () => {
  assert.throws(
    () => corral.listen({ host: '0.0.0.0' }),
    (e) => e instanceof Error && e.code === 'CORRAL_PUBLIC_ADDRESS' && /allow_public/.test(e.message),
  )
  assert.throws(() => corral.listen({ acceptors: 0 }), { code: 'CORRAL_INVALID_CONFIG' })
  const taken = net.createServer()
  await new Promise((resolve) => taken.listen(0, '127.0.0.1', resolve))
  assert.throws(() => corral.listen({ port: taken.address().port }), { code: 'CORRAL_BIND' })
  taken.close()
  const l = corral.listen()
  await l.close()
  await l.close() // idempotent
  assert.throws(() => l.stats(), { code: 'CORRAL_STATE' })
})

test('the addon loads in worker threads', async () => {
  const { Worker } = require('node:worker_threads')
  const w = new Worker(
    `const c = require(${JSON.stringify(require.resolve('..'))});
     const l = c.listen(); require('node:worker_threads').parentPort.postMessage(l.address().port); l.close()`,
    { eval: true },
  )
  const port = await new Promise((resolve, reject) => w.once('message', resolve).once('error', reject))
  assert.ok(port > 0)
  await new Promise((resolve) => w.once('exit', resolve))
})

test('an open engine keeps the process alive; unref() lets it exit', () => {
  const script = `
    const corral = require(${JSON.stringify(require.resolve('..'))})
    const l = corral.listen()
    setTimeout(() => { console.log('still alive'); l.unref() }, 50)`
  const r = spawnSync(process.execPath, ['-e', script], { timeout: 60000, encoding: 'utf8' })
  assert.strictEqual(r.status, 0, r.stderr)
  assert.strictEqual(r.stdout.trim(), 'still alive')
})

test('a child process exits by itself once its engines are closed', () => {
  const script = `
    const corral = require(${JSON.stringify(require.resolve('..'))})
    const l = corral.listen()
    const s = corral.serve({ handler: () => 'x' })
    Promise.all([l.close(), s.close()]).then(() => console.log('closed'))`
  const r = spawnSync(process.execPath, ['-e', script], { timeout: 60000, encoding: 'utf8' })
  assert.strictEqual(r.status, 0, r.stderr)
  assert.strictEqual(r.stdout.trim(), 'closed')
})

function proxyV2(src, sport, authority) {
  const tlv = Buffer.concat([Buffer.from([0x02, 0, authority.length]), Buffer.from(authority)])
  const addr = Buffer.from([...src, 10, 0, 0, 1, sport >> 8, sport & 255, 0, 80])
  const len = addr.length + tlv.length
  return Buffer.concat([Buffer.from('\r\n\r\n\0\r\nQUIT\n', 'latin1'), Buffer.from([0x21, 0x11, len >> 8, len & 255]), addr, tlv])
}

test('with proxyProtocol the socket reports the client its PROXY header named, and the app reads only its own bytes', async () => {
  const app = http.createServer((req, res) =>
    res.end(`${req.socket.remoteAddress}:${req.socket.remotePort} v${req.socket.proxy.version} ${req.socket.proxy.authority}`),
  )
  const l = corral.listen({ proxyProtocol: 'v2' }, (socket) => app.emit('connection', socket))
  try {
    const c = net.connect(l.address().port, '127.0.0.1')
    c.end(Buffer.concat([proxyV2([203, 0, 113, 9], 5555, 'app.example'), Buffer.from('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')]))
    let text = ''
    for await (const chunk of c) text += chunk
    assert.match(text, /^HTTP\/1\.1 200 OK/)
    assert.ok(text.endsWith('203.0.113.9:5555 v2 app.example'), text)
    // No header: closed unanswered (reset or not: its bytes were never read).
    const bad = net.connect(l.address().port, '127.0.0.1')
    bad.end('GET / HTTP/1.1\r\n\r\n')
    const answer = await new Promise((resolve) => {
      let got = ''
      bad.on('data', (d) => (got += d))
      bad.on('error', () => {})
      bad.on('close', () => resolve(got))
    })
    assert.strictEqual(answer, '')
    assert.strictEqual(l.stats().proxyBadHeaders, 1)
  } finally {
    await l.close()
  }
})
