'use strict'
// Websockets through corral's Node front, with real clients (`ws`, socket.io-client) on
// loopback: fetch-style apps served natively (`serve({ fetch, websocket })`, Bun's
// shape), and unchanged Express + `ws` and Socket.IO apps hosted by corral.threads().
const { test } = require('node:test')
const assert = require('node:assert')
const http = require('node:http')
const path = require('node:path')
const { once } = require('node:events')
const { Worker } = require('node:worker_threads')
const WebSocket = require('ws')
const { io: ioClient } = require('socket.io-client')
const corral = require('..')

const APPS = path.join(__dirname, 'fixtures', 'apps')

/** A serving engine for `websocket` handlers; `fetch` upgrades every offer unless given. */
function serveWs(websocket, { fetch, ...options } = {}) {
  const s = corral.serve({
    fetch: fetch || ((req, server) => (server.upgrade(req) ? undefined : new Response('not a websocket\n', { status: 400 }))),
    websocket,
    ...options,
  })
  return { s, port: s.address().port }
}

/**
 * A client's messages from its first on (one may come in the same read as the 101,
 * before an 'open' listener's continuation runs): `got` (text as strings, binary as
 * Buffers), `until(n)` for the nth, `next()` for the one after the last taken.
 */
function inbox(ws) {
  const box = { got: [], binary: [], taken: 0, closed: false, waits: [] }
  const wake = () => {
    for (let i = box.waits.length - 1; i >= 0; i--) {
      if (box.got.length >= box.waits[i].n || box.closed) box.waits.splice(i, 1)[0].resolve()
    }
  }
  ws.on('message', (data, isBinary) => {
    box.got.push(isBinary ? data : data.toString())
    box.binary.push(isBinary)
    wake()
  })
  ws.on('close', () => {
    box.closed = true
    wake()
  })
  box.until = async (n) => {
    if (box.got.length < n && !box.closed) await new Promise((resolve) => box.waits.push({ n, resolve }))
    if (box.got.length < n) throw new Error(`closed after ${box.got.length} messages, before ${n}`)
  }
  box.next = async () => {
    await box.until(box.taken + 1)
    const i = box.taken++
    return { data: box.got[i], isBinary: box.binary[i] }
  }
  return box
}

