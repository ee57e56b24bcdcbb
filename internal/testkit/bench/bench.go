// Package bench holds the replication workloads W1 to W5 (package model),
// D1 to D3 (package doc) and P1, P2 (package filelog) that the Go
// benchmarks (stream/bench_test.go, model/bench_test.go) and the table of
// `make bench` (internal/testkit/cmd/benchtable) run, so that each workload
// is written once.
//
// # The workloads
//
//   - W1: Keys distinct keys Set on replica A while it is live-connected to
//     B: updates per second until B holds them all, and bytes per update on
//     the wire (A's Conn BytesOut).
//   - W2: Keys keys each overwritten Rounds times, live: updates per second,
//     then the length of B's History of an empty clock (one update per key)
//     and the heap both replicas hold.
//   - W3: A and B synced with Keys keys, disconnected, Changes changes on
//     each side, reconnected: bytes exchanged both ways and the time until
//     both are synced and their clocks equal.
//   - W4: cold sync of Keys keys into an empty replica: time until synced.
//   - W5: live heap bytes per key of a Model holding Keys keys with
//     ValueSize-byte string values, Set locally (W5Local) or received by a
//     sync (W5Sync).
//   - D1, D2, D3: W1, W5Local and W3 on a doc.Doc, one patch per leaf at
//     path "/" + key (see D1, D2, D3): patches per second and bytes per patch,
//     heap per leaf, and the reconnection's bytes and time.
//
// W1 to W4 write the key and value shapes of the peers' own benchmarks
// (JavaScript scuttlebutt, Yjs, Automerge), so that bytes compare like for
// like: keys "k0", "k1", ... (Key) and distinct 32-byte ASCII values,
// r + "." + i + "." padded from Alphabet (Value). W5 and the persistence
// workloads keep their own keys, "key-0000000", ... (appendKey). The two
// replicas are named ReplicaA and ReplicaB (8 bytes each, as a short random
// id would be).
//
// Each workload runs over a Transport: net.Pipe or TCP on 127.0.0.1. The
// timed part excludes building the replicas beforehand and checking the
// result afterwards; an Options.Timer (a *testing.B) is stopped around those
// parts so that ns/op is the timed part too.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// Replica ids of the two sides of every workload.
const (
	ReplicaA = "replica1"
	ReplicaB = "replica2"
)

// Default sizes of the workloads, as the issue states them.
const (
	DefaultKeys      = 100_000   // W1, W3, W4
	DefaultW2Keys    = 1_000     // W2
	DefaultRounds    = 100       // W2: writes per key
	DefaultChanges   = 100       // W3: changes on each side while apart
	DefaultW5Keys    = 1_000_000 // W5
	DefaultValueSize = 32        // W5: bytes per value
)

// pollInterval is how often a workload checks whether the receiving
// replica has caught up; it bounds the timing error of W1 and W2.
const pollInterval = 200 * time.Microsecond

// Transport is how the two replicas of a workload are connected.
type Transport string

// The transports.
const (
	Pipe Transport = "pipe" // net.Pipe: synchronous, in memory
	TCP  Transport = "tcp"  // TCP over 127.0.0.1, Nagle off (Go's default)
)

// Transports lists every Transport, in the order results are reported.
var Transports = []Transport{Pipe, TCP}

// Timer is the part of *testing.B a workload uses to keep its setup out of
// the measurement.
type Timer interface {
	StartTimer()
	StopTimer()
}

// Options selects a workload's transport and sizes. A nil *Options, and
// every zero field, means the default. Each workload uses the fields its
// documentation names.
type Options struct {
	Transport Transport // Pipe by default
	Keys      int       // keys or leaves written; DefaultKeys (W2: DefaultW2Keys, W5: DefaultW5Keys, D2: DefaultD2Leaves)
	Rounds    int       // W2: writes per key; DefaultRounds
	Changes   int       // W3, D3: changes per side; DefaultChanges
	ValueSize int       // W5, D2: value bytes; DefaultValueSize
	// Timer, if not nil, is stopped while the workload builds and checks
	// its replicas and running while it measures.
	Timer Timer
	// HeapProfile, if not nil, receives a heap profile (pprof format) taken
	// by W5 or D2 when it measures the heap, while the replica is live: read it
	// with `go tool pprof -sample_index=inuse_space`.
	HeapProfile io.Writer
	// Conn, if not nil, is the stream.Options of both sides' Conns
	// (Version, Compress); nil means the defaults.
	Conn *stream.Options
}

func (o *Options) withDefaults(keys int) Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Transport == "" {
		c.Transport = Pipe
	}
	if c.Keys <= 0 {
		c.Keys = keys
	}
	if c.Rounds <= 0 {
		c.Rounds = DefaultRounds
	}
	if c.Changes <= 0 {
		c.Changes = DefaultChanges
	}
	if c.ValueSize <= 0 {
		c.ValueSize = DefaultValueSize
	}
	if c.Timer == nil {
		c.Timer = nopTimer{}
	}
	return c
}

type nopTimer struct{}

func (nopTimer) StartTimer() {}
func (nopTimer) StopTimer()  {}

