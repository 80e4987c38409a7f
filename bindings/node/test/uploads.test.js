'use strict'
// Uploads of any size: request bodies stream into fetch apps (req.body, a ReadableStream)
// and corral.serve handlers (req.stream()), pulled from the engine with its window as
// the flow control; whole-body readers still work; early replies, clients that leave,
// max_body, 100-continue and slow bodies; and corral.threads, where Node's own
// IncomingMessage streams to Express with multer, busboy and a plain pipeline.
const { test } = require('node:test')
const assert = require('node:assert')
const crypto = require('node:crypto')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const readline = require('node:readline')
const { spawn } = require('node:child_process')
const { once } = require('node:events')
const corral = require('..')

const FIXTURES = path.join(__dirname, 'fixtures', 'uploads')
const MiB = 1 << 20
const BIG = 200 * MiB

/** Polls `check` until it is truthy, up to `ms`; fails with `what` otherwise. */
async function until(check, what, ms = 10000) {
  const end = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Sends `total` bytes (a pattern, written with backpressure) as one request body. */
function upload(port, { path: p = '/', total, headers = {}, chunked = false, piece = MiB }) {
  return new Promise((resolve, reject) => {
    const h = { ...headers }
    if (!chunked) h['content-length'] = String(total)
    const req = http.request({ host: '127.0.0.1', port, path: p, method: 'POST', headers: h, agent: false }, (res) => {
      const parts = []
      res.on('data', (c) => parts.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    const block = Buffer.alloc(piece, 'u')
    let sent = 0
    const more = () => {
      while (sent < total) {
        const n = Math.min(block.length, total - sent)
        sent += n
        if (!req.write(n === block.length ? block : block.subarray(0, n))) return req.once('drain', more)
      }
      req.end()
    }
    more()
  })
}

function get(port, p) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
        const parts = []
        res.on('data', (c) => parts.push(c))
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString() }))
      })
      .on('error', reject)
  })
}

/** A raw connection: write bytes, read until `done(text)` says the answer is whole. */
function raw(port) {
  const s = net.connect(port, '127.0.0.1')
  let buf = ''
  let closed = false
  s.setEncoding('latin1')
  s.on('data', (d) => (buf += d))
  s.on('error', () => {}) // a reset after an early reply is expected in some tests
  s.on('close', () => (closed = true))
  return {
    socket: s,
    send(text) {
      s.write(text)
    },
    get text() {
      return buf
    },
    get closed() {
      return closed
    },
    async wait(done, what) {
      return until(() => done(buf) || closed, what)
    },
  }
}

/** Starts fixtures/uploads/server.js in a child; its port and a stop(). */
async function child(mode) {
  const p = spawn(process.execPath, [path.join(FIXTURES, 'server.js'), mode], { stdio: ['pipe', 'pipe', 'inherit'] })
  const [line] = await once(readline.createInterface({ input: p.stdout }), 'line')
  const { port } = JSON.parse(line)
  return {
    port,
    async memory() {
      return JSON.parse((await get(port, '/memory')).body)
    },
    async stop() {
      p.stdin.end()
      const [code] = await once(p, 'exit')
      assert.strictEqual(code, 0)
    },
  }
}

test('a fetch app streams a 200 MB upload with for await, in bounded memory', async () => {
  const server = await child('fetch')
  try {
    const before = await server.memory()
    const res = await upload(server.port, { path: '/count', total: BIG })
    assert.strictEqual(res.status, 200, res.body)
    const got = JSON.parse(res.body)
    assert.strictEqual(got.bytes, BIG)
    assert.ok(got.pieces > 1, 'the body came in pieces')
    const after = await server.memory()
    const growth = after.peak - before.rss
    assert.ok(growth < 100 * MiB, `peak memory grew by ${(growth / MiB).toFixed(1)} MiB during a 200 MiB upload`)
    assert.ok(after.stats.bodiesStreamed >= 1)
    assert.ok(after.stats.bodyBytesIn >= BIG)
  } finally {
    await server.stop()
  }
})

