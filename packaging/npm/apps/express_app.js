'use strict'
// An unchanged Express app, as a user would hand it to `npx corral app.js`.
const express = require('express')
const { threadId } = require('node:worker_threads')

const app = express()
app.get('/hello/:name', (req, res) => res.json({ hello: req.params.name, thread: threadId }))
module.exports = app
