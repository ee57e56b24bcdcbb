package stream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/internal/testkit/nettest"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// timeout bounds every wait of these tests. It only fires when something
// hangs, so it is generous for a loaded machine under -race.
const timeout = 30 * time.Second

// connType makes a connected pair of transports; the test serves one model
// on each end. Closing either end must end the other's reads.
type connType struct {
	name string
	pair func(t *testing.T) (a, b net.Conn)
}

// connTypes are the transports every Conn scenario runs over: in-memory,
// TCP, and pathological readers on one side (bufio_test's readMakers).
var connTypes = []connType{
	{"pipe", pipePair},
	{"tcp", tcpPair},
	{"one-byte-reader", wrapReader(iotest.OneByteReader)},
	{"half-reader", wrapReader(iotest.HalfReader)},
}

// testConnTypes runs body once per transport, as a named subtest.
func testConnTypes(t *testing.T, body func(t *testing.T, ct connType)) {
	for _, ct := range connTypes {
		t.Run(ct.name, func(t *testing.T) { body(t, ct) })
	}
}

func pipePair(t *testing.T) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) { return nettest.TCPPair(t) }

// readerConn reads through r but writes and closes the connection itself.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// wrapReader returns a pipe pair whose second end reads through wrap.
func wrapReader(wrap func(io.Reader) io.Reader) func(t *testing.T) (net.Conn, net.Conn) {
	return func(t *testing.T) (net.Conn, net.Conn) {
		a, b := pipePair(t)
		return a, &readerConn{Conn: b, r: wrap(b)}
	}
}

// session is a Conn whose Run is going in its own goroutine.
type session struct {
	*stream.Conn
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, valid once done is closed
}

// start runs a Conn serving doc over rw until the test ends or stop.
func start(t *testing.T, name string, doc scuttlebutt.Document, rw io.ReadWriter, opts *stream.Options) *session {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	s := &session{Conn: stream.NewConn(doc, rw, opts), name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		s.wait(t)
	})
	return s
}

// wait returns Run's result, failing the test if Run does not return.
func (s *session) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-s.done:
		return s.err
	case <-time.After(timeout):
		t.Fatalf("%s: Run did not return within %v; goroutines:\n%s", s.name, timeout, stacks())
		return nil
	}
}

// stop cancels Run's context and returns its result.
func (s *session) stop(t *testing.T) error {
	t.Helper()
	s.cancel()
	return s.wait(t)
}

// waitSynced waits for every session's Synced, failing if one's Run ends
// first with an error.
func waitSynced(t *testing.T, ss ...*session) {
	t.Helper()
	deadline := time.After(timeout)
	for _, s := range ss {
		select {
		case <-s.Synced():
		case <-s.done:
			select {
			case <-s.Synced():
			default:
				t.Fatalf("%s: Run returned %v before Synced", s.name, s.err)
			}
		case <-deadline:
			t.Fatalf("%s: not synced within %v; goroutines:\n%s", s.name, timeout, stacks())
		}
	}
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// eventually polls cond until it returns nil, failing with its last error
// when the deadline passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 100 * time.Microsecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 20*time.Millisecond)
	}
}

// converged reports how the models' clocks or snapshots differ, or nil.
func converged(ms ...*model.Model) error {
	c0, s0 := ms[0].Clock(), ms[0].Snapshot()
	for _, m := range ms[1:] {
		c, s := m.Clock(), m.Snapshot()
		if reflect.DeepEqual(c0, c) && reflect.DeepEqual(s0, s) {
			continue // cheap check first: this is polled
		}
		if d := cmp.Diff(c0, m.Clock()); d != "" {
			return fmt.Errorf("clocks of %s and %s differ (-%[1]s +%[2]s):\n%s", ms[0].ID(), m.ID(), d)
		}
		if d := cmp.Diff(s0, m.Snapshot()); d != "" {
			return fmt.Errorf("snapshots of %s and %s differ (-%[1]s +%[2]s):\n%s", ms[0].ID(), m.ID(), d)
		}
	}
	return nil
}

func waitConverged(t *testing.T, ms ...*model.Model) {
	t.Helper()
	eventually(t, "models converge", func() error { return converged(ms...) })
}

func newTestModel(t *testing.T, id string) *model.Model {
	t.Helper()
	m, err := model.New(id, nil)
	if err != nil {
		t.Fatalf("model.New(%q): %v", id, err)
	}
	return m
}

