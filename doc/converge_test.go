package doc_test

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

var convergeSeed = flag.Uint64("seed", 0, "TestConverge: run this one seed, with a trace")

// Sizes of TestConverge. 200 seeds of 3 to 7 replicas take about a second
// of CPU, a few under -race.
const (
	convergeSeeds      = 200
	convergeSeedsShort = 60
	minSteps           = 60
	maxSteps           = 160
)

// TestConverge is the randomized convergence test. For each seed, 3 to 7
// documents make random patches (every op kind, nested paths in a small
// key space so that they conflict) while a hand-stepped network carries
// their sessions: scuttlebutt Links whose messages wait in per-direction
// FIFOs, delivered one at a time in an order the seed chooses, with links
// cut (in the middle of histories too) and made again, partitions and
// heals, small batches and small live queues that overflow. Some
// replicas' wall clocks are frozen at the same instant, so that
// (Timestamp, Source) ties happen. Everything runs on the test's
// goroutine, so a seed replays exactly.
//
// After a final heal, every replica must equal the reference (the rules
// of the package doc evaluated naively over every patch any replica made,
// reference_test.go), hold the same clock, replay its observers' changes
// to its snapshot (and to the value at a watched path), and give a fresh
// replica that applies its History the same snapshot.
func TestConverge(t *testing.T) {
	if *convergeSeed != 0 {
		runConverge(t, *convergeSeed, true)
		return
	}
	n := convergeSeeds
	if testing.Short() {
		n = convergeSeedsShort
	}
	var (
		mu    sync.Mutex
		total convergeStats
		wg    sync.WaitGroup
	)
	seeds := make(chan uint64)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for seed := range seeds {
				t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
					st := runConverge(t, seed, false)
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
		"arrays": total.arrays, "pulls": total.pulls,
	} {
		if count == 0 {
			t.Errorf("no %s in %d seeds", what, n)
		}
	}
}

type convergeStats struct {
	patches, refused, ties, cutsInFlight, counters, arrays, pulls int
}

func (s *convergeStats) add(o convergeStats) {
	s.patches += o.patches
	s.refused += o.refused
	s.ties += o.ties
	s.cutsInFlight += o.cutsInFlight
	s.counters += o.counters
	s.arrays += o.arrays
	s.pulls += o.pulls
}

// simLink is a session between replicas i and j: a Link on each side and
// the messages in flight each way, in order.
type simLink struct {
	i, j     int
	li, lj   *scuttlebutt.Link
	toJ, toI []scuttlebutt.Message
}

type simNet struct {
	t       *testing.T
	r       *rand.Rand
	docs    []*doc.Doc
	logs    []*changeLog // each replica's observer of the root
	watched []string     // a path each replica also watches
	wlogs   []*changeLog
	links   []*simLink
	updates []scuttlebutt.Update // every patch any replica made
	stats   convergeStats
	trace   func(format string, args ...any)
}

