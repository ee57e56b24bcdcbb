#!/usr/bin/env node
// Records golden-session.jsonl: what scuttlebutt@5.6.15 writes, both ways,
// for a scripted session between two Models, A and B, piped in process.
// The clock is stubbed (Date.now), so the recording is deterministic; run
// it again and the file must not change:
//
//   cd interop && node testdata/record-golden.js > testdata/golden-session.jsonl
//
// Each output line is a JSON object, in the order things happened:
//   {"op":"set","who":"A","key":K,"value":V,"now":MS}   a write (value null deletes)
//   {"op":"connect","meta":M}                            A and B start their streams
//   {"dir":"A>B","line":L} / {"dir":"B>A","line":L}      one line on the wire, without "\n"
// The Go test (golden_test.go) replays A's part and checks that Go writes
// A's lines, less the echoes JavaScript sends back.
'use strict'
var path = require('path')
var Model = require(path.join(__dirname, '..', 'node_modules', 'scuttlebutt', 'model'))
var PassThrough = require('stream').PassThrough

var now = 0
Date.now = function () { return now }

var T0 = 1795385884149 // in [2^40, 2^41): same-millisecond fractions match Go's HLC
var ops = [
  // History: written before the streams start. A's burst shares one
  // millisecond, so its timestamps get monotonic-timestamp's fractions.
  { who: 'A', now: T0, key: 'x', value: 1 },
  { who: 'A', now: T0, key: 'y', value: 'hello' },
  { who: 'A', now: T0, key: 'z', value: { a: [1, 2, { b: null }], bb: { c: true } } },
  { who: 'A', now: T0, key: 'u', value: 'héllo € 😀 \u2028 "q" \\ \n\t\u0001 </script>' },
  { who: 'A', now: T0, key: 'gone', value: null },
  { who: 'B', now: T0 + 10, key: 'w', value: true },
  { who: 'B', now: T0 + 10, key: 'y', value: 'from B' },
  { connect: true, meta: { app: 'demo', ver: 1 } },
  // Live, both ways; JavaScript echoes each live update once.
  { who: 'A', now: T0 + 100, key: 'x', value: 2 },
  { who: 'B', now: T0 + 150, key: 'v', value: 'world' },
  { who: 'A', now: T0 + 200, key: 'z', value: null },
  { who: 'B', now: T0 + 250, key: 'x', value: null },
  { who: 'A', now: T0 + 300, key: 'n1', value: 1e300 },
  { who: 'A', now: T0 + 300, key: 'n2', value: 1.5e-7 },
  { who: 'A', now: T0 + 300, key: 'n3', value: 9007199254740991 },
  { who: 'A', now: T0 + 300, key: 'n4', value: -123.456 },
  { who: 'A', now: T0 + 300, key: 'n5', value: 0.1 },
  { who: 'A', now: T0 + 300, key: 'n6', value: 1e21 },
  { who: 'A', now: T0 + 300, key: 'n7', value: 4611686018427387904 },
  { who: 'A', now: T0 + 400, key: 'n8', value: 5e-324 },
  { who: 'A', now: T0 + 400, key: 'n9', value: [0, -1, 123456789012345680000, 1.7976931348623157e308] },
  { who: 'A', now: T0 + 400, key: 'e', value: [[], {}, ''] }
]

function out (o) { process.stdout.write(JSON.stringify(o) + '\n') }

var a = new Model('A')
var b = new Model('B')
var models = { A: a, B: b }

function tap (dir) {
  var t = new PassThrough()
  var soFar = ''
  t.on('data', function (c) {
    soFar += c.toString()
    var lines = soFar.split('\n')
    soFar = lines.pop()
    lines.forEach(function (l) { out({ dir: dir, line: l }) })
  })
  return t
}

function tick () { return new Promise(function (resolve) { setTimeout(resolve, 30) }) }

async function main () {
  for (var op of ops) {
    if (op.connect) {
      out({ op: 'connect', meta: op.meta })
      var as = a.createStream({ meta: op.meta })
      var bs = b.createStream()
      as.pipe(tap('A>B')).pipe(bs).pipe(tap('B>A')).pipe(as)
    } else {
      now = op.now
      out({ op: 'set', who: op.who, key: op.key, value: op.value, now: op.now })
      models[op.who].set(op.key, op.value)
    }
    await tick()
  }
  process.exit(0)
}
main()
