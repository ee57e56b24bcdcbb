package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/vclock"
)

// The document workloads run package doc's public API on the shapes of
// the model workloads, so that each compares with its model counterpart
// and with the peers' figures for that counterpart (Yjs and Automerge are
// document types too):
//
//   - D1, like W1: Keys patches (default 100,000), patch i setting leaf
//     "/k"+i (Leaf) to Value("a", i), made on A while it is live-connected
//     to B: patches per second until B's clock covers A's last patch, and
//     bytes per patch on the wire (A's Conn BytesOut).
//   - D2, like W5Local: the live heap per leaf of a Doc holding Keys leaves
//     (default 1,000,000) of ValueSize-byte strings at "/key-0000000", ...,
//     written one patch per leaf.
//   - D3, like W3: A and B synced with Keys leaves (default 100,000),
//     disconnected, Changes patches on each side (default 100: A sets the
//     first Changes leaves, B the next Changes), reconnected: bytes both
//     ways and the time until both are synced and their clocks equal.

// DefaultD2Leaves is D2's default size, as issue 11 states it: a million
// leaves (about 4 s of patches on 2 CPUs). Options.Keys chooses another.
const DefaultD2Leaves = 1_000_000

// Leaf returns the path of leaf i of D1 and D3: "/" + Key(i).
func Leaf(i int) string { return "/" + Key(i) }

// Leaves returns the paths of leaves 0 to n-1 of D1 and D3 (Leaf).
func Leaves(n int) []string {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = Leaf(i)
	}
	return paths
}

// NewDocPair returns two empty Docs named ReplicaA and ReplicaB.
func NewDocPair() (a, b *doc.Doc, err error) {
	if a, err = doc.New(ReplicaA, nil); err != nil {
		return nil, nil, err
	}
	if b, err = doc.New(ReplicaB, nil); err != nil {
		return nil, nil, err
	}
	return a, b, nil
}

// FillDoc sets paths[i] to Value(r, i) on d, one patch per path.
func FillDoc(d *doc.Doc, r string, paths []string) error {
	for i, p := range paths {
		if err := d.Patch(doc.Set(p, Value(r, i))); err != nil {
			return err
		}
	}
	return nil
}

// D1 makes Keys patches on A, each setting one new leaf (W1's keys and
// values as paths and leaves), while A is live-connected, and synced, to
// B, and measures until B's clock covers A's last patch. Bytes are what A's
// Conn wrote meanwhile; N counts patches.
func D1(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultKeys)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	r = Result{Workload: "D1", Transport: o.Transport, N: o.Keys}

	a, b, err := NewDocPair()
	if err != nil {
		return r, err
	}
	paths := Leaves(o.Keys)
	var last vclock.Timestamp
	fill := func() error {
		err := FillDoc(a, "a", paths)
		last = a.Clock().Get(a.Source())
		return err
	}
	if err := liveFill(ctx, o, &r, a, b, fill, "B to cover A's last patch", func() bool { return covers(b, a.Source(), last) }); err != nil {
		return r, err
	}
	if err := checkLeaves(b, paths, func(i int) string { return Value("a", i) }); err != nil {
		return r, err
	}
	r.DataBytes = dataBytes(a, vclock.Clock{})
	r.finish()
	return r, nil
}

// D2 makes Keys patches (default DefaultD2Leaves) on a fresh Doc, each
// setting one new leaf to a distinct ValueSize-byte string, and reports the
// live heap the Doc holds per leaf (HeapPerKey), its history included. The
// timed part is the patches. With Options.HeapProfile, it writes a heap
// profile when it measures.
func D2(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultD2Leaves)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	r = Result{Workload: "D2", N: o.Keys}

	h0 := liveHeap()
	d, err := doc.New(ReplicaA, nil)
	if err != nil {
		return r, err
	}
	o.Timer.StartTimer()
	start := time.Now()
	err = fillLeaves(ctx, d, o.Keys, o.ValueSize)
	r.Duration = time.Since(start)
	o.Timer.StopTimer()
	if err != nil {
		return r, err
	}
	r.HeapBytes = liveHeap() - h0
	if err := writeHeapProfile(o.HeapProfile); err != nil {
		return r, err
	}
	for _, i := range []int{0, o.Keys / 2, o.Keys - 1} {
		p := "/" + string(appendKey(nil, i))
		if v, ok := d.Get(p); !ok || len(fmt.Sprint(v)) != o.ValueSize {
			return r, fmt.Errorf("bench: D2: %s = %v (set %v), want a %d-byte string", p, v, ok, o.ValueSize)
		}
	}
	runtime.KeepAlive(d)
	r.HeapPerKey = float64(r.HeapBytes) / float64(o.Keys)
	r.finish()
	return r, nil
}