test('a fetch app reads whole bodies: arrayBuffer (5 MB), text, json, formData, and small ones on the fast path', async () => {
  const s = corral.serve({
    ioWorkers: 1,
    async fetch(req) {
      const url = new URL(req.url)
      if (url.pathname === '/hash') {
        const b = Buffer.from(await req.arrayBuffer())
        return Response.json({ size: b.length, sha: crypto.createHash('sha256').update(b).digest('hex') })
      }
      if (url.pathname === '/json') return Response.json({ n: (await req.json()).items.length })
      if (url.pathname === '/text') return new Response((await req.text()).toUpperCase())
      if (url.pathname === '/form') {
        const form = await req.formData()
        const file = form.get('file')
        return Response.json({ note: form.get('note'), name: file.name, size: file.size })
      }
      return new Response('?', { status: 404 })
    },
  })
  try {
    const { port } = s.address()
    const five = crypto.randomBytes(5 * MiB)
    const res = await fetch(`http://127.0.0.1:${port}/hash`, { method: 'POST', body: five })
    assert.deepStrictEqual(await res.json(), { size: five.length, sha: crypto.createHash('sha256').update(five).digest('hex') })
    const items = Array.from({ length: 100000 }, (_, i) => ({ i, name: `item ${i}` }))
    const json = await fetch(`http://127.0.0.1:${port}/json`, { method: 'POST', body: JSON.stringify({ items }) })
    assert.deepStrictEqual(await json.json(), { n: items.length })
    // Small: in whole with its head, so no stream.
    assert.strictEqual(await (await fetch(`http://127.0.0.1:${port}/text`, { method: 'POST', body: 'small' })).text(), 'SMALL')
    const form = new FormData()
    form.set('note', 'a 3 MB file')
    form.set('file', new Blob([crypto.randomBytes(3 * MiB)]), 'data.bin')
    const f = await fetch(`http://127.0.0.1:${port}/form`, { method: 'POST', body: form })
    assert.deepStrictEqual(await f.json(), { note: 'a 3 MB file', name: 'data.bin', size: 3 * MiB })
    assert.ok(s.stats().bodiesStreamed >= 3)
  } finally {
    await s.close()
  }
})

test('a fetch app echoes a streamed upload back as a streamed reply', async () => {
  const s = corral.serve({ ioWorkers: 1, fetch: (req) => new Response(req.body, { headers: { 'content-type': 'application/octet-stream' } }) })
  try {
    const { port } = s.address()
    const body = crypto.randomBytes(3 * MiB)
    const res = await fetch(`http://127.0.0.1:${port}/echo`, { method: 'POST', body })
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(body))
  } finally {
    await s.close()
  }
})

test('a serve handler streams a body with req.stream(), reads one with req.buffer(), and is told req.body is not whole', async () => {
  const errors = []
  const s = corral.serve({
    ioWorkers: 1,
    async handler(req) {
      if (req.url === '/stream') {
        let bytes = 0
        const hash = crypto.createHash('sha256')
        for await (const chunk of req.stream()) {
          bytes += chunk.byteLength
          hash.update(chunk)
        }
        return { body: JSON.stringify({ streamed: req.streamed, bytes, sha: hash.digest('hex') }) }
      }
      if (req.url === '/buffer') return { body: String((await req.buffer()).length) }
      if (req.url === '/whole') return { body: JSON.stringify({ streamed: req.streamed, body: req.body.toString(), length: req.bodyLength }) }
      return { body: String(req.body.length) } // a streamed body: throws
    },
  })
  s.on('error', (e) => errors.push(e))
  try {
    const { port } = s.address()
    const data = crypto.randomBytes(20 * MiB)
    // Chunked (no Content-Length): streamed as it comes.
    const res = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/stream', method: 'POST', agent: false }, (r) => {
        const parts = []
        r.on('data', (c) => parts.push(c))
        r.on('end', () => resolve({ status: r.statusCode, body: Buffer.concat(parts).toString() }))
      })
      req.on('error', reject)
      for (let i = 0; i < data.length; i += 256 * 1024) req.write(data.subarray(i, i + 256 * 1024))
      req.end()
    })
    assert.strictEqual(res.status, 200)
    assert.deepStrictEqual(JSON.parse(res.body), { streamed: true, bytes: data.length, sha: crypto.createHash('sha256').update(data).digest('hex') })
    assert.strictEqual((await upload(port, { path: '/buffer', total: 6 * MiB })).body, String(6 * MiB))
    const whole = await fetch(`http://127.0.0.1:${port}/whole`, { method: 'POST', body: 'tiny' })
    assert.deepStrictEqual(await whole.json(), { streamed: false, body: 'tiny', length: 4 })
    const refused = await upload(port, { path: '/old', total: 2 * MiB })
    assert.strictEqual(refused.status, 500)
    assert.strictEqual(errors.length, 1)
    assert.strictEqual(errors[0].code, 'CORRAL_STATE')
    assert.match(errors[0].message, /streamed.*req\.stream\(\)/)
  } finally {
    await s.close()
  }
})

