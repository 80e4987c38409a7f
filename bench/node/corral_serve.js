'use strict'
// corral serving, JS handler on the main thread; `/work` (1 ms of JS) on worker threads.
//   node corral_serve.js PORT [WORKERS]
const path = require('node:path')
const corral = require('../../bindings/node')
const port = Number(process.argv[2] || 9100)
const workers = Number(process.argv[3] || 2)
corral.serve({
  port,
  heavy: ['/work'],
  heavyThreads: workers,
  heavyModule: path.join(__dirname, 'work.js'),
  handler: () => 'hello\n',
})