// newTestModelAt returns a model whose wall clock is frozen at wall: its
// timestamps advance only logically, so tests can order writes.
func newTestModelAt(t *testing.T, id string, wall time.Time) *model.Model {
	t.Helper()
	m, err := model.New(id, &scuttlebutt.Config{Now: func() time.Time { return wall }})
	if err != nil {
		t.Fatalf("model.New(%q): %v", id, err)
	}
	return m
}

func set(t *testing.T, m *model.Model, key string, value any) {
	t.Helper()
	if err := m.Set(key, value); err != nil {
		t.Fatalf("%s: Set(%q, %#v): %v", m.ID(), key, value, err)
	}
}

func del(t *testing.T, m *model.Model, key string) {
	t.Helper()
	if err := m.Delete(key); err != nil {
		t.Fatalf("%s: Delete(%q): %v", m.ID(), key, err)
	}
}

// nested returns a value of depth arrays, one inside the other, around x.
func nested(depth int, x any) any {
	v := x
	for range depth {
		v = []any{v}
	}
	return v
}

// values are one of each kind of value a Model holds, with what Get returns
// for it.
var values = []struct {
	name    string
	in, out any
}{
	{"nil", nil, nil},
	{"true", true, true},
	{"false", false, false},
	{"int", 42, int64(42)},
	{"int8", int8(-8), int64(-8)},
	{"int16", int16(-1600), int64(-1600)},
	{"int32", int32(-32_000_000), int64(-32_000_000)},
	{"int64 min", int64(math.MinInt64), int64(math.MinInt64)},
	{"int64 max", int64(math.MaxInt64), int64(math.MaxInt64)},
	{"uint8", uint8(255), int64(255)},
	{"uint16", uint16(65535), int64(65535)},
	{"uint32", uint32(math.MaxUint32), int64(math.MaxUint32)},
	{"uint64 in range", uint64(math.MaxInt64), int64(math.MaxInt64)},
	{"uint", uint(7), int64(7)},
	{"float32", float32(1.5), 1.5},
	{"float64", 0.1, 0.1},
	{"float64 max", math.MaxFloat64, math.MaxFloat64},
	{"float64 subnormal", 5e-324, 5e-324},
	{"float64 negative", -2.5e-10, -2.5e-10},
	{"float64 integral", 3.0, 3.0},
	{"string", "héllo, wörld", "héllo, wörld"},
	{"string empty", "", ""},
	{"string nul", "a\x00b", "a\x00b"},
	{"bytes", []byte{0, 1, 0xff}, []byte{0, 1, 0xff}},
	{"bytes empty", []byte{}, []byte{}},
	{"array", [3]int{1, 2, 3}, []any{int64(1), int64(2), int64(3)}},
	{"slice", []any{"x", 1, nil, true}, []any{"x", int64(1), nil, true}},
	{"slice of strings", []string{"a", "b"}, []any{"a", "b"}},
	{"slice empty", []any{}, []any{}},
	{"map", map[string]any{"k": []any{1.5}, "n": nil}, map[string]any{"k": []any{1.5}, "n": nil}},
	{"map of ints", map[string]int{"one": 1}, map[string]any{"one": int64(1)}},
	{"map empty", map[string]any{}, map[string]any{}},
	{"pointer", new(int16), int64(0)},
}

