'use strict'
// TLS on the Node front: serve({ tls: { cert, key } }) with https.createServer's names
// (PEM contents), https.get trusting the certificate, what a handler sees of the
// session (req.tls, checked against what Node's https client agreed on), the fetch
// URL's scheme, the https options not supported yet refused, and threads({ tls })
// refused until kTLS. The certificate is made for the test by the openssl command.
const { test, before, after } = require('node:test')
const assert = require('node:assert')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const https = require('node:https')
const os = require('node:os')
const path = require('node:path')
const corral = require('..')

let dir = null
let pem = null
const noOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return false
  } catch {
    return 'needs the openssl command to make a certificate'
  }
})()

before(() => {
  if (noOpenssl) return
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-node-tls-'))
  const [cert, key] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')]
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' })
  pem = { cert: fs.readFileSync(cert), key: fs.readFileSync(key), certFile: cert, keyFile: key }
})

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

/** GET over TLS, trusting only the test's certificate; resolves status, body, socket facts. */
function get(port, p = '/') {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', servername: 'localhost', port, path: p, ca: pem.cert, agent: false, timeout: 30000 }
    const req = https.get(opts, (res) => {
      const parts = []
      const { authorized } = res.socket
      const protocol = res.socket.getProtocol()
      res.on('data', (c) => parts.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString(), authorized, protocol }))
    })
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')))
    req.on('error', reject)
  })
}

test('serve({ tls }) takes PEM contents as Buffers and as strings; a handler answers https', { skip: noOpenssl }, async () => {
  for (const tls of [{ cert: pem.cert, key: pem.key }, { cert: pem.cert.toString(), key: pem.key.toString() }]) {
    const s = corral.serve({ tls, ioWorkers: 1, handler: (req) => `${req.method} ${req.url}` })
    const got = await get(s.address().port, '/a')
    assert.deepStrictEqual([got.status, got.body, got.authorized], [200, 'GET /a', true])
    assert.strictEqual(got.protocol, 'TLSv1.3')
    assert.ok(s.stats().tlsHandshakes >= 1)
    await s.close({ timeout: 2000 })
  }
})

test('a fetch app on TLS sees https:// URLs', { skip: noOpenssl }, async () => {
  const s = corral.serve({ tls: { cert: pem.cert, key: pem.key }, fetch: (r) => new Response(r.url) })
  const { port } = s.address()
  const got = await get(port, '/p?q=1')
  assert.strictEqual(got.body, `https://127.0.0.1:${port}/p?q=1`)
  await s.close({ timeout: 2000 })
})

test('tlsCert / tlsKey name PEM files instead, through the option table', { skip: noOpenssl }, async () => {
  const s = corral.serve({ tlsCert: pem.certFile, tlsKey: pem.keyFile, tlsMinVersion: '1.3', fetch: (r) => new Response(r.url) })
  const got = await get(s.address().port, '/f')
  assert.ok(got.body.startsWith('https://'), got.body)
  await s.close({ timeout: 2000 })
})

test('bad tls options are refused with what to do', { skip: noOpenssl }, () => {
  const handler = () => 'x'
  const refused = (tls, says) =>
    assert.throws(() => corral.serve({ tls, handler }), (e) => e.code === 'CORRAL_INVALID_CONFIG' && e.message.includes(says), says)
  refused({ cert: pem.cert }, 'tls needs both cert')
  refused({ cert: pem.certFile, key: 42 }, 'tls.key must be PEM contents')
  refused({ cert: pem.cert, key: pem.key, ca: pem.cert }, 'tls.ca without requestCert: true asks for no client certificate')
  refused({ cert: pem.cert, key: pem.key, passphrase: 'x' }, 'encrypted private keys are not read')
  refused({ cert: pem.cert, key: pem.key, ciphers: 'HIGH' }, 'OpenSSL cipher-string keywords and operators')
  // A path where the contents belong: the core says the PEM holds no certificate.
  refused({ cert: pem.certFile, key: pem.keyFile }, 'the certificate given to tls_pem holds no PEM certificate')
  refused({ cert: pem.key, key: pem.cert }, 'that is the key, not the certificate')
})

test('threads({ tls }) is refused until kernel TLS', { skip: noOpenssl }, async () => {
  await assert.rejects(
    corral.threads({ module: path.join(__dirname, 'fixtures', 'apps', 'hono_app.mjs'), tls: { cert: pem.cert, key: pem.key } }),
    (e) => e.code === 'CORRAL_INVALID_CONFIG' && e.message.includes('kernel TLS (kTLS'),
  )
})

/** GET / with `agent` and `extra` options; resolves the body and the client socket's view. */
function getSeen(mod, port, opts) {
  return new Promise((resolve, reject) => {
    const req = mod.get({ host: '127.0.0.1', port, path: '/', timeout: 30000, ...opts }, (res) => {
      const s = res.socket
      const seen = s.encrypted
        ? { protocol: s.getProtocol(), cipher: s.getCipher().standardName, alpn: s.alpnProtocol || null, reused: s.isSessionReused() }
        : null
      const parts = []
      res.on('data', (c) => parts.push(c))
      res.on('end', () => resolve({ body: JSON.parse(Buffer.concat(parts).toString()), seen }))
    })
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')))
    req.on('error', reject)
  })
}

const echoTls = (req) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(req.tls) })

test('req.tls says what the handshake agreed on, as the https client saw it, and a resumption', { skip: noOpenssl }, async () => {
  const s = corral.serve({ tls: { cert: pem.cert, key: pem.key }, ioWorkers: 1, handler: echoTls })
  try {
    const port = s.address().port
    const agent = new https.Agent({ keepAlive: false, maxCachedSessions: 10 })
    const opts = { agent, ca: pem.cert, servername: 'localhost', ALPNProtocols: ['http/1.1'] }
    const first = await getSeen(https, port, opts)
    assert.deepStrictEqual(first.body, {
      protocol: first.seen.protocol,
      cipher: first.seen.cipher,
      servername: 'localhost',
      alpnProtocol: 'http/1.1',
      sessionReused: false,
      clientCertName: null,
      clientCertChain: [],
    })
    assert.strictEqual(first.body.protocol, 'TLSv1.3')
    assert.match(first.body.cipher, /^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/)
    const second = await getSeen(https, port, opts)
    assert.strictEqual(second.seen.reused, true, 'the agent offered its session again')
    assert.strictEqual(second.body.sessionReused, true)
    agent.destroy()
  } finally {
    await s.close()
  }
})

test('req.tls is null on a plain engine', async () => {
  const s = corral.serve({ ioWorkers: 1, handler: echoTls })
  try {
    const got = await getSeen(http, s.address().port, { agent: false })
    assert.strictEqual(got.body, null)
  } finally {
    await s.close()
  }
})
