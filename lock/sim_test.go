package lock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/simnet"
	"github.com/scuttle-go/scuttle/lock"
)

// hold is one verified hold of a lock, in real time: from the first to the
// last moment the holder checked, against its Deadline, that it held the
// lock.
type hold struct {
	replica     int
	name        string
	start, last time.Time
}

// ledger collects every hold of every worker.
type ledger struct {
	mu    sync.Mutex
	holds []hold
}

func (l *ledger) add(h hold) {
	l.mu.Lock()
	l.holds = append(l.holds, h)
	l.mu.Unlock()
}

func (l *ledger) all() []hold {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.holds)
}

// overlaps returns a description of every moment more than limit(name)
// verified holds of one lock overlap.
func overlaps(holds []hold, limit func(string) int) []string {
	type edge struct {
		at    time.Time
		delta int
		h     hold
	}
	byName := map[string][]edge{}
	for _, h := range holds {
		byName[h.name] = append(byName[h.name], edge{h.start, +1, h}, edge{h.last, -1, h})
	}
	var out []string
	for name, edges := range byName {
		slices.SortFunc(edges, func(a, b edge) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			return b.delta - a.delta // a start at the very moment of an end overlaps it
		})
		var open []hold
		for _, e := range edges {
			if e.delta < 0 {
				open = slices.DeleteFunc(open, func(h hold) bool { return h == e.h })
				continue
			}
			open = append(open, e.h)
			if len(open) > limit(name) {
				out = append(out, fmt.Sprintf("%s at %s: %d holders %v", name, e.at.Format("15:04:05.000000"), len(open), open))
			}
		}
	}
	return out
}

// simWorker is one application goroutine on one replica: it takes random
// locks, works under them while checking its deadline, and unlocks.
type simWorker struct {
	i       int
	tab     *lock.Table
	offset  time.Duration // the replica's clock is real time plus offset
	rng     *rand.Rand
	names   []string
	ledger  *ledger
	healed  *atomic.Bool
	grants  atomic.Int64 // holds that began after the heal
	lockErr atomic.Value // an unexpected error from Lock, if any
}

func (w *simWorker) run(ctx context.Context) {
	for ctx.Err() == nil {
		name := w.names[w.rng.IntN(len(w.names))]
		lctx, cancel := ctx, context.CancelFunc(func() {})
		healed := w.healed.Load()
		if !healed {
			lctx, cancel = context.WithTimeout(ctx, time.Duration(200+w.rng.IntN(800))*time.Millisecond)
		}
		err := w.tab.Lock(lctx, name)
		cancel()
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.Is(err, lock.ErrClosed):
			continue
		case err != nil:
			w.lockErr.Store(err)
			return
		}
		work := time.Duration(1+w.rng.IntN(8)) * time.Millisecond
		h := hold{replica: w.i, name: name}
		for {
			dl, ok := w.tab.Deadline(name)
			now := time.Now()
			if !ok || !now.Add(w.offset).Before(dl) {
				break
			}
			if h.start.IsZero() {
				h.start = now
			}
			h.last = now
			if now.Sub(h.start) >= work {
				break
			}
			time.Sleep(time.Millisecond) // the work done under the lock
		}
		if !h.start.IsZero() {
			w.ledger.add(h)
			if healed {
				w.grants.Add(1)
			}
		}
		w.tab.Unlock(name) // ErrNotOwner if the lease was lost meanwhile
		time.Sleep(time.Duration(w.rng.IntN(3)) * time.Millisecond)
	}
}

// TestRandomizedExclusion runs 3, 5 and 7 replicas whose workers contend
// for two mutexes and a semaphore of two over real streams (simnet with
// Pipes: real Table goroutines, real leases) with seeded random write
// delays, while links restart, partitions come and go, and (with 5 or
// more) a replica crashes and is removed from the members. It records
// every verified hold in real time and checks that no lock ever had more
// holders than its limit, and that once the network heals, every worker is
// granted a lock again.
func TestRandomizedExclusion(t *testing.T) {
	cases := []struct {
		seed uint64
		size int
	}{{1, 3}, {2, 5}, {3, 7}}
	if testing.Short() {
		cases = cases[:1]
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("seed=%d,replicas=%d", tc.seed, tc.size), func(t *testing.T) {
			runExclusion(t, tc.seed, tc.size)
		})
	}
}

