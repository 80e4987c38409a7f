'use strict'
// corral.threads(): unchanged Express, Koa, Fastify and Hono apps on worker threads.
const { test } = require('node:test')
const assert = require('node:assert')
const http = require('node:http')
const net = require('node:net')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync, spawn } = require('node:child_process')
const { once } = require('node:events')
const corral = require('..')

const APPS = path.join(__dirname, 'fixtures', 'apps')

function request(port, { path: p = '/', method = 'GET', body, headers = {}, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers, agent }, (res) => {
      const parts = []
      res.on('data', (c) => parts.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    // A request a thread never answers fails the test instead of holding it forever.
    req.setTimeout(60_000, () => req.destroy(new Error(`no answer to ${method} ${p} within 60 s`)))
    if (Array.isArray(body)) {
      // chunked: written in parts
      for (const part of body) req.write(part)
      req.end()
    } else req.end(body)
  })
}

/** A raw connection: write bytes, read until `done(text)` says the answer is whole. */
function raw(port) {
  const s = net.connect(port, '127.0.0.1')
  let buf = ''
  s.setEncoding('utf8')
  s.on('data', (d) => (buf += d))
  return {
    socket: s,
    send(text) {
      s.write(text)
    },
    async until(done) {
      while (!done(buf)) {
        const ended = await Promise.race([once(s, 'data').then(() => false), once(s, 'close').then(() => true)])
        if (ended && !done(buf)) return { text: buf, closed: true }
      }
      return { text: buf, closed: false }
    },
    close() {
      s.destroy()
    },
  }
}