// TestConnSync replicates history, live writes, deletes and every kind of
// value both ways.
func TestConnSync(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		leak.Check(t)
		// Frozen wall clocks, b's later than a's: b wins the conflict on
		// "shared" however fast the writes go.
		a := newTestModelAt(t, "a", time.UnixMilli(1_700_000_000_000))
		b := newTestModelAt(t, "b", time.UnixMilli(1_700_000_001_000))
		want := map[string]any{}
		for _, v := range values {
			set(t, a, "a/"+v.name, v.in)
			want["a/"+v.name] = v.out
			set(t, b, "b/"+v.name, v.in)
			want["b/"+v.name] = v.out
		}
		// Tombstones in the history: a key deleted before the connection,
		// and one deleted by the side that did not write it.
		set(t, a, "a/gone", "soon")
		del(t, a, "a/gone")
		del(t, b, "a/int")
		delete(want, "a/int")
		set(t, a, "shared", "from a") // overwritten by b's later write
		set(t, b, "shared", "from b")
		want["shared"] = "from b"

		ca, cb := ct.pair(t)
		sa := start(t, "a", a, ca, nil)
		sb := start(t, "b", b, cb, nil)
		waitSynced(t, sa, sb)

		// Synced means the peer's history has been applied: no polling.
		for _, m := range []*model.Model{a, b} {
			if d := cmp.Diff(want, m.Snapshot()); d != "" {
				t.Fatalf("%s right after Synced: snapshot (-want +got):\n%s", m.ID(), d)
			}
		}

		// Live writes on both sides, deletes of the other side's keys.
		for _, v := range values {
			set(t, a, "live/a/"+v.name, v.in)
			want["live/a/"+v.name] = v.out
			set(t, b, "live/b/"+v.name, v.in)
			want["live/b/"+v.name] = v.out
		}
		waitConverged(t, a, b)
		if d := cmp.Diff(want, a.Snapshot()); d != "" {
			t.Errorf("snapshot after live writes (-want +got):\n%s", d)
		}

		// Live deletes and overwrites of keys the other side wrote: each
		// side has seen the write it overrides, so its own wins.
		del(t, a, "b/string")
		delete(want, "b/string")
		del(t, b, "a/string")
		delete(want, "a/string")
		del(t, b, "live/a/map")
		delete(want, "live/a/map")
		set(t, b, "a/nil", "overwritten")
		want["a/nil"] = "overwritten"
		set(t, a, "live/b/slice", "overwritten")
		want["live/b/slice"] = "overwritten"
		waitConverged(t, a, b)
		if d := cmp.Diff(want, a.Snapshot()); d != "" {
			t.Errorf("snapshot after live deletes (-want +got):\n%s", d)
		}
		for _, s := range []*session{sa, sb} {
			if err := s.stop(t); err != nil {
				t.Errorf("%s: Run = %v, want nil after cancel", s.name, err)
			}
		}
	})
}

// TestConnDeepestValue replicates a value nested as deeply as a Model
// allows. (It is not in values: cmp.Diff takes exponential time on a
// difference inside deep single-element slices.)
func TestConnDeepestValue(t *testing.T) {
	a, b := newTestModel(t, "a"), newTestModel(t, "b")
	deepest := nested(scuttlebutt.MaxNesting-1, "leaf") // the update is [key, value]
	set(t, a, "deepest", deepest)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := stream.Pipe(ctx, a, b); err != nil {
		t.Fatalf("Pipe: %v", err)
	}
	if got, _ := b.Get("deepest"); !reflect.DeepEqual(got, deepest) {
		t.Errorf("b: Get(deepest) = %v, want %v", got, deepest)
	}
	if err := b.Set("too deep", nested(scuttlebutt.MaxNesting, "leaf")); !errors.Is(err, model.ErrInvalidValue) {
		t.Errorf("Set of a value nested %d deep = %v, want ErrInvalidValue", scuttlebutt.MaxNesting, err)
	}
}

// TestConnLine connects A–B–C: A's writes reach C through B, and no update
// goes back the way it came.
func TestConnLine(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		leak.Check(t)
		a, b, c := newTestModel(t, "a"), newTestModel(t, "b"), newTestModel(t, "c")
		set(t, a, "from a", 1)
		set(t, c, "from c", 3)

		ab, ba := ct.pair(t)
		bc, cb := ct.pair(t)
		sab := start(t, "a->b", a, ab, nil)
		sba := start(t, "b->a", b, ba, nil)
		sbc := start(t, "b->c", b, bc, nil)
		scb := start(t, "c->b", c, cb, nil)
		all := []*session{sab, sba, sbc, scb}
		waitSynced(t, all...)
		waitConverged(t, a, b, c)

		set(t, a, "x", "written on a")
		eventually(t, "c gets a's write", func() error {
			if _, ok := c.Get("x"); !ok {
				return errors.New("x missing on c")
			}
			return nil
		})
		// Any echo of x toward a would be queued on b ahead of this marker.
		set(t, c, "marker", "written on c")
		eventually(t, "a gets c's marker", func() error {
			if _, ok := a.Get("marker"); !ok {
				return errors.New("marker missing on a")
			}
			return nil
		})
		waitConverged(t, a, b, c)
		for _, s := range all {
			if err := s.stop(t); err != nil {
				t.Errorf("%s: Run = %v, want nil after cancel", s.name, err)
			}
		}

		// Each direction carried exactly two updates: the history key of
		// one end (in the history or live, as the sessions raced) and the
		// live write. A third one would be an echo. (Totals, not deltas
		// from after the sync: a counter moves only after its Write
		// returns, so there is no quiet moment to take a baseline at.)
		for _, s := range all {
			st := s.Stats()
			if st.UpdatesOut != 2 {
				t.Errorf("%s sent %d updates, want 2 (no echo)", s.name, st.UpdatesOut)
			}
			if st.UpdatesIn != 2 {
				t.Errorf("%s received %d updates, want 2 (no echo)", s.name, st.UpdatesIn)
			}
		}
	})
}

