package doc_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/stream"
)

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

var ignoreStamps = cmpopts.IgnoreFields(doc.Change{}, "Timestamp")

func TestObserveChanges(t *testing.T) {
	a, _ := newDoc(t, "a", today)
	b, _ := newDoc(t, "b", today+10)
	var got changeLog
	defer a.Observe("", got.add)()

	patch(t, a, doc.Set("/user", obj{"name": "ada", "tags": arr{"x"}}))
	patch(t, a, doc.Set("/user/name", "bob"), doc.Inc("/n", 2))
	patch(t, a, doc.Push("/user/tags", "y"), doc.Inc("/n", 1))
	patch(t, a, doc.Set("/user", "gone"))
	patch(t, a, doc.Set("/user/again", true)) // a scalar becomes an object
	patch(t, a, doc.Unset("/user"), doc.Set("/e", obj{}))
	patch(t, b, doc.Set("/remote", 1), doc.Set("/n", 10))
	pull(t, a, b)
	patch(t, a, doc.Set("/unchanged", 1))
	patch(t, a, doc.Set("/unchanged", 1)) // no change, no event

	as, bs := a.Source(), b.Source()
	want := []doc.Change{
		{Path: "/user", New: obj{"name": "ada", "tags": arr{"x"}}, Source: as, Local: true},
		{Path: "/user/name", Old: "ada", New: "bob", Source: as, Local: true},
		{Path: "/n", New: int64(2), Source: as, Local: true},
		{Path: "/user/tags", Old: arr{"x"}, New: arr{"x", "y"}, Source: as, Local: true},
		{Path: "/n", Old: int64(2), New: int64(3), Source: as, Local: true},
		{Path: "/user", Old: obj{"name": "bob", "tags": arr{"x", "y"}}, New: "gone", Source: as, Local: true},
		{Path: "/user", Old: "gone", New: obj{"again": true}, Source: as, Local: true},
		{Path: "/user", Old: obj{"again": true}, Deleted: true, Source: as, Local: true},
		{Path: "/e", New: obj{}, Source: as, Local: true},
		{Path: "/remote", New: int64(1), Source: bs},
		// b's set had not seen a's increments: they count on top of it.
		{Path: "/n", Old: int64(3), New: int64(13), Source: bs},
		{Path: "/unchanged", New: int64(1), Source: as, Local: true},
	}
	if diff := cmp.Diff(want, got.list(), ignoreStamps); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
	replayed, err := replay(got.list())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a.Snapshot(), replayed); diff != "" {
		t.Errorf("the changes replay to another document (-snapshot +replayed):\n%s", diff)
	}
}

// TestObservePath checks that an observer gets the changes at its path,
// below it and above it, and no others.
func TestObservePath(t *testing.T) {
	d, _ := newDoc(t, "a", today)
	var got changeLog
	defer d.Observe("/a/b", got.add)()
	patch(t, d, doc.Set("/a/b/c", 1), doc.Set("/a/x", 1), doc.Set("/z", 1))
	patch(t, d, doc.Set("/a/b", 2))
	patch(t, d, doc.Set("/a", "over"))
	patch(t, d, doc.Set("/a/bb", 1), doc.Set("/other", 1))
	var paths []string
	for _, c := range got.list() {
		paths = append(paths, c.Path)
	}
	want := []string{"/a", "/a/b", "/a", "/a"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("paths of the changes of /a/b (-want +got):\n%s", diff)
	}
	if c := got.list()[0]; !cmp.Equal(c.New, obj{"b": obj{"c": int64(1)}, "x": int64(1)}) {
		t.Errorf("first change: %+v; want /a created", c)
	}
}

