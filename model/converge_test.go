package model_test

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/simnet"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

var convergeSeed = flag.Uint64("seed", 0, "TestConverge: replay this one seed with a verbose trace (or set SCUTTLE_SEED)")

// Sizes of TestConverge, measured under -race on a 2-core machine that
// other jobs kept busy (load 2 to 10): 200 seeds take 20 to 22 s of CPU and
// 22 to 40 s of wall time; 300 seeds took up to 56 s. Steps cost more as
// links accumulate, so schedules are a little short and seeds many.
const (
	convergeSeeds      = 200 // seeds 1..convergeSeeds
	convergeSeedsShort = 40  // with -short
	minReplicas        = 5
	maxReplicas        = 10
	minSteps           = 40
	maxSteps           = 120
	numKeys            = 6 // a small key space, so that writes conflict
	convergeWorkers    = 4 // seeds run at once
)

// TestConverge is the randomized convergence test: for each seed, 5 to 10
// Models replicate over real streams (internal/simnet) while a seeded
// schedule writes and deletes keys on random replicas, connects and
// disconnects pairs, partitions and heals the network, and cuts streams in
// the middle of their history exchange. Some replicas share a frozen or
// slowly moving wall clock, so that (Timestamp, Source) ties really happen.
// After a final heal every replica must hold the same clock and snapshot,
// and both must equal a reference computed here from every write made:
// last writer wins per key by (Timestamp, Source).
//
// A failure prints the seed and the command that replays it with a trace.
func TestConverge(t *testing.T) {
	if seed := replaySeed(t); seed != 0 {
		runConverge(t, seed, true)
		return
	}
	var ties atomic.Int64
	n := convergeSeeds
	if testing.Short() {
		n = convergeSeedsShort
	}
	// Seeds spend much of their time waiting for streams, so more of them
	// run at once than -parallel's default of GOMAXPROCS.
	seeds := make(chan uint64)
	var wg sync.WaitGroup
	for range convergeWorkers {
		wg.Go(func() {
			for seed := range seeds {
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					ties.Add(int64(runConverge(t, seed, false)))
				})
			}
		})
	}
	for seed := range uint64(n) {
		seeds <- seed + 1
	}
	close(seeds)
	wg.Wait()
	// The frozen clocks are there to make ties; check that they did.
	if ties.Load() == 0 && !t.Failed() {
		t.Errorf("no key's winner tied on timestamp with another write in %d seeds: the schedule does not test (Timestamp, Source) ties", n)
	}
	t.Logf("%d seeds; %d keys were won by the greater source at an equal timestamp", n, ties.Load())
}

// replaySeed returns the seed given by -seed or SCUTTLE_SEED, or 0.
func replaySeed(t *testing.T) uint64 {
	if *convergeSeed != 0 {
		return *convergeSeed
	}
	if s := os.Getenv("SCUTTLE_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil || seed == 0 {
			t.Fatalf("SCUTTLE_SEED=%q: want a positive integer", s)
		}
		return seed
	}
	return 0
}

// write is one local write as the test made it: the reference input.
type write struct {
	src   string
	ts    vclock.Timestamp
	key   string
	value any
	del   bool
}

// wins reports whether w beats v under last-writer-wins.
func (w write) wins(v write) bool {
	if w.ts != v.ts {
		return w.ts > v.ts
	}
	return w.src > v.src
}

// reference computes, independently of the Model, the snapshot and clock
// every replica must end with, and how many keys' winners beat another
// write of the key at the same timestamp by source alone.
func reference(writes []write) (snap map[string]any, clock vclock.Clock, ties int) {
	latest := map[string]write{}
	clock = vclock.Clock{}
	for _, w := range writes {
		if cur, ok := latest[w.key]; !ok || w.wins(cur) {
			latest[w.key] = w
		}
		clock.Advance(w.src, w.ts)
	}
	snap = map[string]any{}
	for k, w := range latest {
		if !w.del {
			snap[k] = w.value
		}
		for _, v := range writes {
			if v.key == k && v.ts == w.ts && v.src != w.src {
				ties++
				break
			}
		}
	}
	return snap, clock, ties
}