func runConverge(t *testing.T, seed uint64, verbose bool) convergeStats {
	r := rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15))
	s := &simNet{t: t, r: r, trace: func(string, ...any) {}}
	if verbose {
		s.trace = t.Logf
	}
	n := 3 + r.IntN(5)
	for i := range n {
		// Half the replicas share a frozen clock: their stamps tie.
		now := func() time.Time { return time.UnixMilli(today) }
		if r.IntN(2) == 0 {
			var calls int64
			step := 1 + r.Int64N(5)
			now = func() time.Time { calls++; return time.UnixMilli(today + calls/step) }
		}
		d, err := doc.New(fmt.Sprintf("r%d", i), &scuttlebutt.Config{Now: now, Incarnation: "x"})
		if err != nil {
			t.Fatal(err)
		}
		l, wl := &changeLog{}, &changeLog{}
		d.Observe("", l.add)
		w := randomPath(r)
		d.Observe(w, wl.add)
		s.docs, s.logs, s.watched, s.wlogs = append(s.docs, d), append(s.logs, l), append(s.watched, w), append(s.wlogs, wl)
	}
	steps := minSteps + r.IntN(maxSteps-minSteps)
	for range steps {
		switch x := r.IntN(100); {
		case x < 35:
			s.patch(r.IntN(n))
		case x < 82:
			s.deliver()
		case x < 89:
			i, j := r.IntN(n), r.IntN(n)
			if i != j {
				s.connect(min(i, j), max(i, j))
			}
		case x < 95:
			if len(s.links) > 0 {
				s.cut(s.links[r.IntN(len(s.links))])
			}
		case x < 98:
			s.partition()
		default:
			s.healAll()
		}
		s.collect()
	}
	s.healAll()
	s.settle()
	s.check(seed)
	for _, l := range s.links {
		l.li.Close()
		l.lj.Close()
	}
	return s.stats
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
func (s *simNet) patch(i int) {
	d := s.docs[i]
	ops := make([]doc.Op, 1+s.r.IntN(3))
	descs := make([]opDesc, len(ops))
	for k := range ops {
		ops[k], descs[k] = randomOp(s.r)
	}
	before := d.Clock()
	old, oldOK := d.Get(descs[0].path)
	hidden := belowValue(d, descs[0].path)
	err := d.Patch(ops...)
	s.trace("r%d: patch %v: %v", i, ops, err)
	if err != nil {
		if !errors.Is(err, doc.ErrNotNumber) && !errors.Is(err, doc.ErrNotArray) && !errors.Is(err, doc.ErrInvalidPath) {
			s.t.Fatalf("r%d: Patch(%v): %v", i, ops, err)
		}
		if c := d.Clock(); c.Compare(before) != vclock.Equal {
			s.t.Fatalf("r%d: a refused patch moved the clock from %v to %v", i, before, c)
		}
		s.stats.refused++
		return
	}
	if len(ops) == 1 && !hidden {
		want, wantOK := expectLocal(old, oldOK, descs[0])
		got, gotOK := d.Get(descs[0].path)
		if wantOK != gotOK || !cmp.Equal(want, got) {
			s.t.Fatalf("r%d: %v on %v (%v) gives %v (%v), want %v (%v)", i, ops[0], old, oldOK, got, gotOK, want, wantOK)
		}
	}
	if d.Clock()[d.Source()] == before[d.Source()] {
		return // nothing to write (a pull of nothing)
	}
	s.stats.patches++
	u := lastUpdate(s.t, d)
	s.updates = append(s.updates, u)
	for _, o := range ops {
		switch str := o.String(); {
		case strings.HasPrefix(str, "inc"):
			s.stats.counters++
		case strings.HasPrefix(str, "push"):
			s.stats.arrays++
		case strings.HasPrefix(str, "pull"):
			s.stats.pulls++
		}
	}
}

func (s *simNet) link(i, j int) *simLink {
	for _, l := range s.links {
		if l.i == i && l.j == j {
			return l
		}
	}
	return nil
}

// connect opens a session between i and j (i < j), if there is none.
func (s *simNet) connect(i, j int) {
	if s.link(i, j) != nil {
		return
	}
	opts := func() *scuttlebutt.LinkOptions {
		o := &scuttlebutt.LinkOptions{}
		if s.r.IntN(3) == 0 {
			o.MaxBatchBytes = 1 // one update per message: cuts land inside histories
		}
		if s.r.IntN(5) == 0 {
			o.MaxQueueBytes = 1 + s.r.IntN(300) // live queues overflow
		}
		return o
	}
	l := &simLink{i: i, j: j, li: s.docs[i].NewLink(opts()), lj: s.docs[j].NewLink(opts())}
	s.links = append(s.links, l)
	s.trace("link r%d-r%d", i, j)
}

func (s *simNet) cut(l *simLink) {
	if len(l.toI)+len(l.toJ) > 0 {
		s.stats.cutsInFlight++
	}
	l.li.Close()
	l.lj.Close()
	for k, x := range s.links {
		if x == l {
			s.links = append(s.links[:k], s.links[k+1:]...)
			break
		}
	}
	s.trace("cut r%d-r%d with %d+%d messages in flight", l.i, l.j, len(l.toJ), len(l.toI))
}

// partition cuts every link across a random split.
func (s *simNet) partition() {
	side := make([]bool, len(s.docs))
	for i := range side {
		side[i] = s.r.IntN(2) == 0
	}
	for _, l := range append([]*simLink(nil), s.links...) {
		if side[l.i] != side[l.j] {
			s.cut(l)
		}
	}
}

