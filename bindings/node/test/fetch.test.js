'use strict'
// corral.serve({ fetch }): fetch-style apps (Hono unchanged) served on the main thread.
const { test } = require('node:test')
const assert = require('node:assert')
const http = require('node:http')
const net = require('node:net')
const { once } = require('node:events')
const { Hono } = require('hono')
const { stream } = require('hono/streaming')
const corral = require('..')

function request(port, { path: p = '/', method = 'GET', body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers, agent: false }, (res) => {
      const parts = []
      res.on('data', (c) => parts.push(c))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts).toString() }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

function honoApp(seen) {
  const app = new Hono()
  app.get('/', (c) => c.text('hello\n'))
  app.get('/json', (c) => c.json({ q: c.req.query('q'), tag: c.req.header('x-tag') ?? null }))
  app.get('/users/:id', (c) => c.json({ id: c.req.param('id') }))
  app.post('/echo', async (c) => c.json({ body: await c.req.json() }))
  app.post('/size', async (c) => c.text(String((await c.req.arrayBuffer()).byteLength)))
  app.post('/form', async (c) => c.json(Object.fromEntries(await c.req.formData())))
  app.get('/status', (c) => c.body(null, 204))
  app.get('/headers', (c) => {
    c.header('x-one', '1')
    c.header('set-cookie', 'a=1')
    c.header('set-cookie', 'b=2', { append: true })
    return c.text('h')
  })
  app.get('/stream', (c) =>
    stream(c, async (s) => {
      for (let i = 0; i < 5; i++) await s.write(`part ${i}\n`)
    }),
  )
  app.get('/raw', (c) => c.json({ request: c.req.raw instanceof Request, url: c.req.url }))
  // A member only the real Request has, then the body: both work.
  app.post('/mixed', async (c) => c.json({ mode: c.req.raw.mode, body: await c.req.raw.text(), used: c.req.raw.bodyUsed }))
  app.get('/wait', (c) => {
    seen.waiting = true
    return new Promise((resolve) => {
      c.req.raw.signal.addEventListener('abort', () => {
        seen.aborted = true
        resolve(c.text('too late'))
      })
    })
  })
  app.get('/throw', () => {
    throw new Error('a route that throws')
  })
  app.onError((e, c) => c.text(`handled: ${e.message}`, 500))
  return app
}

test('a Hono app through serve({ fetch }): routing, queries, headers, bodies, streams, errors', async () => {
  const seen = {}
  const app = honoApp(seen)
  const s = corral.serve({ fetch: app.fetch, ioWorkers: 2 })
  try {
    const { port } = s.address()
    const hello = await request(port)
    assert.deepStrictEqual([hello.status, hello.body, hello.headers['content-type']], [200, 'hello\n', 'text/plain;charset=UTF-8'])
    assert.deepStrictEqual(JSON.parse((await request(port, { path: '/json?q=a%20b', headers: { 'x-tag': 't' } })).body), { q: 'a b', tag: 't' })
    assert.deepStrictEqual(JSON.parse((await request(port, { path: '/users/9' })).body), { id: '9' })
    assert.deepStrictEqual(JSON.parse((await request(port, { path: '/echo', method: 'POST', body: '{"k":[1]}' })).body), { body: { k: [1] } })
    assert.strictEqual((await request(port, { path: '/size', method: 'POST', body: 'z'.repeat(512 << 10) })).body, String(512 << 10))
    const form = await request(port, {
      path: '/form',
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'a=1&b=two',
    })
    assert.deepStrictEqual(JSON.parse(form.body), { a: '1', b: 'two' }, 'formData() through the real Request made on demand')
    assert.deepStrictEqual(JSON.parse((await request(port, { path: '/mixed', method: 'POST', body: 'payload' })).body), {
      mode: 'cors',
      body: 'payload',
      used: true,
    })
    const empty = await request(port, { path: '/status' })
    assert.deepStrictEqual([empty.status, empty.body], [204, ''])
    const h = await request(port, { path: '/headers' })
    assert.strictEqual(h.headers['x-one'], '1')
    assert.deepStrictEqual(h.headers['set-cookie'], ['a=1', 'b=2'])
    const st = await request(port, { path: '/stream' })
    assert.strictEqual(st.headers['transfer-encoding'], 'chunked')
    assert.strictEqual(st.body, 'part 0\npart 1\npart 2\npart 3\npart 4\n')
    assert.deepStrictEqual(JSON.parse((await request(port, { path: '/raw', headers: { host: 'example.test' } })).body), {
      request: true,
      url: 'http://example.test/raw',
    })
    const failed = await request(port, { path: '/throw' })
    assert.deepStrictEqual([failed.status, failed.body], [500, 'handled: a route that throws'])
    assert.strictEqual((await request(port, { path: '/nope' })).status, 404)
    // The client leaves: the request's signal aborts.
    const c = net.connect(port, '127.0.0.1')
    c.write('GET /wait HTTP/1.1\r\nhost: x\r\n\r\n')
    while (!seen.waiting) await new Promise((r) => setImmediate(r))
    c.destroy()
    while (!seen.aborted) await new Promise((r) => setTimeout(r, 5))
    assert.strictEqual((await request(port)).body, 'hello\n')
  } finally {
    await s.close({ timeout: 2000 })
  }
})

