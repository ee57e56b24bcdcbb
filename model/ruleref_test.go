package model_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// This file states the rules of package model a second time, naively and
// apart from its code, for the tests to check the Model against: which
// writes of a key count (kept), which are void under the lease rule, and
// what the key reads as. See rule.go for the rules in words.

// wopts are a write's options as its payload carries them.
type wopts struct {
	TTL   uint64  `cbor:"ttl,omitempty"`
	Lease uint64  `cbor:"lease,omitempty"`
	Since float64 `cbor:"since,omitempty"`
	Del   bool    `cbor:"del,omitempty"`
	Tomb  bool    `cbor:"tomb,omitempty"`
}

// decodeOptions reads the options of a payload, if any.
func decodeOptions(data []byte) (wopts, error) {
	var parts []cbor.RawMessage
	if err := cbor.Unmarshal(data, &parts); err != nil {
		return wopts{}, err
	}
	var o wopts
	if len(parts) == 3 {
		if err := cbor.Unmarshal(parts[2], &o); err != nil {
			return wopts{}, err
		}
	}
	return o, nil
}

// writeOf reads back the write of an update (its value as CBOR decodes
// it by default).
func writeOf(u scuttlebutt.Update) (write, error) {
	w := write{src: u.Source, ts: u.Timestamp}
	var parts []cbor.RawMessage
	if err := cbor.Unmarshal(u.Data, &parts); err != nil || len(parts) == 0 {
		return w, fmt.Errorf("%v: not an array: %v", u, err)
	}
	if err := cbor.Unmarshal(parts[0], &w.key); err != nil {
		return w, err
	}
	w.del = len(parts) == 1
	if len(parts) > 1 {
		if err := cbor.Unmarshal(parts[1], &w.value); err != nil {
			return w, err
		}
	}
	if len(parts) == 3 {
		if err := cbor.Unmarshal(parts[2], &w.opts); err != nil {
			return w, err
		}
		w.del = w.opts.Del
	}
	return w, nil
}

// encodeWrite makes the payload of w.
func encodeWrite(w write) []byte {
	o := w.opts
	var parts []any
	switch {
	case o != (wopts{}) && w.del:
		o.Del = true
		parts = []any{w.key, nil, o}
	case o != (wopts{}):
		parts = []any{w.key, w.value, o}
	case w.del:
		parts = []any{w.key}
	default:
		parts = []any{w.key, w.value}
	}
	b, err := cbor.Marshal(parts)
	if err != nil {
		panic(err)
	}
	return b
}

var maxLeaseMs = float64(model.MaxLease / time.Millisecond)

func (w write) rid() string { return scuttlebutt.ReplicaID(w.src) }

// claim is when the holding w belongs to began.
func (w write) claim() float64 {
	if w.opts.Since > 0 && w.opts.Since < float64(w.ts) {
		return w.opts.Since
	}
	return float64(w.ts)
}

// leaseMs is how long w holds its key: its lease, no longer than its ttl.
func (w write) leaseMs() float64 {
	l := w.opts.Lease
	if w.opts.TTL > 0 && w.opts.TTL < l {
		l = w.opts.TTL
	}
	return float64(l)
}

func (w write) until() float64 { return float64(w.ts) + w.leaseMs() }

// holding reports whether w belongs to a holding (else it is plain).
func (w write) holding() bool { return w.leaseMs() > 0 || w.claim() < float64(w.ts) }

// vanishes is when w stops counting for good.
func (w write) vanishes() float64 {
	if w.opts.TTL > 0 && !w.opts.Tomb {
		return float64(w.ts) + float64(w.opts.TTL)
	}
	return math.Inf(1)
}

// claimsFirst reports whether w's claim goes before v's.
func (w write) claimsFirst(v write) bool {
	if w.claim() != v.claim() {
		return w.claim() < v.claim()
	}
	if w.rid() != v.rid() {
		return w.rid()+"~" < v.rid()+"~"
	}
	return w.holding() && !v.holding()
}

// sameHolding reports whether w and v belong to one holding.
func (w write) sameHolding(v write) bool {
	return w.holding() && v.holding() && w.rid() == v.rid() && w.claim() == v.claim()
}

// outranks reports whether w makes v irrelevant: v is not kept while w is.
func (w write) outranks(v write) bool {
	if !w.wins(v) || v.vanishes() > w.vanishes() {
		return false
	}
	return !v.holding() || (w.sameHolding(v) && w.until() >= v.until()) || float64(w.ts) >= v.until()+maxLeaseMs
}

// alive returns the writes that still count at now.
func alive(ws []write, now float64) []write {
	var out []write
	for _, w := range ws {
		if w.vanishes() > now {
			out = append(out, w)
		}
	}
	return out
}