// TestConnReconnect syncs, disconnects, writes on both sides, and
// reconnects: the second session carries only the delta.
func TestConnReconnect(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		leak.Check(t)
		const keys = 1000
		a, b := newTestModel(t, "a"), newTestModel(t, "b")
		for i := range keys {
			set(t, a, fmt.Sprintf("key%04d", i), fmt.Sprintf("value of key %d", i))
		}

		ca, cb := ct.pair(t)
		sa := start(t, "a", a, ca, nil)
		sb := start(t, "b", b, cb, nil)
		waitSynced(t, sa, sb)
		waitConverged(t, a, b)
		for _, s := range []*session{sa, sb} {
			if err := s.stop(t); err != nil {
				t.Fatalf("%s: Run = %v, want nil after cancel", s.name, err)
			}
		}
		full := sa.Stats()

		// Apart: one change on each side.
		set(t, a, "key0007", "changed while apart")
		set(t, b, "new on b", true)

		ca, cb = ct.pair(t)
		sa = start(t, "a again", a, ca, nil)
		sb = start(t, "b again", b, cb, nil)
		waitSynced(t, sa, sb)
		waitConverged(t, a, b)
		if got, _ := b.Get("key0007"); got != "changed while apart" {
			t.Errorf("b: key0007 = %#v after reconnect, want a's change", got)
		}
		for _, s := range []*session{sa, sb} {
			if err := s.stop(t); err != nil {
				t.Errorf("%s: Run = %v, want nil after cancel", s.name, err)
			}
		}
		for _, s := range []*session{sa, sb} {
			if got := s.Stats().UpdatesOut; got != 1 {
				t.Errorf("%s sent %d updates on reconnect, want 1 (the delta)", s.name, got)
			}
		}
		delta := sa.Stats()
		t.Logf("bytes from a: full sync %d, reconnect %d", full.BytesOut, delta.BytesOut)
		if delta.BytesOut*20 > full.BytesOut {
			t.Errorf("a sent %d bytes on reconnect, not much less than the %d of a full sync of %d keys",
				delta.BytesOut, full.BytesOut, keys)
		}
	})
}

// TestConnRunReturnsNil checks the clean ends of a session.
func TestConnRunReturnsNil(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		t.Run("context cancelled", func(t *testing.T) {
			leak.Check(t)
			a, b := newTestModel(t, "a"), newTestModel(t, "b")
			set(t, a, "k", "v")
			ca, cb := ct.pair(t)
			sa := start(t, "a", a, ca, nil)
			sb := start(t, "b", b, cb, nil)
			waitSynced(t, sa, sb)
			waitConverged(t, a, b)
			if err := sa.stop(t); err != nil {
				t.Errorf("a: Run = %v after its context was cancelled, want nil", err)
			}
			// a's Run closed its end: b sees the peer close cleanly.
			if err := sb.wait(t); err != nil {
				t.Errorf("b: Run = %v after the peer ended its session, want nil", err)
			}
		})
		t.Run("peer closes", func(t *testing.T) {
			leak.Check(t)
			a, b := newTestModel(t, "a"), newTestModel(t, "b")
			set(t, b, "k", "v")
			ca, cb := ct.pair(t)
			sa := start(t, "a", a, ca, nil)
			sb := start(t, "b", b, cb, nil)
			waitSynced(t, sa, sb)
			waitConverged(t, a, b)
			// The peer's transport goes away without its Conn ending first.
			if err := cb.Close(); err != nil {
				t.Fatalf("close b's end: %v", err)
			}
			if err := sa.wait(t); err != nil {
				t.Errorf("a: Run = %v after the peer closed the stream, want nil", err)
			}
			sb.stop(t) // its own transport was closed under it: any result
		})
		t.Run("cancelled before the peer answers", func(t *testing.T) {
			leak.Check(t)
			a := newTestModel(t, "a")
			ca, cb := ct.pair(t)
			go io.Copy(io.Discard, cb) // a silent peer that reads
			sa := start(t, "a", a, ca, nil)
			if err := sa.stop(t); err != nil {
				t.Errorf("a: Run = %v, want nil after cancel", err)
			}
			select {
			case <-sa.Synced():
				t.Error("Synced is closed, but the peer never sent anything")
			default:
			}
		})
	})
}

