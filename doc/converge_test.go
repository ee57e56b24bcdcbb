package doc_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/internal/testkit/simnet"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

var convergeSeed = flag.Uint64("seed", 0, "TestConverge, TestConvergeStreams: run this one seed, with a trace")

// Sizes of TestConverge and TestConvergeStreams, so that go test -race
// ./doc takes about 10 s on a 2-core machine that others load (load 5),
// under 5 s on an idle one. Measured under -race: 200 seeds hand-stepped
// take 2.4 s idle and 7 s under load 5; 24 seeds over streams 0.7 s and
// 2 s. 3,000 seeds hand-stepped and 400 over streams all pass (47 s).
const (
	convergeSeedsHand    = 160 // seeds 1..n of TestConverge
	convergeSeedsStreams = 20  // of TestConvergeStreams
	convergeSeedsShort   = 40  // of TestConverge with -short; a quarter over streams
	convergeWorkers      = 4   // seeds over streams at once: they mostly wait
	minSteps             = 60
	maxSteps             = 160
)

// TestConverge is the randomized convergence test. For each seed, 3 to 7
// documents make random patches (every op kind, nested paths in a small
// key space so that they conflict) while internal/testkit/simnet carries
// their sessions, hand-stepped: Links whose messages are delivered in an
// order the seed chooses, with links cut (in the middle of histories too:
// a fault's byte budget) and made again, partitions and heals, small
// batches and small live queues that overflow. Some replicas' wall clocks
// are frozen at the same instant, so that (Timestamp, Source) ties happen;
// half keep a log (a scuttlebutt.Storage), so that local patches take the
// durable path. Everything runs on the test's goroutine, so a failing seed
// fails again in one run: -seed replays it with a trace of every message.
//
// Every single-op patch is checked for its local effect (expectLocal).
// After a final heal, every replica must equal the reference (the rules
// of the package doc evaluated naively over every patch any replica made,
// reference_test.go), hold the same clock, give a fresh replica that
// applies its History the same snapshot, and replay its observers' changes
// to its snapshot (and to the value at a watched path).
func TestConverge(t *testing.T) { convergeSeeds(t, false, convergeSeedsHand, convergeSeedsShort) }

// TestConvergeStreams is TestConverge over real streams (simnet's Pipes):
// stream.Conn over net.Pipe, with frames split into chunks, delayed and
// cut mid-way, which hand-stepped links do not do, and the streams'
// goroutines applying patches while the test makes its own. The Go
// scheduler interleaves them, so a failing seed may need several runs to
// fail again; and a local effect is checked only when no remote patch
// landed meanwhile.
func TestConvergeStreams(t *testing.T) {
	leak.Check(t)
	convergeSeeds(t, true, convergeSeedsStreams, convergeSeedsShort/4)
}

// convergeSeeds runs seeds 1..n (short with -short), or the one seed
// -seed names, with a trace.
func convergeSeeds(t *testing.T, pipes bool, n, short int) {
	if *convergeSeed != 0 {
		runConverge(t, *convergeSeed, pipes, true)
		return
	}
	if testing.Short() {
		n = short
	}
	var (
		mu    sync.Mutex
		total convergeStats
		wg    sync.WaitGroup
	)
	workers := runtime.GOMAXPROCS(0)
	if pipes {
		workers = convergeWorkers
	}
	seeds := make(chan uint64)
	for range workers {
		wg.Go(func() {
			for seed := range seeds {
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					st := runConverge(t, seed, pipes, false)
					mu.Lock()
					total.add(st)
					mu.Unlock()
				})
			}
		})
	}
	for seed := range uint64(n) {
		seeds <- seed + 1
	}
	close(seeds)
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d seeds: %+v", n, total)
	// The schedules must do what they are there for.
	for what, count := range map[string]int{
		"patches": total.patches, "refused patches": total.refused, "ties": total.ties,
		"cuts with messages in flight": total.cutsInFlight, "counters": total.counters,
		"arrays": total.arrays, "pulls": total.pulls, "local effects checked": total.local,
	} {
		if count == 0 {
			t.Errorf("no %s in %d seeds", what, n)
		}
	}
}

type convergeStats struct {
	patches, refused, ties, cutsInFlight, counters, arrays, pulls, local int
}

func (s *convergeStats) add(o convergeStats) {
	s.patches += o.patches
	s.refused += o.refused
	s.ties += o.ties
	s.cutsInFlight += o.cutsInFlight
	s.counters += o.counters
	s.arrays += o.arrays
	s.pulls += o.pulls
	s.local += o.local
}