test('heavy worker threads read streamed bodies too', async () => {
  const s = corral.serve({ ioWorkers: 1, heavy: ['/heavy'], heavyThreads: 1, heavyModule: path.join(FIXTURES, 'heavy_body.js'), handler: () => 'light' })
  try {
    const { port } = s.address()
    const data = crypto.randomBytes(4 * MiB)
    const res = await fetch(`http://127.0.0.1:${port}/heavy`, { method: 'POST', body: data })
    assert.deepStrictEqual(await res.json(), { streamed: true, size: data.length, sha: crypto.createHash('sha256').update(data).digest('hex') })
  } finally {
    await s.close()
  }
})

test('an early reply: the app answers before reading, and the connection serves its next request', async () => {
  let called = 0
  const s = corral.serve({
    ioWorkers: 1,
    fetch(req) {
      called++
      return new Response(`no thanks ${new URL(req.url).pathname}\n`, { status: req.method === 'POST' ? 401 : 200 })
    },
  })
  try {
    const { port } = s.address()
    // A body over the window but within the engine's discard bound: read and dropped.
    const c = raw(port)
    const size = 512 * 1024
    c.send(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n` + 'a'.repeat(100 * 1024))
    await c.wait((t) => t.includes('no thanks /upload'), 'the early reply')
    assert.match(c.text, /^HTTP\/1\.1 401 /)
    c.send('a'.repeat(size - 100 * 1024))
    c.send('GET /next HTTP/1.1\r\nHost: x\r\n\r\n')
    await c.wait((t) => t.includes('no thanks /next'), 'the next reply on the same connection')
    assert.strictEqual(c.closed, false)
    assert.strictEqual(called, 2)
    c.socket.destroy()
    // A long rest is not worth reading: the reply, then the connection closes.
    const long = raw(port)
    long.send(`POST /huge HTTP/1.1\r\nHost: x\r\nContent-Length: ${100 * MiB}\r\n\r\n` + 'a'.repeat(200 * 1024))
    await long.wait((t) => t.includes('no thanks /huge'), 'the early reply to a long upload')
    await until(() => long.closed, 'the connection to close after the early reply')
    assert.match(long.text, /^HTTP\/1\.1 401 /)
  } finally {
    await s.close()
  }
})

test('a client that leaves mid-upload errors the stream with CORRAL_BODY_CLOSED', async () => {
  let failure = null
  const s = corral.serve({
    ioWorkers: 1,
    async fetch(req) {
      let bytes = 0
      try {
        for await (const chunk of req.body) bytes += chunk.byteLength
      } catch (e) {
        failure = { e, bytes }
        throw e
      }
      return new Response('read it all')
    },
  })
  s.on('error', () => {}) // the app rethrows: counted as a failed request
  try {
    const { port } = s.address()
    const c = raw(port)
    c.send(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * MiB}\r\n\r\n` + 'a'.repeat(MiB))
    await until(() => s.stats().bodyBytesIn >= MiB, 'the first megabyte to arrive')
    c.socket.destroy()
    await until(() => failure, 'the stream to fail')
    assert.ok(failure.e instanceof Error)
    assert.strictEqual(failure.e.code, 'CORRAL_BODY_CLOSED')
    assert.match(failure.e.message, /connection closed before the request body ended/)
    assert.ok(failure.bytes <= MiB)
  } finally {
    await s.close()
  }
})