// TestConnOneShot ends both sessions after the sync, without a cancel.
func TestConnOneShot(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		leak.Check(t)
		for i := range 20 { // the two ends race to finish: repeat
			a, b := newTestModel(t, "a"), newTestModel(t, "b")
			set(t, a, "a", i)
			set(t, b, "b", i)
			ca, cb := ct.pair(t)
			opts := &stream.Options{OneShot: true}
			sa := start(t, "a", a, ca, opts)
			sb := start(t, "b", b, cb, opts)
			for _, s := range []*session{sa, sb} {
				if err := s.wait(t); err != nil {
					t.Fatalf("round %d: %s: one-shot Run = %v, want nil", i, s.name, err)
				}
				select {
				case <-s.Synced():
				default:
					t.Fatalf("round %d: %s: Run returned nil but Synced is not closed", i, s.name)
				}
			}
			if err := converged(a, b); err != nil {
				t.Fatalf("round %d: after one-shot sessions: %v", i, err)
			}
		}
	})
}

// TestConnOneShotPeerGone: a one-shot session whose peer hangs up before
// the sync fails with ErrNotSynced.
func TestConnOneShotPeerGone(t *testing.T) {
	leak.Check(t)
	a := newTestModel(t, "a")
	ca, cb := net.Pipe()
	go func() {
		fr := stream.NewFrameReader(cb, 0)
		fr.ReadFrame() // a's hello, then hang up
		cb.Close()
	}()
	sa := start(t, "a", a, ca, &stream.Options{OneShot: true})
	if err := sa.wait(t); !errors.Is(err, stream.ErrNotSynced) {
		t.Errorf("Run = %v, want ErrNotSynced", err)
	}
}

// TestConnModes runs one-way sessions.
func TestConnModes(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		t.Run("send-only", func(t *testing.T) {
			leak.Check(t)
			a, b := newTestModel(t, "a"), newTestModel(t, "b")
			set(t, a, "a", "history")
			set(t, b, "b", "history")
			ca, cb := ct.pair(t)
			sa := start(t, "a", a, ca, &stream.Options{Mode: scuttlebutt.SendOnly})
			sb := start(t, "b", b, cb, nil)
			waitSynced(t, sa, sb)
			if got, ok := b.Get("a"); !ok || got != "history" {
				t.Errorf("b: Get(a) = %#v, %v after sync, want a's history", got, ok)
			}
			set(t, a, "a live", 1)
			eventually(t, "b gets a's live write", func() error {
				if _, ok := b.Get("a live"); !ok {
					return errors.New("missing")
				}
				return nil
			})
			// b sends its live write; a reads it and drops it.
			inBefore := sa.Stats().UpdatesIn
			set(t, b, "b live", 1)
			eventually(t, "a reads b's live write", func() error {
				if n := sa.Stats().UpdatesIn; n == inBefore {
					return errors.New("not read yet")
				}
				return nil
			})
			if d := cmp.Diff(map[string]any{"a": "history", "a live": int64(1)}, a.Snapshot()); d != "" {
				t.Errorf("send-only a took the peer's updates (-want +got):\n%s", d)
			}
			if got := a.Clock().Get("b"); got != 0 {
				t.Errorf("send-only a's clock has b at %v, want nothing", got)
			}
		})
		t.Run("receive-only", func(t *testing.T) {
			leak.Check(t)
			a, b := newTestModel(t, "a"), newTestModel(t, "b")
			set(t, a, "a", "history")
			set(t, b, "b", "history")
			ca, cb := ct.pair(t)
			sa := start(t, "a", a, ca, nil)
			sb := start(t, "b", b, cb, &stream.Options{Mode: scuttlebutt.ReceiveOnly})
			waitSynced(t, sa, sb)
			if got, ok := b.Get("a"); !ok || got != "history" {
				t.Errorf("receive-only b: Get(a) = %#v, %v after sync, want a's history", got, ok)
			}
			set(t, b, "b live", 1)
			set(t, a, "a live", 1)
			eventually(t, "b gets a's live write", func() error {
				if _, ok := b.Get("a live"); !ok {
					return errors.New("missing")
				}
				return nil
			})
			for _, s := range []*session{sa, sb} {
				if err := s.stop(t); err != nil {
					t.Errorf("%s: Run = %v, want nil", s.name, err)
				}
			}
			if n := sb.Stats().UpdatesOut; n != 0 {
				t.Errorf("receive-only b sent %d updates, want 0", n)
			}
			if d := cmp.Diff(map[string]any{"a": "history", "a live": int64(1)}, a.Snapshot()); d != "" {
				t.Errorf("a got updates from a receive-only peer (-want +got):\n%s", d)
			}
		})
	})
}

