package model_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestApplyBatch applies the writes of three replicas, plain sets,
// deletes, sets with a time to live and leased writes of a few keys, to
// one Model in a single Apply (one ApplyUpdates call) and to another one
// update at a time: both end with the same values, History and change
// events.
func TestApplyBatch(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 15))
	wall := &manualWall{ms: today}
	now := wall.now
	var all []scuttlebutt.Update
	for i, id := range []string{"w1", "w2", "w3"} {
		cfg := &model.Config{Replica: &scuttlebutt.Config{Now: now}}
		if i == 2 {
			cfg.Lease = time.Minute
		}
		w, err := model.NewWithConfig(id, cfg)
		if err != nil {
			t.Fatal(err)
		}
		for n := range 300 {
			key := fmt.Sprintf("k%d", r.IntN(40))
			switch k := r.IntN(10); {
			case k < 6:
				err = w.Set(key, fmt.Sprintf("%s.%d", id, n))
			case k < 8:
				err = w.Delete(key)
			default:
				err = w.SetTTL(key, n, time.Duration(1+r.IntN(5))*time.Second)
			}
			if err != nil {
				t.Fatalf("seed %d: %s: %v", seed, id, err)
			}
			wall.set(wall.now().UnixMilli() + int64(r.IntN(300)))
		}
		all = append(all, w.History(vclock.Clock{})...)
	}
	slices.SortFunc(all, scuttlebutt.Compare)

	batched, single := newWatched(t, now), newWatched(t, now)
	if n, err := batched.Apply(all...); err != nil || n != len(all) {
		t.Fatalf("seed %d: Apply of %d updates = %d, %v", seed, len(all), n, err)
	}
	for _, u := range all {
		if _, err := single.Apply(u); err != nil {
			t.Fatalf("seed %d: Apply(%v): %v", seed, u, err)
		}
	}
	if diff := cmp.Diff(single.Snapshot(), batched.Snapshot()); diff != "" {
		t.Errorf("seed %d: values (-one by one +batched):\n%s", seed, diff)
	}
	if diff := cmp.Diff(single.History(vclock.Clock{}), batched.History(vclock.Clock{})); diff != "" {
		t.Errorf("seed %d: History (-one by one +batched):\n%s", seed, diff)
	}
	if diff := cmp.Diff(single.changes(), batched.changes()); diff != "" {
		t.Errorf("seed %d: changes (-one by one +batched):\n%s", seed, diff)
	}
	if single.Len() == 0 {
		t.Errorf("seed %d: no key set: the test tests nothing", seed)
	}
}

// watched is a Model that records its change events.
type watched struct {
	*model.Model
	mu  sync.Mutex
	got []model.Change
}

func newWatched(t *testing.T, now func() time.Time) *watched {
	t.Helper()
	m, err := model.New("reader", &scuttlebutt.Config{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	w := &watched{Model: m}
	t.Cleanup(m.Watch(func(c model.Change) {
		w.mu.Lock()
		w.got = append(w.got, c)
		w.mu.Unlock()
	}))
	return w
}

func (w *watched) changes() []model.Change {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}
