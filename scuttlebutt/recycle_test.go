package scuttlebutt_test

import (
	"slices"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// deliver steps what from's Ready returns into to, and returns it.
func deliver(t testing.TB, from, to *scuttlebutt.Link) []scuttlebutt.Message {
	t.Helper()
	ms := from.Ready()
	for _, m := range ms {
		if err := to.Step(m); err != nil {
			t.Fatalf("Step(%v): %v", m.Kind, err)
		}
	}
	return ms
}

// liveBatch returns the one updates message of ms, with n updates.
func liveBatch(t *testing.T, ms []scuttlebutt.Message, n int) []scuttlebutt.Update {
	t.Helper()
	if len(ms) != 1 || ms[0].Kind != scuttlebutt.MsgUpdates || len(ms[0].Updates) != n {
		t.Fatalf("Ready = %v, want one updates message of %d", ms, n)
	}
	return ms[0].Updates
}

// TestLinkRecycle hands back every message once delivered: the live
// batches reuse one array, the history's slice (the replica's) is left
// alone, an idle Ready drops the spares, a message handed back after the
// next Ready is ignored, and the peer gets every update.
func TestLinkRecycle(t *testing.T) {
	a, b := newLogDoc(t, "a", nil), newLogDoc(t, "b", nil)
	a.write(t, "a1")
	a.write(t, "a2")
	la, lb := a.NewLink(nil), b.NewLink(nil)
	defer la.Close()
	defer lb.Close()

	var hist []scuttlebutt.Update
	for !la.Synced() || !lb.Synced() {
		ms := deliver(t, la, lb)
		for _, m := range ms {
			if m.Kind == scuttlebutt.MsgUpdates {
				hist = m.Updates
			}
		}
		la.Recycle(ms)
		lb.Recycle(deliver(t, lb, la))
	}
	if len(hist) != 2 {
		t.Fatalf("history of %d updates, want 2", len(hist))
	}
	histCopy := slices.Clone(hist)

	var first *scuttlebutt.Update
	for i := range 3 {
		a.write(t, "x")
		a.write(t, "y")
		ms := deliver(t, la, lb)
		got := unsafe.SliceData(liveBatch(t, ms, 2))
		if got == unsafe.SliceData(hist) {
			t.Fatalf("round %d: a live batch fills the history's slice", i)
		}
		if i == 0 {
			first = got
		} else if got != first {
			t.Errorf("round %d: the live batch is a new array, want the one handed back", i)
		}
		la.Recycle(ms)
	}
	// An idle Ready lets the spares go.
	if ms := la.Ready(); ms != nil {
		t.Fatalf("idle Ready = %v, want nil", ms)
	}
	a.write(t, "idle")
	ms := deliver(t, la, lb)
	if unsafe.SliceData(liveBatch(t, ms, 1)) == first {
		t.Error("after an idle Ready, a live batch reuses a spare")
	}
	if diff := cmp.Diff(histCopy, hist); diff != "" {
		t.Errorf("the history's slice changed (-before +after):\n%s", diff)
	}

	// Handed back too late: after the next Ready.
	a.write(t, "late")
	old := deliver(t, la, lb)
	oldCopy := slices.Clone(liveBatch(t, old, 1))
	a.write(t, "next")
	next := deliver(t, la, lb)
	liveBatch(t, next, 1)
	la.Recycle(old)
	a.write(t, "after")
	after := deliver(t, la, lb)
	if unsafe.SliceData(liveBatch(t, after, 1)) == unsafe.SliceData(old[0].Updates) {
		t.Error("a message handed back after the next Ready was reused")
	}
	if diff := cmp.Diff(oldCopy, old[0].Updates); diff != "" {
		t.Errorf("a message handed back late changed (-before +after):\n%s", diff)
	}

	if diff := cmp.Diff(a.values(), b.values()); diff != "" {
		t.Errorf("b differs from a (-a +b):\n%s", diff)
	}
	if n := len(b.values()); n != 12 {
		t.Errorf("b holds %d updates, want 12", n)
	}
}
