'use strict'
// Certificates on the Node front: client certificates with https.createServer's names
// (ca, requestCert, rejectUnauthorized), ciphers, and server.reloadTls() with new PEM
// contents or the files read again. https.request is the client; the CA and the
// certificates are made for the test by the openssl command (two days: made per run).
const { test, before, after } = require('node:test')
const assert = require('node:assert')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const https = require('node:https')
const os = require('node:os')
const path = require('node:path')
const corral = require('..')

let dir = null
const noOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return false
  } catch {
    return 'needs the openssl command to make certificates'
  }
})()

const openssl = (...args) => execFileSync('openssl', args, { stdio: 'ignore' })
const file = (name) => path.join(dir, name)
const read = (name) => fs.readFileSync(file(name))

/** A CA named `name` in <ca>.pem / <ca>.key. */
function makeCa(ca, name) {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file(`${ca}.key`),
    '-out', file(`${ca}.pem`), '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=keyCertSign')
}

/** A leaf signed by `ca`, in <leaf>.pem / <leaf>.key. */
function makeLeaf(ca, leaf, subject, ext) {
  fs.writeFileSync(file(`${leaf}.ext`), ext + '\n')
  openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', file(`${leaf}.key`),
    '-out', file(`${leaf}.csr`), '-subj', subject)
  openssl('x509', '-req', '-in', file(`${leaf}.csr`), '-CA', file(`${ca}.pem`), '-CAkey', file(`${ca}.key`),
    '-CAcreateserial', '-days', '2', '-out', file(`${leaf}.pem`), '-extfile', file(`${leaf}.ext`))
}

before(() => {
  if (noOpenssl) return
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'corral-node-tls-certs-'))
  makeCa('ca', 'corral test CA')
  makeCa('other', 'another CA')
  const server = 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth'
  makeLeaf('ca', 'first', '/CN=first', server)
  makeLeaf('ca', 'second', '/CN=second', server)
  makeLeaf('ca', 'alice', '/CN=alice', 'extendedKeyUsage=clientAuth')
  makeLeaf('other', 'mallory', '/CN=mallory', 'extendedKeyUsage=clientAuth')
})

after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

/** GET / on a new connection (no session reuse); resolves the body and what the client saw. */
function get(port, client = {}) {
  return new Promise((resolve, reject) => {
    const opts = { host: '127.0.0.1', servername: 'localhost', port, path: '/', ca: read('ca.pem'), agent: false, timeout: 30000, ...client }
    const req = https.get(opts, (res) => {
      const parts = []
      const peer = res.socket.getPeerCertificate().subject.CN
      const cipher = res.socket.getCipher().name
      res.on('data', (c) => parts.push(c))
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString(), peer, cipher }))
    })
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')))
    req.on('error', reject)
  })
}

const alice = () => ({ cert: read('alice.pem'), key: read('alice.key') })
const pair = (leaf) => ({ cert: read(`${leaf}.pem`), key: read(`${leaf}.key`) })

test('requestCert with ca: a certificate from the CA is served, another or none refused and counted', { skip: noOpenssl }, async () => {
  // The chain as the client sent it: OpenSSL-based clients add their CA after their own.
  const who = (req) => `hello ${req.tls.clientCertName} ${req.tls.clientCertChain[0].split('\n')[0]}`
  const s = corral.serve({ tls: { ...pair('first'), ca: read('ca.pem'), requestCert: true }, handler: who })
  try {
    const { port } = s.address()
    const seen = (await get(port, alice())).body
    assert.strictEqual(seen, 'hello CN=alice -----BEGIN CERTIFICATE-----', 'the verified client, in req.tls')
    await assert.rejects(get(port, { cert: read('mallory.pem'), key: read('mallory.key') }), /unknown ca|alert/i)
    await assert.rejects(get(port), /certificate required|alert|socket hang up|ECONNRESET/i)
    for (let i = 0; s.stats().tlsHandshakeFailures < 2 && i < 3000; i++) await new Promise((r) => setTimeout(r, 10))
    assert.strictEqual(s.stats().tlsHandshakeFailures, 2)
    assert.strictEqual(s.stats().tlsHandshakeFailuresClientCert, 2, 'counted as the client certificate\'s')
  } finally {
    await s.close({ timeout: 2000 })
  }
})