// tracer collects a run's trace, from the test's goroutine and, over
// streams, the links'; and counts the cuts that lost a message in flight.
type tracer struct {
	mu    sync.Mutex
	lines []string
	cuts  atomic.Int64
	live  func(format string, args ...any) // t.Logf when replaying
}

func (tr *tracer) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if strings.HasPrefix(line, "simnet: cut ") {
		tr.cuts.Add(1)
	}
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
	return strings.Join(tr.lines[max(0, len(tr.lines)-n):], "\n")
}

// recorder is a scuttlebutt.Storage that keeps the updates of one source,
// the replica's own: the patches it made, to feed the reference. A replica
// over streams must keep one: its History may already have dropped a patch
// that a peer's later patch superseded by the time the test looks.
type recorder struct {
	mu  sync.Mutex
	src string
	seq uint64
	own []scuttlebutt.Update
}

func (r *recorder) Append(us []scuttlebutt.Update) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range us {
		if u.Source == r.src {
			r.own = append(r.own, u)
		}
	}
	r.seq++
	return r.seq, nil
}

func (r *recorder) Sync(uint64) error { return nil }

// find returns the update of r's source stamped ts.
func (r *recorder) find(ts vclock.Timestamp) (scuttlebutt.Update, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range r.own {
		if u.Timestamp == ts {
			return u, true
		}
	}
	return scuttlebutt.Update{}, false
}

// faults draws each connection's faults: a third chunked (over streams),
// a quarter cut after a byte count small enough to land inside a history,
// a few delayed (over streams).
func faults(r *rand.Rand) simnet.Fault {
	var f simnet.Fault
	if r.IntN(3) == 0 {
		f.MaxChunk = 1 + r.IntN(64)
	}
	if r.IntN(4) == 0 {
		f.CutAfter = 1 + r.Int64N(1500)
	}
	if r.IntN(20) == 0 {
		f.MaxDelay = time.Duration(r.IntN(30)) * time.Microsecond
	}
	return f
}

// streamOptions draws each side's limits: small batches split histories
// over many messages, so that cuts land inside them; a small live queue
// overflows and makes the link recompute the delta from History.
func streamOptions(r *rand.Rand) *stream.Options {
	o := &stream.Options{}
	if r.IntN(3) == 0 {
		o.MaxBatchBytes = 1 + r.IntN(64) // one update per message, or nearly
	}
	if r.IntN(5) == 0 {
		o.MaxQueueBytes = 1 + r.IntN(300)
	}
	return o
}

type converge struct {
	t     *testing.T
	seed  uint64
	pipes bool
	r     *rand.Rand
	net   *simnet.Network
	tr    *tracer

	docs    []*doc.Doc
	recs    []*recorder  // each replica's log; nil for those without one
	logs    []*changeLog // each replica's observer of the root
	watched []string     // a path each replica also watches
	wlogs   []*changeLog
	updates []scuttlebutt.Update // every patch any replica made
	stats   convergeStats
}

func runConverge(t *testing.T, seed uint64, pipes, verbose bool) convergeStats {
	tr := &tracer{}
	if verbose {
		tr.live = t.Logf
	}
	c := &converge{t: t, seed: seed, pipes: pipes, r: rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15)), tr: tr}
	c.net = simnet.New(seed, &simnet.Options{
		Logf: tr.logf, Fault: faults, Stream: streamOptions, Pipes: pipes, LogMessages: verbose,
	})
	defer func() {
		c.net.Close()
		if !t.Failed() {
			return
		}
		replay := fmt.Sprintf("seed %d failed; replay: go test ./doc -run 'TestConverge$' -v -seed=%d", seed, seed)
		if pipes {
			replay = fmt.Sprintf("seed %d failed; replay: go test ./doc -run 'TestConvergeStreams$' -v -count=10 -seed=%d", seed, seed)
		}
		if verbose {
			t.Log(replay)
			return
		}
		t.Logf("%s\ntrace (tail):\n%s", replay, tr.tail(300))
	}()

	r := c.r
	n := 3 + r.IntN(5)
	for i := range n {
		// Half the replicas share a frozen clock: their stamps tie.
		now := func() time.Time { return time.UnixMilli(today) }
		kind := "frozen"
		if r.IntN(2) == 0 {
			var calls atomic.Int64
			step := 1 + r.Int64N(5)
			now = func() time.Time { return time.UnixMilli(today + calls.Add(1)/step) }
			kind = fmt.Sprintf("+1ms/%d reads", step)
		}
		id := fmt.Sprintf("r%d", i)
		d, err := doc.New(id, &scuttlebutt.Config{Now: now, Incarnation: c.net.Incarnation(id)})
		if err != nil {
			t.Fatal(err)
		}
		var rec *recorder
		if pipes || r.IntN(2) == 0 {
			rec = &recorder{src: d.Source()}
			d.Attach(rec)
			kind += ", a log"
		}
		l, wl := &changeLog{}, &changeLog{}
		d.Observe("", l.add)
		w := randomPath(r)
		d.Observe(w, wl.add)
		c.docs, c.recs = append(c.docs, d), append(c.recs, rec)
		c.logs, c.watched, c.wlogs = append(c.logs, l), append(c.watched, w), append(c.wlogs, wl)
		c.net.Add(d)
		tr.logf("replica r%d: %s, clock %s, watches %q", i, d.Source(), kind, w)
	}
	steps := minSteps + r.IntN(maxSteps-minSteps)
	for step := range steps {
		c.step(step)
		// Hand-stepped, the links move only here: a number of deliveries
		// drawn from the seed, as the streams would meanwhile.
		c.net.Run(r.IntN(6))
		if err := c.net.Err(); err != nil {
			t.Fatalf("seed %d step %d: %v", seed, step, err)
		}
	}
	c.finish()
	c.stats.cutsInFlight = int(tr.cuts.Load())
	return c.stats
}