// tracer collects a run's trace, from the test's goroutine and the links'.
type tracer struct {
	mu    sync.Mutex
	lines []string
	start time.Time
	live  func(format string, args ...any) // t.Logf when replaying
}

func (tr *tracer) logf(format string, args ...any) {
	line := fmt.Sprintf("%8.3fms "+format, append([]any{float64(time.Since(tr.start).Microseconds()) / 1000}, args...)...)
	tr.mu.Lock()
	tr.lines = append(tr.lines, line)
	tr.mu.Unlock()
	if tr.live != nil {
		tr.live("%s", line)
	}
}

func (tr *tracer) tail(n int) string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	lines := tr.lines[max(0, len(tr.lines)-n):]
	return strings.Join(lines, "\n")
}

// fakeClock is a wall clock a replica's HLC reads. Several replicas read
// frozen or slowly moving clocks that start at the same instant, so that
// their timestamps collide.
func fakeClock(r *rand.Rand) (func() time.Time, string) {
	base := time.UnixMilli(1795385884149)
	var calls atomic.Int64
	switch r.IntN(4) {
	case 0, 1:
		return func() time.Time { return base }, "frozen"
	case 2:
		every := 1 + r.Int64N(8)
		return func() time.Time {
			return base.Add(time.Duration(calls.Add(1)/every) * time.Millisecond)
		}, fmt.Sprintf("+1ms/%d writes", every)
	default:
		off := time.Duration(r.IntN(4)) * time.Millisecond
		return func() time.Time { return base.Add(off) }, fmt.Sprintf("frozen+%v", off)
	}
}

func randomValue(r *rand.Rand) any {
	switch r.IntN(10) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return float64(r.IntN(8)) + 0.5
	case 3:
		return []any{int64(r.IntN(5)), "x"}
	case 4:
		return map[string]any{"n": int64(r.IntN(5)), "s": "y"}
	case 5, 6:
		return fmt.Sprintf("v%d", r.IntN(100))
	default:
		return int64(r.IntN(100))
	}
}

// faults draws each connection's faults: a third chunked, a third cut after
// a random byte count, a few delayed.
func faults(r *rand.Rand) simnet.Fault {
	var f simnet.Fault
	if r.IntN(3) == 0 {
		f.MaxChunk = 1 + r.IntN(64)
	}
	if r.IntN(3) == 0 {
		f.CutAfter = 1 + r.Int64N(1500)
	}
	if r.IntN(20) == 0 {
		f.MaxDelay = time.Duration(r.IntN(30)) * time.Microsecond
	}
	return f
}

// streamOptions draws each side's limits: small batches split histories
// over many frames, so cuts land inside them; a tiny live queue overflows
// and makes the link recompute the delta from History.
func streamOptions(r *rand.Rand) *stream.Options {
	o := &stream.Options{}
	if r.IntN(4) == 0 {
		o.MaxBatchBytes = 16 + r.IntN(256)
	}
	if r.IntN(5) == 0 {
		o.MaxQueueBytes = 32 + r.IntN(512)
	}
	return o
}

// lagStorage is a scuttlebutt.Storage whose Sync lets other goroutines run
// a few times before it reports an append durable, so that links hold back
// updates that are not durable yet and send them once they are. It records
// every update appended, to check that nothing applied escaped the log.
type lagStorage struct {
	mu    sync.Mutex
	seq   uint64
	count map[string]int // source@timestamp -> appends
}

func newLagStorage() *lagStorage {
	return &lagStorage{count: map[string]int{}}
}

func (s *lagStorage) Append(us []scuttlebutt.Update) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, u := range us {
		s.count[fmt.Sprintf("%s@%v", u.Source, u.Timestamp)]++
	}
	s.seq++
	return s.seq, nil
}

func (s *lagStorage) Sync(seq uint64) error {
	for range seq % 4 {
		runtime.Gosched()
	}
	return nil
}

