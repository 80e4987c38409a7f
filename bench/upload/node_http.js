'use strict'
// The same app as node_fetch.js on Node's own http module (a request listener):
//   node node_http.js PORT
const http = require('node:http')

const port = Number(process.argv[2])
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`usage: node node_http.js PORT (not ${JSON.stringify(process.argv[2])})`)
  process.exit(2)
}

http
  .createServer((req, res) => {
    const echo = req.url === '/echo'
    const parts = []
    let n = 0
    req.on('data', (chunk) => {
      n += chunk.length
      if (echo) parts.push(chunk)
    })
    req.on('end', () => {
      const body = req.method === 'GET' ? 'ok\n' : echo ? Buffer.concat(parts) : String(n)
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  })
  .listen(port, '127.0.0.1')
