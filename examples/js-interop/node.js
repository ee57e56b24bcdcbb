#!/usr/bin/env node
// A JavaScript scuttlebutt@5.6.15 Model on TCP, for examples/js-interop.
//
//   node examples/js-interop/node.js --listen 7000 [ID]    serve every peer that connects
//   node examples/js-interop/node.js --connect 7000 [ID]   connect to a listener
//
// It sets "from-node", prints its state as JSON on each sync and change,
// and runs until interrupted. scuttlebutt is taken from interop/node_modules
// (run `cd interop && npm ci` once) or from a node_modules of its own.
'use strict'
var net = require('net')
var path = require('path')
var Model
try {
  Model = require('scuttlebutt/model')
} catch (err) {
  Model = require(path.join(__dirname, '..', '..', 'interop', 'node_modules', 'scuttlebutt', 'model'))
}

var mode = process.argv[2]
var port = Number(process.argv[3])
var id = process.argv[4] || 'node'
if ((mode !== '--listen' && mode !== '--connect') || !port) {
  console.error('usage: node.js --listen PORT [ID] | --connect PORT [ID]')
  process.exit(2)
}

var m = new Model(id)
m.set('from-node', { lang: 'js', pid: process.pid })
m.on('update', function () { console.log('state', JSON.stringify(m.toJSON())) })

function serve (sock) {
  var s = m.createStream()
  s.on('sync', function () { console.log('synced', JSON.stringify(m.toJSON())) })
  s.on('error', function (err) { console.error('stream error:', err) })
  sock.on('error', function (err) { console.error('socket error:', err.message) })
  sock.pipe(s).pipe(sock)
}

if (mode === '--listen') {
  net.createServer(serve).listen(port, '127.0.0.1', function () { console.log('listening', port) })
} else {
  var sock = net.connect(port, '127.0.0.1', function () { serve(sock) })
}