for (const n of [2, 4]) {
  test(`Express on ${n} threads: routing, JSON, queries, bodies both ways, streams, errors`, async () => {
    const t = await corral.threads({ module: path.join(APPS, 'express_app.js'), threads: n })
    try {
      const { port } = t.address()
      assert.strictEqual((await request(port)).body, 'hello\n')
      assert.deepStrictEqual(JSON.parse((await request(port, { path: '/json?a=1&b=x%20y' })).body), { ok: true, q: { a: '1', b: 'x y' } })
      assert.deepStrictEqual(JSON.parse((await request(port, { path: '/users/42' })).body), { id: '42' })
      const json = await request(port, { path: '/echo', method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":[1,2]}' })
      assert.deepStrictEqual(JSON.parse(json.body), { type: 'application/json', body: { a: [1, 2] } })
      const chunked = await request(port, {
        path: '/echo',
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: ['one ', 'two ', 'three'],
      })
      assert.deepStrictEqual(JSON.parse(chunked.body).body, 'one two three')
      const up = 'y'.repeat(4 << 20)
      assert.strictEqual((await request(port, { path: '/size', method: 'POST', headers: { 'content-type': 'text/plain' }, body: up })).body, String(up.length))
      const down = await request(port, { path: `/big?n=${8 << 20}` })
      assert.strictEqual(down.body.length, 8 << 20)
      const streamed = await request(port, { path: '/stream' })
      assert.strictEqual(streamed.headers['transfer-encoding'], 'chunked')
      assert.strictEqual(streamed.body, 'part 0\npart 1\npart 2\npart 3\npart 4\n')
      const failed = await request(port, { path: '/throw' })
      assert.strictEqual(failed.status, 500)
      assert.strictEqual((await request(port)).status, 200, 'the app lives on after a route threw')
      // keep-alive and pipelining: three requests in one write, answered in order.
      const c = raw(port)
      c.send('GET /users/1 HTTP/1.1\r\nhost: x\r\n\r\nGET /users/2 HTTP/1.1\r\nhost: x\r\n\r\nGET /users/3 HTTP/1.1\r\nhost: x\r\n\r\n')
      const { text } = await c.until((b) => (b.match(/HTTP\/1\.1 200/g) || []).length === 3 && b.endsWith('{"id":"3"}'))
      assert.deepStrictEqual(text.match(/\{"id":"\d"\}/g), ['{"id":"1"}', '{"id":"2"}', '{"id":"3"}'])
      c.close()
      const st = t.stats()
      assert.strictEqual(st.threads.length, n)
      assert.ok(st.threadRequests >= 12, `requests counted: ${st.threadRequests}`)
      assert.strictEqual(st.threads.reduce((a, x) => a + x.connections, 0), st.accepts, 'every accepted connection went to a thread')
    } finally {
      const report = await t.close({ timeout: 2000 })
      assert.strictEqual(report.clean, true)
    }
  })
}

test('Koa, Fastify and Hono (an ES module) apps on threads, unchanged', async () => {
  for (const [file, hello] of [
    ['koa_app.js', 'hello from koa\n'],
    ['fastify_app.js', 'hello from fastify\n'],
    ['hono_app.mjs', 'hello from hono\n'],
  ]) {
    const t = await corral.threads({ module: path.join(APPS, file), threads: 2 })
    try {
      const { port } = t.address()
      assert.strictEqual((await request(port)).body, hello, file)
      const q = JSON.parse((await request(port, { path: '/json?q=7' })).body)
      assert.strictEqual(q.q.q ?? q.q, '7', file)
      const echo = await request(port, { path: '/echo', method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"k":"v"}' })
      assert.match(echo.body, /"k":"v"/, file)
    } finally {
      await t.close({ timeout: 2000 })
    }
  }
  const t = await corral.threads({ module: path.join(APPS, 'hono_app.mjs'), threads: 2 })
  try {
    const { port } = t.address()
    const s = await request(port, { path: '/stream' })
    assert.strictEqual(s.body, 'part 0\npart 1\npart 2\npart 3\npart 4\n')
    assert.strictEqual((await request(port, { path: '/throw' })).status, 500)
    const size = await request(port, { path: '/size', method: 'POST', body: 'z'.repeat(3 << 20) })
    assert.strictEqual(size.body, String(3 << 20))
  } finally {
    await t.close({ timeout: 2000 })
  }
})

test('an app exported by name (exports.app) is found', async () => {
  const t = await corral.threads({ module: path.join(APPS, 'named_export.js'), threads: 1 })
  try {
    assert.strictEqual((await request(t.address().port)).body, 'named export\n')
  } finally {
    await t.close({ timeout: 2000 })
  }
})

test('a module that cannot load rejects threads() with its error, once', async () => {
  await assert.rejects(corral.threads({ module: path.join(APPS, 'bad_app.js'), threads: 2 }), /this module does not load/)
  await assert.rejects(corral.threads({ module: path.join(APPS, 'missing.js'), threads: 1 }), /Cannot find module/)
  await assert.rejects(corral.threads({ module: path.join(APPS, 'express_app.js'), threads: 0 }), { code: 'CORRAL_INVALID_CONFIG' })
  await assert.rejects(corral.threads({ module: path.join(APPS, 'express_app.js'), headerTimeout: -1 }), {
    code: 'CORRAL_INVALID_CONFIG',
    message: /header_timeout|headerTimeout/,
  })
})

function fifo() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-threads-'))
  const f = path.join(dir, 'fifo')
  execFileSync('mkfifo', [f])
  return {
    path: f,
    release: (text) => fs.promises.writeFile(f, text),
    // For cleanup after a failure: a thread still blocked reading the FIFO is let go
    // (a thread blocked in a read cannot be terminated, so close() would wait forever);
    // with no reader, opening for writing without blocking fails at once (ENXIO).
    unblock: () => {
      try {
        const fd = fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
        fs.writeSync(fd, 'cleanup')
        fs.closeSync(fd)
      } catch {}
    },
    remove: () => fs.rmSync(dir, { recursive: true }),
  }
}

test('a thread busy in JS takes no connection; a thread that dies is replaced, and only its connections fail', async () => {
  const t = await corral.threads({ module: path.join(APPS, 'express_app.js'), threads: 2 })
  const errors = []
  t.on('error', (e) => errors.push(e))
  const block = fifo()
  let block2 = null
  try {
    const { port } = t.address()
    // Block one thread: it is inside the route (its request counted) and its loop stopped.
    const blocked = raw(port)
    blocked.send(`GET /block?fifo=${encodeURIComponent(block.path)}&then=crash HTTP/1.1\r\nhost: x\r\n\r\n`)
    let st
    while ((st = t.stats()).threadRequests < 1) await new Promise((r) => setImmediate(r))
    const busySlot = st.threads.findIndex((x) => x.requests === 1)
    // New connections, one after another: all on the other thread.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const seen = new Set()
    for (let i = 0; i < 5; i++) seen.add((await request(port, { path: '/thread' })).body)
    assert.strictEqual(seen.size, 1, `every new connection went to the free thread: ${[...seen]}`)
    const other = (await request(port, { path: '/thread', agent })).body
    assert.deepStrictEqual([...seen], [other])
    // The blocked thread dies without answering: its connection fails...
    await block.release('go')
    const { closed, text } = await blocked.until(() => false)
    assert.strictEqual(closed, true)
    assert.strictEqual(text, '', 'no answer on the dead thread')
    // ...the other thread's keep-alive connection goes on, and a new thread takes the slot.
    for (let i = 0; i < 3; i++) assert.strictEqual((await request(port, { path: '/thread', agent })).body, other)
    while (t.stats().threads[busySlot].restarts < 1 || errors.length < 1) await new Promise((r) => setTimeout(r, 10))
    assert.match(String(errors[0].message), /the thread dies/)
    assert.strictEqual(errors[0].thread, busySlot)
    // The new thread serves: block the old survivor, and a new connection lands on the new one.
    block2 = fifo()
    const held = raw(port)
    held.socket.on('error', () => {})
    const answer = request(port, { path: `/block?fifo=${encodeURIComponent(block2.path)}`, agent })
    const before = t.stats().threadRequests
    while (t.stats().threadRequests <= before) await new Promise((r) => setImmediate(r))
    const fresh = (await request(port, { path: '/thread' })).body
    assert.notStrictEqual(fresh, other)
    await block2.release('again')
    assert.strictEqual((await answer).body, 'unblocked again')
    held.close()
    agent.destroy()
  } finally {
    block.unblock()
    block.remove()
    if (block2) {
      block2.unblock()
      block2.remove()
    }
    await t.close({ timeout: 2000 })
  }
})

test('close() under load: every request sent is answered, then the threads exit', async () => {
  const t = await corral.threads({ module: path.join(APPS, 'express_app.js'), threads: 2 })
  const { port } = t.address()
  let answered = 0
  let stopping = false
  const failures = []
  // Eight keep-alive clients, each sending its next request as soon as the last is answered,
  // until an answer says `connection: close`.
  const clients = Array.from({ length: 8 }, async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      for (;;) {
        let r
        try {
          r = await request(port, { path: '/slow?ms=20', agent })
        } catch (e) {
          // Refused once the listener is gone is fine; a request cut off is not.
          if (stopping && e.code === 'ECONNREFUSED') return
          failures.push(e)
          return
        }
        assert.strictEqual(r.body, 'slow\n')
        answered++
        if (r.headers.connection === 'close') return
      }
    } finally {
      agent.destroy()
    }
  })
  while (answered < 40) await new Promise((r) => setTimeout(r, 5))
  stopping = true
  const report = await t.close({ timeout: 5000 })
  await Promise.all(clients)
  assert.deepStrictEqual(failures, [])
  assert.strictEqual(report.connectionsAborted, 0)
  assert.strictEqual(report.clean, true)
  assert.ok(report.requestsCompleted >= answered, `${report.requestsCompleted} >= ${answered}`)
})