// keptOf returns the writes of ws that nothing in ws outranks.
func keptOf(ws []write) []write {
	var out []write
	for _, v := range ws {
		if !slices.ContainsFunc(ws, func(w write) bool { return w.outranks(v) }) {
			out = append(out, v)
		}
	}
	return out
}

// voids returns, for writes ws of one key, which are void: a write is
// void if the head of another holding, itself not void, whose claim goes
// first, holds the write's timestamp in its window.
func voids(ws []write) []bool {
	head := func(i int) bool {
		w := ws[i]
		return w.holding() && !slices.ContainsFunc(ws, func(v write) bool { return v.sameHolding(w) && v.wins(w) })
	}
	memo := map[int]bool{}
	var void func(i int) bool
	void = func(i int) bool {
		if v, ok := memo[i]; ok {
			return v
		}
		res := false
		for j, g := range ws {
			if j != i && head(j) && g.claimsFirst(ws[i]) && g.claim() <= float64(ws[i].ts) && float64(ws[i].ts) < g.until() && !void(j) {
				res = true
				break
			}
		}
		memo[i] = res
		return res
	}
	out := make([]bool, len(ws))
	for i := range ws {
		out[i] = void(i)
	}
	return out
}

// readAt returns what a key with writes ws reads as at now, deciding
// over every write if full, or over the kept ones, and the deciding write.
func readAt(ws []write, now float64, full bool) (value any, set bool, decider *write) {
	ws = alive(ws, now)
	if !full {
		ws = keptOf(ws)
	}
	void := voids(ws)
	win := -1
	for i, w := range ws {
		if !void[i] && (win < 0 || w.wins(ws[win])) {
			win = i
		}
	}
	if win < 0 {
		return nil, false, nil
	}
	w := ws[win]
	if w.del || (w.opts.Tomb && float64(w.ts)+float64(w.opts.TTL) <= now) {
		return nil, false, &w
	}
	return w.value, true, &w
}

// byKey groups writes by key.
func byKey(ws []write) map[string][]write {
	out := map[string][]write{}
	for _, w := range ws {
		out[w.key] = append(out[w.key], w)
	}
	return out
}

// snapshotAt returns the snapshot of writes ws at now.
func snapshotAt(ws []write, now float64, full bool) map[string]any {
	snap := map[string]any{}
	for k, kw := range byKey(ws) {
		if v, ok, _ := readAt(kw, now, full); ok {
			snap[k] = v
		}
	}
	return snap
}

// randomWrites draws n writes of a few keys by a few replicas (each
// replica one or two starts), stamped within span ms of today, with
// random options: leases, ttls, claims that continue an earlier write of
// the same replica, releases, tombs. Many share timestamps.
func randomWrites(r *rand.Rand, n int, span int64) []write {
	srcs := []string{"a~1", "a~2", "b~1", "c~1", "c~9", "d~1"}
	var ws []write
	for range n {
		w := write{src: srcs[r.IntN(len(srcs))], key: fmt.Sprintf("k%d", r.IntN(3))}
		w.ts = vclock.Timestamp(today + r.Int64N(span))
		if r.IntN(3) == 0 {
			w.ts += vclock.Timestamp(r.IntN(4)) / 1024
		}
		if r.IntN(5) == 0 {
			w.del = true
		} else {
			w.value = int64(r.IntN(100))
		}
		if !w.del && r.IntN(2) == 0 {
			w.opts.Lease = uint64(1 + r.Int64N(min(span/2, int64(maxLeaseMs))))
		}
		if !w.del && r.IntN(3) == 0 {
			w.opts.TTL = uint64(1 + r.Int64N(span))
			w.opts.Tomb = r.IntN(3) == 0
		}
		if r.IntN(3) == 0 || w.del && r.IntN(2) == 0 {
			// Continue a claim of the same replica, or any earlier time.
			w.opts.Since = float64(w.ts) - float64(r.Int64N(span/2+1))
			for _, v := range ws {
				if v.rid() == w.rid() && v.key == w.key && v.ts < w.ts && r.IntN(2) == 0 {
					w.opts.Since = v.claim()
				}
			}
			if w.opts.Since <= 0 {
				w.opts.Since = 1
			}
		}
		if w.del && w.opts.Since == 0 {
			w.opts = wopts{}
		}
		ws = append(ws, w)
	}
	// One update per (source, timestamp), as the base guarantees.
	slices.SortFunc(ws, func(a, b write) int {
		if a.wins(b) {
			return 1
		}
		if b.wins(a) {
			return -1
		}
		return 0
	})
	return slices.CompactFunc(ws, func(a, b write) bool { return a.src == b.src && a.ts == b.ts })
}

