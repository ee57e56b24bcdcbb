package emitter_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/internal/testkit/simnet"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// memStorage is a scuttlebutt.Storage that keeps the log in memory and is
// durable at once: it survives the "crash" of the replica it is attached
// to, as a file would.
type memStorage struct {
	mu  sync.Mutex
	log []scuttlebutt.Update
}

func (m *memStorage) Append(us []scuttlebutt.Update) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = append(m.log, us...)
	return uint64(len(m.log)), nil
}

func (m *memStorage) Sync(uint64) error { return nil }

func (m *memStorage) records() []scuttlebutt.Update {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.log)
}

// eventID names one event.
type eventID struct {
	Source string
	Stamp  vclock.Timestamp
}

// simReplica is one replica slot of the simulation: its current Emitter,
// its log, and every event its listeners received across restarts.
type simReplica struct {
	id     string
	seed   uint64 // the run's: each start's incarnation follows from it
	starts int    // starts so far
	em     *emitter.Emitter
	path   string       // the replica's filelog, or "" to log in memory
	log    *filelog.Log // the open filelog, if path is set
	store  *memStorage
	rec    *recorder // survives restarts: the application's view
	mu     sync.Mutex
	local  []eventID // events this replica emitted, as its listener saw them
}

// start opens the replica from its log, as a restarted process does:
// replay, attach, then register the listener, so replayed events are
// history and not delivered again. Each start is a source of its own, with
// an incarnation drawn from the seed, so that a seed replays alike.
func (r *simReplica) start(t *testing.T) {
	inc := simnet.Incarnation(r.seed, r.id, r.starts)
	r.starts++
	em := newEmitter(t, r.id, &emitter.Config{Replica: &scuttlebutt.Config{Incarnation: inc}})
	if r.path != "" {
		if r.log != nil {
			if err := r.log.Close(); err != nil {
				t.Fatalf("%s: closing the log: %v", r.id, err)
			}
		}
		log, err := filelog.Open(r.path, em, &filelog.Config{Sync: filelog.SyncNever})
		if err != nil {
			t.Fatalf("%s: opening the log: %v", r.id, err)
		}
		r.log = log
		t.Cleanup(func() { log.Close() })
	} else {
		old := r.store.records()
		if _, err := em.Apply(old...); err != nil {
			t.Fatalf("%s: replaying %d updates: %v", r.id, len(old), err)
		}
		st := &memStorage{log: old}
		em.Attach(st)
		r.store = st
	}
	em.OnAny(func(ev emitter.Event) {
		r.rec.add(ev)
		if ev.Local {
			r.mu.Lock()
			r.local = append(r.local, eventID{ev.Source, ev.Timestamp})
			r.mu.Unlock()
		}
	})
	r.em = em
}

// TestRandomized runs seeded random schedules of emits, link restarts,
// partitions and crashes, then heals the network and checks that every
// replica delivered every event exactly once, in each source's order. A
// crash restarts the replica from its log (package filelog, or an
// in-memory log): replayed events are history, so the application's
// listener sees each event once across the restart. Each schedule runs
// over hand-stepped links, where a seed replays exactly, and over real
// streams, whose goroutines deliver while the test emits.
func TestRandomized(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5}
	if testing.Short() {
		seeds = seeds[:2]
	}
	for _, links := range []string{"hand", "pipes"} {
		for _, logKind := range []string{"memlog", "filelog"} {
			for _, seed := range seeds {
				t.Run(fmt.Sprintf("%s/%s/seed=%d", links, logKind, seed), func(t *testing.T) {
					runRandomized(t, seed, links == "pipes", logKind == "filelog")
				})
			}
		}
	}
}

