package model_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

const sec = 1000 // ms

// leased returns a model with id, the given lease and its own wall clock,
// standing at ms until moved.
func leased(t testing.TB, id string, ms int64, lease time.Duration) (*model.Model, *manualWall) {
	t.Helper()
	w := &manualWall{ms: ms}
	m, err := model.NewWithConfig(id, &model.Config{Replica: &scuttlebutt.Config{Now: w.now}, Lease: lease})
	if err != nil {
		t.Fatalf("NewWithConfig(%q): %v", id, err)
	}
	return m, w
}

// refused checks that err wraps ErrLeased and names holder.
func refused(t testing.TB, what string, err error, holder string) {
	t.Helper()
	if !errors.Is(err, model.ErrLeased) {
		t.Fatalf("%s = %v, want an error wrapping ErrLeased", what, err)
	}
	if !strings.Contains(err.Error(), "by "+holder+" ") {
		t.Errorf("%s = %v, want it to name the holder %s", what, err, holder)
	}
}

// unchanged runs f, which must fail, and checks that m's clock, snapshot
// and history are as before.
func unchanged(t testing.TB, m *model.Model, f func() error) error {
	t.Helper()
	clock, snap, hist := m.Clock(), m.Snapshot(), history(m, nil)
	err := f()
	if diff := cmp.Diff(clock, m.Clock()); diff != "" {
		t.Errorf("%s: a refused write changed the clock (-before +after):\n%s", m.ID(), diff)
	}
	if diff := cmp.Diff(snap, m.Snapshot()); diff != "" {
		t.Errorf("%s: a refused write changed the state (-before +after):\n%s", m.ID(), diff)
	}
	if diff := cmp.Diff(hist, history(m, nil)); diff != "" {
		t.Errorf("%s: a refused write changed the history (-before +after):\n%s", m.ID(), diff)
	}
	return err
}

// holder checks m's view of key's holder.
func holder(t testing.TB, m *model.Model, key, want string, until int64) {
	t.Helper()
	id, end, ok := m.Holder(key)
	switch {
	case want == "" && ok:
		t.Errorf("%s: Holder(%q) = %s until %v, want nobody", m.ID(), key, id, end)
	case want != "" && (!ok || id != want || end.UnixMilli() != until):
		t.Errorf("%s: Holder(%q) = %q until %d, %v; want %q until %d", m.ID(), key, id, end.UnixMilli(), ok, want, until)
	}
}

// TestLeaseOwnerRenews: a key written by a belongs to a for the lease
// after its last write; b's Set and Delete are refused meanwhile and change
// nothing; a's writes renew the lease; once it runs out, b may write, and
// then the key is b's.
func TestLeaseOwnerRenews(t *testing.T) {
	a, wa := leased(t, "a", today, 10*time.Second)
	b, wb := leased(t, "b", today, 10*time.Second)
	mustSet(t, a, "k", "a1")
	pull(t, b, a)
	holder(t, b, "k", "a", today+10*sec)

	wb.set(today + 5*sec)
	refused(t, "b.Set during a's lease", unchanged(t, b, func() error { return b.Set("k", "b1") }), "a")
	refused(t, "b.Delete during a's lease", unchanged(t, b, func() error { return b.Delete("k") }), "a")
	refused(t, "b.SetTTL during a's lease", unchanged(t, b, func() error { return b.SetTTL("k", "b1", time.Minute) }), "a")
	if err := b.Set("other", "free"); err != nil {
		t.Errorf("b.Set of another key: %v", err)
	}

	wa.set(today + 8*sec) // a renews: its lease now runs to +18 s
	mustSet(t, a, "k", "a2")
	pull(t, b, a)
	holder(t, b, "k", "a", today+18*sec)
	wb.set(today + 12*sec)
	refused(t, "b.Set after a renewed", b.Set("k", "b2"), "a")
	if got := get(b, "k"); got != "a2" {
		t.Errorf("b: k = %v, want a2", got)
	}

	wb.set(today + 18*sec) // the lease has run out
	holder(t, b, "k", "", 0)
	mustSet(t, b, "k", "b3")
	holder(t, b, "k", "b", today+28*sec)
	pull(t, a, b)
	wa.set(today + 20*sec)
	refused(t, "a.Set during b's lease", a.Set("k", "a4"), "b")
	for _, m := range []*model.Model{a, b} {
		if got := get(m, "k"); got != "b3" {
			t.Errorf("%s: k = %v, want b3", m.ID(), got)
		}
	}
}

