package doc_test

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/internal/testkit/simnet"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestHistoryCounter increments one counter a million times from three
// writers that sync now and then: each keeps a history of three updates,
// the latest total of each writer, and a replica that receives it counts
// them all. Under -short or -race it makes 90,000 increments.
func TestHistoryCounter(t *testing.T) {
	n := 1_000_002 // a million, split in three
	if testing.Short() || raceEnabled {
		n = 90_000
	}
	var ds []*doc.Doc
	for _, id := range []string{"a", "b", "c"} {
		d, _ := newDoc(t, id, today)
		ds = append(ds, d)
	}
	check := func(i int) {
		t.Helper()
		for _, d := range ds {
			if h := d.History(nil); len(h) > 3 {
				t.Fatalf("after %d increments, %s keeps %d updates: %v", i, d.ID(), len(h), h)
			}
		}
	}
	per := n / len(ds)
	for i := range per {
		for _, d := range ds {
			if err := d.Patch(doc.Inc("/n", 1)); err != nil {
				t.Fatal(err)
			}
		}
		if i%10_000 == 0 {
			exchange(t, ds...)
			check(i * len(ds))
		}
	}
	exchange(t, ds...)
	check(n)
	for _, d := range ds {
		if v, _ := d.Get("/n"); v != int64(n) {
			t.Errorf("%s: /n = %v, want %d", d.ID(), v, n)
		}
	}
	fresh, _ := newDoc(t, "fresh", today)
	pull(t, fresh, ds[0])
	if v, _ := fresh.Get("/n"); v != int64(n) {
		t.Errorf("a replica given the history: /n = %v, want %d", v, n)
	}
}

// TestHistoryBounded checks that a history keeps what still counts, and
// grows with the document and its writers, not with its writes.
func TestHistoryBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(t *testing.T, a, b *doc.Doc)
		want  int // updates kept by each replica
	}{
		{"overwrites keep the latest per path", func(t *testing.T, a, b *doc.Doc) {
			for i := range 500 {
				patch(t, a, doc.Set(fmt.Sprintf("/k%d", i%10), i))
				patch(t, b, doc.Set(fmt.Sprintf("/k%d", i%10), obj{"i": i}))
			}
		}, 10},
		{"a set of an object is kept while it is the latest reset of its path", func(t *testing.T, a, b *doc.Doc) {
			patch(t, a, doc.Set("/o", obj{"x": 1, "y": 2}))
			for i := range 100 {
				patch(t, b, doc.Set("/o/x", i), doc.Set("/o/y", i))
			}
		}, 2},
		{"a set of the root leaves itself and the counters' latest totals", func(t *testing.T, a, b *doc.Doc) {
			for i := range 100 {
				patch(t, a, doc.Set(fmt.Sprintf("/k%d", i), i), doc.Inc("/n", 1))
				patch(t, b, doc.Push("/l", i))
			}
			exchange(t, a, b)
			patch(t, a, doc.Set("", obj{"fresh": true}))
		}, 2}, // the set and a's total of /n: see Counters in the package doc
		{"unsets keep one tombstone per path", func(t *testing.T, a, b *doc.Doc) {
			for i := range 300 {
				patch(t, a, doc.Set(fmt.Sprintf("/k%d", i%3), i))
				patch(t, b, doc.Unset(fmt.Sprintf("/k%d", i%3)))
			}
		}, 3},
		{"pushes before a set of the array go", func(t *testing.T, a, b *doc.Doc) {
			for i := range 100 {
				patch(t, a, doc.Push("/l", i))
			}
			exchange(t, a, b)
			patch(t, b, doc.Set("/l", arr{"start"}))
			exchange(t, a, b)
			patch(t, a, doc.Push("/l", "after"))
		}, 2},
		{"a push whose elements are all pulled goes; the pulls stay until a reset", func(t *testing.T, a, b *doc.Doc) {
			for i := range 50 {
				patch(t, a, doc.Push("/q", i))
				exchange(t, a, b)
				patch(t, b, doc.Pull("/q", i))
			}
		}, 50},
		{"then a set of the array leaves one update", func(t *testing.T, a, b *doc.Doc) {
			for i := range 50 {
				patch(t, a, doc.Push("/q", i))
				exchange(t, a, b)
				patch(t, b, doc.Pull("/q", i))
			}
			exchange(t, a, b)
			patch(t, a, doc.Set("/q", arr{}))
		}, 1},
		{"a patch is kept while any of its ops counts", func(t *testing.T, a, b *doc.Doc) {
			patch(t, a, doc.Set("/x", 1), doc.Set("/y", 1))
			patch(t, b, doc.Set("/x", 2))
		}, 2},
		{"and goes once none does", func(t *testing.T, a, b *doc.Doc) {
			patch(t, a, doc.Set("/x", 1), doc.Set("/y", 1))
			patch(t, b, doc.Set("/x", 2), doc.Unset("/y"))
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := newDoc(t, "a", today)
			b, _ := newDoc(t, "b", today)
			tc.write(t, a, b)
			exchange(t, a, b)
			for _, d := range []*doc.Doc{a, b} {
				h := d.History(nil)
				if len(h) != tc.want {
					t.Errorf("%s keeps %d updates, want %d", d.ID(), len(h), tc.want)
				}
				fresh, _ := newDoc(t, "fresh", today)
				pull(t, fresh, d)
				if diff := cmp.Diff(d.Snapshot(), fresh.Snapshot()); diff != "" {
					t.Errorf("a replica given %s's history differs (-%s +fresh):\n%s", d.ID(), d.ID(), diff)
				}
			}
		})
	}
}

