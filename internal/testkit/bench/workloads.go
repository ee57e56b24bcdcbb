package bench

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// W1 sets Keys distinct keys on A while A is live-connected, and synced,
// to B, and measures until B holds them all (B.Len polled). Bytes are what
// A's Conn wrote meanwhile.
func W1(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultKeys)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	r = Result{Workload: "W1", Transport: o.Transport, N: o.Keys}

	a, b, err := NewPair()
	if err != nil {
		return r, err
	}
	keys := Keys(o.Keys)
	fill := func() error { return Fill(a, "a", keys) }
	if err := liveFill(ctx, o, &r, a, b, fill, "B to hold every key", func() bool { return b.Len() == o.Keys }); err != nil {
		return r, err
	}
	if err := checkValues(b, keys, func(i int) string { return Value("a", i) }); err != nil {
		return r, err
	}
	r.DataBytes = dataBytes(a, vclock.Clock{})
	r.finish()
	return r, nil
}

// liveFill is the shape of W1, W1Base and D1: it connects a and b over o's
// transport, runs fill on A while they are live, and waits until done
// holds (what names it in an error). r gets the Duration and CPU from the
// start of fill until done, and Bytes, what A's Conn wrote meanwhile,
// counted once the session has ended.
func liveFill(ctx context.Context, o Options, r *Result, a, b scuttlebutt.Document, fill func() error, what string, done func() bool) error {
	s, err := Connect(ctx, o.Transport, a, b, o.Conn)
	if err != nil {
		return err
	}
	defer s.Close()
	out0 := s.A.Stats().BytesOut

	o.Timer.StartTimer()
	start, cpu := time.Now(), ProcessCPU()
	if err = fill(); err == nil {
		err = s.wait(ctx, what, done)
	}
	r.Duration, r.CPU = time.Since(start), ProcessCPU()-cpu
	o.Timer.StopTimer()
	if err != nil {
		return err
	}
	aOut, _, err := s.End(ctx)
	r.Bytes = aOut - out0
	return err
}

// W2 overwrites each of Keys keys (default 1,000) Rounds times on A, live,
// and measures until B's clock covers A's last write. Then it records the
// length of B's full History and the heap both replicas hold once the
// session is over.
func W2(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultW2Keys)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	r = Result{Workload: "W2", Transport: o.Transport, N: o.Keys * o.Rounds}

	h0 := liveHeap()
	a, b, err := NewPair()
	if err != nil {
		return r, err
	}
	keys := Keys(o.Keys)
	if err := overwrite(ctx, &o, &r, a, b, keys); err != nil {
		return r, err
	}
	r.HistoryLen = len(b.History(vclock.Clock{}))
	final := round(o.Rounds - 1)
	if err := checkValues(b, keys, func(i int) string { return Value(final, i) }); err != nil {
		return r, err
	}
	keys = nil
	r.HeapBytes = liveHeap() - h0
	r.HeapPerKey = float64(r.HeapBytes) / float64(2*o.Keys)
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	r.finish()
	return r, nil
}

// overwrite is W2's session: it sets r.Duration and r.Bytes, and leaves
// nothing of the session reachable when it returns.
func overwrite(ctx context.Context, o *Options, r *Result, a, b *model.Model, keys []string) error {
	s, err := Connect(ctx, o.Transport, a, b, o.Conn)
	if err != nil {
		return err
	}
	defer s.Close()
	out0 := s.A.Stats().BytesOut

	o.Timer.StartTimer()
	start := time.Now()
	for n := range o.Rounds {
		if err := Fill(a, round(n), keys); err != nil {
			return err
		}
	}
	last := a.Clock().Get(a.Source())
	err = s.wait(ctx, "B to cover A's last write", func() bool { return covers(b, a.Source(), last) })
	r.Duration = time.Since(start)
	o.Timer.StopTimer()
	if err != nil {
		return err
	}

	aOut, _, err := s.End(ctx)
	r.Bytes = aOut - out0
	return err
}

// W3 syncs A's Keys keys to B, disconnects them, makes Changes changes on
// each side (A overwrites the first Changes keys, B the next Changes), and
// measures the reconnection: connect until both are synced with equal
// clocks. Bytes are both directions, hellos and syncs included.
func W3(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultKeys)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	if 2*o.Changes > o.Keys {
		return r, fmt.Errorf("bench: W3 needs at least %d keys for %d changes a side", 2*o.Changes, o.Changes)
	}
	r = Result{Workload: "W3", Transport: o.Transport, N: 2 * o.Changes}

	a, b, err := NewPair()
	if err != nil {
		return r, err
	}
	keys := Keys(o.Keys)
	if err := Fill(a, "a", keys); err != nil {
		return r, err
	}
	s, err := Connect(ctx, o.Transport, a, b, o.Conn)
	if err != nil {
		return r, err
	}
	if err := s.Close(); err != nil {
		return r, err
	}
	if b.Len() != o.Keys {
		return r, fmt.Errorf("bench: W3: B holds %d keys after the first sync, want %d", b.Len(), o.Keys)
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
		if err := a.Set(keys[i], changed(i)); err != nil {
			return r, err
		}
		if err := b.Set(keys[o.Changes+i], changed(o.Changes+i)); err != nil {
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
	for _, m := range []*model.Model{a, b} {
		if err := checkValues(m, keys, changed); err != nil {
			return r, err
		}
	}
	r.finish()
	return r, nil
}

// W4 connects an empty B to A holding Keys keys and measures until both
// are synced. Bytes are both directions.
func W4(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultKeys)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	r = Result{Workload: "W4", Transport: o.Transport, N: o.Keys}

	a, b, err := NewPair()
	if err != nil {
		return r, err
	}
	keys := Keys(o.Keys)
	if err := Fill(a, "a", keys); err != nil {
		return r, err
	}
	r.DataBytes = dataBytes(a, vclock.Clock{})

	o.Timer.StartTimer()
	start, cpu := time.Now(), ProcessCPU()
	s, err := Connect(ctx, o.Transport, a, b, o.Conn)
	r.Duration, r.CPU = time.Since(start), ProcessCPU()-cpu
	o.Timer.StopTimer()
	if err != nil {
		return r, err
	}
	defer s.Close()

	aOut, bOut, err := s.End(ctx)
	if err != nil {
		return r, err
	}
	r.Bytes = aOut + bOut
	if err := checkValues(b, keys, func(i int) string { return Value("a", i) }); err != nil {
		return r, err
	}
	r.finish()
	return r, nil
}