// Result is what one run of a workload measured. Fields a workload does not
// measure are zero.
type Result struct {
	Workload  string    // "W1" ... "W5", "D1" ... "D3", "P1", "P2"
	Transport Transport // "" when no connection is involved (W5 local)
	// N is how many updates the timed part replicated (W1, W2, W3: both
	// sides' changes, W4), or how many keys the replica holds (W5).
	N int
	// Duration is the timed part: writes until the peer has them (W1, W2),
	// connect until both sides are synced and equal (W3, W4), the Sets
	// (W5 local) or the sync (W5 sync).
	Duration time.Duration
	// UpdatesPerSec is N / Duration.
	UpdatesPerSec float64
	// CPU is the CPU time, user and system, the whole process used during
	// the timed part: both replicas, both Conns and the polling (W1, W4;
	// zero where the system does not say).
	CPU time.Duration
	// CPUPerUpdate is CPU / N.
	CPUPerUpdate time.Duration
	// Bytes is what the timed part put on the wire, framing included: A's
	// side for W1 and W2, both directions for W3, W4 and W5 sync.
	Bytes int64
	// BytesPerUpdate is Bytes / N.
	BytesPerUpdate float64
	// DataBytes is the size of the updates' Data among Bytes: the payload,
	// which no encoding of the protocol can shrink (W1, W3, W4).
	DataBytes int64
	// OverheadPerUpdate is (Bytes - DataBytes) / N: what the protocol and
	// its encoding cost beyond the payload, when DataBytes is known.
	OverheadPerUpdate float64
	// HeapBytes is the live heap after a full GC, minus the heap before the
	// replicas were built: both replicas for W2, the one replica for W5.
	HeapBytes int64
	// HeapPerKey is HeapBytes per key (W2: per key and replica).
	HeapPerKey float64
	// HistoryLen is len(B.History(empty clock)) after W2.
	HistoryLen int
}

// String formats r on one line, for logs.
func (r Result) String() string {
	tr := string(r.Transport)
	if tr == "" {
		tr = "local"
	}
	s := fmt.Sprintf("%s/%s n=%d %v", r.Workload, tr, r.N, r.Duration)
	if r.UpdatesPerSec > 0 {
		s += fmt.Sprintf(" %.0f updates/s", r.UpdatesPerSec)
	}
	if r.CPU > 0 {
		s += fmt.Sprintf(" CPU %v (%.2f µs/update)", r.CPU.Round(time.Microsecond), float64(r.CPU)/float64(r.N)/1e3)
	}
	if r.Bytes > 0 {
		s += fmt.Sprintf(" %d B (%.1f B/update", r.Bytes, r.BytesPerUpdate)
		if r.DataBytes > 0 {
			s += fmt.Sprintf(", %.1f beyond the data", r.OverheadPerUpdate)
		}
		s += ")"
	}
	if r.HeapBytes != 0 {
		s += fmt.Sprintf(" heap %d B (%.1f B/key)", r.HeapBytes, r.HeapPerKey)
	}
	if r.HistoryLen > 0 {
		s += fmt.Sprintf(" history %d", r.HistoryLen)
	}
	return s
}

func (r *Result) finish() {
	if r.N > 0 && r.Duration > 0 {
		r.UpdatesPerSec = float64(r.N) / r.Duration.Seconds()
	}
	if r.N > 0 && r.CPU > 0 {
		r.CPUPerUpdate = r.CPU / time.Duration(r.N)
	}
	if r.N > 0 && r.Bytes > 0 {
		r.BytesPerUpdate = float64(r.Bytes) / float64(r.N)
	}
	if r.N > 0 && r.DataBytes > 0 {
		r.OverheadPerUpdate = float64(r.Bytes-r.DataBytes) / float64(r.N)
	}
}

// Key returns the i'th key of W1 to W4: "k" + i, as the peers' benchmarks
// write it.
func Key(i int) string {
	return "k" + strconv.Itoa(i)
}

// Alphabet pads the values of W1 to W4 (Value).
const Alphabet = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

// ValueSize is the size of the values of W1 to W4.
const ValueSize = 32

// Value returns the value of W1 to W4 that round r writes to key i, as the
// peers' benchmarks make it: r + "." + i + "." padded to ValueSize bytes
// with the start of Alphabet, so that values are distinct across keys and
// rounds. r must be short enough for that to fit ("a", "b", "r7").
func Value(r string, i int) string {
	b := make([]byte, 0, ValueSize)
	b = append(b, r...)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '.')
	return string(append(b, Alphabet[:ValueSize-len(b)]...))
}

// paddedKeys returns keys 0 to n-1 of W5 and the persistence workloads,
// "key-0000000" style (appendKey).
func paddedKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = string(appendKey(make([]byte, 0, 16), i))
	}
	return keys
}

func appendKey(b []byte, i int) []byte {
	var d [20]byte
	digits := strconv.AppendInt(d[:0], int64(i), 10)
	b = append(b, "key-"...)
	for range 7 - len(digits) {
		b = append(b, '0')
	}
	return append(b, digits...)
}

// Keys returns keys 0 to n-1 of W1 to W4 (Key).
func Keys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = Key(i)
	}
	return keys
}