// session runs a session between a and b over Links, with updates batched
// one per message, until neither has anything to send; with cut >= 0, it
// ends once cut updates messages from a have been delivered, as a stream
// cut in the middle of a's history (simnet.Session).
func session(t *testing.T, a, b *doc.Doc, cut int) {
	t.Helper()
	if err := simnet.Session(a, b, &scuttlebutt.LinkOptions{MaxBatchBytes: 1}, cut); err != nil {
		t.Fatal(err)
	}
}

// pump is simnet.PumpLinks, failing the test on an error.
func pump(t *testing.T, la, lb *scuttlebutt.Link, cut int) {
	t.Helper()
	if err := simnet.PumpLinks(la, lb, cut); err != nil {
		t.Fatal(err)
	}
}

// TestCutHistory is model's TestCutHistory for documents: a history leaves
// out what it has superseded, so a session cut in its middle must apply
// none of it, or r's clock would cover updates r holds neither itself nor
// in what superseded them. Here the superseded updates are a reset hidden
// by a later one, a counter total by a later total, and a push whose
// element a pull removed.
func TestCutHistory(t *testing.T) {
	for cut := range 6 {
		t.Run(fmt.Sprintf("cut after %d", cut), func(t *testing.T) {
			a, _ := newDoc(t, "a", today)
			q, _ := newDoc(t, "q", today)
			r, _ := newDoc(t, "r", today)
			patch(t, a, doc.Set("/k1", "old"))    // a1
			patch(t, a, doc.Set("/k2", "two"))    // a2
			patch(t, a, doc.Inc("/n", 1))         // a3
			patch(t, a, doc.Push("/l", "x", "y")) // a4
			session(t, a, q, -1)                  // q gets a1 to a4
			patch(t, a, doc.Set("/k1", "new"))    // a5 supersedes a1
			patch(t, a, doc.Inc("/n", 1))         // a6 supersedes a3
			patch(t, a, doc.Pull("/l", "x"))      // a7 ...
			patch(t, a, doc.Pull("/l", "y"))      // a8 ... and a4 is gone
			session(t, a, r, cut)                 // r's session is cut
			session(t, q, r, -1)                  // a crashes; q and r meet
			qc, rc := q.Clock(), r.Clock()
			if qc.Compare(rc) != vclock.Equal {
				t.Fatalf("clocks differ: q %v, r %v", qc, rc)
			}
			if diff := cmp.Diff(q.Snapshot(), r.Snapshot()); diff != "" {
				t.Errorf("q and r hold the same clock, linked, and differ for good (-q +r):\n%s", diff)
			}
		})
	}
}

// TestAtomicPatch cuts live sessions after every number of updates
// messages: each patch (two sets and an increment) arrives whole or not at
// all, and observers never see half of one.
func TestAtomicPatch(t *testing.T) {
	const patches = 12
	for cut := range patches + 1 {
		t.Run(fmt.Sprintf("cut after %d", cut), func(t *testing.T) {
			a, _ := newDoc(t, "a", today)
			b, _ := newDoc(t, "b", today)
			var half []string
			defer b.Observe("", func(c doc.Change) {
				x, xok := b.Get(c.Path + "/x")
				y, yok := b.Get(c.Path + "/y")
				if xok != yok || !cmp.Equal(x, y) {
					half = append(half, c.Path)
				}
			})()
			opts := &scuttlebutt.LinkOptions{MaxBatchBytes: 1}
			la, lb := a.NewLink(opts), b.NewLink(opts)
			pump(t, la, lb, -1) // synced, nothing to say
			for i := range patches {
				patch(t, a, doc.Set(fmt.Sprintf("/p%d/x", i), i), doc.Inc("/count", 1), doc.Set(fmt.Sprintf("/p%d/y", i), i))
			}
			pump(t, la, lb, cut)
			la.Close()
			lb.Close()
			got := 0
			for i := range patches {
				_, x := b.Get(fmt.Sprintf("/p%d/x", i))
				_, y := b.Get(fmt.Sprintf("/p%d/y", i))
				if x != y {
					t.Errorf("patch %d is half applied: x %v, y %v", i, x, y)
				}
				if x {
					got++
				}
			}
			if n, _ := b.Get("/count"); got > 0 && n != int64(got) || got == 0 && n != nil {
				t.Errorf("/count = %v with %d patches applied", n, got)
			}
			if got != min(cut, patches) {
				t.Errorf("%d patches applied after %d updates messages", got, cut)
			}
			if len(half) > 0 {
				t.Errorf("observers saw half patches at %v", half)
			}
		})
	}
	t.Run("history cut before its sync", func(t *testing.T) {
		a, _ := newDoc(t, "a", today)
		b, _ := newDoc(t, "b", today)
		for i := range patches {
			patch(t, a, doc.Set(fmt.Sprintf("/p%d/x", i), i), doc.Set(fmt.Sprintf("/p%d/y", i), i))
		}
		session(t, a, b, patches-1)
		if s := b.Snapshot(); len(s) != 0 {
			t.Errorf("a history cut before its sync applied %v", s)
		}
	})
}