// W5Local sets Keys keys (default 1,000,000) with ValueSize-byte string
// values on a fresh Model and reports the live heap it holds per key. The
// timed part is the Sets.
func W5Local(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultW5Keys)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	r = Result{Workload: "W5", N: o.Keys}

	h0 := liveHeap()
	m, err := model.New(ReplicaA, nil)
	if err != nil {
		return r, err
	}
	o.Timer.StartTimer()
	start := time.Now()
	err = fillValues(ctx, m, o.Keys, o.ValueSize)
	r.Duration = time.Since(start)
	o.Timer.StopTimer()
	if err != nil {
		return r, err
	}
	r.HeapBytes = liveHeap() - h0
	if err := writeHeapProfile(o.HeapProfile); err != nil {
		return r, err
	}
	if m.Len() != o.Keys {
		return r, fmt.Errorf("bench: W5: %d keys, want %d", m.Len(), o.Keys)
	}
	runtime.KeepAlive(m)
	r.HeapPerKey = float64(r.HeapBytes) / float64(o.Keys)
	r.finish()
	return r, nil
}

// W5Sync builds A with Keys keys of ValueSize-byte values, then syncs an
// empty B from it over Transport and reports the live heap B holds per key
// once the session is closed. The timed part is the sync.
func W5Sync(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultW5Keys)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	r = Result{Workload: "W5", Transport: o.Transport, N: o.Keys}

	a, err := model.New(ReplicaA, nil)
	if err != nil {
		return r, err
	}
	if err := fillValues(ctx, a, o.Keys, o.ValueSize); err != nil {
		return r, err
	}
	h0 := liveHeap()
	b, err := model.New(ReplicaB, nil)
	if err != nil {
		return r, err
	}

	o.Timer.StartTimer()
	start := time.Now()
	s, err := Connect(ctx, o.Transport, a, b, o.Conn)
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
	s = nil
	r.HeapBytes = liveHeap() - h0
	if err := writeHeapProfile(o.HeapProfile); err != nil {
		return r, err
	}
	if b.Len() != o.Keys {
		return r, fmt.Errorf("bench: W5: B holds %d keys, want %d", b.Len(), o.Keys)
	}
	runtime.KeepAlive(a)
	runtime.KeepAlive(b)
	r.HeapPerKey = float64(r.HeapBytes) / float64(o.Keys)
	r.finish()
	return r, nil
}

// fillValues sets keys 0 to n-1 of m to distinct strings of size bytes,
// building each key and value afresh so that nothing but m holds them.
func fillValues(ctx context.Context, m *model.Model, n, size int) error {
	kb := make([]byte, 0, 16)
	vb := make([]byte, 0, size)
	for i := range n {
		if i%65536 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		kb = appendKey(kb[:0], i)
		vb = append(vb[:0], "value-"...)
		vb = appendKey(vb, i)
		for len(vb) < size {
			vb = append(vb, '.')
		}
		if err := m.Set(string(kb), string(vb[:size])); err != nil {
			return err
		}
	}
	return nil
}

// round names round n of W2's writes, the r of Value.
func round(n int) string { return "r" + strconv.Itoa(n) }

// dataBytes is the size of the Data of the updates d's History gives a
// peer of clock c: the payload a session carries for it, without the
// encoding around it.
func dataBytes(d scuttlebutt.Document, c vclock.Clock) int64 {
	var n int64
	for _, u := range d.Base().History(c) {
		n += int64(len(u.Data))
	}
	return n
}

// checkValues compares the first 256 keys of m, then every 97th and the
// last, with want(i).
func checkValues(m *model.Model, keys []string, want func(i int) string) error {
	for i := 0; i < len(keys); {
		if err := checkValue(m, keys[i], want(i)); err != nil {
			return err
		}
		if i < 256 {
			i++
		} else {
			i += 97
		}
	}
	if n := len(keys); n > 0 {
		return checkValue(m, keys[n-1], want(n-1))
	}
	return nil
}

func checkValue(m *model.Model, key string, want string) error {
	got, ok := m.Get(key)
	if !ok || got != any(want) {
		return fmt.Errorf("bench: %s holds %s = %v (set %v), want %q", m.ID(), key, got, ok, want)
	}
	return nil
}

// wait polls cond like waitFor, and gives up at once if a side of the
// session has ended.
func (s *Session) wait(ctx context.Context, what string, cond func() bool) error {
	var ended error
	err := waitFor(ctx, what, func() bool {
		ended = s.Err()
		return ended != nil || cond()
	})
	if err != nil {
		return err
	}
	if ended != nil && !cond() {
		return fmt.Errorf("bench: waiting for %s: %w", what, ended)
	}
	return nil
}