func (c *converge) step(step int) {
	r := c.r
	n := len(c.docs)
	i, j := r.IntN(n), r.IntN(n)
	for j == i {
		j = r.IntN(n)
	}
	switch x := r.IntN(100); {
	case x < 50:
		c.patch(step, i)
	case x < 64:
		c.tr.logf("step %d: connect r%d r%d", step, i, j)
		c.net.Connect(i, j) // refused across a partition
	case x < 74:
		c.tr.logf("step %d: disconnect r%d r%d", step, i, j)
		c.net.Disconnect(i, j)
	case x < 82:
		// Restart the link and cut the new one, in its history as a rule.
		c.tr.logf("step %d: restart r%d r%d with a cut", step, i, j)
		c.net.Disconnect(i, j)
		c.net.ConnectFault(i, j, simnet.Fault{CutAfter: 1 + r.Int64N(600), MaxChunk: r.IntN(32)})
	case x < 87:
		perm := r.Perm(n)
		cut := 1 + r.IntN(n-1)
		c.tr.logf("step %d: partition %v %v", step, perm[:cut], perm[cut:])
		c.net.Partition(perm[:cut], perm[cut:])
	case x < 94:
		if r.IntN(3) == 0 {
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
		c.checkGroups(step)
	}
}

// keys is the small key space of the random paths, so that writes
// conflict; "x/y" tests escaping.
var keys = []string{"a", "b", "c", "x/y"}

func randomPath(r *rand.Rand) string {
	segs := make([]string, 1+r.IntN(3))
	for i := range segs {
		segs[i] = keys[r.IntN(len(keys))]
	}
	return doc.Pointer(segs...)
}

// elements is the small set of values pushed and pulled, so that pulls
// find them.
var elements = []any{"p", "q", int64(1), map[string]any{"k": "v"}}

func randomValue(r *rand.Rand, depth int) any {
	switch r.IntN(12) {
	case 0:
		return nil
	case 1:
		return r.IntN(2) == 0
	case 2:
		return float64(r.IntN(8)) + 0.5
	case 3, 4:
		return int64(r.IntN(10))
	case 5:
		return fmt.Sprintf("s%d", r.IntN(5))
	case 6, 7:
		if depth < 2 {
			m := map[string]any{}
			for range r.IntN(3) {
				m[keys[r.IntN(len(keys))]] = randomValue(r, depth+1)
			}
			return m
		}
		return "deep"
	case 8:
		return []any{elements[r.IntN(len(elements))], elements[r.IntN(len(elements))]}
	case 9:
		return map[string]any{}
	}
	return []any{}
}

// opDesc says what a random op is, for the local check of single-op
// patches.
type opDesc struct {
	kind  string
	path  string
	value any // set, pull
	vals  []any
	n     float64
}

func randomOp(r *rand.Rand) (doc.Op, opDesc) {
	p := randomPath(r)
	switch r.IntN(10) {
	case 0, 1:
		v := randomValue(r, 0)
		return doc.Set(p, v), opDesc{kind: "set", path: p, value: v}
	case 2:
		return doc.Unset(p), opDesc{kind: "unset", path: p}
	case 3, 4:
		n := float64(r.IntN(5) - 1)
		return doc.Inc(p, n), opDesc{kind: "inc", path: p, n: n}
	case 5, 6:
		var vs []any
		for range r.IntN(3) {
			vs = append(vs, elements[r.IntN(len(elements))])
		}
		return doc.Push(p, vs...), opDesc{kind: "push", path: p, vals: vs}
	case 7, 8:
		v := elements[r.IntN(len(elements))]
		return doc.Pull(p, v), opDesc{kind: "pull", path: p, value: v}
	}
	v := int64(r.IntN(3))
	return doc.Set(p, v), opDesc{kind: "set", path: p, value: v}
}

// belowValue reports whether a path above path holds something other than
// an object, which can hide what was written at path: an op there brings
// it back (see Counters in the package doc), so expectLocal does not hold.
func belowValue(d *doc.Doc, path string) bool {
	segs, _ := doc.ParsePointer(path)
	for i := 1; i < len(segs); i++ {
		if v, ok := d.Get(doc.Pointer(segs[:i]...)); ok {
			if _, obj := v.(map[string]any); !obj {
				return true
			}
		}
	}
	return false
}

// expectLocal returns what path holds after op, applied alone by a
// replica to what the path held before (old, ok): the local effect of each
// op, which holds whatever the replica's history.
func expectLocal(old any, ok bool, op opDesc) (any, bool) {
	switch op.kind {
	case "set":
		return normalize(op.value), true
	case "unset":
		return nil, false
	case "inc":
		var f float64
		switch v := old.(type) {
		case int64:
			f = float64(v)
		case float64:
			f = v
		}
		return refNumber(f + op.n), true
	case "push":
		arr, _ := old.([]any)
		return append(append([]any{}, arr...), normalizeAll(op.vals)...), true
	case "pull":
		if !ok {
			return nil, false
		}
		var out []any
		for _, e := range old.([]any) {
			if !cmp.Equal(e, normalize(op.value)) {
				out = append(out, e)
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, true
	}
	panic(op.kind)
}

// patch makes a random patch on replica i and records its update.
func (c *converge) patch(step, i int) {
	d := c.docs[i]
	src := d.Source()
	ops := make([]doc.Op, 1+c.r.IntN(3))
	descs := make([]opDesc, len(ops))
	for k := range ops {
		ops[k], descs[k] = randomOp(c.r)
	}
	before := d.Clock()
	hidden := belowValue(d, descs[0].path)
	old, oldOK := d.Get(descs[0].path)
	err := d.Patch(ops...)
	got, gotOK := d.Get(descs[0].path)
	after := d.Clock()
	c.tr.logf("step %d: r%d: patch %v: %v", step, i, ops, err)
	// Only this goroutine writes to d, so only its patches move d's own
	// entry; other entries move when a stream applies a peer's patch.
	quiet := sameBut(before, after, src)
	if err != nil {
		if !errors.Is(err, doc.ErrNotNumber) && !errors.Is(err, doc.ErrNotArray) && !errors.Is(err, doc.ErrInvalidPath) {
			c.t.Fatalf("seed %d step %d: r%d: Patch(%v): %v", c.seed, step, i, ops, err)
		}
		if after.Get(src) != before.Get(src) || (!c.pipes && after.Compare(before) != vclock.Equal) {
			c.t.Fatalf("seed %d step %d: r%d: a refused patch moved the clock from %v to %v", c.seed, step, i, before, after)
		}
		c.stats.refused++
		return
	}
	if len(ops) == 1 && !hidden && quiet {
		c.stats.local++
		want, wantOK := expectLocal(old, oldOK, descs[0])
		if wantOK != gotOK || !cmp.Equal(want, got) {
			c.t.Fatalf("seed %d step %d: r%d: %v on %v (%v) gives %v (%v), want %v (%v)", c.seed, step, i, ops[0], old, oldOK, got, gotOK, want, wantOK)
		}
	}
	ts := after.Get(src)
	if ts == before.Get(src) {
		return // nothing to write (a pull of nothing)
	}
	c.stats.patches++
	c.updates = append(c.updates, c.update(i, ts))
	for _, o := range ops {
		switch str := o.String(); {
		case strings.HasPrefix(str, "inc"):
			c.stats.counters++
		case strings.HasPrefix(str, "push"):
			c.stats.arrays++
		case strings.HasPrefix(str, "pull"):
			c.stats.pulls++
		}
	}
}

// sameBut reports whether clocks a and b agree on every source but src.
func sameBut(a, b vclock.Clock, src string) bool {
	a, b = a.Clone(), b.Clone()
	delete(a, src)
	delete(b, src)
	return a.Compare(b) == vclock.Equal
}

// update returns the update replica i's patch stamped ts made: from its
// log, or else (hand-stepped, nothing else has run since) its History.
func (c *converge) update(i int, ts vclock.Timestamp) scuttlebutt.Update {
	if rec := c.recs[i]; rec != nil {
		u, ok := rec.find(ts)
		if !ok {
			c.t.Fatalf("seed %d: r%d: no update at %v in its log", c.seed, i, ts)
		}
		return u
	}
	return lastUpdate(c.t, c.docs[i])
}

func (c *converge) quiesce() {
	ctx, cancel := context.WithTimeout(c.t.Context(), 20*time.Second)
	defer cancel()
	if err := c.net.Quiesce(ctx); err != nil {
		c.t.Fatalf("seed %d: %v", c.seed, err)
	}
}

// checkGroups checks that replicas joined by live links, directly or not,
// hold the same snapshot once the network is quiet.
func (c *converge) checkGroups(step int) {
	for _, group := range c.net.Groups() {
		want := c.docs[group[0]].Snapshot()
		for _, j := range group[1:] {
			if diff := cmp.Diff(want, c.docs[j].Snapshot()); diff != "" {
				c.t.Fatalf("seed %d step %d: settled, but r%d and r%d differ (-r%d +r%d):\n%s", c.seed, step, group[0], j, group[0], j, diff)
			}
		}
	}
}

// finish heals the network for good, waits until it is quiet, and checks
// every replica against the reference and its own observers.
func (c *converge) finish() {
	t := c.t
	c.tr.logf("final: stop cuts, heal")
	c.net.StopCuts()
	c.net.Heal()
	c.quiesce()
	if groups := c.net.Groups(); len(groups) != 1 {
		t.Fatalf("seed %d: after the final heal the replicas are in groups %v, want one", c.seed, groups)
	}
	ops, err := refDecode(c.updates)
	if err != nil {
		t.Fatalf("seed %d: reference: %v", c.seed, err)
	}
	want := refEvaluate(ops)
	clock := c.docs[0].Clock()
	for i, d := range c.docs {
		got := d.Snapshot()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("seed %d: r%d differs from the reference (-want +got):\n%s", c.seed, i, diff)
		}
		if dc := d.Clock(); dc.Compare(clock) != vclock.Equal {
			t.Errorf("seed %d: r%d: clock %v, r0 has %v", c.seed, i, dc, clock)
		}
		fresh, _ := doc.New("fresh", &scuttlebutt.Config{Now: func() time.Time { return time.UnixMilli(today) }})
		if _, err := fresh.Apply(d.History(nil)...); err != nil {
			t.Fatalf("seed %d: r%d: applying its history to a fresh replica: %v", c.seed, i, err)
		}
		if diff := cmp.Diff(got, fresh.Snapshot()); diff != "" {
			t.Errorf("seed %d: r%d: a replica given its history differs (-r%d +fresh):\n%s", c.seed, i, i, diff)
		}
	}
	// Every stream has stopped, so every change has been delivered.
	if err := c.net.Close(); err != nil {
		t.Fatalf("seed %d: %v", c.seed, err)
	}
	for i, d := range c.docs {
		got := d.Snapshot()
		replayed, err := replay(c.logs[i].list())
		if err != nil {
			t.Fatalf("seed %d: r%d: replaying its changes: %v", c.seed, i, err)
		}
		if diff := cmp.Diff(got, replayed); diff != "" {
			t.Errorf("seed %d: r%d: its changes replay to another document (-snapshot +replayed):\n%s", c.seed, i, diff)
		}
		replayed, err = replay(c.wlogs[i].list())
		if err != nil {
			t.Fatalf("seed %d: r%d: replaying its changes of %s: %v", c.seed, i, c.watched[i], err)
		}
		wv, wok := d.Get(c.watched[i])
		rv, rok := at(replayed, c.watched[i])
		if wok != rok || !cmp.Equal(wv, rv) {
			t.Errorf("seed %d: r%d: %s is %v (%v), its changes replay to %v (%v)", c.seed, i, c.watched[i], wv, wok, rv, rok)
		}
	}
	// Ties: two patches stamped alike by different replicas.
	seen := map[vclock.Timestamp]string{}
	for _, u := range c.updates {
		if src, ok := seen[u.Timestamp]; ok && src != u.Source {
			c.stats.ties++
		}
		seen[u.Timestamp] = u.Source
	}
	if c.tr.live != nil {
		t.Logf("seed %d: %d replicas, %d patches: %+v", c.seed, len(c.docs), len(c.updates), c.stats)
	}
}