func (s *simNet) healAll() {
	for i := range s.docs {
		for j := i + 1; j < len(s.docs); j++ {
			s.connect(i, j)
		}
	}
}

// collect moves what every link has to send into its FIFO.
func (s *simNet) collect() {
	for _, l := range s.links {
		for m := l.li.Ready(); len(m) > 0; m = l.li.Ready() {
			l.toJ = append(l.toJ, m...)
		}
		for m := l.lj.Ready(); len(m) > 0; m = l.lj.Ready() {
			l.toI = append(l.toI, m...)
		}
	}
}

// deliver delivers the next message of a random direction that has one.
func (s *simNet) deliver() bool {
	var ready []*[]scuttlebutt.Message
	var to []*scuttlebutt.Link
	var names []string
	for _, l := range s.links {
		if len(l.toJ) > 0 {
			ready, to, names = append(ready, &l.toJ), append(to, l.lj), append(names, fmt.Sprintf("r%d->r%d", l.i, l.j))
		}
		if len(l.toI) > 0 {
			ready, to, names = append(ready, &l.toI), append(to, l.li), append(names, fmt.Sprintf("r%d->r%d", l.j, l.i))
		}
	}
	if len(ready) == 0 {
		return false
	}
	k := s.r.IntN(len(ready))
	q := ready[k]
	m := (*q)[0]
	*q = (*q)[1:]
	s.trace("%s: %v", names[k], m)
	if err := to[k].Step(m); err != nil {
		s.t.Fatalf("%s: Step(%v): %v", names[k], m, err)
	}
	return true
}

// settle delivers until nothing is in flight or ready.
func (s *simNet) settle() {
	for range 1_000_000 {
		s.collect()
		if !s.deliver() {
			return
		}
	}
	s.t.Fatal("the network did not settle")
}

func (s *simNet) check(seed uint64) {
	t := s.t
	replayHint := fmt.Sprintf("(replay with go test ./doc -run 'TestConverge$' -seed %d -v)", seed)
	ops, err := refDecode(s.updates)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	want := refEvaluate(ops)
	clock := s.docs[0].Clock()
	for i, d := range s.docs {
		got := d.Snapshot()
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("r%d differs from the reference (-want +got) %s:\n%s", i, replayHint, diff)
		}
		if c := d.Clock(); c.Compare(clock) != vclock.Equal {
			t.Errorf("r%d: clock %v, r0 has %v %s", i, c, clock, replayHint)
		}
		replayed, err := replay(s.logs[i].list())
		if err != nil {
			t.Fatalf("r%d: replaying its changes: %v %s", i, err, replayHint)
		}
		if diff := cmp.Diff(got, replayed); diff != "" {
			t.Errorf("r%d: its changes replay to another document (-snapshot +replayed) %s:\n%s", i, replayHint, diff)
		}
		replayed, err = replay(s.wlogs[i].list())
		if err != nil {
			t.Fatalf("r%d: replaying its changes of %s: %v %s", i, s.watched[i], err, replayHint)
		}
		wv, wok := d.Get(s.watched[i])
		rv, rok := at(replayed, s.watched[i])
		if wok != rok || !cmp.Equal(wv, rv) {
			t.Errorf("r%d: %s is %v (%v), its changes replay to %v (%v) %s", i, s.watched[i], wv, wok, rv, rok, replayHint)
		}
		fresh, _ := doc.New("fresh", &scuttlebutt.Config{Now: func() time.Time { return time.UnixMilli(today) }})
		if _, err := fresh.Apply(d.History(nil)...); err != nil {
			t.Fatalf("r%d: applying its history to a fresh replica: %v", i, err)
		}
		if diff := cmp.Diff(got, fresh.Snapshot()); diff != "" {
			t.Errorf("r%d: a replica given its history differs (-r%d +fresh) %s:\n%s", i, i, replayHint, diff)
		}
	}
	// Ties: two patches stamped alike by different replicas.
	seen := map[vclock.Timestamp]string{}
	for _, u := range s.updates {
		if src, ok := seen[u.Timestamp]; ok && src != u.Source {
			s.stats.ties++
		}
		seen[u.Timestamp] = u.Source
	}
}