// applyInOrder applies ws to m in a random order that keeps each source's
// writes in timestamp order, as the base requires.
func applyInOrder(t testing.TB, r *rand.Rand, m *model.Model, ws []write) {
	t.Helper()
	queues := map[string][]write{}
	var srcs []string
	for _, w := range ws { // ws is in LWW order, so per source in ts order
		if queues[w.src] == nil {
			srcs = append(srcs, w.src)
		}
		queues[w.src] = append(queues[w.src], w)
	}
	for len(srcs) > 0 {
		i := r.IntN(len(srcs))
		w := queues[srcs[i]][0]
		queues[srcs[i]] = queues[srcs[i]][1:]
		if len(queues[srcs[i]]) == 0 {
			srcs = slices.Delete(srcs, i, i+1)
		}
		u := scuttlebutt.Update{Source: w.src, Timestamp: w.ts, Data: encodeWrite(w)}
		if _, err := m.Apply(u); err != nil {
			t.Fatalf("Apply(%v): %v", u, err)
		}
	}
}

// describeWrites renders writes for a failure message.
func describeWrites(ws []write) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "  %s@%v %s del=%v v=%v %+v claim=%v until=%v\n", w.src, w.ts, w.key, w.del, w.value, w.opts, w.claim(), w.until())
	}
	return b.String()
}

// TestRetentionIsExact: a Model that keeps only the updates that nothing
// outranks decides every key as the lease rule decides over every update
// ever made, when no write is MaxLease after another (so only the exact
// drops apply: Lemmas 1 and 2 of rule.go), at every time, in every
// arrival order, directly or through another replica's History.
func TestRetentionIsExact(t *testing.T) {
	for seed := range uint64(400) {
		r := rand.New(rand.NewPCG(seed, 7))
		ws := randomWrites(r, 4+r.IntN(14), 20_000)
		clock := &manualWall{ms: today}
		a, err := model.New("x", &scuttlebutt.Config{Now: clock.now, MaxClockOffset: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := model.New("y", &scuttlebutt.Config{Now: clock.now, MaxClockOffset: time.Hour})
		applyInOrder(t, r, a, ws)
		if _, err := b.Apply(a.History(nil)...); err != nil {
			t.Fatal(err)
		}
		for _, at := range []int64{0, 3_000, 10_000, 20_000, 40_000} {
			clock.set(today + at)
			now := float64(today + at)
			want := snapshotAt(ws, now, true)
			if kept := snapshotAt(ws, now, false); !cmp.Equal(want, kept) {
				t.Fatalf("seed %d at +%dms: the reference over kept writes %v differs from over all %v:\n%s", seed, at, kept, want, describeWrites(ws))
			}
			for _, m := range []*model.Model{a, b} {
				if diff := cmp.Diff(want, m.Snapshot()); diff != "" {
					t.Fatalf("seed %d at +%dms: %s differs from the rule over every write (-want +got):\n%s%s", seed, at, m.ID(), diff, describeWrites(ws))
				}
			}
		}
	}
}

// TestRetentionConverges: with writes spread over hours, so that holdings'
// records are dropped too (case (p) of rule.go, not exact), replicas that
// got the updates in different orders, or some only through another's
// History, keep the same updates and read the same, as the reference over
// the kept writes says.
func TestRetentionConverges(t *testing.T) {
	span := int64(3 * model.MaxLease / time.Millisecond)
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 8))
		ws := randomWrites(r, 4+r.IntN(16), span)
		clock := &manualWall{ms: today + span}
		cfg := &scuttlebutt.Config{Now: clock.now, MaxClockOffset: 4 * model.MaxLease}
		var ms []*model.Model
		for i := range 3 {
			m, err := model.New(fmt.Sprintf("r%d", i), cfg)
			if err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
		half := ws[:len(ws)/2]
		applyInOrder(t, r, ms[0], ws)
		applyInOrder(t, r, ms[1], half)
		if _, err := ms[1].Apply(ms[0].History(ms[1].Clock())...); err != nil {
			t.Fatal(err)
		}
		if _, err := ms[2].Apply(ms[1].History(nil)...); err != nil {
			t.Fatal(err)
		}
		for _, at := range []int64{0, span / 2, span} {
			clock.set(today + span + at)
			now := float64(today + span + at)
			want := snapshotAt(ws, now, false)
			for _, m := range ms {
				if diff := cmp.Diff(want, m.Snapshot()); diff != "" {
					t.Fatalf("seed %d at +%dms: %s differs from the reference (-want +got):\n%s%s", seed, at, m.ID(), diff, describeWrites(ws))
				}
				if diff := cmp.Diff(history(ms[0], nil), history(m, nil)); diff != "" {
					t.Fatalf("seed %d at +%dms: %s keeps other updates than r0 (-r0 +%s):\n%s", seed, at, m.ID(), m.ID(), diff)
				}
			}
		}
	}
}
