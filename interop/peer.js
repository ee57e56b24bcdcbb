#!/usr/bin/env node
// A scuttlebutt@5.6.15 replica driven over stdin, for scuttle's interop
// tests (interop_test.go) and by hand.
//
//   node peer.js [--type model|events] ID
//
// Commands are JSON lines on stdin, each with an "op" and a "seq"; every
// command is answered by one line {"seq":N,...} on stdout. Events that
// happen on their own are lines {"event":...,"name":...}.
//
//   {"op":"listen"}                      -> {"seq","port"}; each accepted socket is served
//                                          as stream "in1", "in2", ...
//   {"op":"connect","port":P,"name":N}   -> {"seq"} once connected; served as stream N
//   {"op":"set","key":K,"value":V}       -> {"seq","ts"}   (Model; null deletes)
//   {"op":"setMany","entries":[[K,V],...]} all in one tick, so timestamps get fractions
//   {"op":"emit","event":E,"args":[...]}  (ReliableEventEmitter)
//   {"op":"state"}                       -> {"seq","state","clock","history","oldData","oldOwn"}
//                                          (oldData: updates dropped as already seen;
//                                          oldOwn: those that were its own, sent back)
//   {"op":"save","file":F,"tail":bool}   createReadStream().pipe(fs.createWriteStream(F))
//   {"op":"load","file":F}               fs.createReadStream(F).pipe(createWriteStream())
//   {"op":"end","name":N}                end stream N (its socket closes)
//   {"op":"exit"}
//
// Stream options for connect and listen: "opts" is passed to createStream
// (for example {"writable":false,"sendClock":true}).
'use strict'
var net = require('net')
var fs = require('fs')
var readline = require('readline')

var args = process.argv.slice(2)
var type = 'model'
if (args[0] === '--type') { type = args[1]; args = args.slice(2) }
var id = args[0]
if (!id) { console.error('usage: node peer.js [--type model|events] ID'); process.exit(2) }

var Type = type === 'events' ? require('scuttlebutt/events') : require('scuttlebutt/model')
var doc = new Type(id)
var streams = {}
var accepted = 0
var oldData = 0, oldOwn = 0
doc.on('old_data', function (u) { oldData++; if (u[2] === id) oldOwn++ })

function out (obj) { process.stdout.write(JSON.stringify(obj) + '\n') }

function serve (sock, name, opts) {
  var s = doc.createStream(opts || {})
  streams[name] = s
  s.on('header', function (h) { out({ event: 'header', name: name, header: h }) })
  s.on('sync', function () { out({ event: 'sync', name: name }) })
  s.on('error', function (err) { out({ event: 'error', name: name, error: String(err && err.message || err) }) })
  sock.on('error', function (err) { out({ event: 'sockerror', name: name, error: String(err.message) }) })
  sock.on('close', function () { out({ event: 'close', name: name }) })
  sock.pipe(s).pipe(sock)
}

var ops = {
  listen: function (c, reply) {
    var server = net.createServer(function (sock) {
      accepted++
      serve(sock, 'in' + accepted, c.opts)
    })
    server.listen(c.port || 0, '127.0.0.1', function () { reply({ port: server.address().port }) })
  },
  connect: function (c, reply) {
    var sock = net.connect(c.port, '127.0.0.1', function () { reply({}) })
    serve(sock, c.name, c.opts)
  },
  set: function (c, reply) {
    doc.set(c.key, c.value)
    reply({ ts: doc.sources[id] })
  },
  setMany: function (c, reply) {
    c.entries.forEach(function (e) { doc.set(e[0], e[1]) })
    reply({ ts: doc.sources[id] })
  },
  emit: function (c, reply) {
    doc.emit.apply(doc, [c.event].concat(c.args || []))
    reply({ ts: doc.sources[id] })
  },
  state: function (c, reply) {
    reply({
      state: type === 'model' ? doc.toJSON() : null,
      clock: doc.sources,
      history: doc.history(),
      oldData: oldData,
      oldOwn: oldOwn
    })
  },
  save: function (c, reply) {
    var file = fs.createWriteStream(c.file)
    doc.createReadStream({ tail: !!c.tail }).pipe(file)
    if (c.tail) file.on('open', function () { reply({}) })
    else file.on('finish', function () { reply({}) })
  },
  load: function (c, reply) {
    var ws = doc.createWriteStream()
    var errors = []
    ws.on('error', function (err) { errors.push(String(err && err.message || err)) })
    var rs = fs.createReadStream(c.file)
    rs.on('end', function () { setImmediate(function () { reply({ errors: errors }) }) })
    rs.pipe(ws)
  },
  end: function (c, reply) {
    streams[c.name].end()
    reply({})
  },
  exit: function () { process.exit(0) }
}

readline.createInterface({ input: process.stdin }).on('line', function (line) {
  if (!line.trim()) return
  var c = JSON.parse(line)
  var op = ops[c.op]
  if (!op) return out({ seq: c.seq, error: 'unknown op ' + c.op })
  try {
    op(c, function (r) { r.seq = c.seq; out(r) })
  } catch (err) {
    out({ seq: c.seq, error: String(err && err.stack || err) })
  }
}).on('close', function () { process.exit(0) })
