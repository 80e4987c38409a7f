'use strict'
// An http.createServer app whose accept is done by corral (handoff).
//   node corral_offload.js PORT
const http = require('node:http')
const corral = require('../../bindings/node')
const app = http.createServer((req, res) => res.end('hello\n'))
corral.listen({ port: Number(process.argv[2] || 9101), backlog: 4096 }, (s) => app.emit('connection', s))
