package model

import (
	"sync"
	"sync/atomic"

	"github.com/scuttle-go/scuttle/notify"
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
	// Source and Timestamp identify the winning update: the update that
	// now decides the key. Source is the writer's source id, its replica
	// id and incarnation ("n1~k3x9p2qd"); scuttlebutt.ReplicaID(Source) is
	// the replica id alone. When an expiry left the key with no update at
	// all, they identify the update that expired.
	Source    string
	Timestamp vclock.Timestamp
	// Local reports that this replica made the change, in this start or
	// an earlier one (ReplicaID(Source) is its id).
	Local bool
	// Expired reports that the change is an expiry: the time to live of
	// the update that decided the key ran out (see SetTTL). The key reads
	// as deleted (Deleted), or, if it kept an older write that outlives
	// the expired one, as that write's value.
	Expired bool
}

// watchers holds the Model's watchers and the changes waiting for them.
// Changes are queued while the base's lock is held (in ApplyUpdate) and
// delivered after it is released (in AfterApply); see package notify for
// the order. A pendingChange is decoded afresh for each watcher.
//
// A write with no watcher takes none of the notifier's locks: note queues
// nothing unless active, and deliver calls the notifier only after a
// change was queued.
type watchers struct {
	n notify.Notifier[pendingChange]
	// count is how many watchers are added and not cancelled. It is
	// raised before a watcher is added, so a change made after Watch
	// returns finds it.
	count atomic.Int32
	// queued is set after a change is queued; the deliver that clears it
	// delivers that change, or a Deliver running already takes it.
	queued atomic.Bool
}

type pendingChange struct {
	key            string
	source         string // of new, or of expired if new is nil
	new, old       *entry // new is nil when the key is gone
	expired        *entry // the update whose expiry made the change, or nil
	newSet, oldSet bool   // whether each read as set
}

// active reports whether any watcher may want a change.
func (w *watchers) active() bool { return w.count.Load() > 0 }

func (w *watchers) queue(c pendingChange) {
	w.n.Queue(c)
	w.queued.Store(true)
}

func (w *watchers) deliver() {
	if w.queued.Load() && w.queued.Swap(false) {
		w.n.Deliver()
	}
}

func (p pendingChange) change(m *Model) Change {
	c := Change{
		Key:     p.key,
		Deleted: !p.newSet,
		Source:  p.source,
		Local:   scuttlebutt.ReplicaID(p.source) == m.ID(),
		Expired: p.expired != nil,
	}
	if p.new != nil {
		c.Timestamp = p.new.ts
	} else {
		c.Timestamp = p.expired.ts
	}
	if p.newSet {
		c.Value = decodeValue(p.new.value())
	}
	if p.oldSet {
		c.Old = decodeValue(p.old.value())
	}
	return c
}

// Watch calls fn for every change of the Model from now on, local or remote,
// in the order the changes were applied, until cancel is called. fn runs on
// the goroutine that applied the change, after the Model's locks are
// released, one call at a time across all watchers; it may read and write
// the Model. A slow fn delays the writer or stream that made the change.
func (m *Model) Watch(fn func(Change)) (cancel func()) {
	m.watch.count.Add(1)
	stop := m.watch.n.Add(func(p pendingChange) { fn(p.change(m)) }) // fresh values for each watcher
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			m.watch.count.Add(-1)
		})
	}
}

// WatchChan sends every change from now on to ch, until cancel is called.
// Each Change holds values of its own. Sends block: give ch a buffer, or
// read it promptly, or writers to the Model wait. cancel also releases a
// send that is blocked; once it returns nothing more is sent to ch.
func (m *Model) WatchChan(ch chan<- Change) (cancel func()) {
	return notify.Chan(m.Watch, ch)
}