/** An open `ws` client (its messages in `ws.inbox`); `opts.protocols` are offered. */
async function connect(port, p = '/', opts = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${p}`, opts.protocols || [], opts)
  ws.on('error', () => {})
  ws.inbox = inbox(ws)
  await once(ws, 'open')
  return ws
}

/** The next message on a client: `{ data, isBinary }`, text as a string. */
function next(ws) {
  return ws.inbox.next()
}

function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })))
}

/** A promise and its resolver, for handlers that tell the test something happened. */
function signal() {
  let resolve
  const promise = new Promise((r) => (resolve = r))
  return { promise, resolve }
}

function get(port, p = '/', headers = {}) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, headers, agent: false }, (res) => {
        const parts = []
        res.on('data', (c) => parts.push(c))
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString() }))
      })
      .on('error', reject)
  })
}

test('fetch-style echo: text arrives as a string, binary as a Buffer, ws.data from the upgrade', async () => {
  const seen = []
  const opened = signal()
  const { s, port } = serveWs(
    {
      open(ws) {
        opened.resolve({ readyState: ws.readyState, remoteAddress: ws.remoteAddress, data: ws.data })
      },
      message(ws, msg) {
        seen.push(typeof msg === 'string' ? 'string' : Buffer.isBuffer(msg) ? 'Buffer' : typeof msg)
        if (typeof msg === 'string') assert.ok(ws.sendText(`${ws.data.user}:${msg}`) > 0)
        else assert.ok(ws.send(msg) > 0)
      },
    },
    {
      fetch(req, server) {
        const user = new URL(req.url).searchParams.get('user')
        if (server.upgrade(req, { data: { user } })) return
        return new Response('no')
      },
    },
  )
  const ws = await connect(port, '/chat?user=alice')
  assert.deepStrictEqual(await opened.promise, { readyState: 1, remoteAddress: '127.0.0.1', data: { user: 'alice' } })
  ws.send('hi')
  assert.deepStrictEqual(await next(ws), { data: 'alice:hi', isBinary: false })
  ws.send(Buffer.from([1, 2, 3, 0, 255]))
  const bin = await next(ws)
  assert.strictEqual(bin.isBinary, true)
  assert.deepStrictEqual([...bin.data], [1, 2, 3, 0, 255])
  // A text message over the engine's 64 KiB read budget, and one with multi-byte UTF-8.
  const big = 'é'.repeat(100000)
  ws.send(big)
  assert.strictEqual((await next(ws)).data, `alice:${big}`)
  assert.deepStrictEqual(seen, ['string', 'Buffer', 'string'])
  ws.close()
  await closed(ws)
  const st = s.stats()
  assert.strictEqual(st.wsOpened, 1)
  await s.close()
})

test('server.upgrade returns false for a plain request, whose Response is sent; an offer may be refused', async () => {
  const results = []
  const { s, port } = serveWs(
    { message() {} },
    {
      fetch(req, server) {
        if (new URL(req.url).pathname === '/private') return new Response('forbidden', { status: 403 })
        const up = server.upgrade(req)
        results.push(up)
        return up ? new Response('ignored after an upgrade') : new Response('no', { status: 426 })
      },
    },
  )
  const r = await get(port, '/')
  assert.deepStrictEqual([r.status, r.body], [426, 'no'])
  assert.deepStrictEqual(results, [false])
  // An offer the app answers with a Response: the client gets it, the connection stays HTTP.
  const ws = new WebSocket(`ws://127.0.0.1:${port}/private`)
  ws.on('error', () => {})
  const [, res] = await once(ws, 'unexpected-response')
  assert.strictEqual(res.statusCode, 403)
  res.destroy()
  // An upgraded offer: the fetch's Response is not sent.
  const up = await connect(port, '/')
  assert.deepStrictEqual(results, [false, true])
  up.close()
  await closed(up)
  await s.close()
})

test('upgrade headers: Sec-WebSocket-Protocol chooses the subprotocol, others go on the 101', async () => {
  const opened = signal()
  const { s, port } = serveWs(
    {
      open: (ws) => opened.resolve(ws.protocol),
      message: (ws, m) => ws.send(m),
    },
    {
      fetch(req, server) {
        const offered = (req.headers.get('sec-websocket-protocol') || '').split(',').map((p) => p.trim())
        const protocol = offered.includes('superchat') ? 'superchat' : undefined
        const headers = { 'x-hello': 'world' }
        if (protocol) headers['Sec-WebSocket-Protocol'] = protocol
        return server.upgrade(req, { headers }) ? undefined : new Response('no', { status: 400 })
      },
    },
  )
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ['chat', 'superchat'])
  ws.on('error', () => {})
  ws.inbox = inbox(ws)
  // 'open' follows 'upgrade' in the same tick: both listened for at once.
  const [[res]] = await Promise.all([once(ws, 'upgrade'), once(ws, 'open')])
  assert.strictEqual(res.headers['x-hello'], 'world')
  assert.strictEqual(ws.protocol, 'superchat')
  assert.strictEqual(await opened.promise, 'superchat')
  ws.send('x')
  assert.strictEqual((await next(ws)).data, 'x')
  ws.close()
  await closed(ws)
  await s.close()
})