// TestLeaseDeleteReleases: the holder's Delete ends its lease at once.
func TestLeaseDeleteReleases(t *testing.T) {
	a, wa := leased(t, "a", today, 10*time.Second)
	b, wb := leased(t, "b", today, 10*time.Second)
	mustSet(t, a, "k", "a1")
	wa.set(today + 2*sec)
	mustDelete(t, a, "k")
	pull(t, b, a)
	holder(t, b, "k", "", 0)
	wb.set(today + 3*sec)
	mustSet(t, b, "k", "b1")
	exchange(t, a, b)
	for _, m := range []*model.Model{a, b} {
		if got := get(m, "k"); got != "b1" {
			t.Errorf("%s: k = %v, want b1", m.ID(), got)
		}
	}
}

// TestLeaseWithoutConfig: a replica without a lease takes none, and still
// respects the leases of others.
func TestLeaseWithoutConfig(t *testing.T) {
	a, _ := leased(t, "a", today, 10*time.Second)
	b, wb := newModel(t, "b", today)
	c, wc := newModel(t, "c", today)
	mustSet(t, a, "k", "a1")
	mustSet(t, b, "free", "b1")
	exchange(t, a, b, c)
	wb.set(today + sec)
	refused(t, "b.Set of a's key", b.Set("k", "b2"), "a")
	wc.set(today + sec)
	mustSet(t, c, "free", "c1") // b holds no lease on it
	holder(t, a, "free", "", 0)
}

// TestLeaseTieByID: a and b take the same key at the same timestamp, each
// unaware of the other. The claim earlier in (timestamp, replica id) order
// holds it: a's. Every replica decides the same, in every arrival order,
// and b's write, void, changes nothing visible but still counts in clocks.
func TestLeaseTieByID(t *testing.T) {
	for _, order := range [][]string{{"a", "b"}, {"b", "a"}} {
		t.Run("c hears "+strings.Join(order, " then "), func(t *testing.T) {
			a, _ := leased(t, "a", today, 10*time.Second)
			b, wb := leased(t, "b", today, 10*time.Second)
			c, _ := leased(t, "c", today, 10*time.Second)
			mustSet(t, a, "k", "from-a")
			mustSet(t, b, "k", "from-b")
			ha, hb := a.History(nil), b.History(nil)
			if ha[0].Timestamp != hb[0].Timestamp {
				t.Fatalf("setup: timestamps %v and %v differ", ha[0].Timestamp, hb[0].Timestamp)
			}
			src := map[string]*model.Model{"a": a, "b": b}
			for _, id := range order {
				pull(t, c, src[id])
			}
			exchange(t, a, b)
			for _, m := range []*model.Model{a, b, c} {
				if got := get(m, "k"); got != "from-a" {
					t.Errorf("%s: k = %v, want from-a (the smaller id holds a tied claim)", m.ID(), got)
				}
				holder(t, m, "k", "a", today+10*sec)
				if diff := cmp.Diff(a.Clock(), m.Clock()); diff != "" {
					t.Errorf("%s: clock differs from a's (-a +%s):\n%s", m.ID(), m.ID(), diff)
				}
			}
			wb.set(today + sec)
			refused(t, "b.Set after the tie", b.Set("k", "b2"), "a")
		})
	}
}

