package scuttlebutt_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// batchDoc is a logDoc that applies batches with ApplyUpdates, and records
// the size of each batch and how many updates came one by one.
type batchDoc struct {
	*logDoc

	mu      sync.Mutex
	batches []int
	singles int
}

var _ scuttlebutt.BatchApplier = (*batchDoc)(nil)

func newBatchDoc(t testing.TB, id string) *batchDoc {
	t.Helper()
	d := &batchDoc{logDoc: &logDoc{}}
	sb, err := scuttlebutt.New(id, d, &scuttlebutt.Config{Now: fixedNow, Incarnation: "1"})
	if err != nil {
		t.Fatalf("New(%q): %v", id, err)
	}
	d.Scuttlebutt = sb
	return d
}

// ApplyUpdate implements scuttlebutt.Replica.
func (d *batchDoc) ApplyUpdate(u scuttlebutt.Update) bool {
	d.mu.Lock()
	d.singles++
	d.mu.Unlock()
	return d.logDoc.ApplyUpdate(u)
}

// ApplyUpdates implements scuttlebutt.BatchApplier.
func (d *batchDoc) ApplyUpdates(us []scuttlebutt.Update) {
	d.mu.Lock()
	d.batches = append(d.batches, len(us))
	d.mu.Unlock()
	for _, u := range us {
		d.logDoc.ApplyUpdate(u)
	}
}

func (d *batchDoc) calls() (batches []int, singles int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.batches), d.singles
}

// TestBatchApplier applies batches of interleaved sources, with duplicates
// and stale updates among them, to a replica with ApplyUpdates and one
// without: both apply the same updates in the same order and end with the
// same clock, and the first applies each batch of two or more fresh
// updates in one call.
func TestBatchApplier(t *testing.T) {
	up := func(src string, i int) scuttlebutt.Update {
		return scuttlebutt.Update{Source: src, Timestamp: vclock.Timestamp(today + i), Data: txt(fmt.Sprintf("%s%d", src, i))}
	}
	steps := []struct {
		batch []scuttlebutt.Update
		fresh int
	}{
		{[]scuttlebutt.Update{up("x", 1)}, 1},
		{[]scuttlebutt.Update{up("x", 1), up("x", 2), up("y", 1), up("y", 2), up("x", 3)}, 4},
		// Runs of one source, broken by others: a duplicate of an earlier
		// run, stale ones, a run that starts stale and goes on fresh.
		{[]scuttlebutt.Update{up("x", 3), up("x", 4), up("z", 5), up("x", 4), up("y", 2), up("y", 3), up("x", 5), up("z", 5), up("z", 4)}, 4},
		{[]scuttlebutt.Update{up("y", 1), up("x", 2)}, 0},
		{[]scuttlebutt.Update{up("w", 9), up("w", 10)}, 2},
	}
	plain, batched := newLogDoc(t, "a", nil), newBatchDoc(t, "b")
	var want []int
	for i, s := range steps {
		for _, d := range []interface {
			Apply(...scuttlebutt.Update) (int, error)
		}{plain, batched} {
			if n, err := d.Apply(s.batch...); n != s.fresh || err != nil {
				t.Fatalf("step %d: Apply = %d, %v; want %d, nil", i, n, err, s.fresh)
			}
		}
		if s.fresh > 1 {
			want = append(want, s.fresh)
		}
	}
	if diff := cmp.Diff(plain.log(), batched.log()); diff != "" {
		t.Errorf("updates applied (-one by one +batched):\n%s", diff)
	}
	if diff := cmp.Diff(plain.Clock(), batched.Clock()); diff != "" {
		t.Errorf("clock (-one by one +batched):\n%s", diff)
	}
	if diff := cmp.Diff(vclock.Clock{"x": today + 5, "y": today + 3, "z": today + 5, "w": today + 10}, batched.Clock()); diff != "" {
		t.Errorf("clock (-want +got):\n%s", diff)
	}
	batches, singles := batched.calls()
	if diff := cmp.Diff(want, batches); diff != "" || singles != 1 {
		t.Errorf("ApplyUpdates of %v and %d ApplyUpdate; want %v and 1 (-want +got):\n%s", batches, singles, want, diff)
	}
	// The local clock moves past the latest of a batch.
	if u := batched.write(t, "mine"); !(u.Timestamp > today+10) {
		t.Errorf("local update after a batch up to %v has timestamp %v", vclock.Timestamp(today+10), u.Timestamp)
	}
}

// TestBatchApplierRelay relays a's writes through b, which applies what a
// sends in batches, to c: c gets every update in order, and each batch
// b applied goes on as one unit (the network checks the prefix property of
// every message).
func TestBatchApplierRelay(t *testing.T) {
	a, b, c := newLogDoc(t, "a", nil), newBatchDoc(t, "b"), newLogDoc(t, "c", nil)
	n := newNet(t, a, b, c)
	n.ConnectLinks(0, 1, nil, nil)
	n.ConnectLinks(1, 2, nil, nil)
	n.Settle()
	var want []string
	for i := range 40 {
		s := fmt.Sprintf("a%02d", i)
		a.write(t, s)
		want = append(want, "a~1:"+s)
		if i%10 == 9 {
			n.Settle() // bursts of ten
		}
	}
	for _, d := range []*logDoc{b.logDoc, c} {
		if diff := cmp.Diff(want, d.values()); diff != "" {
			t.Errorf("%s (-want +got):\n%s", d.ID(), diff)
		}
	}
	var prev vclock.Timestamp
	for _, u := range c.log() {
		if !(u.Timestamp > prev) {
			t.Errorf("c applied %s after %v: out of order", u, prev)
		}
		prev = u.Timestamp
	}
	if batches, _ := b.calls(); len(batches) == 0 {
		t.Errorf("b applied no batch with ApplyUpdates")
	}
	if got, want := c.Clock().Get("a~1"), a.Clock().Get("a~1"); got != want {
		t.Errorf("c's clock of a = %v, want %v", got, want)
	}
}