// TestConnPeer checks the peer's hello as Peer reports it.
func TestConnPeer(t *testing.T) {
	leak.Check(t)
	a, b := newTestModel(t, "a"), newTestModel(t, "b")
	set(t, b, "k", 1)
	ca, cb := net.Pipe()
	sa := start(t, "a", a, ca, nil)
	if p := sa.Peer(); p != nil {
		t.Errorf("Peer() = %+v before the peer's hello, want nil", p)
	}
	meta := map[string]any{"app": "test", "n": int64(2)}
	sb := start(t, "b", b, cb, &stream.Options{Meta: meta})
	waitSynced(t, sa, sb)
	p := sa.Peer()
	if p == nil {
		t.Fatal("Peer() = nil after sync")
	}
	if p.ID != b.Source() || p.Version != scuttlebutt.ProtocolVersion {
		t.Errorf("Peer() = id %q version %d, want %s, %d", p.ID, p.Version, b.Source(), scuttlebutt.ProtocolVersion)
	}
	if d := cmp.Diff(meta, p.Meta); d != "" {
		t.Errorf("Peer().Meta (-want +got):\n%s", d)
	}
	if d := cmp.Diff(b.Clock(), p.Clock); d != "" {
		t.Errorf("Peer().Clock (-b's clock +got):\n%s", d)
	}
	if p := sb.Peer(); p == nil || p.Meta != nil {
		t.Errorf("b: Peer() = %+v, want a's hello without meta", p)
	}
}

// TestConnDumpAndLoad writes a replica to a buffer with a send-only
// one-shot session, and reads it back into a fresh model with a
// receive-only one.
func TestConnDumpAndLoad(t *testing.T) {
	leak.Check(t)
	a := newTestModel(t, "a")
	// More than one Ready's worth (4 × 256 KiB) so the dump takes several
	// rounds of the writer.
	big := strings.Repeat("x", 600)
	for i := range 2500 {
		set(t, a, fmt.Sprintf("key%04d", i), big)
	}
	del(t, a, "key0001")

	dump := func(t *testing.T, peer vclock.Clock) *bytes.Buffer {
		t.Helper()
		var buf bytes.Buffer
		rw := struct {
			io.Reader
			io.Writer
		}{strings.NewReader(""), &buf} // nobody answers
		s := start(t, "dump", a, rw, &stream.Options{Mode: scuttlebutt.SendOnly, OneShot: true, PeerClock: peer})
		if err := s.wait(t); err != nil {
			t.Fatalf("dump: Run = %v, want nil", err)
		}
		return &buf
	}
	load := func(t *testing.T, into *model.Model, dump *bytes.Buffer) {
		t.Helper()
		rw := struct {
			io.Reader
			io.Writer
		}{dump, io.Discard}
		s := start(t, "load", into, rw, &stream.Options{Mode: scuttlebutt.ReceiveOnly, OneShot: true})
		if err := s.wait(t); err != nil {
			t.Fatalf("load: Run = %v, want nil", err)
		}
		select {
		case <-s.Synced():
		default:
			t.Error("load: Synced not closed after Run returned nil")
		}
	}

	full := dump(t, vclock.Clock{})
	fullSize := full.Len()
	b := newTestModel(t, "b")
	load(t, b, full)
	if err := converged(a, b); err != nil {
		t.Fatalf("after loading the full dump: %v", err)
	}

	// A delta dump: what b lacks, given b's clock.
	set(t, a, "key0002", "changed")
	del(t, a, "key0003")
	delta := dump(t, b.Clock())
	if delta.Len()*100 > fullSize {
		t.Errorf("delta dump is %d bytes, not much less than the full %d", delta.Len(), fullSize)
	}
	load(t, b, delta)
	if err := converged(a, b); err != nil {
		t.Fatalf("after loading the delta dump: %v", err)
	}
}

// gate pauses reads while closed.
type gate struct {
	mu   sync.Mutex
	open chan struct{} // closed while reads may go on
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) pause() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) resume() {
	g.mu.Lock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
	g.mu.Unlock()
}

