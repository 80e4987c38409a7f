'use strict'
// The cross-language conformance cases (tests/conformance/cases.txt) against the Node front.
const { test } = require('node:test')
const assert = require('node:assert')
const fs = require('node:fs')
const net = require('node:net')
const path = require('node:path')
const corral = require('..')

function unescape(s) {
  const out = []
  for (let i = 0; i < s.length; ) {
    if (s[i] === '\\') {
      const e = s[i + 1]
      if (e === 'x') {
        out.push(parseInt(s.slice(i + 2, i + 4), 16))
        i += 4
        continue
      }
      out.push({ r: 13, n: 10, '\\': 92 }[e])
      i += 2
      continue
    }
    out.push(s.charCodeAt(i))
    i++
  }
  return Buffer.from(out)
}

function load() {
  const file = path.join(__dirname, '..', '..', '..', 'tests', 'conformance', 'cases.txt')
  const cases = []
  let cur = null
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('case ')) cur = { name: line.slice(5).trim(), send: [], expect: [], opts: {} }
    else if (line.startsWith('protocol ')) cur.protocol = line.split(' ')[1].trim()
    else if (line.startsWith('max_frame ')) cur.opts.maxFrame = Number(line.split(' ')[1])
    else if (line.startsWith('max_header ')) cur.opts.maxHeader = Number(line.split(' ')[1])
    else if (line.startsWith('send ')) cur.send.push(unescape(line.slice(5)))
    else if (line.startsWith('expect ')) cur.expect.push(unescape(line.slice(7)))
    else if (line.trim() === 'end') cases.push(cur)
  }
  return cases
}

const handler = (req) =>
  req.method !== undefined
    ? { status: 200, body: Buffer.concat([Buffer.from(`${req.method} ${req.url} `), req.body]) }
    : Buffer.from(req.body.toString('latin1').toUpperCase(), 'latin1')

// The same answer from a fetch-style app: the request target is what follows the
// URL's origin.
const fetchApp = async (req) => {
  const target = req.url.slice(new URL(req.url).origin.length)
  const body = Buffer.from(await req.arrayBuffer())
  return new Response(Buffer.concat([Buffer.from(`${req.method} ${target} `), body]))
}

for (const c of load()) {
  // serve and fetch stream request bodies: max_body limits them, not max_frame (their
  // 413 is in uploads.test.js).
  const skip = (c.protocol === undefined || c.protocol === 'http') && c.opts.maxFrame !== undefined && 'max_frame does not limit the bodies of a front that streams them'
  test(c.name, { skip }, async () => {
    const s = corral.serve({ protocol: c.protocol, ioWorkers: 1, handler, ...c.opts })
    await check(s, c)
  })
  if (c.protocol === undefined || c.protocol === 'http') {
    test(`${c.name} (through fetch)`, { skip }, async () => {
      await check(corral.serve({ ioWorkers: 1, fetch: fetchApp, ...c.opts }), c)
    })
  }
}

async function check(s, c) {
  {
    const sock = net.connect(s.address().port, '127.0.0.1')
    sock.end(Buffer.concat(c.send))
    const chunks = []
    for await (const chunk of sock) chunks.push(chunk)
    const got = Buffer.from(Buffer.concat(chunks).toString('latin1').replace(/(^|\n)date: [^\r\n]*\r\n/g, '$1'), 'latin1')
    assert.deepStrictEqual(got, Buffer.concat(c.expect))
    await s.close()
  }
}
