package doc_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/internal/value"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// today is the fake wall clock's start, in ms.
const today = 1795385884149

// wall is a wall clock a test moves by hand.
type wall struct {
	mu sync.Mutex
	ms int64
}

func (w *wall) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.UnixMilli(w.ms)
}

func (w *wall) set(ms int64) {
	w.mu.Lock()
	w.ms = ms
	w.mu.Unlock()
}

// newDoc returns a document with id (and incarnation "x") whose wall
// clock stands at ms until moved.
func newDoc(t testing.TB, id string, ms int64) (*doc.Doc, *wall) {
	t.Helper()
	w := &wall{ms: ms}
	d, err := doc.New(id, &scuttlebutt.Config{Now: w.now, Incarnation: "x"})
	if err != nil {
		t.Fatalf("New(%q): %v", id, err)
	}
	return d, w
}

func patch(t testing.TB, d *doc.Doc, ops ...doc.Op) {
	t.Helper()
	if err := d.Patch(ops...); err != nil {
		if len(ops) > 8 {
			t.Fatalf("%s: Patch(%v ... %d ops): %v", d.ID(), ops[:8], len(ops), err)
		}
		t.Fatalf("%s: Patch(%v): %v", d.ID(), ops, err)
	}
}

// pull applies to dst everything src has that dst lacks, as a link would.
func pull(t testing.TB, dst, src *doc.Doc) {
	t.Helper()
	if _, err := dst.Apply(src.History(dst.Clock())...); err != nil {
		t.Fatalf("%s pulling from %s: %v", dst.ID(), src.ID(), err)
	}
}

// exchange makes every pair of docs pull from each other until all are in
// step.
func exchange(t testing.TB, ds ...*doc.Doc) {
	t.Helper()
	for range len(ds) {
		for _, a := range ds {
			for _, b := range ds {
				if a != b {
					pull(t, a, b)
				}
			}
		}
	}
}

// lastUpdate returns the update d's latest patch made.
func lastUpdate(t testing.TB, d *doc.Doc) scuttlebutt.Update {
	t.Helper()
	ts := d.Clock()[d.Source()]
	for _, u := range d.History(nil) {
		if u.Source == d.Source() && u.Timestamp == ts {
			return u
		}
	}
	t.Fatalf("%s: no update at %v in its history", d.ID(), ts)
	return scuttlebutt.Update{}
}

// changeLog collects the changes an observer receives.
type changeLog struct {
	mu      sync.Mutex
	changes []doc.Change
}

func (l *changeLog) add(c doc.Change) {
	l.mu.Lock()
	l.changes = append(l.changes, c)
	l.mu.Unlock()
}

func (l *changeLog) list() []doc.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.changes)
}

// replay applies changes, in order, to an empty document.
func replay(changes []doc.Change) (map[string]any, error) {
	root := map[string]any{}
	for _, c := range changes {
		path, err := doc.ParsePointer(c.Path)
		if err != nil {
			return nil, err
		}
		if len(path) == 0 {
			if c.Deleted {
				return nil, fmt.Errorf("change %+v deletes the root", c)
			}
			root = c.New.(map[string]any)
			continue
		}
		if err := replayOne(root, path, c); err != nil {
			return nil, err
		}
	}
	return root, nil
}

func replayOne(root map[string]any, path []string, c doc.Change) error {
	m := root
	for i, seg := range path[:len(path)-1] {
		next, ok := m[seg].(map[string]any)
		if !ok {
			if c.Deleted {
				return nil // nothing there to delete
			}
			if _, there := m[seg]; there {
				return fmt.Errorf("change %+v: %s is not an object", c, doc.Pointer(path[:i+1]...))
			}
			next = map[string]any{}
			m[seg] = next
		}
		m = next
	}
	last := path[len(path)-1]
	if c.Deleted {
		delete(m, last)
	} else {
		m[last] = c.New
	}
	return nil
}

// at returns the value at path in a decoded document.
func at(v any, path string) (any, bool) {
	segs, _ := doc.ParsePointer(path)
	for _, s := range segs {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[s]; !ok {
			return nil, false
		}
	}
	return v, true
}

// normalize returns v as Get returns values: encoded and decoded.
func normalize(v any) any {
	b, err := value.Enc.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out any
	if err := value.Dec.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

func normalizeAll(vs []any) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = normalize(v)
	}
	return out
}