func (g *gate) wait() {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	<-ch
}

type gatedReader struct {
	g *gate
	r io.Reader
}

func (r gatedReader) Read(p []byte) (int, error) {
	r.g.wait()
	return r.r.Read(p)
}

// TestConnSlowPeer pauses a peer's reads while the other side writes far
// more than its queue may hold: writers never block, and once the peer
// reads again the session catches up from History instead of the dropped
// queue.
func TestConnSlowPeer(t *testing.T) {
	leak.Check(t)
	const (
		keys   = 100
		writes = 10_000
	)
	a, b := newTestModel(t, "a"), newTestModel(t, "b")
	ca, cb := net.Pipe() // no buffer: a's writer blocks as soon as b stops reading
	g := newGate()
	t.Cleanup(g.resume)
	sa := start(t, "a", a, ca, &stream.Options{MaxQueueBytes: 1024})
	sb := start(t, "b", b, &readerConn{Conn: cb, r: gatedReader{g, cb}}, nil)
	waitSynced(t, sa, sb)

	g.pause()
	for i := range writes {
		set(t, a, fmt.Sprintf("key%03d", i%keys), i)
	}
	g.resume()
	waitConverged(t, a, b)
	if got, _ := b.Get(fmt.Sprintf("key%03d", keys-1)); got != int64(writes-1) {
		t.Errorf("b: last key = %#v, want %d", got, writes-1)
	}
	for _, s := range []*session{sa, sb} {
		if err := s.stop(t); err != nil {
			t.Errorf("%s: Run = %v, want nil", s.name, err)
		}
	}
	// Had the queue kept every write, a would have sent all of them; after
	// the fall-back to History it sends about one update per key.
	if n := sa.Stats().UpdatesOut; n >= writes/2 {
		t.Errorf("a sent %d updates for %d writes to %d keys: the queue was not dropped", n, writes, keys)
	} else {
		t.Logf("a sent %d updates for %d writes to %d keys", n, writes, keys)
	}
}

// TestPipe syncs two models with Pipe and keeps them replicating.
func TestPipe(t *testing.T) {
	leak.Check(t) // Pipe's sessions end with its context
	a, b := newTestModel(t, "a"), newTestModel(t, "b")
	set(t, a, "a", 1)
	set(t, b, "b", 2)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := stream.Pipe(ctx, a, b); err != nil {
		t.Fatalf("Pipe: %v", err)
	}
	if err := converged(a, b); err != nil {
		t.Fatalf("after Pipe returned: %v", err)
	}
	set(t, a, "live", 3)
	waitConverged(t, a, b)
}