test('server.publish reaches every subscriber; ws.publish every one but the sender', async () => {
  const counts = []
  const { s, port } = serveWs({
    open(ws) {
      assert.strictEqual(ws.subscribe('room'), true)
      assert.strictEqual(ws.subscribe('room'), false)
      assert.strictEqual(ws.isSubscribed('room'), true)
      ws.send('joined')
    },
    message(ws, msg) {
      if (msg === 'leave') {
        counts.push(['leave', ws.unsubscribe('room'), ws.isSubscribed('room')])
        return ws.send('left')
      }
      counts.push(['publish', ws.publish('room', msg)])
      // After the publish on the same socket: had the sender got its own message, it
      // would come before this one.
      ws.send('ack')
    },
  })
  const clients = await Promise.all([0, 1, 2].map(() => connect(port)))
  const boxes = clients.map((c) => c.inbox)
  const got = boxes.map((b) => b.got)
  const until = (i, n) => boxes[i].until(n)
  await Promise.all(boxes.map((b) => b.until(1)))
  assert.strictEqual(s.subscriberCount('room'), 3)
  assert.strictEqual(s.publish('room', 'to all'), 3)
  assert.strictEqual(s.publish('room', Buffer.from('bytes to all')), 3)
  await Promise.all(boxes.map((b) => b.until(3)))
  for (const g of got) {
    assert.strictEqual(g[1], 'to all')
    assert.ok(Buffer.isBuffer(g[2]) && g[2].toString() === 'bytes to all')
  }
  clients[0].send('from 0')
  await Promise.all([until(0, 4), until(1, 4), until(2, 4)])
  assert.strictEqual(got[0][3], 'ack')
  assert.strictEqual(got[1][3], 'from 0')
  assert.strictEqual(got[2][3], 'from 0')
  clients[2].send('leave')
  await until(2, 5)
  assert.strictEqual(s.subscriberCount('room'), 2)
  assert.strictEqual(s.publish('room', 'two left'), 2)
  await Promise.all([until(0, 5), until(1, 5)])
  assert.deepStrictEqual([got[0][4], got[1][4]], ['two left', 'two left'])
  assert.deepStrictEqual(counts, [['publish', 2], ['leave', true, false]])
  await Promise.all(clients.map((c) => (c.close(), closed(c))))
  // A closed socket leaves its topics.
  assert.strictEqual(s.subscriberCount('room'), 0)
  await s.close()
})

test('send returns -1 past wsMaxBackpressure, drain comes once written, and nothing queued is lost', async () => {
  const chunk = Buffer.alloc(64 * 1024, 7)
  const flooded = signal()
  const drained = signal()
  let queued = 0
  const { s, port } = serveWs(
    {
      open(ws) {
        ws.send('ready')
      },
      message(ws, msg) {
        if (msg !== 'go') return
        const statuses = { sent: 0, minus: 0 }
        // A bounded flood: the client does not read, so the kernel's buffers fill and
        // the engine's backlog goes past the limit.
        for (let i = 0; i < 2048; i++) {
          const r = ws.send(chunk)
          if (r > 0) statuses.sent++
          else if (r === -1) {
            statuses.minus++
            break
          } else break
        }
        queued = statuses.sent + statuses.minus
        flooded.resolve({ ...statuses, buffered: ws.getBufferedAmount() })
      },
      drain(ws) {
        drained.resolve()
        ws.send('after drain')
      },
    },
    { wsMaxBackpressure: 1 << 20 },
  )
  const ws = await connect(port, '/flood', { perMessageDeflate: false })
  assert.strictEqual((await next(ws)).data, 'ready')
  ws._socket.pause()
  ws.send('go')
  const f = await flooded.promise
  assert.strictEqual(f.minus, 1, `the flood ended with -1 after ${f.sent} sends`)
  assert.strictEqual(typeof f.buffered, 'number')
  ws._socket.resume()
  await drained.promise
  // Every message queued (sent, or -1) arrives, then the one sent from drain.
  await ws.inbox.until(queued + 2)
  const got = ws.inbox.got.slice(1)
  assert.strictEqual(got.length, queued + 1)
  assert.ok(got.slice(0, queued).every((m) => Buffer.isBuffer(m) && m.length === chunk.length))
  assert.strictEqual(got[queued], 'after drain')
  ws.close()
  await closed(ws)
  await s.close()
})

