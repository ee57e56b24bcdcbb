package model_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestCheckpoint checks what Checkpoint returns of a quiet model: the
// snapshot and the clock, as fresh copies.
func TestCheckpoint(t *testing.T) {
	m, _ := newModel(t, "a", today)
	snap, clock := m.Checkpoint()
	if len(snap) != 0 || snap == nil || len(clock) != 0 || clock == nil {
		t.Fatalf("empty model: Checkpoint() = %v, %v; want an empty map and an empty clock, not nil", snap, clock)
	}

	mustSet(t, m, "color", "red")
	mustSet(t, m, "size", 3)
	mustSet(t, m, "shape", "round")
	mustDelete(t, m, "shape")
	snap, clock = m.Checkpoint()
	if diff := cmp.Diff(map[string]any{"color": "red", "size": int64(3)}, snap); diff != "" {
		t.Errorf("Checkpoint() snapshot (-want +got):\n%s", diff)
	}
	if got := clock.Compare(m.Clock()); got != vclock.Equal {
		t.Errorf("Checkpoint() clock %s is %s the model's %s, want equal", clock, got, m.Clock())
	}

	snap["color"] = "blue"
	for src := range clock {
		clock[src] = 1
	}
	snap2, clock2 := m.Checkpoint()
	if diff := cmp.Diff(map[string]any{"color": "red", "size": int64(3)}, snap2); diff != "" {
		t.Errorf("after the first result was modified, Checkpoint() snapshot (-want +got):\n%s", diff)
	}
	if got := clock2.Compare(m.Clock()); got != vclock.Equal {
		t.Errorf("after the first result was modified, Checkpoint() clock %s is %s the model's %s, want equal", clock2, got, m.Clock())
	}
}

// TestCheckpointConcurrent checkpoints two replicas while updates are
// applied to them: a writer on A sets n = 0, 1, 2, ..., which B receives
// over a stream, and one goroutine per replica checkpoints it meanwhile.
// In every checkpoint, the clock's entry for A must be the stamp of the
// write of the n the snapshot holds. Reading Snapshot and then Clock fails
// this within a few hundred writes: a write that lands in between pairs
// n with the stamp of a later write.
func TestCheckpointConcurrent(t *testing.T) {
	const (
		padding        = 300 // other keys, so that a snapshot takes a while
		minWrites      = 1000
		maxWrites      = 1_000_000
		minCheckpoints = 500 // per replica
	)
	a, err := model.New("a", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := model.New("b", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range padding {
		mustSet(t, a, fmt.Sprintf("pad/%03d", i), int64(i))
	}
	if err := stream.Pipe(t.Context(), a, b); err != nil {
		t.Fatalf("Pipe: %v", err)
	}
	// A's only source, whatever its spelling: B writes nothing.
	srcs := a.Clock().Sources()
	if len(srcs) != 1 {
		t.Fatalf("A's clock %s: want one source", a.Clock())
	}
	src := srcs[0]
	padStamp := a.Clock().Get(src) // the stamp of a state without n

	type point struct {
		n     int64 // -1: n not set
		stamp vclock.Timestamp
	}
	var (
		stamps []vclock.Timestamp // stamps[i]: A's entry once n = i
		taken  [2]atomic.Int64    // checkpoints taken of A and B
		done   = make(chan struct{})
		seen   [2][]point // what the checkpoints of A and B held
		wg     sync.WaitGroup
	)
	stop := sync.OnceFunc(func() { close(done); wg.Wait() })
	for i, m := range []*model.Model{a, b} {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				snap, clock := m.Checkpoint()
				p := point{n: -1, stamp: clock.Get(src)}
				if v, ok := snap["n"]; ok {
					p.n = v.(int64)
				}
				seen[i] = append(seen[i], p)
				taken[i].Add(1)
			}
		})
	}
	// Write until each checker has taken enough checkpoints, so that a
	// slow machine tests as much as a fast one.
	for i := 0; i < minWrites || (i < maxWrites && min(taken[0].Load(), taken[1].Load()) < minCheckpoints); i++ {
		mustSet(t, a, "n", int64(i))
		stamps = append(stamps, a.Clock().Get(src))
	}
	writes := len(stamps)
	// Let B catch up while its checker runs, then stop the checkers.
	defer stop()
	for deadline := time.Now().Add(10 * time.Second); b.Clock().Compare(a.Clock()) != vclock.Equal; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("B did not catch up within 10s: clock %s, A's %s", b.Clock(), a.Clock())
		}
	}
	stop()

	for i, name := range []string{"A", "B"} {
		if len(seen[i]) == 0 {
			t.Errorf("%s: no checkpoint taken", name)
		}
		bad := 0
		for k, p := range seen[i] {
			want := padStamp
			if p.n >= 0 {
				want = stamps[p.n]
			}
			if p.stamp != want {
				if bad++; bad <= 5 {
					t.Errorf("%s: checkpoint %d of %d: n = %d with A's clock entry %v, the stamp of n = %d; want %v",
						name, k, len(seen[i]), p.n, p.stamp, stampIndex(stamps, p.stamp), want)
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s: %d of %d checkpoints paired a state with another state's clock", name, bad, len(seen[i]))
		}
	}
	snap, clock := b.Checkpoint()
	if snap["n"] != int64(writes-1) || clock.Get(src) != stamps[writes-1] {
		t.Errorf("B once caught up: n = %v with A's clock entry %v, want %d with %v", snap["n"], clock.Get(src), writes-1, stamps[writes-1])
	}
}

// stampIndex returns the n whose write A stamped t, or -1.
func stampIndex(stamps []vclock.Timestamp, t vclock.Timestamp) int {
	for i, s := range stamps {
		if s == t {
			return i
		}
	}
	return -1
}
