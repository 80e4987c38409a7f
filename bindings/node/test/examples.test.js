'use strict'
// Every Node example runs and checks itself.
const { test } = require('node:test')
const assert = require('node:assert')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

for (const name of ['http_offload.js', 'heavy_workers.js']) {
  test(`example ${name}`, () => {
    const file = path.join(__dirname, '..', '..', '..', 'examples', 'node', name)
    const r = spawnSync(process.execPath, [file, '--self-test'], { timeout: 120000, encoding: 'utf8' })
    assert.strictEqual(r.status, 0, r.stdout + r.stderr)
    assert.match(r.stdout, / 0 failed/)
  })
}
