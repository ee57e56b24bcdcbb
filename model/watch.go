package model

import (
	"slices"
	"strings"
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

// ChangedSince returns the state now of every key that has an update newer
// than since (those History(since) holds, tombstones included), one Change
// a key (Old nil, Local as Watch sets it), in the (Timestamp, Source) order
// of the latest such update of each key, and the replica's clock read at
// the same instant: the changes reflect every update clock covers and none
// it does not.
//
// It is how a watcher resumes from a position (the clock of what it has
// seen): ChangedSince(position) brings it up to clock, and a change Watch
// delivers later whose Source and Timestamp clock covers is already in
// what ChangedSince returned. Call Watch first, then ChangedSince, so that
// nothing falls between the two. Keys whose time to live ran out are left
// out, as from History.
func (m *Model) ChangedSince(since vclock.Clock) (changes []Change, clock vclock.Clock) {
	m.sweepDue()
	type state struct {
		key     string
		decider *entry // nil if an expiry left the key without an update
		source  string // of decider
		set     bool   // whether the key reads as set
	}
	var states []state
	m.WithClock(func(c vclock.Clock) {
		clock = c
		us := replica{m}.History(since) // the base's lock is held: not the base's History
		m.mu.RLock()
		defer m.mu.RUnlock()
		seen := make(map[string]bool, len(us))
		for _, u := range slices.Backward(us) { // each key at its latest update
			k := keyOf(u.Data)
			if seen[k] {
				continue
			}
			seen[k] = true
			st := state{key: strings.Clone(k), decider: m.keys.get(k)}
			if st.decider != nil {
				st.source, st.set = m.source(st.decider), st.decider.visible()
			}
			states = append(states, st)
		}
	})
	slices.Reverse(states)
	changes = make([]Change, 0, len(states))
	for _, st := range states {
		c := Change{Key: st.key, Deleted: !st.set}
		if st.decider != nil {
			c.Source, c.Timestamp = st.source, st.decider.ts
			c.Local = scuttlebutt.ReplicaID(c.Source) == m.ID()
		}
		if !c.Deleted {
			c.Value = decodeValue(st.decider.value())
		}
		changes = append(changes, c)
	}
	return changes, clock
}