test('rejectUnauthorized: false lets a client without a certificate in', { skip: noOpenssl }, async () => {
  const tls = { ...pair('first'), ca: read('ca.pem'), requestCert: true, rejectUnauthorized: false }
  const s = corral.serve({ tls, handler: () => 'hello' })
  const { port } = s.address()
  assert.strictEqual((await get(port)).body, 'hello')
  assert.strictEqual((await get(port, alice())).body, 'hello')
  await assert.rejects(get(port, { cert: read('mallory.pem'), key: read('mallory.key') }), /unknown ca|alert/i)
  await s.close({ timeout: 2000 })
})

test('tls.ciphers names the suites allowed', { skip: noOpenssl }, async () => {
  const s = corral.serve({ tls: { ...pair('first'), ciphers: 'TLS_CHACHA20_POLY1305_SHA256' }, handler: () => 'x' })
  assert.strictEqual((await get(s.address().port)).cipher, 'TLS_CHACHA20_POLY1305_SHA256')
  await s.close({ timeout: 2000 })
  assert.throws(() => corral.serve({ tls: { ...pair('first'), ciphers: 'x' }, tlsCiphers: 'y', handler: () => 'x' }),
    (e) => e.code === 'CORRAL_INVALID_CONFIG' && e.message.includes('given twice'))
})

test('client-certificate options that mean nothing, and SNICallback, are refused', { skip: noOpenssl }, () => {
  const refused = (tls, says) =>
    assert.throws(() => corral.serve({ tls: { ...pair('first'), ...tls }, handler: () => 'x' }),
      (e) => e.code === 'CORRAL_INVALID_CONFIG' && e.message.includes(says), says)
  refused({ requestCert: true }, 'tls.requestCert needs ca')
  refused({ rejectUnauthorized: false }, 'no effect without requestCert')
  refused({ requestCert: 'yes', ca: read('ca.pem') }, 'tls.requestCert must be true or false')
  refused({ SNICallback: () => {} }, 'name the extra certificate files in the engine option tlsSniCerts')
})

test('reloadTls({ cert, key }) serves new connections the new pair; a bad one changes nothing', { skip: noOpenssl }, async () => {
  const s = corral.serve({ tls: pair('first'), handler: () => 'x' })
  const { port } = s.address()
  assert.strictEqual((await get(port)).peer, 'first')
  s.reloadTls(pair('second'))
  assert.strictEqual((await get(port)).peer, 'second')
  assert.throws(() => s.reloadTls({ cert: read('first.pem'), key: read('second.key') }),
    (e) => e.code === 'CORRAL_INVALID_CONFIG' && e.message.includes('does not belong to the first certificate'))
  assert.throws(() => s.reloadTls({ cert: read('first.pem') }), (e) => e.code === 'CORRAL_INVALID_CONFIG')
  assert.strictEqual((await get(port)).peer, 'second')
  await s.close({ timeout: 2000 })
})

test('reloadTls() reads the files of tlsCert / tlsKey again', { skip: noOpenssl }, async () => {
  fs.copyFileSync(file('first.pem'), file('live.pem'))
  fs.copyFileSync(file('first.key'), file('live.key'))
  const s = corral.serve({ tlsCert: file('live.pem'), tlsKey: file('live.key'), handler: () => 'x' })
  const { port } = s.address()
  assert.strictEqual((await get(port)).peer, 'first')
  fs.copyFileSync(file('second.pem'), file('live.pem'))
  fs.copyFileSync(file('second.key'), file('live.key'))
  s.reloadTls()
  assert.strictEqual((await get(port)).peer, 'second')
  fs.writeFileSync(file('live.key'), 'broken\n')
  assert.throws(() => s.reloadTls(), (e) => e.code === 'CORRAL_INVALID_CONFIG' && e.message.includes(file('live.key')))
  assert.strictEqual((await get(port)).peer, 'second')
  await s.close({ timeout: 2000 })
})
