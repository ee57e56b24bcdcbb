// Package interop holds the tests that run scuttle against the real
// JavaScript scuttlebutt@5.6.15 (dominictarr's) under Node: peer.js is a
// Node replica driven over stdin, and interop_test.go runs it against Go
// replicas speaking stream.JSONLines.
//
// The tests need node on PATH and the pinned npm packages:
//
//	cd interop && npm ci
//	go test ./interop
//
// Without node, or without interop/node_modules, they skip and say why;
// with CI=true and node present, a missing node_modules is a failure.
//
// testdata/record-golden.js recorded testdata/golden-session.jsonl once
// from the real package; the golden test checks that the Go side writes
// the same lines for the same session.
package interop
