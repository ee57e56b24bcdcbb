package vclock_test

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/vclock"
)

// fakeWall is a wall clock the test sets by hand.
type fakeWall struct {
	mu sync.Mutex
	ms int64
}

func (w *fakeWall) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.UnixMilli(w.ms)
}

func (w *fakeWall) set(ms int64) {
	w.mu.Lock()
	w.ms = ms
	w.mu.Unlock()
}

const today = 1795385884149

func TestHLCFollowsWallClock(t *testing.T) {
	w := &fakeWall{ms: today}
	h := vclock.NewHLC(w.now)
	if got := h.Now(); got != today {
		t.Fatalf("first Now = %v, want the wall clock's %v", got, vclock.Timestamp(today))
	}
	w.set(today + 5)
	if got := h.Now(); got != today+5 {
		t.Fatalf("Now after the wall clock moved = %v, want %v", got, vclock.Timestamp(today+5))
	}
	if got := h.Last(); got != today+5 {
		t.Errorf("Last = %v, want %v", got, vclock.Timestamp(today+5))
	}
}

func TestHLCSameMillisecond(t *testing.T) {
	w := &fakeWall{ms: today}
	h := vclock.NewHLC(w.now)
	prev := h.Now()
	for i := range 10000 {
		ts := h.Now()
		if !(ts > prev) {
			t.Fatalf("call %d: Now = %v after %v, want strictly increasing", i, ts, prev)
		}
		if !ts.Valid() {
			t.Fatalf("call %d: Now = %v is not valid", i, ts)
		}
		prev = ts
	}
	// Once the wall clock passes the logical timestamps, Now follows it again.
	w.set(today + 1000)
	if got := h.Now(); got != today+1000 {
		t.Errorf("Now after the wall clock overtook = %v, want %v", got, vclock.Timestamp(today+1000))
	}
}

func TestHLCWallClockStepsBack(t *testing.T) {
	w := &fakeWall{ms: today + 1000}
	h := vclock.NewHLC(w.now)
	prev := h.Now()
	for _, ms := range []int64{today, today - 86_400_000, 1, today + 999} {
		w.set(ms)
		ts := h.Now()
		if !(ts > prev) {
			t.Fatalf("wall clock at %d: Now = %v after %v, want strictly increasing", ms, ts, prev)
		}
		prev = ts
	}
}

func TestHLCObserve(t *testing.T) {
	w := &fakeWall{ms: today}
	h := vclock.NewHLC(w.now)
	h.Now()
	remote := vclock.Timestamp(today + 3_600_000.5) // an hour ahead
	h.Observe(remote)
	if got := h.Last(); got != remote {
		t.Errorf("Last after Observe(%v) = %v", remote, got)
	}
	if got := h.Now(); !(got > remote) {
		t.Errorf("Now after Observe(%v) = %v, want later", remote, got)
	}
	// Observing something older changes nothing.
	last := h.Last()
	h.Observe(today - 5)
	if got := h.Last(); got != last {
		t.Errorf("Observe of an older timestamp moved Last from %v to %v", last, got)
	}
}

func TestHLCObserveInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		ts   vclock.Timestamp
	}{
		{"NaN", vclock.Timestamp(math.NaN())},
		{"+Inf", vclock.Timestamp(math.Inf(1))},
		{"-Inf", vclock.Timestamp(math.Inf(-1))},
		{"zero", 0},
		{"negative", -today},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &fakeWall{ms: today}
			h := vclock.NewHLC(w.now)
			first := h.Now()
			h.Observe(tc.ts)
			if got := h.Last(); got != first {
				t.Errorf("Observe(%v) moved Last from %v to %v", float64(tc.ts), first, got)
			}
			next := h.Now()
			if !(next > first) || !next.Valid() {
				t.Errorf("Now after Observe(%v) = %v, want valid and later than %v", float64(tc.ts), next, first)
			}
		})
	}
}

func TestHLCHugeTimestamp(t *testing.T) {
	// Where the logical step is lost to rounding, Now still increases.
	w := &fakeWall{ms: today}
	h := vclock.NewHLC(w.now)
	big := vclock.Timestamp(1 << 60)
	h.Observe(big)
	a := h.Now()
	b := h.Now()
	if !(a > big) || !(b > a) {
		t.Errorf("after Observe(%v): Now = %v then %v, want strictly increasing past it", big, a, b)
	}
}

func TestHLCNilNowUsesSystemClock(t *testing.T) {
	h := vclock.NewHLC(nil)
	before := vclock.FromTime(time.Now())
	ts := h.Now()
	if !ts.Valid() || ts < before {
		t.Errorf("Now with the system clock = %v, want valid and at least %v", ts, before)
	}
}

func TestHLCConcurrentNowUnique(t *testing.T) {
	w := &fakeWall{ms: today}
	h := vclock.NewHLC(w.now)
	const goroutines, perG = 8, 500
	results := make([][]vclock.Timestamp, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			out := make([]vclock.Timestamp, 0, perG)
			for i := range perG {
				if g == 0 && i%100 == 0 {
					w.set(today + int64(i/100)) // the wall clock ticks meanwhile
				}
				out = append(out, h.Now())
			}
			results[g] = out
		})
	}
	wg.Wait()
	seen := make(map[vclock.Timestamp]int, goroutines*perG)
	for g, out := range results {
		for i, ts := range out {
			if i > 0 && !(ts > out[i-1]) {
				t.Errorf("goroutine %d: call %d = %v after %v, want increasing", g, i, ts, out[i-1])
			}
			if other, dup := seen[ts]; dup {
				t.Fatalf("timestamp %v handed to goroutines %d and %d", ts, other, g)
			}
			seen[ts] = g
		}
	}
}

// TestHLCConcurrentObserve has goroutines observe timestamps and call Now
// in turn: every Now is later than what its goroutine observed or got
// before it, and once all are done, Last is the largest timestamp observed
// or handed out.
func TestHLCConcurrentObserve(t *testing.T) {
	w := &fakeWall{ms: today}
	h := vclock.NewHLC(w.now)
	const goroutines, perG = 8, 500
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen vclock.Timestamp // the largest timestamp observed or returned
	)
	for g := range goroutines {
		wg.Go(func() {
			var top vclock.Timestamp
			for i := range perG {
				if i%2 == 0 {
					o := vclock.Timestamp(today + 3*(g*perG+i))
					h.Observe(o)
					top = max(top, o)
					continue
				}
				ts := h.Now()
				if !(ts > top) {
					t.Errorf("goroutine %d: Now = %v, not after %v", g, ts, top)
				}
				top = ts
			}
			mu.Lock()
			seen = max(seen, top)
			mu.Unlock()
		})
	}
	wg.Wait()
	if got := h.Last(); got != seen {
		t.Errorf("Last = %v, want the largest timestamp seen, %v", got, seen)
	}
}
