package model_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// changeLog collects changes from a watcher; safe for concurrent use.
type changeLog struct {
	mu      sync.Mutex
	changes []model.Change
}

func (l *changeLog) add(c model.Change) {
	l.mu.Lock()
	l.changes = append(l.changes, c)
	l.mu.Unlock()
}

func (l *changeLog) list() []model.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]model.Change(nil), l.changes...)
}

// within fails the test if f does not return within a generous deadline:
// a deadlock shows up as a failure, not a hung test binary.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not return within 20s: deadlock?", what)
	}
}

func TestWatchEvents(t *testing.T) {
	a, wa := newModel(t, "a", today)
	b, _ := newModel(t, "b", today)
	var got changeLog
	cancel := a.Watch(got.add)
	defer cancel()

	mustSet(t, a, "k", 1)
	mustSet(t, a, "k", []string{"x"})
	mustDelete(t, a, "k")
	mustDelete(t, a, "never") // a tombstone for a missing key is still a change
	wa.set(today + 100)
	mustSet(t, b, "r", "remote") // b at today: the remote write is older, but of another key
	pull(t, a, b)
	// A losing remote write produces no event.
	mustSet(t, a, "lww", "a-late")
	c, _ := newModel(t, "c", today)
	mustSet(t, c, "lww", "c-early")
	pull(t, a, c)

	const step = 1.0 / 1024
	want := []model.Change{
		{Key: "k", Value: int64(1), Source: a.Source(), Timestamp: today, Local: true},
		{Key: "k", Value: []any{"x"}, Old: int64(1), Source: a.Source(), Timestamp: today + step, Local: true},
		{Key: "k", Old: []any{"x"}, Deleted: true, Source: a.Source(), Timestamp: today + 2*step, Local: true},
		{Key: "never", Deleted: true, Source: a.Source(), Timestamp: today + 3*step, Local: true},
		{Key: "r", Value: "remote", Source: b.Source(), Timestamp: today},
		{Key: "lww", Value: "a-late", Source: a.Source(), Timestamp: today + 100, Local: true},
	}
	if diff := cmp.Diff(want, got.list()); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

func TestWatchOrderAndSeveralWatchers(t *testing.T) {
	m, _ := newModel(t, "a", today)
	var first, second changeLog
	defer m.Watch(first.add)()
	defer m.Watch(second.add)()

	// Remote updates in one batch, then local ones.
	peer, _ := newModel(t, "p", today-50)
	for i := range 5 {
		mustSet(t, peer, fmt.Sprintf("p%d", i), i)
	}
	pull(t, m, peer)
	for i := range 5 {
		mustSet(t, m, fmt.Sprintf("m%d", i), i)
	}
	var keys []string
	for _, c := range first.list() {
		keys = append(keys, c.Key)
	}
	want := []string{"p0", "p1", "p2", "p3", "p4", "m0", "m1", "m2", "m3", "m4"}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("order of changes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(first.list(), second.list()); diff != "" {
		t.Errorf("watchers saw different changes (-first +second):\n%s", diff)
	}
}

func TestWatchCancel(t *testing.T) {
	m, _ := newModel(t, "a", today)
	var got changeLog
	cancel := m.Watch(got.add)
	mustSet(t, m, "k", 1)
	cancel()
	cancel() // idempotent
	mustSet(t, m, "k", 2)
	mustDelete(t, m, "k")
	if n := len(got.list()); n != 1 {
		t.Errorf("watcher saw %d changes, want 1 (none after cancel): %v", n, got.list())
	}
}

func TestWatchCancelInsideCallback(t *testing.T) {
	// A watcher that cancels itself during a batch hears nothing more, even
	// of the batch's remaining changes.
	m, _ := newModel(t, "a", today)
	peer, _ := newModel(t, "p", today)
	for i := range 4 {
		mustSet(t, peer, fmt.Sprintf("k%d", i), i)
	}
	var got changeLog
	var cancel func()
	cancel = m.Watch(func(c model.Change) {
		got.add(c)
		cancel()
	})
	var other changeLog
	defer m.Watch(other.add)()
	pull(t, m, peer)
	if n := len(got.list()); n != 1 {
		t.Errorf("watcher that cancelled itself on its first change saw %d changes", n)
	}
	if n := len(other.list()); n != 4 {
		t.Errorf("the other watcher saw %d changes, want 4", n)
	}
}

func TestWatchChanCancelledMidBatch(t *testing.T) {
	// A WatchChan cancelled while a batch is being delivered sends nothing
	// more, even though its channel has room: a caller may close ch right
	// after cancel.
	m, _ := newModel(t, "a", today)
	peer, _ := newModel(t, "p", today)
	for i := range 4 {
		mustSet(t, peer, fmt.Sprintf("k%d", i), i)
	}
	ch := make(chan model.Change, 10)
	var cancel func()
	defer m.Watch(func(model.Change) { cancel() })() // registered first: runs first
	cancel = m.WatchChan(ch)
	pull(t, m, peer)
	close(ch) // must not race with a send
	for c := range ch {
		t.Errorf("received %v after cancel", c)
	}
}

func TestWatchSetInsideCallback(t *testing.T) {
	m, _ := newModel(t, "a", today)
	var got changeLog
	var setErr error
	defer m.Watch(func(c model.Change) {
		got.add(c)
		if c.Key == "trigger" {
			// Writing from a callback must not deadlock; the new change
			// is delivered after this callback returns.
			setErr = m.Set("reaction", c.Value)
			got.add(model.Change{Key: "callback returned"})
		}
	})()

	within(t, "Set with a watcher that calls Set", func() { mustSet(t, m, "trigger", "x") })
	if setErr != nil {
		t.Fatalf("Set inside a callback: %v", setErr)
	}
	var keys []string
	for _, c := range got.list() {
		keys = append(keys, c.Key)
	}
	if diff := cmp.Diff([]string{"trigger", "callback returned", "reaction"}, keys); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if v := get(m, "reaction"); v != "x" {
		t.Errorf("reaction = %v, want x", v)
	}

	// The same when the change came from a peer.
	peer, _ := newModel(t, "p", today+10)
	mustSet(t, peer, "trigger", "y")
	within(t, "Apply with a watcher that calls Set", func() { pull(t, m, peer) })
	if v := get(m, "reaction"); v != "y" {
		t.Errorf("reaction after a remote trigger = %v, want y", v)
	}
}

func TestWatchReadsInsideCallback(t *testing.T) {
	m, _ := newModel(t, "a", today)
	var seen any
	defer m.Watch(func(c model.Change) {
		seen = get(m, c.Key) // the change is visible to the callback
		m.Keys()
		m.Snapshot()
		m.History(nil)
		m.Clock()
	})()
	within(t, "Set with a reading watcher", func() { mustSet(t, m, "k", "v") })
	if seen != "v" {
		t.Errorf("callback read %v, want v", seen)
	}
}

func TestWatchConcurrentWriters(t *testing.T) {
	m, _ := newModel(t, "a", today)
	var got changeLog
	inCallback := 0
	var mu sync.Mutex
	defer m.Watch(func(c model.Change) {
		mu.Lock()
		inCallback++
		if inCallback > 1 {
			t.Error("two callbacks ran at once")
		}
		mu.Unlock()
		got.add(c)
		mu.Lock()
		inCallback--
		mu.Unlock()
	})()
	const writers, each = 4, 100
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				if err := m.Set(fmt.Sprintf("g%d-%d", g, i), i); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	changes := got.list()
	if len(changes) != writers*each {
		t.Fatalf("%d changes delivered, want %d", len(changes), writers*each)
	}
	// Per writer, in order; each change exactly once.
	seen := map[string]bool{}
	last := map[string]vclock.Timestamp{}
	for _, c := range changes {
		if seen[c.Key] {
			t.Errorf("change of %s delivered twice", c.Key)
		}
		seen[c.Key] = true
		g := c.Key[:2]
		if c.Timestamp <= last[g] {
			t.Errorf("changes of writer %s out of order", g)
		}
		last[g] = c.Timestamp
	}
}

// TestWatchLocalAcrossRestart restarts replica a without its state: its
// earlier start's write comes back from b under the old source id, and is
// still a's own (Local), while b's is not.
func TestWatchLocalAcrossRestart(t *testing.T) {
	before, _ := newModel(t, "a", today)
	b, _ := newModel(t, "b", today)
	mustSet(t, before, "k", "mine")
	mustSet(t, b, "kb", "theirs")
	pull(t, b, before)

	after, _ := newModel(t, "a", today+10) // the restart: same id, no state
	if after.Source() == before.Source() {
		t.Fatalf("the restart writes as %s, as before it", after.Source())
	}
	var got changeLog
	defer after.Watch(got.add)()
	pull(t, after, b)
	want := []model.Change{
		{Key: "k", Value: "mine", Source: before.Source(), Timestamp: today, Local: true},
		{Key: "kb", Value: "theirs", Source: b.Source(), Timestamp: today},
	}
	if diff := cmp.Diff(want, got.list()); diff != "" { // in History's (Timestamp, Source) order
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

func TestWatchChanCopies(t *testing.T) {
	m, _ := newModel(t, "a", today)
	ch1, ch2 := make(chan model.Change, 4), make(chan model.Change, 4)
	defer m.WatchChan(ch1)()
	defer m.WatchChan(ch2)()
	mustSet(t, m, "k", map[string]any{"l": []any{1}})

	c1, c2 := <-ch1, <-ch2
	want := model.Change{Key: "k", Value: map[string]any{"l": []any{int64(1)}}, Source: m.Source(), Timestamp: today, Local: true}
	if diff := cmp.Diff(want, c1); diff != "" {
		t.Fatalf("change (-want +got):\n%s", diff)
	}
	c1.Value.(map[string]any)["l"].([]any)[0] = "mutated"
	c1.Value.(map[string]any)["new"] = 1
	if diff := cmp.Diff(want, c2); diff != "" {
		t.Errorf("changing one channel's value changed another's (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.Value, get(m, "k")); diff != "" {
		t.Errorf("changing a delivered value changed the model (-want +got):\n%s", diff)
	}
}

func TestWatchChanCancel(t *testing.T) {
	m, _ := newModel(t, "a", today)
	ch := make(chan model.Change) // unbuffered and never read: sends block
	// A watcher registered first tells when delivery has begun.
	started := make(chan struct{}, 1)
	defer m.Watch(func(model.Change) {
		select {
		case started <- struct{}{}:
		default:
		}
	})()
	cancel := m.WatchChan(ch)

	done := make(chan error, 1)
	go func() { done <- m.Set("k", 1) }()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery within 20s")
	}
	cancel() // releases the send blocked (or about to block) on ch
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Set: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cancel did not release the blocked send within 20s")
	}
	// Nothing more is sent after cancel.
	within(t, "Set after cancel", func() { mustSet(t, m, "k", 2) })
	select {
	case c := <-ch:
		t.Errorf("received %v after cancel", c)
	default:
	}
}

func TestWatchOnRemoteOnlyWinningChanges(t *testing.T) {
	a, _ := newModel(t, "a", today+100)
	b, _ := newModel(t, "b", today)
	mustSet(t, a, "k", "a")
	mustSet(t, b, "k", "b")
	var got changeLog
	defer a.Watch(got.add)()
	pull(t, a, b) // b's write is older: a keeps its value, no event
	if n := len(got.list()); n != 0 {
		t.Errorf("a losing remote write produced %d events: %v", n, got.list())
	}
	if _, err := a.Apply(scuttlebutt.Update{}); err == nil {
		t.Error("Apply of an empty update succeeded")
	}
}

// BenchmarkSetWatched overwrites the keys of a 100,000-key Model in turn,
// as BenchmarkSet does, with one or four watchers, or a channel: what
// watching costs the writer.
func BenchmarkSetWatched(b *testing.B) {
	for _, tc := range []struct {
		name  string
		watch func(m *model.Model) (cancel func())
	}{
		{"watchers=1", func(m *model.Model) func() { return m.Watch(func(model.Change) {}) }},
		{"watchers=4", func(m *model.Model) func() {
			var cancels []func()
			for range 4 {
				cancels = append(cancels, m.Watch(func(model.Change) {}))
			}
			return func() {
				for _, c := range cancels {
					c()
				}
			}
		}},
		{"chan", func(m *model.Model) func() {
			ch := make(chan model.Change, 1)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range ch {
				}
			}()
			cancel := m.WatchChan(ch)
			return func() { cancel(); close(ch); <-done }
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m, keys := filled(b)
			defer tc.watch(m)()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := m.Set(keys[i%len(keys)], i); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// TestWatchFromNowOn: a watcher hears the changes made while it is on and
// none made before it was added, even those made while no watcher was on;
// cancelling one watcher twice does not turn another off.
func TestWatchFromNowOn(t *testing.T) {
	m, _ := newModel(t, "a", today)
	mustSet(t, m, "before", 1)
	var first, second changeLog
	cancel1 := m.Watch(first.add)
	mustSet(t, m, "one", 1)
	cancel1()
	mustSet(t, m, "between", 1)
	cancel2 := m.Watch(second.add)
	defer cancel2()
	cancel1()
	mustSet(t, m, "two", 1)
	mustDelete(t, m, "before")
	keys := func(l *changeLog) []string {
		var ks []string
		for _, c := range l.list() {
			ks = append(ks, c.Key)
		}
		return ks
	}
	if diff := cmp.Diff([]string{"one"}, keys(&first)); diff != "" {
		t.Errorf("first watcher's changes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"two", "before"}, keys(&second)); diff != "" {
		t.Errorf("second watcher's changes (-want +got):\n%s", diff)
	}
}