// fillLeaves makes n patches on d, patch i setting "/key-" + i (7 digits)
// to a distinct string of size bytes, each path and value built afresh so
// that nothing but d holds them.
func fillLeaves(ctx context.Context, d *doc.Doc, n, size int) error {
	pb := make([]byte, 0, 16)
	vb := make([]byte, 0, size)
	for i := range n {
		if i%65536 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		pb = appendKey(append(pb[:0], '/'), i)
		vb = append(vb[:0], "value-"...)
		vb = appendKey(vb, i)
		for len(vb) < size {
			vb = append(vb, '.')
		}
		if err := d.Patch(doc.Set(string(pb), string(vb[:size]))); err != nil {
			return err
		}
	}
	return nil
}

// D3 syncs A's Keys leaves (one patch each) to B, disconnects them, makes
// Changes patches on each side (A sets the first Changes leaves, B the
// next Changes), and measures the reconnection: connect until both are
// synced with equal clocks. Bytes are both directions, hellos and syncs
// included; N counts both sides' patches.
func D3(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultKeys)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	if 2*o.Changes > o.Keys {
		return r, fmt.Errorf("bench: D3 needs at least %d leaves for %d changes a side", 2*o.Changes, o.Changes)
	}
	r = Result{Workload: "D3", Transport: o.Transport, N: 2 * o.Changes}

	a, b, err := NewDocPair()
	if err != nil {
		return r, err
	}
	paths := Leaves(o.Keys)
	if err := FillDoc(a, "a", paths); err != nil {
		return r, err
	}
	s, err := Connect(ctx, o.Transport, a, b, o.Conn)
	if err != nil {
		return r, err
	}
	if err := s.Close(); err != nil {
		return r, err
	}
	if a.Clock().Compare(b.Clock()) != vclock.Equal {
		return r, fmt.Errorf("bench: D3: clocks differ after the first sync: %v, %v", a.Clock(), b.Clock())
	}
	changed := func(i int) string {
		switch {
		case i < o.Changes:
			return Value("a2", i)
		case i < 2*o.Changes:
			return Value("b2", i)
		}
		return Value("a", i)
	}
	ca, cb := a.Clock(), b.Clock()
	for i := range o.Changes {
		if err := a.Patch(doc.Set(paths[i], changed(i))); err != nil {
			return r, err
		}
		j := o.Changes + i
		if err := b.Patch(doc.Set(paths[j], changed(j))); err != nil {
			return r, err
		}
	}

	r.DataBytes = dataBytes(a, cb) + dataBytes(b, ca)

	o.Timer.StartTimer()
	start := time.Now()
	s, err = Connect(ctx, o.Transport, a, b, o.Conn)
	if err == nil {
		defer s.Close()
		err = s.wait(ctx, "equal clocks", func() bool { return a.Clock().Compare(b.Clock()) == vclock.Equal })
	}
	r.Duration = time.Since(start)
	o.Timer.StopTimer()
	if err != nil {
		return r, err
	}

	aOut, bOut, err := s.End(ctx)
	if err != nil {
		return r, err
	}
	r.Bytes = aOut + bOut
	for _, d := range []*doc.Doc{a, b} {
		if err := checkLeaves(d, paths, changed); err != nil {
			return r, err
		}
	}
	r.finish()
	return r, nil
}

// checkLeaves compares the first 256 leaves of d, then every 97th and the
// last, with want(i), as checkValues does for a Model.
func checkLeaves(d *doc.Doc, paths []string, want func(i int) string) error {
	check := func(i int) error {
		got, ok := d.Get(paths[i])
		if !ok || got != any(want(i)) {
			return fmt.Errorf("bench: %s holds %s = %v (set %v), want %q", d.ID(), paths[i], got, ok, want(i))
		}
		return nil
	}
	for i := 0; i < len(paths); {
		if err := check(i); err != nil {
			return err
		}
		if i < 256 {
			i++
		} else {
			i += 97
		}
	}
	if n := len(paths); n > 0 {
		return check(n - 1)
	}
	return nil
}
