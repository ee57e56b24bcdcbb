package model

import (
	"sync"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Change is one change of one key, as delivered to watchers.
type Change struct {
	// Key is the key that changed.
	Key string
	// Value is the new value, nil when Deleted.
	Value any
	// Old is the value before, nil if the key was not set.
	Old any
	// Deleted reports a delete (a tombstone won).
	Deleted bool
	// Source and Timestamp identify the winning update. Source is the
	// writer's source id, its replica id and incarnation ("n1~k3x9p2qd");
	// scuttlebutt.ReplicaID(Source) is the replica id alone.
	Source    string
	Timestamp vclock.Timestamp
	// Local reports that this replica made the change, in this start or
	// an earlier one (ReplicaID(Source) is its id).
	Local bool
}

// watchers holds callbacks and the changes waiting for them. Changes are
// queued while the base's lock is held (in ApplyUpdate) and delivered after
// it is released (in AfterApply), in apply order, one delivery at a time: a
// callback may call Set or Delete, and its own change is delivered after it
// returns.
type watchers struct {
	mu       sync.Mutex
	next     int
	fns      map[int]func(Change)
	pending  []pendingChange
	draining bool
}

type pendingChange struct {
	m        *Model
	key      string
	source   string
	new, old *entry
}

func (w *watchers) queue(m *Model, key, source string, e, old *entry) {
	w.mu.Lock()
	if len(w.fns) > 0 {
		w.pending = append(w.pending, pendingChange{m, key, source, e, old})
	}
	w.mu.Unlock()
}

func (w *watchers) deliver() {
	w.mu.Lock()
	if w.draining {
		w.mu.Unlock()
		return // the goroutine already delivering will take these too
	}
	w.draining = true
	for len(w.pending) > 0 {
		batch := w.pending
		w.pending = nil
		ids := sortedIDs(w.fns)
		w.mu.Unlock()
		for _, p := range batch {
			for _, id := range ids {
				// Look the watcher up for each call: one cancelled during
				// the batch (by a callback, say) hears nothing more.
				w.mu.Lock()
				fn := w.fns[id]
				w.mu.Unlock()
				if fn != nil {
					fn(p.change()) // fresh values for each watcher
				}
			}
		}
		w.mu.Lock()
	}
	w.draining = false
	w.mu.Unlock()
}

func (p pendingChange) change() Change {
	c := Change{
		Key:       p.key,
		Value:     decodeValue(p.new.value()),
		Deleted:   !p.new.isSet(),
		Source:    p.source,
		Timestamp: p.new.ts,
		Local:     scuttlebutt.ReplicaID(p.source) == p.m.ID(),
	}
	if p.old != nil {
		c.Old = decodeValue(p.old.value())
	}
	return c
}

func sortedIDs(m map[int]func(Change)) []int {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ { // few watchers: insertion sort
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
	return ids
}

// Watch calls fn for every change of the Model from now on, local or remote,
// in the order the changes were applied, until cancel is called. fn runs on
// the goroutine that applied the change, after the Model's locks are
// released, one call at a time across all watchers; it may read and write
// the Model. A slow fn delays the writer or stream that made the change.
func (m *Model) Watch(fn func(Change)) (cancel func()) {
	w := &m.watch
	w.mu.Lock()
	if w.fns == nil {
		w.fns = make(map[int]func(Change))
	}
	id := w.next
	w.next++
	w.fns[id] = fn
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.fns, id)
			w.mu.Unlock()
		})
	}
}

// WatchChan sends every change from now on to ch, until cancel is called.
// Each Change holds values of its own. Sends block: give ch a buffer, or
// read it promptly, or writers to the Model wait. cancel also releases a
// send that is blocked.
func (m *Model) WatchChan(ch chan<- Change) (cancel func()) {
	done := make(chan struct{})
	stop := m.Watch(func(c Change) {
		select {
		case <-done: // cancelled: never send, even if ch has room
			return
		default:
		}
		select {
		case ch <- c:
		case <-done:
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			stop()
		})
	}
}
