'use strict'
// A user's script: require('corral').serve({ fetch }) answers a GET, then closes cleanly.
// It also checks that the addon came from the corral-linux-x64-gnu package.
const assert = require('node:assert')
const http = require('node:http')
const corral = require('corral')

setTimeout(() => {
  process.stderr.write('test_npm: serve({ fetch }) did not finish within 30 s\n')
  process.exit(1)
}, 30000).unref()

function get(port, path) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = ''
        res.on('data', (c) => (body += c))
        res.on('end', () => resolve({ status: res.statusCode, body }))
      })
      .on('error', reject)
  })
}

async function main() {
  const loaded = Object.keys(require.cache).filter((f) => f.endsWith('.node'))
  assert.deepStrictEqual(loaded, [require.resolve('corral-linux-x64-gnu')], 'the addon is the platform package’s')
  const server = corral.serve({ fetch: (req) => new Response(`hello ${new URL(req.url).pathname}\n`) })
  const { port } = server.address()
  const r = await get(port, '/fetch')
  assert.deepStrictEqual(r, { status: 200, body: 'hello /fetch\n' })
  const report = await server.close()
  assert.strictEqual(report.clean, true, `close() was not clean: ${JSON.stringify(report)}`)
  process.stdout.write(`test_npm: serve({ fetch }) answered on port ${port} and closed cleanly (${report.requestsCompleted} request)\n`)
}

main().catch((e) => {
  process.stderr.write(`test_npm: serve({ fetch }): ${e.stack}\n`)
  process.exit(1)
})