test('a streamed body waits for a slow client (back-pressure) and arrives whole', async () => {
  const CHUNK = 256 << 10
  const CHUNKS = 64 // 16 MiB
  let produced = 0
  let resumeClient
  const clientMayRead = new Promise((r) => (resumeClient = r))
  const s = corral.serve({
    fetch: () =>
      new Response(
        new ReadableStream({
          pull(c) {
            if (produced === CHUNKS) return c.close()
            c.enqueue(new Uint8Array(CHUNK).fill(97 + (produced % 26)))
            produced++
            // Once well past what the socket buffers and the write high-water mark hold,
            // the producer would only go on without back-pressure.
            if (produced === 8) resumeClient()
          },
        }),
        { headers: { 'content-length': String(CHUNK * CHUNKS) } },
      ),
  })
  try {
    const sock = net.connect(s.address().port, '127.0.0.1')
    sock.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')
    sock.pause()
    await clientMayRead
    sock.resume()
    let got = 0
    let text = ''
    for await (const chunk of sock) {
      if (text.length < 200) text += chunk.toString('latin1', 0, Math.min(chunk.length, 200))
      got += chunk.length
    }
    const head = text.indexOf('\r\n\r\n') + 4
    assert.match(text, /content-length: 16777216/)
    assert.strictEqual(got - head, CHUNK * CHUNKS)
    assert.strictEqual(produced, CHUNKS)
  } finally {
    await s.close({ timeout: 2000 })
  }
})

test('a fetch function that fails or returns no Response: the client gets 500, the server lives', async () => {
  const errors = []
  const s = corral.serve({
    fetch: (req) => {
      if (req.url.endsWith('/sync')) throw new Error('sync failure')
      if (req.url.endsWith('/none')) return 'not a response'
      if (req.url.endsWith('/reject')) return Promise.reject(new Error('async failure'))
      return new Response('fine')
    },
  })
  s.on('error', (e) => errors.push(e.message))
  try {
    const { port } = s.address()
    for (const p of ['/sync', '/none', '/reject']) assert.strictEqual((await request(port, { path: p })).status, 500, p)
    assert.strictEqual((await request(port)).body, 'fine')
    assert.deepStrictEqual(errors.sort(), ['a fetch handler must return a Response, not string', 'async failure', 'sync failure'])
  } finally {
    await s.close()
  }
})

test('serve() refuses a handler and fetch together, and a fetch that is not a function', () => {
  assert.throws(() => corral.serve({ fetch: () => {}, handler: () => {} }), { code: 'CORRAL_INVALID_CONFIG' })
  assert.throws(() => corral.serve({ fetch: 'app' }), { code: 'CORRAL_INVALID_CONFIG', message: /fetch must be a function/ })
})

test('the light Response behaves as a Response', async () => {
  corral.serve({ fetch: () => new Response('x') }).close()
  const r = new Response('body', { status: 201, headers: { 'x-a': '1' } })
  assert.ok(r instanceof Response)
  assert.strictEqual(r.status, 201)
  assert.strictEqual(r.ok, true)
  assert.strictEqual(r.headers.get('x-a'), '1')
  assert.strictEqual(r.headers.get('content-type'), 'text/plain;charset=UTF-8')
  assert.strictEqual(await r.clone().text(), 'body')
  assert.strictEqual(await r.text(), 'body')
  assert.strictEqual(r.bodyUsed, true)
  assert.ok(Response.json({ a: 1 }) instanceof Response)
  assert.strictEqual(await Response.json({ a: 1 }).text(), '{"a":1}')
  assert.throws(() => new Response('x', { status: 99 }), RangeError)
  const s = corral.serve({ fetch: () => new Response('x') })
  const { port } = s.address()
  const sock = net.connect(port, '127.0.0.1')
  sock.end('GET / HTTP/1.1\r\nhost: x\r\n\r\n')
  const [data] = await once(sock, 'data')
  assert.match(data.toString(), /^HTTP\/1\.1 200 OK\r\n/)
  sock.destroy()
  await s.close()
})

test('fetch with heavyThreads: heavy paths run on worker threads, the rest on this one', async () => {
  const s = corral.serve({
    fetch: (req) => new Response(`light ${new URL(req.url).pathname}`),
    heavy: ['/heavy/'],
    heavyThreads: 2,
    heavyModule: require('node:path').join(__dirname, 'fixtures', 'apps', 'hono_heavy.js'),
  })
  try {
    const { port } = s.address()
    const heavy = await request(port, { path: '/heavy/upper', method: 'POST', body: 'shout' })
    assert.deepStrictEqual([heavy.status, heavy.body], [201, 'SHOUT'])
    assert.notStrictEqual(heavy.headers['x-thread'], '0')
    assert.strictEqual((await request(port, { path: '/plain' })).body, 'light /plain')
  } finally {
    await s.close()
  }
})
