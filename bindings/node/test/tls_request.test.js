'use strict'
// What a serve() handler sees of a request's TLS session (req.tls, in the names of
// Node's TLSSocket), checked against what Node's own https client agreed on; null on a
// plain engine. The certificate is made for the test by the openssl command.
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
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-node-tls-req-'))
  const [cert, key] = [path.join(dir, 'cert.pem'), path.join(dir, 'key.pem')]
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' })
  pem = { cert: fs.readFileSync(cert), key: fs.readFileSync(key) }
})

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

/** GET / with `agent` and `extra` options; resolves the body and the client socket's view. */
function get(mod, port, opts) {
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
    const first = await get(https, port, opts)
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
    const second = await get(https, port, opts)
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
    const got = await get(http, s.address().port, { agent: false })
    assert.strictEqual(got.body, null)
  } finally {
    await s.close()
  }
})
