'use strict'
// The Node side of bench/tls_vs_nginx.sh: a hello handler over TLS, either corral's
// serve({ tls }) or node:https (the peer), with the same PEM files.
//   node node_tls.js corral|https PORT CERT.pem KEY.pem
const fs = require('node:fs')
const path = require('node:path')
const [kind, port, certFile, keyFile] = process.argv.slice(2)
if (!['corral', 'https'].includes(kind) || !port || !certFile || !keyFile) {
  console.error('usage: node node_tls.js corral|https PORT CERT.pem KEY.pem')
  process.exit(2)
}
const tls = { cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }
if (kind === 'corral') {
  const corral = require(path.join(__dirname, '..', '..', 'bindings', 'node'))
  corral.serve({ host: '127.0.0.1', port: Number(port), tls, handler: () => 'hello\n' })
} else {
  // As shared/peers/node_http.js, over TLS: one thread, backlog 4096.
  require('node:https').createServer(tls, (req, res) => res.end('hello\n')).listen(Number(port), '127.0.0.1', 4096)
}
