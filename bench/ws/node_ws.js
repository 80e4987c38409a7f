'use strict'
// The plain `ws` peer of `corral-bench ws judge` (npm ci in bench/ws/ installs `ws`):
//   node node_ws.js PORT            # listens on 127.0.0.1:PORT, prints "listening on ws://..."
// Exported unchanged for corral.threads({ module: 'node_ws.js' }): the module's export is
// an http.Server that is not listening, so each thread gets its own server and clients.
// Routes: /ws echoes every message to its sender; /broadcast and /pub send every message
// to every client of that route, sender included, by looping over them (what a `ws` app
// does for a topic); GET any path answers "ok" (the judge's readiness probe).
const http = require('node:http')
const { WebSocketServer } = require('ws')

const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 })
  res.end('ok\n')
})
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false })
// The clients of each fan-out route.
const rooms = { '/broadcast': new Set(), '/pub': new Set() }

function fanOut(room, data, isBinary) {
  for (const c of room) c.send(data, { binary: isBinary })
}

server.on('upgrade', (req, socket, head) => {
  const path = new URL(req.url, 'http://x').pathname
  if (path !== '/ws' && !rooms[path]) {
    socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n')
    return
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    socket.setNoDelay(true)
    // A protocol error must close this client, not crash the server.
    ws.on('error', () => ws.terminate())
    const room = rooms[path]
    if (!room) {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
      return
    }
    room.add(ws)
    ws.on('close', () => room.delete(ws))
    ws.on('message', (data, isBinary) => fanOut(room, data, isBinary))
  })
})

module.exports = server

if (require.main === module) {
  const port = Number(process.argv[2])
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`usage: node node_ws.js PORT (not ${JSON.stringify(process.argv[2])})`)
    process.exit(2)
  }
  server.listen(port, '127.0.0.1', () => console.log(`listening on ws://127.0.0.1:${server.address().port}`))
}