test('close codes both ways, and 1006 for a connection cut without a close frame', async () => {
  const closes = []
  const told = []
  const { s, port } = serveWs({
    message(ws, msg) {
      if (msg === 'close me') {
        ws.close(4002, 'server says bye')
        assert.strictEqual(ws.readyState, 2)
        // Closing: a send now is dropped.
        assert.strictEqual(ws.send('too late'), 0)
      }
    },
    close(ws, code, reason) {
      assert.strictEqual(ws.readyState, 3)
      closes.push([code, reason])
      told.shift()()
    },
  })
  const closeTold = () => new Promise((resolve) => told.push(resolve))

  const a = await connect(port)
  let t = closeTold()
  a.close(4001, 'client says bye')
  // The server answers with the client's code (and no reason).
  assert.strictEqual((await closed(a)).code, 4001)
  await t

  const b = await connect(port)
  t = closeTold()
  b.send('close me')
  assert.deepStrictEqual(await closed(b), { code: 4002, reason: 'server says bye' })
  await t

  const c = await connect(port)
  t = closeTold()
  c.terminate()
  await t

  const d = await connect(port)
  t = closeTold()
  d.close()
  await t
  // The server's own close: its close handler gets the code the client answered with.
  assert.deepStrictEqual(closes.map((c) => c[0]), [4001, 4002, 1006, 1005])
  assert.strictEqual(closes[0][1], 'client says bye')
  await s.close()
})

test('a handler that throws closes its socket with 1011; the server keeps serving', async () => {
  const errors = []
  const { s, port } = serveWs({
    open(ws) {
      if (ws.data === 'bad-open') throw new Error('open fails')
    },
    message(ws, msg) {
      if (msg === 'throw') throw new Error('message fails')
      if (msg === 'reject') return Promise.reject(new Error('async message fails'))
      ws.send(`echo ${msg}`)
    },
  }, { fetch: (req, server) => server.upgrade(req, { data: new URL(req.url).pathname.slice(1) }) || new Response('no') })
  s.on('error', (e) => errors.push(e.message))
  for (const what of ['throw', 'reject']) {
    const ws = await connect(port)
    ws.send(what)
    assert.strictEqual((await closed(ws)).code, 1011)
  }
  const bad = await connect(port, '/bad-open')
  assert.strictEqual((await closed(bad)).code, 1011)
  const ok = await connect(port)
  ok.send('still here')
  assert.strictEqual((await next(ok)).data, 'echo still here')
  ok.close()
  await closed(ok)
  assert.deepStrictEqual(errors.sort(), ['async message fails', 'message fails', 'open fails'])
  await s.close()
})

test('ws.pause() stops reading the client until ws.resume(); the messages then come in order', async () => {
  const received = []
  const done = signal()
  const sockets = new Map()
  let atResume = null
  const { s, port } = serveWs(
    {
      open(ws) {
        sockets.set(ws.data, ws)
        if (ws.data === 'paused') {
          ws.pause()
          ws.send('paused')
        } else ws.send('control')
      },
      message(ws, msg) {
        if (ws.data === 'control') {
          // The control socket's message was sent after the paused socket's: had the
          // pause not held, those would have been read first.
          atResume = received.length
          sockets.get('paused').resume()
          return
        }
        received.push(msg)
        if (received.length === 5) done.resolve()
      },
    },
    { fetch: (req, server) => server.upgrade(req, { data: new URL(req.url).pathname.slice(1) }) || new Response('no') },
  )
  const paused = await connect(port, '/paused')
  assert.strictEqual((await next(paused)).data, 'paused')
  const control = await connect(port, '/control')
  assert.strictEqual((await next(control)).data, 'control')
  for (let i = 0; i < 4; i++) paused.send(`m${i}`)
  await new Promise((resolve) => paused.send('m4', resolve)) // the five are written to the kernel
  control.send('resume it')
  await done.promise
  assert.strictEqual(atResume, 0)
  assert.deepStrictEqual(received, ['m0', 'm1', 'm2', 'm3', 'm4'])
  for (const c of [paused, control]) c.close()
  await Promise.all([closed(paused), closed(control)])
  await s.close()
})

