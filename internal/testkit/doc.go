// Package testkit is the root of the harnesses that test and measure the
// library and never ship in it: simnet (the one test network: hand-stepped
// Links, or real streams over pipes), leak (goroutine leak checks), bench
// and cmd/benchtable (the workloads behind `make bench`). What the library
// itself uses lives beside it in internal/: cborx, wire and value.
package testkit
