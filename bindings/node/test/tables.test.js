'use strict'
// The option, error and metric tables reach Node whole: every option of corral's table is
// taken by name or refused with a CORRAL_ code (never a crash), every error kind has its
// code, and stats(), prometheus() and the metrics list name the same metrics.
const { test } = require('node:test')
const assert = require('node:assert')
const fc = require('fast-check')
const { inspect } = require('node:util')

const corral = require('..')
const binding = require('../binding.js')

const OPTIONS = corral.options()

function start(name, value) {
  const o = OPTIONS.find((x) => x.name === name)
  if (o && o.applies === 'handoff') return corral.listen({ [name]: value })
  return corral.serve({ handler: () => '', [name]: value })
}

test('the option table is complete and spelled in camelCase', () => {
  const names = OPTIONS.map((o) => o.name)
  for (const n of ['ioWorkers', 'idleTimeout', 'handoffCapacity', 'maxConnectionsPerIp', 'perIpScope']) {
    assert.ok(names.includes(n), n)
  }
  for (const o of OPTIONS) assert.ok(o.doc && o.range && o.default, o.name)
  const idle = OPTIONS.find((o) => o.name === 'idleTimeout')
  assert.match(idle.range, /milliseconds/)
})

test('unknown, mistyped and out-of-range options are refused with a code', () => {
  assert.throws(() => corral.serve({ handler: () => '', idleTimeot: 5 }), {
    code: 'CORRAL_INVALID_CONFIG',
    message: /unknown option "idleTimeot"/,
  })
  assert.throws(() => corral.listen({ maxInFlite: 4 }), { code: 'CORRAL_INVALID_CONFIG' })
  assert.throws(() => corral.serve({ handler: () => '', idleTimeout: 1e20 }), {
    code: 'CORRAL_INVALID_CONFIG',
    message: /idleTimeout = 1e20 is out of range/,
  })
  assert.throws(() => corral.serve({ handler: () => '', maxInFlight: 1.5 }), { code: 'CORRAL_INVALID_CONFIG' })
  assert.throws(() => corral.serve({ handler: () => '', maxInFlight: {} }), { code: 'CORRAL_INVALID_CONFIG' })
  assert.throws(() => corral.serve({ handler: () => '', lifoThreshold: 4 }), {
    code: 'CORRAL_INVALID_CONFIG',
    message: /CPU pool/,
  })
  assert.throws(() => corral.listen({ maxInFlight: 4 }), {
    code: 'CORRAL_INVALID_CONFIG',
    message: /no effect on a handoff engine/,
  })
  assert.throws(() => corral.serve({ handler: () => '', port: 70000 }), { code: 'CORRAL_INVALID_CONFIG' })
  assert.throws(() => corral.serve({ handler: () => '', port: 'x' }), { code: 'CORRAL_INVALID_CONFIG' })
})

test('every option with any value is taken or refused with a CORRAL_ code', () => {
  const names = OPTIONS.map((o) => o.name)
  const value = fc.oneof(
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
    fc.double(),
    fc.constantFrom(NaN, Infinity, -Infinity, -0, 2 ** 53, 1e300),
    fc.string({ maxLength: 10 }),
    fc.constantFrom('250ms', '1.5s', '0', 'stealing', 'http', 'true', '\uD800'),
    fc.array(fc.integer(), { maxLength: 2 }),
    fc.object({ maxDepth: 1 }),
  )
  fc.assert(
    fc.property(fc.constantFrom(...names), value, (name, v) => {
      let engine
      try {
        engine = start(name, v)
      } catch (e) {
        assert.match(String(e.code), /^CORRAL_/, `${name}=${inspect(v)}: ${e.message}`)
        return
      }
      engine.unref()
      engine.close({ timeout: 1000 })
    }),
    { numRuns: 300, examples: [['model', { toString: null }], ['ioWorkers', Object.create(null)]] },
  )
})

test('each error kind has its code', () => {
  const codes = binding.errorCodes()
  assert.ok(codes.includes('CORRAL_INVALID_CONFIG') && codes.includes('CORRAL_BIND'))
  for (const c of codes) assert.match(c, /^CORRAL_[A-Z_]+$/)
})

test('stats(), prometheus() and the metrics list agree', async () => {
  const s = corral.serve({ handler: () => 'x', ioWorkers: 2 })
  const st = s.stats()
  const flat = Object.keys(st).filter((k) => k !== 'listeners' && k !== 'workers')
  const camel = (n) => n.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())
  const prom = []
  for (const line of s.prometheus().split('\n')) {
    const m = /^# TYPE corral_(\w+) (counter|gauge)$/.exec(line)
    if (m) prom.push(camel(m[2] === 'counter' ? m[1].slice(0, -'_total'.length) : m[1]))
  }
  assert.deepStrictEqual(flat.sort(), prom.sort())
  assert.ok(flat.includes('connectionsRefusedPerIp') && flat.includes('repliesTimedOut') && flat.includes('cpuPanics'))
  assert.strictEqual(st.workers.length, 2)
  assert.strictEqual(typeof st.workers[0].workerRequests, 'number')
  await s.close()
})

test('an engine refused at creation does not keep the process alive', () => {
  const { spawnSync } = require('node:child_process')
  const here = JSON.stringify(require('node:path').join(__dirname, '..'))
  const code = `const c = require(${here})
for (const o of [{ port: 'x' }, { idleTimeot: 1 }, { port: 70000 }, { maxInFlight: -1 }]) {
  try { c.serve({ handler: () => '', ...o }) } catch {}
  try { c.listen(o) } catch {}
}`
  const r = spawnSync(process.execPath, ['-e', code], { timeout: 20000 })
  assert.strictEqual(r.status, 0, String(r.stderr))
})
