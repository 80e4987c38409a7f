'use strict'
// Runs `npx corral --threads 2 --port 0 app.js` in this directory, reads the address it
// prints, checks a GET through Express, then sends SIGTERM to its process group, as a
// service manager stops a service (npx itself does not pass SIGTERM on to corral): corral
// must drain cleanly. Bounded: 60 s in all.
const { spawn } = require('node:child_process')
const http = require('node:http')

let out = ''
let answered = false
const child = spawn('npx', ['--no', '--', 'corral', '--threads', '2', '--port', '0', 'app.js'], {
  stdio: ['ignore', 'pipe', 'pipe'],
  detached: true,
})
const group = (signal) => {
  try {
    process.kill(-child.pid, signal)
  } catch {}
}
const fail = (m) => {
  process.stderr.write(`test_npm: npx corral: ${m}\n${out}`)
  group('SIGKILL')
  process.exit(1)
}
const timer = setTimeout(() => fail('no clean run within 60 s'), 60000)
child.stderr.on('data', (c) => (out += c))
child.stdout.on('data', (c) => {
  out += c
  const m = /listening on (http:\/\/[^\s]+)/.exec(out)
  if (m && !child.asked) {
    child.asked = true
    get(`${m[1]}/hello/npm`)
  }
})
// Every process of the group writes to these pipes: closed, all of them have exited.
child.stdout.on('close', () => {
  if (!answered) fail('exited before answering')
  if (!/drained: .* clean\n/.test(out)) fail('no clean drain after SIGTERM')
  clearTimeout(timer)
  process.stdout.write(`test_npm: npx corral served Express on 2 threads and drained on SIGTERM:\n${out}`)
})

function get(url) {
  http
    .get(url, { agent: false }, (res) => {
      let body = ''
      res.on('data', (c) => (body += c))
      res.on('end', () => {
        let json = {}
        try {
          json = JSON.parse(body)
        } catch {}
        if (res.statusCode !== 200 || json.hello !== 'npm' || !(json.thread > 0)) {
          fail(`GET ${url}: HTTP ${res.statusCode} ${body} (want 200 and {"hello":"npm"} from a worker thread)`)
        }
        answered = true
        group('SIGTERM')
      })
    })
    .on('error', (e) => fail(`GET ${url}: ${e.message}`))
}