test('the corral bin hosts an app on threads and drains on SIGTERM', async () => {
  const bin = path.join(__dirname, '..', 'bin', 'corral.js')
  const child = spawn(process.execPath, [bin, '--threads', '2', '--port', '0', '--header-timeout', '5s', path.join(APPS, 'express_app.js')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (err += d))
  while (!/listening on http:\/\/127\.0\.0\.1:(\d+)/.test(out)) {
    if (child.exitCode !== null) assert.fail(`the bin exited: ${err}`)
    await once(child.stdout, 'data')
  }
  const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)[1])
  assert.strictEqual((await request(port)).body, 'hello\n')
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.strictEqual(code, 0, err)
  assert.match(out, /drained: .*clean/)
})

test('threads behind a balancer: req.ip is the client its PROXY header named', async () => {
  const t = await corral.threads({ module: path.join(APPS, 'express_app.js'), threads: 2, proxyProtocol: 'v1' })
  try {
    const c = raw(t.address().port)
    c.send('PROXY TCP4 198.51.100.20 10.0.0.1 40000 80\r\nGET /peer HTTP/1.1\r\nhost: x\r\n\r\n')
    const { text } = await c.until((b) => b.endsWith('}'))
    assert.deepStrictEqual(JSON.parse(text.slice(text.indexOf('{'))), { ip: '198.51.100.20', port: 40000, proxy: 1 })
    c.close()
  } finally {
    await t.close({ timeout: 2000 })
  }
})