// logged returns how many times each update was appended.
func (s *lagStorage) logged() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.count)
}

type converge struct {
	t      *testing.T
	seed   uint64
	r      *rand.Rand
	net    *simnet.Network
	models []*model.Model
	writes []write
	last   []vclock.Timestamp // per replica, its last write's timestamp
	tr     *tracer

	stores []*lagStorage // per replica; nil for those without storage

	watchMu sync.Mutex
	watched []map[string]any // per replica, the state its Watch events build
	watchOK []string         // Watch inconsistencies
}

// runConverge runs one seed and returns the reference's count of ties.
func runConverge(t *testing.T, seed uint64, verbose bool) (ties int) {
	tr := &tracer{start: time.Now()}
	if verbose {
		tr.live = t.Logf
	}
	c := &converge{t: t, seed: seed, r: rand.New(rand.NewPCG(seed, 0x5eed)), tr: tr}
	c.net = simnet.New(seed, &simnet.Options{Logf: tr.logf, Fault: faults, Stream: streamOptions})
	defer func() {
		if !t.Failed() {
			return
		}
		// The schedule replays exactly; the streams' interleaving may not,
		// hence -count.
		replay := fmt.Sprintf("seed %d failed; replay: go test ./model -run 'TestConverge$' -v -count=10 -seed=%d", seed, seed)
		if verbose {
			t.Log(replay)
			return
		}
		t.Logf("%s\ntrace (tail):\n%s", replay, tr.tail(400))
	}()
	defer c.net.Close()

	k := minReplicas + c.r.IntN(maxReplicas-minReplicas+1)
	c.last = make([]vclock.Timestamp, k)
	c.watched = make([]map[string]any, k)
	c.stores = make([]*lagStorage, k)
	for i := range k {
		now, kind := fakeClock(c.r)
		m, err := model.New(fmt.Sprintf("r%d", i), &scuttlebutt.Config{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if c.r.IntN(3) == 0 {
			c.stores[i] = newLagStorage()
			m.Attach(c.stores[i])
			kind += ", lagging storage"
		}
		c.watched[i] = map[string]any{}
		m.Watch(c.watcher(i))
		c.models = append(c.models, m)
		c.net.Add(m)
		tr.logf("replica %s clock %s", m.ID(), kind)
	}

	steps := minSteps + c.r.IntN(maxSteps-minSteps+1)
	for step := range steps {
		c.step(step)
		if err := c.net.Err(); err != nil {
			t.Fatalf("seed %d step %d: %v", seed, step, err)
		}
	}
	return c.finish()
}

// watcher keeps replica i's Watch-built state and checks that each event's
// Old is the value the events before it left.
func (c *converge) watcher(i int) func(model.Change) {
	return func(ch model.Change) {
		c.watchMu.Lock()
		defer c.watchMu.Unlock()
		st := c.watched[i]
		old, had := st[ch.Key]
		if !reflect.DeepEqual(old, ch.Old) || (!had && ch.Old != nil) {
			c.watchOK = append(c.watchOK, fmt.Sprintf("r%d: change of %q from %s@%v has Old %v, previous events left %v", i, ch.Key, ch.Source, ch.Timestamp, ch.Old, old))
		}
		if ch.Deleted {
			delete(st, ch.Key)
		} else {
			st[ch.Key] = ch.Value
		}
	}
}

func (c *converge) step(step int) {
	r := c.r
	k := len(c.models)
	i, j := r.IntN(k), r.IntN(k)
	for j == i {
		j = r.IntN(k)
	}
	switch op := r.IntN(100); {
	case op < 35:
		c.set(step, i, fmt.Sprintf("k%d", r.IntN(numKeys)), randomValue(r))
	case op < 45:
		c.del(step, i, fmt.Sprintf("k%d", r.IntN(numKeys)))
	case op < 50:
		// A burst: several replicas write the same key before anything
		// spreads, often at equal timestamps.
		key := fmt.Sprintf("k%d", r.IntN(numKeys))
		if r.IntN(3) == 0 {
			c.concurrentBurst(step, key)
			break
		}
		for range 2 + r.IntN(3) {
			if x := r.IntN(k); r.IntN(4) == 0 {
				c.del(step, x, key)
			} else {
				c.set(step, x, key, randomValue(r))
			}
		}
	case op < 62:
		c.tr.logf("step %d: connect r%d r%d", step, i, j)
		c.net.Connect(i, j) // refused across a partition
	case op < 74:
		c.tr.logf("step %d: disconnect r%d r%d", step, i, j)
		c.net.Disconnect(i, j)
	case op < 83:
		// Restart the stream and cut the new one mid-history.
		c.tr.logf("step %d: restart r%d r%d with a cut", step, i, j)
		c.net.Disconnect(i, j)
		f := simnet.Fault{CutAfter: 1 + r.Int64N(800), MaxChunk: r.IntN(32)}
		c.net.ConnectFault(i, j, f)
	case op < 88:
		perm := r.Perm(k)
		// 2 or 3 groups: cut the permutation at distinct points in 1..k-1.
		cuts := r.Perm(k - 1)[:2+r.IntN(2)-1]
		for x := range cuts {
			cuts[x]++
		}
		slices.Sort(cuts)
		var groups [][]int
		prev := 0
		for _, cut := range append(cuts, k) {
			groups = append(groups, perm[prev:cut])
			prev = cut
		}
		c.tr.logf("step %d: partition %v", step, groups)
		c.net.Partition(groups...)
	case op < 95:
		if r.IntN(5) == 0 {
			c.tr.logf("step %d: full mesh", step)
			c.net.FullMesh()
		} else {
			c.tr.logf("step %d: heal", step)
			c.net.Heal()
		}
	default:
		// Settle: each connected group must agree within itself.
		c.tr.logf("step %d: settle", step)
		c.quiesce()
		c.checkGroups()
	}
}

func (c *converge) set(step, i int, key string, v any) {
	c.note(step, i, c.write(i, write{key: key, value: v}))
}

func (c *converge) del(step, i int, key string) {
	c.note(step, i, c.write(i, write{key: key, del: true}))
}

// written is the outcome of one write: w with its source and timestamp, or
// the error.
type written struct {
	w   write
	err error
}

// write makes w on replica i and reads its timestamp back. One goroutine at
// a time writes to a replica, and only a local write raises the replica's
// own clock entry, so that entry is the write's timestamp. It is safe to
// call for different replicas at once.
func (c *converge) write(i int, w write) written {
	m := c.models[i]
	var err error
	if w.del {
		err = m.Delete(w.key)
	} else {
		err = m.Set(w.key, w.value)
	}
	w.src = m.Source()
	w.ts = m.Clock().Get(w.src)
	return written{w, err}
}

// concurrentBurst has several replicas write at once, each a few times,
// while the streams carry the writes of the others.
func (c *converge) concurrentBurst(step int, key string) {
	r := c.r
	writers := r.Perm(len(c.models))[:2+r.IntN(3)]
	plans := make([][]write, len(writers))
	for x := range writers {
		for range 1 + r.IntN(3) {
			w := write{key: key, value: randomValue(r)}
			if r.IntN(4) == 0 {
				w = write{key: fmt.Sprintf("k%d", r.IntN(numKeys)), del: true}
			}
			plans[x] = append(plans[x], w)
		}
	}
	results := make([][]written, len(writers))
	var wg sync.WaitGroup
	for x, i := range writers {
		wg.Go(func() {
			for _, w := range plans[x] {
				results[x] = append(results[x], c.write(i, w))
			}
		})
	}
	wg.Wait()
	c.tr.logf("step %d: concurrent writes on %v", step, writers)
	for x, i := range writers {
		for _, res := range results[x] {
			c.note(step, i, res)
		}
	}
}

// note checks and records a write made on replica i.
func (c *converge) note(step, i int, res written) {
	w := res.w
	if res.err != nil {
		c.t.Fatalf("seed %d step %d: %s: write %+v: %v", c.seed, step, w.src, w, res.err)
	}
	if w.ts <= c.last[i] {
		c.t.Fatalf("seed %d step %d: %s wrote %q but its clock entry went from %v to %v", c.seed, step, w.src, w.key, c.last[i], w.ts)
	}
	c.last[i] = w.ts
	c.writes = append(c.writes, w)
	if w.del {
		c.tr.logf("step %d: %s@%v delete %s", step, w.src, w.ts, w.key)
	} else {
		c.tr.logf("step %d: %s@%v set %s=%v", step, w.src, w.ts, w.key, w.value)
	}
}

func (c *converge) quiesce() {
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	if err := c.net.Quiesce(ctx); err != nil {
		c.t.Fatalf("seed %d: %v", c.seed, err)
	}
}

// checkGroups checks that replicas joined by live links, directly or not,
// hold the same snapshot. A link cut since Quiesce only splits a group.
func (c *converge) checkGroups() {
	for _, group := range c.net.Groups() {
		want := c.models[group[0]].Snapshot()
		for _, j := range group[1:] {
			if diff := cmp.Diff(want, c.models[j].Snapshot()); diff != "" {
				c.t.Fatalf("seed %d: settled but r%d and r%d differ (-r%d +r%d):\n%s", c.seed, group[0], j, group[0], j, diff)
			}
		}
	}
}

func (c *converge) finish() (ties int) {
	t := c.t
	c.tr.logf("final: stop cuts, heal")
	c.net.StopCuts()
	c.net.Heal()
	c.quiesce()
	if g := c.net.Groups(); len(g) != 1 {
		t.Fatalf("seed %d: after the final heal the replicas are in groups %v, want one", c.seed, g)
	}

	wantSnap, wantClock, ties := reference(c.writes)
	for _, m := range c.models {
		if diff := cmp.Diff(wantClock, m.Clock()); diff != "" {
			t.Errorf("seed %d: %s's clock differs from the writes made (-want +got):\n%s", c.seed, m.ID(), diff)
		}
		snap := m.Snapshot()
		if diff := cmp.Diff(wantSnap, snap); diff != "" {
			t.Errorf("seed %d: %s's snapshot differs from the last writes by (Timestamp, Source) (-want +got):\n%s", c.seed, m.ID(), diff)
		}
		if got, want := m.Len(), len(snap); got != want {
			t.Errorf("seed %d: %s.Len() = %d, snapshot has %d keys", c.seed, m.ID(), got, want)
		}
		if got, want := m.Keys(), slices.Sorted(maps.Keys(snap)); !slices.Equal(got, want) {
			t.Errorf("seed %d: %s.Keys() = %v, snapshot has %v", c.seed, m.ID(), got, want)
		}
	}
	if err := c.net.Close(); err != nil {
		t.Fatalf("seed %d: %v", c.seed, err)
	}
	// What a replica holds and serves went through its log, exactly once.
	for i, st := range c.stores {
		if st == nil {
			continue
		}
		logged := st.logged()
		for _, u := range c.models[i].History(nil) {
			if n := logged[fmt.Sprintf("%s@%v", u.Source, u.Timestamp)]; n != 1 {
				t.Errorf("seed %d: r%d holds %v, which its storage got %d times, want 1", c.seed, i, u, n)
			}
		}
	}
	// Every stream has stopped, so every change event has been delivered.
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	for _, msg := range c.watchOK {
		t.Errorf("seed %d: Watch: %s", c.seed, msg)
	}
	for i, m := range c.models {
		if diff := cmp.Diff(m.Snapshot(), c.watched[i]); diff != "" {
			t.Errorf("seed %d: %s's Watch events do not add up to its snapshot (-snapshot +events):\n%s", c.seed, m.ID(), diff)
		}
	}
	if c.tr.live != nil || t.Failed() {
		t.Logf("seed %d: %d replicas, %d writes, %d keys set, %d won on a tie", c.seed, len(c.models), len(c.writes), len(wantSnap), ties)
	}
	return ties
}