func runRandomized(t *testing.T, seed uint64, pipes, onDisk bool) {
	rng := rand.New(rand.NewPCG(seed, 0))
	size := 3 + rng.IntN(3)
	reps := make([]*simReplica, size)
	for i := range reps {
		reps[i] = &simReplica{id: fmt.Sprintf("r%d", i), seed: seed, store: &memStorage{}, rec: &recorder{}}
		if onDisk {
			reps[i].path = filepath.Join(t.TempDir(), reps[i].id+".log")
		}
		reps[i].start(t)
	}
	// Made after the replicas, so that it closes before their logs do.
	n := newNet(t, seed, pipes)
	for _, r := range reps {
		n.Add(r.em)
	}
	t.Logf("seed %d: %d replicas", seed, size)
	emitted := 0
	for step := range 80 {
		switch op := rng.IntN(10); {
		case op < 5: // a burst of events on one replica
			i := rng.IntN(size)
			for k := range 1 + rng.IntN(4) {
				if err := reps[i].em.Emit(fmt.Sprintf("ev%d", rng.IntN(3)), step, k, reps[i].id); err != nil {
					t.Fatalf("seed %d step %d: Emit: %v", seed, step, err)
				}
				emitted++
			}
		case op < 7: // a link comes up, unless the partition keeps it down
			n.Connect(rng.IntN(size), rng.IntN(size))
		case op < 8: // a stream restarts
			i, j := rng.IntN(size), rng.IntN(size)
			n.Disconnect(i, j)
			n.Connect(i, j)
		case op < 9 && rng.IntN(2) == 0: // the partition heals
			n.Heal()
			t.Logf("step %d: heal", step)
		case op < 9: // a partition in two
			cut := 1 + rng.IntN(size-1)
			perm := rng.Perm(size)
			n.Partition(perm[:cut], perm[cut:])
			t.Logf("step %d: partition %v | %v", step, perm[:cut], perm[cut:])
		default: // a crash and restart
			i := rng.IntN(size)
			n.Isolate(i) // before the log is closed under its links
			reps[i].start(t)
			n.Replace(i, reps[i].em)
			t.Logf("step %d: %s restarted", step, reps[i].id)
		}
		n.Run(rng.IntN(8)) // hand-stepped links deliver a few messages
	}
	n.FullMesh()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := n.Quiesce(ctx); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}

	// A local event may reach its own listener just after Emit returns,
	// when a stream's goroutine is delivering at that moment.
	want := map[eventID]bool{}
	if err := n.Until(ctx, func() bool {
		clear(want)
		for _, r := range reps {
			r.mu.Lock()
			for _, id := range r.local {
				want[id] = true
			}
			r.mu.Unlock()
		}
		return len(want) >= emitted
	}); err != nil {
		t.Fatalf("seed %d: waiting for %d events to be delivered where they were emitted: %v", seed, emitted, err)
	}
	if len(want) != emitted {
		t.Fatalf("seed %d: %d events emitted, %d delivered locally", seed, emitted, len(want))
	}
	if err := n.Until(ctx, func() bool {
		for _, r := range reps {
			if r.rec.len() < emitted {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("seed %d: waiting for every replica to deliver %d events: %v", seed, emitted, err)
	}
	for _, r := range reps {
		seen := map[eventID]bool{}
		last := map[string]vclock.Timestamp{}
		for _, ev := range r.rec.all() {
			id := eventID{ev.Source, ev.Timestamp}
			if seen[id] {
				t.Errorf("seed %d: %s delivered %v twice", seed, r.id, id)
			}
			seen[id] = true
			if !want[id] {
				t.Errorf("seed %d: %s delivered %v, which nobody emitted", seed, r.id, id)
			}
			if ev.Timestamp <= last[ev.Source] {
				t.Errorf("seed %d: %s delivered %s@%v after %s@%v: source order broken", seed, r.id, ev.Source, ev.Timestamp, ev.Source, last[ev.Source])
			}
			last[ev.Source] = ev.Timestamp
			if ev.Local != (scuttlebutt.ReplicaID(ev.Source) == r.id) {
				t.Errorf("seed %d: %s delivered %v with Local %v", seed, r.id, id, ev.Local)
			}
		}
		if len(seen) != len(want) {
			t.Errorf("seed %d: %s delivered %d distinct events, want %d", seed, r.id, len(seen), len(want))
		}
	}
}