// TestLeaseRaceAcrossPartition: a holds k and renews it while b, cut off,
// sees the lease it knew of run out and takes the key. a's holding was
// never broken (its renewal names its claim), so b's write is void: every
// replica, in either arrival order, keeps a's value. b's void write still
// counts in every clock and is kept by History, and is relayed.
func TestLeaseRaceAcrossPartition(t *testing.T) {
	for _, order := range [][]string{{"a", "b"}, {"b", "a"}} {
		t.Run("c hears "+strings.Join(order, " then "), func(t *testing.T) {
			a, wa := leased(t, "a", today, 10*time.Second)
			b, wb := leased(t, "b", today, 10*time.Second)
			c, _ := leased(t, "c", today, 10*time.Second)
			mustSet(t, a, "k", "a1")
			pull(t, b, a)
			// Partition: a renews at +8 s (claim today, lease to +18 s); b
			// sees only the lease to +10 s, and writes at +11 s.
			wa.set(today + 8*sec)
			mustSet(t, a, "k", "a2")
			wb.set(today + 11*sec)
			mustSet(t, b, "k", "b1")
			if got := get(b, "k"); got != "b1" {
				t.Fatalf("b, alone: k = %v, want b1", got)
			}
			src := map[string]*model.Model{"a": a, "b": b}
			for _, id := range order {
				pull(t, c, src[id])
			}
			exchange(t, a, b, c)
			for _, m := range []*model.Model{a, b, c} {
				if got := get(m, "k"); got != "a2" {
					t.Errorf("%s: k = %v, want a2: b wrote inside a's renewed lease", m.ID(), got)
				}
				holder(t, m, "k", "a", today+18*sec)
				if got := m.Clock().Get(b.Source()); got != today+11*sec {
					t.Errorf("%s: clock entry of b = %v, want b's void write's %v", m.ID(), got, today+11*sec)
				}
				if diff := cmp.Diff(history(a, nil), history(m, nil)); diff != "" {
					t.Errorf("%s: history differs from a's (-a +%s):\n%s", m.ID(), m.ID(), diff)
				}
			}
			if h := history(c, nil); len(h) != 2 {
				t.Errorf("c's history = %v, want a's renewal and b's void write", h)
			}
		})
	}
}

// TestLeaseRaceAfterLapse: a's lease runs out; b takes the key, and a,
// cut off and unaware of b, takes it again a moment later. The lease rule
// says the earlier claim made while the key was free holds it: b's. Every
// replica agrees, in either arrival order.
func TestLeaseRaceAfterLapse(t *testing.T) {
	for _, order := range [][]string{{"a", "b"}, {"b", "a"}} {
		t.Run("c hears "+strings.Join(order, " then "), func(t *testing.T) {
			a, wa := leased(t, "a", today, 10*time.Second)
			b, wb := leased(t, "b", today, 10*time.Second)
			c, _ := leased(t, "c", today, 10*time.Second)
			mustSet(t, a, "k", "a1")
			pull(t, b, a)
			wb.set(today + 11*sec)
			mustSet(t, b, "k", "b1") // a's lease ran out at +10 s
			wa.set(today + 12*sec)
			mustSet(t, a, "k", "a2") // a new holding: a does not know of b's
			src := map[string]*model.Model{"a": a, "b": b}
			for _, id := range order {
				pull(t, c, src[id])
			}
			exchange(t, a, b, c)
			for _, m := range []*model.Model{a, b, c} {
				if got := get(m, "k"); got != "b1" {
					t.Errorf("%s: k = %v, want b1: a wrote inside b's lease", m.ID(), got)
				}
				holder(t, m, "k", "b", today+21*sec)
			}
		})
	}
}

// TestLeaseRestartKeepsLease: the owner restarted from its log (a new
// incarnation, a new source) still holds the key, by replica id: its
// writes renew the lease, and b is still refused. A restart without the
// log starts a holding of its own, void while the old one runs, until it
// hears of the old one and renews that instead.
func TestLeaseRestartKeepsLease(t *testing.T) {
	dir := t.TempDir()
	w := &manualWall{ms: today}
	cfg := func() *model.Config {
		return &model.Config{Replica: &scuttlebutt.Config{Now: w.now}, Lease: 10 * time.Second}
	}
	a1, err := model.NewWithConfig("a", cfg())
	if err != nil {
		t.Fatal(err)
	}
	log, err := filelog.Open(filepath.Join(dir, "a.log"), a1, nil)
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, a1, "k", "a1")
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}

	w.set(today + 5*sec)
	a2, err := model.NewWithConfig("a", cfg())
	if err != nil {
		t.Fatal(err)
	}
	log, err = filelog.Open(filepath.Join(dir, "a.log"), a2, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if a2.Source() == a1.Source() {
		t.Fatalf("the restart writes as %s, as before it", a2.Source())
	}
	holder(t, a2, "k", "a", today+10*sec)
	mustSet(t, a2, "k", "a2") // renews a's holding: to +15 s
	b, wb := leased(t, "b", today+12*sec, 10*time.Second)
	pull(t, b, a2)
	holder(t, b, "k", "a", today+15*sec)
	refused(t, "b.Set after a's restart renewed", b.Set("k", "b1"), "a")
	_ = wb

	// A third start, without the log, writes before it hears of anything.
	w.set(today + 13*sec)
	a3, err := model.NewWithConfig("a", cfg())
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, a3, "k", "a3-alone")
	exchange(t, a2, a3, b)
	for _, m := range []*model.Model{a2, a3, b} {
		if got := get(m, "k"); got != "a2" {
			t.Errorf("%s: k = %v, want a2: a3's write, unaware of a's holding, is void while it runs", m.ID(), got)
		}
	}
	w.set(today + 14*sec)
	mustSet(t, a3, "k", "a3") // it knows of the holding now: it renews it
	exchange(t, a2, a3, b)
	for _, m := range []*model.Model{a2, a3, b} {
		if got := get(m, "k"); got != "a3" {
			t.Errorf("%s: k = %v, want a3", m.ID(), got)
		}
		holder(t, m, "k", "a", today+24*sec)
	}
}