test('a blocked main thread: the engine stops reading a flooding client at 1024 queued messages, then delivers all in order', async () => {
  const N = 3000
  const unblocked = signal()
  let inAtBlock = 0
  let inWhenFull = 0
  let inAfter = 0
  let count = 0
  let inOrder = true
  const { s, port } = serveWs({
    message(ws, msg) {
      if (msg !== `m${count}`) inOrder = false
      count++
      if (count === 1) {
        // Blocks this thread (the client is a worker thread) until the queue for JS is
        // full: 1024 messages waiting behind those JS took with this one (at most
        // inAtBlock of them).
        inAtBlock = s.stats().wsMessagesIn
        const deadline = Date.now() + 60000
        while ((inWhenFull = s.stats().wsMessagesIn) < 1025 && Date.now() < deadline);
        // Then watches a while: nothing more is read while the queue is full.
        const until = Date.now() + 300
        while (Date.now() < until) inAfter = s.stats().wsMessagesIn
      }
      if (count === N) unblocked.resolve()
    },
  })
  const client = new Worker(
    `const { workerData: { port, n } } = require('node:worker_threads')
     const WebSocket = require(${JSON.stringify(require.resolve('ws'))})
     const ws = new WebSocket('ws://127.0.0.1:' + port + '/')
     ws.on('open', () => { for (let i = 0; i < n; i++) ws.send('m' + i); ws.close() })`,
    { eval: true, workerData: { port, n: N } },
  )
  await unblocked.promise
  await once(client, 'exit')
  assert.ok(inWhenFull >= 1025 && inWhenFull < N, `read ${inWhenFull}`)
  assert.ok(inAfter <= inAtBlock + 1024, `read ${inAfter} with the main thread blocked (${inAtBlock} when it blocked)`)
  assert.ok(inOrder)
  assert.strictEqual(s.stats().wsMessagesIn, N)
  await s.close()
})

test('ws options come from the option table: wsMaxMessage (1009) and wsDeflate', async () => {
  const names = corral.options().map((o) => o.name)
  for (const n of ['ws', 'wsMaxMessage', 'wsPingInterval', 'wsPingTimeout', 'wsIdleTimeout', 'wsDeflate', 'wsMaxBackpressure']) {
    assert.ok(names.includes(n), n)
  }
  assert.throws(() => corral.serve({ fetch: () => new Response(''), wsMaxBackpressure: 10 }), { code: 'CORRAL_INVALID_CONFIG' })
  assert.throws(() => corral.serve({ fetch: () => new Response(''), websocket: {} }), { code: 'CORRAL_INVALID_CONFIG', message: /message/ })
  assert.throws(() => corral.serve({ handler: () => '', websocket: { message() {} } }), { code: 'CORRAL_INVALID_CONFIG' })

  const serverCloses = []
  const told = signal()
  const small = serveWs(
    {
      open: (ws) => ws.send(ws.extensions),
      message: (ws, m) => ws.send(m),
      close(ws, code) {
        serverCloses.push(code)
        told.resolve()
      },
    },
    { wsMaxMessage: 1024 },
  )
  const a = await connect(small.port)
  assert.strictEqual((await next(a)).data, 'permessage-deflate')
  assert.match(a.extensions, /permessage-deflate/)
  a.send('y'.repeat(1000))
  assert.strictEqual((await next(a)).data, 'y'.repeat(1000))
  a.send('x'.repeat(2000))
  assert.strictEqual((await closed(a)).code, 1009)
  await told.promise
  assert.deepStrictEqual(serverCloses, [1009])
  await small.s.close()

  const plain = serveWs({ open: (ws) => ws.send(`[${ws.extensions}]`), message() {} }, { wsDeflate: false })
  const b = await connect(plain.port)
  assert.strictEqual((await next(b)).data, '[]')
  assert.strictEqual(b.extensions, '')
  b.close()
  await closed(b)
  await plain.s.close()
})

test('server.upgrade without websocket handlers says what to add', async () => {
  const failures = []
  const s = corral.serve({
    fetch(req, server) {
      try {
        server.upgrade(req)
      } catch (e) {
        failures.push(e.code)
      }
      return new Response('no websockets here', { status: 501 })
    },
  })
  const ws = new WebSocket(`ws://127.0.0.1:${s.address().port}/`)
  ws.on('error', () => {})
  const [, res] = await once(ws, 'unexpected-response')
  assert.strictEqual(res.statusCode, 501)
  res.destroy()
  assert.deepStrictEqual(failures, ['CORRAL_INVALID_CONFIG'])
  await s.close()
})