// TestPipeSameID fails: a replica cannot link to its own source. Two
// starts of one id (a restart, a cloned machine) are two sources: they
// replicate, and each reports the other as a twin.
func TestPipeSameID(t *testing.T) {
	cfg := &scuttlebutt.Config{Incarnation: "1"}
	a, err := model.New("same", cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.New("same", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Pipe(t.Context(), a, b); !errors.Is(err, scuttlebutt.ErrSameID) {
		t.Errorf("Pipe of two replicas with source %q = %v, want ErrSameID", a.Source(), err)
	}

	quiet := &scuttlebutt.Config{Logger: slog.New(slog.DiscardHandler)}
	x, err := model.New("same", quiet)
	if err != nil {
		t.Fatal(err)
	}
	y, err := model.New("same", quiet)
	if err != nil {
		t.Fatal(err)
	}
	set(t, x, "x", 1)
	set(t, y, "y", 2)
	if err := stream.Pipe(t.Context(), x, y); err != nil {
		t.Fatalf("Pipe of two starts of %q: %v", "same", err)
	}
	if err := converged(x, y); err != nil {
		t.Fatal(err)
	}
	if len(x.Snapshot()) != 2 {
		t.Errorf("x holds %v, want both writes", x.Snapshot())
	}
	for _, m := range []*model.Model{x, y} {
		if got := m.Stats().Twins; got != 1 {
			t.Errorf("%s: Stats().Twins = %d, want 1", m.Source(), got)
		}
	}
}

// TestConnBothWriteAtOnce has two Conns send each other a long history at
// the same time over net.Pipe, which buffers nothing: each side's writes
// block until the other side reads. A Conn whose loop wrote while its
// reader waited for that loop would deadlock here, both writers blocked
// and neither reader reading.
func TestConnBothWriteAtOnce(t *testing.T) {
	leak.Check(t)
	const (
		keys  = 20_000
		live  = 2_000
		frame = 1024 // about 20 updates a frame: a thousand frames each way
	)
	a, b := newTestModel(t, "a"), newTestModel(t, "b")
	for i := range keys {
		set(t, a, fmt.Sprintf("a%05d", i), i)
		set(t, b, fmt.Sprintf("b%05d", i), i)
	}
	ca, cb := net.Pipe()
	opts := &stream.Options{MaxFrameSize: frame}
	sa := start(t, "a", a, ca, opts)
	sb := start(t, "b", b, cb, opts)
	waitSynced(t, sa, sb)
	waitConverged(t, a, b)
	for _, s := range []*session{sa, sb} {
		if st := s.Stats(); st.UpdatesIn != keys || st.FramesIn < keys/50 {
			t.Errorf("%s: received %d updates in %d frames, want %d in at least %d", s.name, st.UpdatesIn, st.FramesIn, keys, keys/50)
		}
	}

	// Live writes on both sides at once.
	var wg sync.WaitGroup
	for _, m := range []*model.Model{a, b} {
		wg.Go(func() {
			for i := range live {
				if err := m.Set(fmt.Sprintf("live %s %d", m.ID(), i), i); err != nil {
					t.Errorf("%s: Set: %v", m.ID(), err)
					return
				}
			}
		})
	}
	wg.Wait()
	waitConverged(t, a, b)
	for _, s := range []*session{sa, sb} {
		if err := s.stop(t); err != nil {
			t.Errorf("%s: Run = %v, want nil", s.name, err)
		}
	}
}

// TestConnSlowStorage: a Step that waits for the storage to sync what it
// applied stops neither the reader nor the close of the connection. The
// reader goes on reading what the peer sends, and the peer sees the
// session end as soon as Run's context does, while the Step still waits.
func TestConnSlowStorage(t *testing.T) {
	for _, end := range []string{"context cancelled", "peer closes"} {
		t.Run(end, func(t *testing.T) {
			leak.Check(t)
			a, b := newTestModel(t, "a"), newTestModel(t, "b")
			big := strings.Repeat("x", 100)
			for i := range 12 { // about 3 frames of updates
				set(t, b, fmt.Sprintf("k%02d", i), big)
			}
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			st := &flakyStorage{}
			st.set(false, func(uint64) {
				once.Do(func() { close(entered) })
				<-release
			})
			a.Base().Attach(st)
			var released sync.Once
			unblock := func() { released.Do(func() { close(release) }) }
			t.Cleanup(unblock)

			ca, cb := net.Pipe()
			opts := &stream.Options{MaxFrameSize: 1024}
			sa := start(t, "a", a, ca, opts)
			sb := start(t, "b", b, cb, opts)
			select {
			case <-entered:
			case <-time.After(timeout):
				t.Fatalf("a's storage was never synced; goroutines:\n%s", stacks())
			}
			// a's Step of b's history waits on the storage; b, which sent
			// its sync, sends live updates, and a's reader reads them.
			const live = 3
			for i := range live {
				set(t, b, fmt.Sprintf("live%d", i), i)
			}
			eventually(t, "a's reader reads what b sent", func() error {
				in, out := sa.Stats().BytesIn, sb.Stats()
				if out.UpdatesOut != 12+live {
					return fmt.Errorf("b has sent %d updates, want its history and %d live ones", out.UpdatesOut, live)
				}
				if in != out.BytesOut {
					return fmt.Errorf("a has read %d of the %d bytes b sent", in, out.BytesOut)
				}
				return nil
			})
			select {
			case <-sa.Synced():
				t.Fatal("a is synced while its Step of b's history waits on the storage")
			default:
			}

			switch end {
			case "context cancelled":
				sa.cancel()
				// a closes its end at once: b's Run ends while a's Step waits.
				if err := sb.wait(t); err != nil {
					t.Errorf("b: Run = %v after a's context ended, want nil", err)
				}
			case "peer closes":
				if err := cb.Close(); err != nil {
					t.Fatalf("close b's end: %v", err)
				}
			}
			select {
			case <-sa.done:
				t.Fatal("a's Run returned while its Step waited on the storage")
			case <-time.After(10 * time.Millisecond):
			}
			unblock()
			if err := sa.wait(t); err != nil {
				t.Errorf("a: Run = %v, want nil", err)
			}
		})
	}
}