/** Starts the bin; resolves with the child and the port it says it listens on. */
async function startBin(args, options = {}) {
  const bin = path.join(__dirname, '..', 'bin', 'corral.js')
  const child = spawn(options.command || process.execPath, [...(options.prefix || []), bin, ...args], {
    stdio: options.stdio || ['ignore', 'pipe', 'pipe'],
  })
  const out = { text: '', err: '' }
  child.stdout.on('data', (d) => (out.text += d))
  child.stderr.on('data', (d) => (out.err += d))
  while (!/listening on http:\/\/127\.0\.0\.1:(\d+)/.test(out.text)) {
    if (child.exitCode !== null) assert.fail(`the bin exited: ${out.err}`)
    await Promise.race([once(child.stdout, 'data'), once(child, 'exit')])
  }
  return { child, out, port: Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out.text)[1]) }
}

test('the bin serves a socket-activated listener (LISTEN_FDS) without binding', async () => {
  const listener = net.createServer()
  await new Promise((r) => listener.listen(0, '127.0.0.1', r))
  const { port: want } = listener.address()
  const { child, port } = await startBin(['--threads', '1', path.join(APPS, 'express_app.js')], {
    command: 'sh',
    prefix: ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=http exec "$0" "$@"', process.execPath],
    // The listening socket's own descriptor, at fd 3 in the child (as a service manager passes it).
    stdio: ['ignore', 'pipe', 'pipe', listener._handle.fd],
  })
  listener.close() // the child has its own copy
  assert.strictEqual(port, want, 'the service manager\'s socket')
  assert.strictEqual((await request(port)).body, 'hello\n')
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  assert.strictEqual(code, 0)
})

test('the bin hands its listeners to a successor under load: no request fails', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-bin-'))
  const offer = path.join(dir, 'offer.sock')
  const app = path.join(APPS, 'express_app.js')
  const old = await startBin(['--threads', '2', '--port', '0', '--offer-listeners', offer, app])
  const port = old.port
  let stop = false
  let answered = 0
  const failures = []
  const loops = [true, false].map(async (keepAlive) => {
    const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false
    while (!stop) {
      try {
        const r = await request(port, { path: '/thread', agent })
        assert.strictEqual(r.status, 200)
        answered++
      } catch (e) {
        failures.push(e)
      }
    }
    if (agent) agent.destroy()
  })
  while (answered < 20) await new Promise((r) => setTimeout(r, 5))
  const oldExit = once(old.child, 'exit')
  const next = await startBin(['--threads', '2', '--listeners-from', offer, app])
  assert.strictEqual(next.port, port, 'the successor serves the same socket')
  const [code] = await oldExit
  assert.strictEqual(code, 0, old.out.err)
  assert.match(old.out.text, /a successor serves the listeners now/)
  const before = answered
  while (answered < before + 20) await new Promise((r) => setTimeout(r, 5))
  stop = true
  await Promise.all(loops)
  assert.deepStrictEqual(failures.map((e) => e.message), [])
  next.child.kill('SIGTERM')
  assert.deepStrictEqual(await once(next.child, 'exit'), [0, null])
  fs.rmSync(dir, { recursive: true })
})