// TestLeaseTTL: a key written with SetTTL is held no longer than it lives.
func TestLeaseTTL(t *testing.T) {
	a, _ := leased(t, "a", today, time.Minute)
	b, wb := leased(t, "b", today, time.Minute)
	if err := a.SetTTL("k", "a1", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	pull(t, b, a)
	holder(t, b, "k", "a", today+3*sec)
	wb.set(today + 3*sec)
	mustSet(t, b, "k", "b1")
	holder(t, b, "k", "b", today+63*sec)
}

// TestLeaseRecordDropped: a holding's record is kept while a write that
// raced it could still matter, and dropped once the key has a write at
// least MaxLease after it: History stays bounded by the holdings of the
// last MaxLease, not all of them.
func TestLeaseRecordDropped(t *testing.T) {
	a, wa := leased(t, "a", today, 10*time.Second)
	b, wb := leased(t, "b", today, 10*time.Second)
	mustSet(t, a, "k", "a1")
	pull(t, b, a)
	wb.set(today + 20*sec)
	mustSet(t, b, "k", "b1") // a's lease ran out: a new holding
	if h := history(b, nil); len(h) != 2 {
		t.Errorf("b's history = %v, want a's holding and b's", h)
	}
	hour := int64(model.MaxLease / time.Millisecond)
	wb.set(today + 10*sec + hour) // b's own holding stays, a's goes
	mustSet(t, b, "k", "b2")
	if h := history(b, nil); len(h) != 2 || h[0].Source != b.Source() {
		t.Errorf("b's history = %v, want b's two holdings only", h)
	}
	wa.set(today + 10*sec + hour + sec)
	pull(t, a, b)
	refused(t, "a.Set during b's lease", a.Set("k", "a2"), "b")
	if diff := cmp.Diff(history(b, nil), history(a, nil)); diff != "" {
		t.Errorf("histories differ (-b +a):\n%s", diff)
	}
}

// TestLeaseConfig checks Config's bounds.
func TestLeaseConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lease time.Duration
		ok    bool
	}{
		{"zero", 0, true},
		{"sub-millisecond rounds up", time.Microsecond, true},
		{"MaxLease", model.MaxLease, true},
		{"negative", -time.Second, false},
		{"over MaxLease", model.MaxLease + time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := model.NewWithConfig("a", &model.Config{Lease: tc.lease})
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, model.ErrInvalidConfig)) {
				t.Errorf("NewWithConfig(Lease: %v) = %v, want ok %v", tc.lease, err, tc.ok)
			}
		})
	}
	if _, err := model.NewWithConfig("a", nil); err != nil {
		t.Errorf("NewWithConfig(nil) = %v", err)
	}
}

// TestLeaseWriterBehind: a replica whose wall clock is behind the latest
// write of a leased key stamps its write just after that write (the
// hybrid logical clock), so its claim comes after the holder's even though
// its id is smaller: it is refused, not let through to be void.
func TestLeaseWriterBehind(t *testing.T) {
	a, _ := leased(t, "a", today, 10*time.Second)
	b, _ := leased(t, "b", today+5*sec, 10*time.Second)
	mustSet(t, b, "k", "b1")
	pull(t, a, b)
	refused(t, "a.Set with its clock behind b's write", unchanged(t, a, func() error { return a.Set("k", "a1") }), "b")
	refused(t, "a.Delete with its clock behind b's write", unchanged(t, a, func() error { return a.Delete("k") }), "b")
	if got := get(a, "k"); got != "b1" {
		t.Errorf("a: k = %v, want b1", got)
	}
}