// NewPair returns two empty Models named ReplicaA and ReplicaB.
func NewPair() (a, b *model.Model, err error) {
	if a, err = model.New(ReplicaA, nil); err != nil {
		return nil, nil, err
	}
	if b, err = model.New(ReplicaB, nil); err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

// Fill sets keys[i] to Value(r, i) on m.
func Fill(m *model.Model, r string, keys []string) error {
	for i, k := range keys {
		if err := m.Set(k, Value(r, i)); err != nil {
			return err
		}
	}
	return nil
}

// Session is a live replication session between two documents, one Conn at
// each end of a connection.
type Session struct {
	A, B   *stream.Conn
	cancel context.CancelFunc
	done   [2]chan struct{}
	errs   [2]error
}

// Connect connects a and b over tr, runs a Conn for each with opts (nil
// for the defaults), and returns once both are synced. Close the Session
// to end it.
func Connect(ctx context.Context, tr Transport, a, b scuttlebutt.Document, opts *stream.Options) (*Session, error) {
	x, y, err := dial(ctx, tr)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Session{
		A:      stream.NewConn(a, x, opts),
		B:      stream.NewConn(b, y, opts),
		cancel: cancel,
		done:   [2]chan struct{}{make(chan struct{}), make(chan struct{})},
	}
	for i, c := range []*stream.Conn{s.A, s.B} {
		go func() {
			defer close(s.done[i])
			s.errs[i] = c.Run(rctx)
		}()
	}
	for _, c := range []*stream.Conn{s.A, s.B} {
		select {
		case <-c.Synced():
		case <-s.done[0]:
			return nil, s.failed("connect")
		case <-s.done[1]:
			return nil, s.failed("connect")
		case <-ctx.Done():
			s.Close()
			return nil, fmt.Errorf("bench: waiting for the sync: %w", ctx.Err())
		}
	}
	return s, nil
}

// failed closes s after one side ended early and returns why.
func (s *Session) failed(what string) error {
	err := s.Close()
	if err == nil {
		err = errors.New("session ended")
	}
	return fmt.Errorf("bench: %s: %w", what, err)
}

// Close ends the session, waits for both Conns, and returns the first error
// either returned.
func (s *Session) Close() error {
	s.cancel()
	<-s.done[0]
	<-s.done[1]
	return errors.Join(s.errs[0], s.errs[1])
}

// Settle waits until each side has read every byte the other has written,
// so that the Stats of both Conns agree.
func (s *Session) Settle(ctx context.Context) error {
	return waitFor(ctx, "the streams to settle", func() bool {
		a, b := s.A.Stats(), s.B.Stats()
		return a.BytesOut == b.BytesIn && b.BytesOut == a.BytesIn
	})
}

// End settles the session (Settle), reads what each side has written,
// and closes it (Close): the end of every workload. The session is closed
// on error too.
func (s *Session) End(ctx context.Context) (aOut, bOut int64, err error) {
	if err := s.Settle(ctx); err != nil {
		s.Close()
		return 0, 0, err
	}
	aOut, bOut = s.A.Stats().BytesOut, s.B.Stats().BytesOut
	return aOut, bOut, s.Close()
}

// Err reports an error of a side that has already ended, without waiting.
func (s *Session) Err() error {
	for i := range s.done {
		select {
		case <-s.done[i]:
			if s.errs[i] != nil {
				return s.errs[i]
			}
			return errors.New("bench: session ended early")
		default:
		}
	}
	return nil
}

// dial returns the two ends of a fresh connection of kind tr.
func dial(ctx context.Context, tr Transport) (x, y net.Conn, err error) {
	switch tr {
	case Pipe:
		x, y = net.Pipe()
		return x, y, nil
	case TCP:
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, err
		}
		defer ln.Close()
		type accepted struct {
			c   net.Conn
			err error
		}
		ch := make(chan accepted, 1)
		go func() {
			c, err := ln.Accept()
			ch <- accepted{c, err}
		}()
		var d net.Dialer
		x, err = d.DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			ln.Close()
			if a := <-ch; a.c != nil {
				a.c.Close()
			}
			return nil, nil, err
		}
		a := <-ch
		if a.err != nil {
			x.Close()
			return nil, nil, a.err
		}
		return x, a.c, nil
	}
	return nil, nil, fmt.Errorf("bench: unknown transport %q", tr)
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, what string, cond func() bool) error {
	if cond() {
		return nil
	}
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: waiting for %s: %w", what, ctx.Err())
		case <-t.C:
			if cond() {
				return nil
			}
		}
	}
}

// liveHeap returns the heap in use after a full collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC() // a second cycle frees what finalizers released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// covers reports whether b's clock covers source's entry at t.
func covers(b scuttlebutt.Document, source string, t vclock.Timestamp) bool {
	return b.Base().Clock().Get(source) >= t
}

// writeHeapProfile writes a heap profile to w, if w is not nil, after the
// collection liveHeap made, so that it shows what is live.
func writeHeapProfile(w io.Writer) error {
	if w == nil {
		return nil
	}
	return pprof.Lookup("heap").WriteTo(w, 0)
}
