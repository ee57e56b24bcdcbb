package model_test

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestChangedSince checks that ChangedSince(position) brings a watcher
// that saw everything up to position to the Model's state: each key
// changed since, once, at its value now, deletes included, in the order
// of their latest updates, with the clock that covers them; and that a
// position it returns, resumed from, gives nothing more.
func TestChangedSince(t *testing.T) {
	a, wa := newModel(t, "a", today)
	b, wb := newModel(t, "b", today)
	mustSet(t, a, "old", 0)
	mustSet(t, a, "gone", 0)
	pos := a.Clock()

	wa.set(today + 1)
	mustSet(t, a, "x", 1)
	wb.set(today + 2)
	mustSet(t, b, "y", 2)
	wa.set(today + 3)
	mustSet(t, a, "x", 3) // x again: once, at its latest
	mustDelete(t, a, "gone")
	exchange(t, a, b)

	describe := func(cs []model.Change) []string {
		var out []string
		for _, c := range cs {
			if c.Deleted {
				out = append(out, c.Key+" deleted")
			} else {
				out = append(out, fmt.Sprintf("%s=%v by %s", c.Key, c.Value, c.Source))
			}
		}
		return out
	}
	for _, m := range []*model.Model{a, b} {
		cs, clock := m.ChangedSince(pos)
		want := []string{"y=2 by " + b.Source(), "x=3 by " + a.Source(), "gone deleted"}
		if diff := cmp.Diff(want, describe(cs)); diff != "" {
			t.Errorf("%s: ChangedSince (-want +got):\n%s", m.ID(), diff)
		}
		if o := clock.Compare(m.Clock()); o != vclock.Equal {
			t.Errorf("%s: clock %v is %v the Model's %v", m.ID(), clock, o, m.Clock())
		}
		if cs, _ := m.ChangedSince(clock); len(cs) != 0 {
			t.Errorf("%s: from its own clock: %v, want nothing", m.ID(), describe(cs))
		}
		cs, _ = m.ChangedSince(vclock.Clock{})
		if diff := cmp.Diff(append([]string{"old=0 by " + a.Source()}, want...), describe(cs)); diff != "" {
			t.Errorf("%s: ChangedSince(empty) (-want +got):\n%s", m.ID(), diff)
		}
	}
}