test('maxBody: 413 on a Content-Length over it (the app is not called), and mid-way through a chunked body', async () => {
  let called = 0
  let failure = null
  const s = corral.serve({
    ioWorkers: 1,
    maxBody: MiB,
    async handler(req) {
      called++
      try {
        await req.buffer()
      } catch (e) {
        failure = e
        throw e
      }
      return 'ok'
    },
  })
  s.on('error', () => {})
  try {
    const { port } = s.address()
    const c = raw(port)
    c.send(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${2 * MiB}\r\n\r\n`)
    await c.wait((t) => t.includes('\r\n\r\n'), 'the 413')
    assert.match(c.text, /^HTTP\/1\.1 413 /)
    assert.strictEqual(called, 0)
    c.socket.destroy()
    const res = await upload(port, { total: 3 * MiB, chunked: true, piece: 64 * 1024 }).catch((e) => ({ error: e }))
    if (!res.error) assert.strictEqual(res.status, 413)
    await until(() => failure, 'the chunked body to fail')
    assert.strictEqual(called, 1)
    assert.strictEqual(failure.code, 'CORRAL_BODY_TOO_LARGE')
    assert.match(failure.message, /larger than max_body \(1048576 bytes\)/)
  } finally {
    await s.close()
  }
})

test('Expect: 100-continue is answered when the app first reads', async () => {
  const s = corral.serve({ ioWorkers: 1, fetch: async (req) => new Response(String((await req.arrayBuffer()).byteLength)) })
  try {
    const { port } = s.address()
    const c = raw(port)
    const size = 256 * 1024
    c.send(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\nExpect: 100-continue\r\n\r\n`)
    await c.wait((t) => t.includes('100 Continue'), '100 Continue')
    c.send('b'.repeat(size))
    await c.wait((t) => t.endsWith(String(size)), 'the reply')
    assert.match(c.text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /)
  } finally {
    await s.close()
  }
})

test('a body sent too slowly errors the stream with CORRAL_BODY_TOO_SLOW and the client gets 408', async () => {
  let failure = null
  const s = corral.serve({
    ioWorkers: 1,
    bodyTimeout: 200,
    minBodyRate: 1 << 30,
    async fetch(req) {
      try {
        await req.text()
      } catch (e) {
        failure = e
      }
      return new Response('late')
    },
  })
  try {
    const { port } = s.address()
    const c = raw(port)
    c.send(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${MiB}\r\n\r\n` + 'a'.repeat(1000))
    await until(() => failure, 'the slow body to fail')
    assert.strictEqual(failure.code, 'CORRAL_BODY_TOO_SLOW')
    await c.wait((t) => t.includes('\r\n\r\n'), 'the 408')
    assert.match(c.text, /^HTTP\/1\.1 408 /)
  } finally {
    await s.close()
  }
})

async function multipart(port, route, dir, size) {
  const boundary = '----corral' + crypto.randomBytes(8).toString('hex')
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nbig one\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  )
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`)
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: route,
        method: 'POST',
        agent: false,
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + size + tail.length, 'x-upload-dir': dir },
      },
      (res) => {
        const parts = []
        res.on('data', (c) => parts.push(c))
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString() }))
      },
    )
    req.on('error', reject)
    req.write(head)
    const block = Buffer.alloc(MiB, 'm')
    let sent = 0
    const more = () => {
      while (sent < size) {
        const n = Math.min(block.length, size - sent)
        sent += n
        if (!req.write(block.subarray(0, n))) return req.once('drain', more)
      }
      req.end(tail)
    }
    more()
  })
}

test('corral.threads: Express takes a 200 MB multipart upload to disk with multer and busboy, and a plain pipeline', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-uploads-'))
  const server = await child('threads')
  try {
    const before = await server.memory()
    const m = await multipart(server.port, '/multer', dir, BIG)
    assert.strictEqual(m.status, 200, m.body)
    const mj = JSON.parse(m.body)
    assert.deepStrictEqual([mj.name, mj.size, mj.field], ['big.bin', BIG, 'big one'])
    assert.strictEqual(fs.statSync(mj.path).size, BIG)
    fs.rmSync(mj.path)
    const b = await multipart(server.port, '/busboy', dir, 50 * MiB)
    assert.strictEqual(b.status, 200, b.body)
    const [bf] = JSON.parse(b.body)
    assert.strictEqual(bf.size, 50 * MiB)
    assert.strictEqual(fs.statSync(bf.path).size, 50 * MiB)
    const r = await upload(server.port, { path: '/raw', total: BIG, headers: { 'x-upload-dir': dir } })
    assert.strictEqual(r.status, 200, r.body)
    assert.strictEqual(JSON.parse(r.body).size, BIG)
    assert.strictEqual(fs.statSync(path.join(dir, 'raw.bin')).size, BIG)
    const after = await server.memory()
    const growth = after.peak - before.rss
    assert.ok(growth < 100 * MiB, `peak memory grew by ${(growth / MiB).toFixed(1)} MiB during the uploads`)
  } finally {
    await server.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
