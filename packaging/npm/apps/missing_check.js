'use strict'
// Installed with --omit=optional, corral has no addon: require('corral') must fail with
// CORRAL_NATIVE_MISSING, name the package to install and say how to build from source.
const assert = require('node:assert')

assert.throws(
  () => require('corral'),
  (e) => {
    assert.strictEqual(e.code, 'CORRAL_NATIVE_MISSING', `code ${e.code}: ${e.message}`)
    for (const part of ['corral-linux-x64-gnu', 'optionalDependency', '--omit=optional', 'napi build', 'CORRAL_NATIVE_PATH']) {
      assert.ok(e.message.includes(part), `the message does not mention ${part}: ${e.message}`)
    }
    process.stdout.write(`test_npm: without the optional package, require('corral') fails as it should:\n  ${e.message}\n`)
    return true
  },
)