test("Hono's Bun websocket helper (createBunWebSocket) runs unchanged on serve({ fetch, websocket })", async () => {
  const { Hono } = require('hono')
  // hono/bun's index also loads Bun-only modules; its websocket helper alone does not.
  const { createBunWebSocket } = require(path.join(path.dirname(require.resolve('hono')), 'adapter', 'bun', 'websocket.js'))
  // Hono's close handler builds a CloseEvent, a global from Node 23 on.
  const restore = globalThis.CloseEvent
  if (globalThis.CloseEvent === undefined) {
    globalThis.CloseEvent = class CloseEvent extends Event {
      constructor(type, init = {}) {
        super(type)
        this.code = init.code
        this.reason = init.reason
      }
    }
  }
  const { upgradeWebSocket, websocket } = createBunWebSocket()
  const app = new Hono()
  const closedWith = signal()
  app.get('/', (c) => c.text('plain'))
  app.get(
    '/ws',
    upgradeWebSocket(() => ({
      onOpen: (evt, ws) => ws.send('welcome'),
      onMessage: (evt, ws) => ws.send(typeof evt.data === 'string' ? `hono: ${evt.data}` : `bytes: ${evt.data.byteLength}`),
      onClose: (evt) => closedWith.resolve(evt.code),
    })),
  )
  const s = corral.serve({ fetch: app.fetch, websocket })
  const { port } = s.address()
  try {
    assert.strictEqual((await get(port, '/')).body, 'plain')
    const ws = await connect(port, '/ws')
    assert.strictEqual((await next(ws)).data, 'welcome')
    ws.send('hi')
    assert.strictEqual((await next(ws)).data, 'hono: hi')
    ws.send(Buffer.alloc(5))
    assert.strictEqual((await next(ws)).data, 'bytes: 5')
    ws.close(4100)
    assert.strictEqual(await closedWith.promise, 4100)
    await s.close()
  } finally {
    globalThis.CloseEvent = restore
  }
})

test('corral.threads hosts an unchanged Express + ws app: echo, permessage-deflate, subprotocols, close codes', async () => {
  const t = await corral.threads({ module: path.join(APPS, 'express_ws_app.js'), threads: 2 })
  const { port } = t.address()
  assert.strictEqual((await get(port, '/')).body, 'hello\n')

  const ws = await connect(port, '/echo', { protocols: ['chat'], perMessageDeflate: true })
  const hello = JSON.parse((await next(ws)).data)
  assert.strictEqual(hello.protocol, 'chat')
  assert.strictEqual(ws.protocol, 'chat')
  assert.match(hello.extensions, /permessage-deflate/)
  assert.match(ws.extensions, /permessage-deflate/)
  const text = 'compressible '.repeat(5000)
  ws.send(text)
  assert.deepStrictEqual(await next(ws), { data: text, isBinary: false })
  ws.send(Buffer.from([0, 1, 2, 254, 255]))
  const bin = await next(ws)
  assert.strictEqual(bin.isBinary, true)
  assert.deepStrictEqual([...bin.data], [0, 1, 2, 254, 255])
  ws.close(4001, 'client bye')
  assert.deepStrictEqual(await closed(ws), { code: 4001, reason: 'client bye' })

  // No subprotocol offered; the server closes with the code asked for.
  const plain = await connect(port, '/echo', { perMessageDeflate: false })
  const h2 = JSON.parse((await next(plain)).data)
  assert.deepStrictEqual([h2.protocol, h2.extensions, plain.protocol, plain.extensions], ['', '', '', ''])
  plain.send('close:4005')
  assert.deepStrictEqual(await closed(plain), { code: 4005, reason: 'asked to' })

  // Several at once, spread over the threads, each its own echo.
  const many = await Promise.all(Array.from({ length: 6 }, () => connect(port, '/echo')))
  const hellos = await Promise.all(many.map(next))
  for (const [i, c] of many.entries()) c.send(`n${i}`)
  const echoes = await Promise.all(many.map(next))
  assert.deepStrictEqual(echoes.map((e) => e.data), many.map((_, i) => `n${i}`))
  assert.ok(hellos.every((h) => Number.isInteger(JSON.parse(h.data).thread)))
  await Promise.all(many.map((c) => (c.close(), closed(c))))
  await t.close()
})