func runExclusion(t *testing.T, seed uint64, size int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	limits := map[string]int{"s": 2}
	limit := func(name string) int {
		if n, ok := limits[name]; ok {
			return n
		}
		return 1
	}
	var ids []string
	for i := range size {
		ids = append(ids, fmt.Sprintf("r%d", i))
	}
	n := simnet.New(seed, &simnet.Options{
		Logf:    t.Logf,
		Pipes:   true,
		Fault:   func(*rand.Rand) simnet.Fault { return simnet.Fault{MaxDelay: 500 * time.Microsecond} },
		OnError: func(err error) { t.Error(err) }, // safe from the links' goroutines
	})
	t.Cleanup(func() { n.Close() })
	var (
		led     ledger
		healed  atomic.Bool
		workers []*simWorker
	)
	for i := range size {
		offset := time.Duration(rng.IntN(101)-50) * time.Millisecond // within ±50 ms: pairs differ by < Margin
		tab, err := lock.New(ids[i], &lock.Config{
			Members: ids,
			Now:     func() time.Time { return time.Now().Add(offset) },
			Lease:   2 * time.Second,
			Renew:   250 * time.Millisecond,
			Margin:  150 * time.Millisecond,
			Limits:  limits,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tab.Close() })
		n.Add(tab)
		workers = append(workers, &simWorker{
			i: i, tab: tab, offset: offset, rng: rand.New(rand.NewPCG(seed, uint64(i)+100)),
			names: []string{"a", "b", "s"}, ledger: &led, healed: &healed,
		})
	}
	n.FullMesh()

	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	stopWorker := make([]context.CancelFunc, size)
	for i, w := range workers {
		wctx, cancel := context.WithCancel(ctx)
		stopWorker[i] = cancel
		wg.Go(func() { w.run(wctx) })
	}
	defer func() { stop(); wg.Wait() }()

	crashAt := -1
	if size >= 5 {
		crashAt = 5 + rng.IntN(15)
	}
	dead := map[int]bool{}
	for step := range 30 {
		time.Sleep(time.Duration(50+rng.IntN(100)) * time.Millisecond) // let the workers run under this topology
		switch op := rng.IntN(10); {
		case step == crashAt:
			k := rng.IntN(size)
			stopWorker[k]()
			workers[k].tab.Close()
			n.Crash(k)
			dead[k] = true
			var alive []string
			for i, id := range ids {
				if !dead[i] {
					alive = append(alive, id)
				}
			}
			for i, w := range workers {
				if !dead[i] {
					if err := w.tab.SetMembers(alive); err != nil {
						t.Fatal(err)
					}
				}
			}
			t.Logf("step %d: r%d crashed; members now %v", step, k, alive)
		case op < 4:
			n.Connect(rng.IntN(size), rng.IntN(size))
		case op < 6:
			i, j := rng.IntN(size), rng.IntN(size)
			n.Disconnect(i, j)
			n.Connect(i, j)
		case op < 8:
			cut := 1 + rng.IntN(size-1)
			perm := rng.Perm(size)
			n.Partition(perm[:cut], perm[cut:])
			t.Logf("step %d: partition %v | %v", step, perm[:cut], perm[cut:])
		default:
			n.FullMesh()
			t.Logf("step %d: heal", step)
		}
	}
	n.FullMesh()
	healed.Store(true)
	t.Logf("healed; %d holds so far", len(led.all()))
	healStart := time.Now()

	wctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := n.Until(wctx, func() bool {
		for i, w := range workers {
			if err := w.lockErr.Load(); err != nil {
				t.Fatalf("seed %d: r%d: Lock: %v", seed, i, err)
			}
			if !dead[i] && w.grants.Load() < 2 {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("seed %d: waiting for every live worker to be granted a lock twice after the heal: %v", seed, err)
	}
	t.Logf("every worker granted twice %v after the heal", time.Since(healStart).Round(time.Millisecond))
	stop()
	wg.Wait()

	holds := led.all()
	per := map[string]int{}
	for _, h := range holds {
		per[h.name]++
	}
	t.Logf("seed %d: %d holds %v", seed, len(holds), per)
	if bad := overlaps(holds, limit); len(bad) > 0 {
		for _, b := range bad[:min(len(bad), 10)] {
			t.Errorf("seed %d: %s", seed, b)
		}
	}
}

func TestOverlapsChecker(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	one := func(string) int { return 1 }
	tests := []struct {
		name  string
		holds []hold
		bad   int
	}{
		{"disjoint", []hold{{0, "a", at(0), at(10)}, {1, "a", at(11), at(20)}}, 0},
		{"touching", []hold{{0, "a", at(0), at(10)}, {1, "a", at(10), at(20)}}, 1},
		{"overlapping", []hold{{0, "a", at(0), at(10)}, {1, "a", at(5), at(20)}}, 1},
		{"different locks", []hold{{0, "a", at(0), at(10)}, {1, "b", at(5), at(20)}}, 0},
		{"nested", []hold{{0, "a", at(0), at(30)}, {1, "a", at(5), at(10)}, {2, "a", at(15), at(20)}}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := overlaps(tc.holds, one); len(got) != tc.bad {
				t.Errorf("overlaps = %q, want %d", got, tc.bad)
			}
		})
	}
}