// TestObserveWholePatch checks that an observer, local or remote, sees a
// patch's changes only once the whole patch is applied.
func TestObserveWholePatch(t *testing.T) {
	a, _ := newDoc(t, "a", today)
	b, _ := newDoc(t, "b", today)
	check := func(d *doc.Doc, errs *[]string) func(doc.Change) {
		return func(c doc.Change) {
			x, xok := d.Get("/p/x")
			y, yok := d.Get("/p/y")
			if xok != yok || !cmp.Equal(x, y) {
				*errs = append(*errs, fmt.Sprintf("%s: at %s the patch is half applied: x=%v y=%v", d.ID(), c.Path, x, y))
			}
		}
	}
	var errs []string
	defer a.Observe("", check(a, &errs))()
	defer b.Observe("", check(b, &errs))()
	ctx := t.Context()
	if err := stream.Pipe(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		patch(t, a, doc.Set("/p/x", i), doc.Set("/p/y", i))
	}
	waitFor(t, func() bool { v, _ := b.Get("/p/y"); return v == int64(49) })
	if len(errs) > 0 {
		t.Error(errs)
	}
}

// waitFor polls cond until it holds, or fails the test after 20 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestObserveWritesInCallback checks that an observer may write to the
// document: its change is delivered after it returns.
func TestObserveWritesInCallback(t *testing.T) {
	d, _ := newDoc(t, "a", today)
	var got changeLog
	defer d.Observe("/count", func(c doc.Change) {
		got.add(c)
		if n, _ := c.New.(int64); n < 3 {
			if err := d.Patch(doc.Inc("/count", 1)); err != nil {
				t.Error(err)
			}
		}
	})()
	within(t, "a Patch from a callback", func() { patch(t, d, doc.Inc("/count", 1)) })
	var values []any
	for _, c := range got.list() {
		values = append(values, c.New)
	}
	if diff := cmp.Diff([]any{int64(1), int64(2), int64(3)}, values); diff != "" {
		t.Errorf("counts seen (-want +got):\n%s", diff)
	}
}

func TestObserveCancel(t *testing.T) {
	d, _ := newDoc(t, "a", today)
	var got changeLog
	cancel := d.Observe("", got.add)
	patch(t, d, doc.Set("/a", 1))
	cancel()
	cancel()
	patch(t, d, doc.Set("/a", 2))
	if n := len(got.list()); n != 1 {
		t.Errorf("%d changes, want 1 (none after cancel)", n)
	}
	defer func() {
		if recover() == nil {
			t.Error("Observe of a malformed path did not panic")
		}
	}()
	d.Observe("no slash", got.add)
}

func TestObserveChan(t *testing.T) {
	d, _ := newDoc(t, "a", today)
	ch := make(chan doc.Change, 10)
	cancel := d.ObserveChan("/l", ch)
	patch(t, d, doc.Push("/l", obj{"k": "v"}))
	c := <-ch
	c.New.([]any)[0].(map[string]any)["k"] = "changed"
	if v, _ := d.Get("/l/0/k"); v != "v" {
		t.Errorf("changing a Change's value changed the document: %v", v)
	}
	// A blocked send is released by cancel.
	small := make(chan doc.Change)
	stop := d.ObserveChan("", small)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = d.Patch(doc.Set("/x", 1))
	}()
	time.Sleep(10 * time.Millisecond)
	within(t, "cancel of a blocked channel", stop)
	<-done
	cancel()
}

// TestObserveConcurrent writes from several goroutines and a peer at once:
// the changes an observer gets still replay to the document.
func TestObserveConcurrent(t *testing.T) {
	a, _ := newDoc(t, "a", today)
	b, _ := newDoc(t, "b", today)
	var got changeLog
	defer a.Observe("", got.add)()
	if err := stream.Pipe(t.Context(), a, b); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		d := a
		if w%2 == 1 {
			d = b
		}
		wg.Go(func() {
			for i := range 100 {
				p := fmt.Sprintf("/k%d", i%5)
				var err error
				switch i % 4 {
				case 0:
					err = d.Patch(doc.Set(p, obj{"w": w, "i": i}))
				case 1:
					err = d.Patch(doc.Set(p+"/x", i))
				case 2:
					err = d.Patch(doc.Unset(p))
				default:
					err = d.Patch(doc.Inc("/n", 1), doc.Push("/l", i))
				}
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, func() bool { return a.Clock().Compare(b.Clock()) == 0 })
	snap := a.Snapshot()
	if n := snap["n"]; n != int64(100) {
		t.Errorf("n = %v, want 100", n)
	}
	replayed, err := replay(got.list())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(snap, replayed); diff != "" {
		t.Errorf("the changes replay to another document (-snapshot +replayed):\n%s", diff)
	}
}
