'use strict'
// The local registry's helpers for packaging/test_npm.sh (Node's own modules only):
//   node registry.js port              a free loopback port, printed
//   node registry.js wait URL PID S    polls URL/-/ping until it answers, PID dies or S seconds pass
//   node registry.js token URL         adds a user (npm adduser's PUT) and prints its token
const net = require('node:net')

const [cmd, ...args] = process.argv.slice(2)

function fail(message) {
  process.stderr.write(`test_npm: ${message}\n`)
  process.exit(1)
}

async function wait(url, pid, seconds) {
  const deadline = Date.now() + seconds * 1000
  let last = 'no answer yet'
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0)
    } catch {
      fail(`the registry (pid ${pid}) exited before answering at ${url}; its log is above`)
    }
    try {
      const r = await fetch(`${url}/-/ping`, { signal: AbortSignal.timeout(2000) })
      if (r.ok) return
      last = `HTTP ${r.status}`
    } catch (e) {
      last = e.cause ? e.cause.code || e.cause.message : e.message
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  fail(`the registry did not answer at ${url} within ${seconds} s (last: ${last})`)
}

async function token(url) {
  const name = 'corral-test'
  const r = await fetch(`${url}/-/user/org.couchdb.user:${name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ _id: `org.couchdb.user:${name}`, name, password: 'corral-test-password', type: 'user', roles: [] }),
  })
  const body = await r.json().catch(() => ({}))
  if (!r.ok || !body.token) fail(`adding a user to ${url} gave HTTP ${r.status}: ${JSON.stringify(body)}`)
  process.stdout.write(`${body.token}\n`)
}

if (cmd === 'port') {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    process.stdout.write(`${s.address().port}\n`)
    s.close()
  })
} else if (cmd === 'wait') {
  wait(args[0], Number(args[1]), Number(args[2]))
} else if (cmd === 'token') {
  token(args[0])
} else {
  fail(`usage: node registry.js port | wait URL PID SECONDS | token URL (not ${cmd})`)
}