/** A connected socket.io client. */
async function sio(port, transports) {
  const c = ioClient(`http://127.0.0.1:${port}`, { transports, forceNew: true, reconnection: false, upgrade: false })
  await new Promise((resolve, reject) => {
    c.once('connect', resolve)
    c.once('connect_error', reject)
  })
  return c
}

test('corral.threads hosts an unchanged Socket.IO app (websocket transport)', async () => {
  const t = await corral.threads({ module: path.join(APPS, 'socketio_app.js'), threads: 2 })
  const { port } = t.address()
  const clients = await Promise.all(Array.from({ length: 4 }, () => sio(port, ['websocket'])))
  const answers = await Promise.all(clients.map((c, i) => c.timeout(60000).emitWithAck('echo', { i })))
  assert.deepStrictEqual(
    answers.map((a) => [a.msg.i, a.transport]),
    clients.map((_, i) => [i, 'websocket']),
  )
  for (const c of clients) c.disconnect()
  await t.close()
})

test('Socket.IO long-polling and rooms on one thread (polling needs every request of a session on one thread)', async () => {
  const t = await corral.threads({ module: path.join(APPS, 'socketio_app.js'), threads: 1 })
  const { port } = t.address()
  const [a, b] = await Promise.all([sio(port, ['polling']), sio(port, ['websocket'])])
  const echo = await a.timeout(60000).emitWithAck('echo', 'over polling')
  assert.deepStrictEqual([echo.msg, echo.transport], ['over polling', 'polling'])
  assert.strictEqual(await a.timeout(60000).emitWithAck('join', 'r'), true)
  assert.strictEqual(await b.timeout(60000).emitWithAck('join', 'r'), true)
  const heard = new Promise((resolve) => a.once('heard', resolve))
  b.emit('shout', 'r', 'hello room')
  assert.strictEqual(await heard, 'hello room')
  a.disconnect()
  b.disconnect()
  await t.close()
})

test('index.d.ts types a Bun-style websocket app, and refuses a wrong one', () => {
  const ts = require('typescript')
  const fs = require('node:fs')
  const os = require('node:os')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-types-'))
  const index = JSON.stringify(path.join(__dirname, '..', 'index'))
  const app = (body) => `import * as corral from ${index}
interface User { name: string }
const s = corral.serve({
  wsMaxMessage: 1 << 20,
  wsDeflate: false,
  wsPingInterval: '30s',
  fetch(req, server) {
    if (server.upgrade<User>(req, { data: { name: 'a' }, headers: { 'Sec-WebSocket-Protocol': 'chat' } })) return
    return new Response('no', { status: 426 })
  },
  websocket: {
    open(ws) { ws.subscribe('room'); ws.publish('room', Buffer.from('x')) },
    message(ws, msg) { const n: number = ws.send(typeof msg === 'string' ? msg : msg.subarray(1)); void n },
    drain(ws) { const b: number = ws.getBufferedAmount(); void b },
    close(ws, code, reason) { const c: number = code; const r: string = reason; void c; void r },
  },
})
const count: number = s.publish('room', 'hi') + s.subscriberCount('room')
void count
${body}`
  const diagnostics = (source) => {
    const file = path.join(dir, `app${diagnostics.n = (diagnostics.n || 0) + 1}.ts`)
    fs.writeFileSync(file, source)
    const program = ts.createProgram([file], {
      noEmit: true,
      strict: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
      types: ['node'],
      typeRoots: [path.join(__dirname, '..', 'node_modules', '@types')],
    })
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))
  }
  try {
    assert.deepStrictEqual(diagnostics(app('')), [])
    const wrong = diagnostics(app("corral.serve({ fetch: () => new Response(''), websocket: { open() {} } })"))
    assert.ok(wrong.some((m) => /message/.test(m)), wrong.join('\n'))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
