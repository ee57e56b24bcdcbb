package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/notify"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Errors returned by this package. Callers test for them with errors.Is.
var (
	// ErrLocked means TryLock found the lock held, or another replica ahead
	// in line for it (for a semaphore: Limit claims ahead).
	ErrLocked = errors.New("lock: locked")
	// ErrNotOwner means Unlock was called for a lock this replica does not
	// hold: never locked, already unlocked, or its lease was lost.
	ErrNotOwner = errors.New("lock: not the owner")
	// ErrClosed means the Table has been closed.
	ErrClosed = errors.New("lock: table closed")
	// ErrInvalidName means a lock name is not UTF-8.
	ErrInvalidName = errors.New("lock: invalid lock name")
	// ErrInvalidConfig means a Config field is out of range, or Members
	// does not list the replica itself.
	ErrInvalidConfig = errors.New("lock: invalid config")
)

// Table is a replicated table of named locks. It embeds
// *scuttlebutt.Scuttlebutt, so it has ID and Clock and is served to peers
// with package stream like any replicated type; its History is the base's.
// The methods the base calls (scuttlebutt.Replica, Validator, AfterApplier)
// are on an unexported adapter, not on Table; the base's Validator method
// returns it. A Table owns one goroutine, which renews leases and grants
// claims; Close stops it. All methods are safe for concurrent use.
//
// The owner of a lock is the replica, not a goroutine: as with sync.Mutex,
// any goroutine may Unlock what another locked. Goroutines of one replica
// that Lock the same name queue locally, one claim at a time.
type Table struct {
	*scuttlebutt.Scuttlebutt
	cfg Config // Members lives in members, under mu

	mu      sync.Mutex
	members []string
	locks   map[string]*lockState
	acks    map[string]*ackState
	own     map[string]*ownClaim // this replica's current claim per name
	slots   map[string]*slot
	ackDue  bool // a foreign claim or renewal awaits acknowledgement
	acking  bool // a goroutine is sending an acknowledgement
	closed  bool

	lost notify.Notifier[string] // names of locks lost; delivered by run

	wake      chan struct{} // capacity 1: coalesced wakeups of run
	done      chan struct{} // closed by Close
	quit      chan struct{} // closed to stop run
	stopped   chan struct{} // closed when run returns
	closeOnce sync.Once
	quitOnce  sync.Once
}

// state is where one of this replica's claims stands.
type state int

const (
	waiting  state = iota // in line, not granted
	held                  // granted; this replica holds the lock
	expired               // its lease ran out (held: the lease was lost)
	failed                // TryLock found others ahead
	released              // Unlock, a cancelled Lock, or Close
)

// ownClaim is this replica's bookkeeping for one claim of its own.
type ownClaim struct {
	name      string
	try       bool
	c         *claim // set when the claim is applied
	state     state
	confirmed vclock.Timestamp // the lease end every member has acknowledged
	pending   []renewal        // renewals sent, not yet acknowledged by all
	nextRenew time.Time
	notify    chan struct{} // capacity 1: wakes the Lock call waiting on it
	done      chan struct{} // closed when a hold ends
}

// renewal is a renewal this replica sent: its timestamp and lease end.
type renewal struct {
	ts, end vclock.Timestamp
}

// slot queues the goroutines of this replica that want one lock: a token
// in ch is one local claim, waiting or held.
type slot struct {
	ch   chan struct{}
	refs int
}

// New returns a lock table for the replica id. cfg is required: its Members
// must list id. A malformed id is an error wrapping scuttlebutt.ErrInvalidID;
// a bad Config one wrapping ErrInvalidConfig. The table's goroutine runs
// until Close.
func New(id string, cfg *Config) (*Table, error) {
	if err := scuttlebutt.ValidID(id); err != nil {
		return nil, err
	}
	c, err := cfg.withDefaults(id)
	if err != nil {
		return nil, err
	}
	t := &Table{
		cfg:     c,
		members: normalize(c.Members),
		locks:   make(map[string]*lockState),
		acks:    make(map[string]*ackState),
		own:     make(map[string]*ownClaim),
		slots:   make(map[string]*slot),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	sb, err := scuttlebutt.New(id, replica{t}, c.base())
	if err != nil {
		return nil, err
	}
	t.Scuttlebutt = sb
	go t.run()
	return t, nil
}

func normalize(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// Lock claims name and waits until this replica holds it, ctx ends, or the
// Table is closed. It returns nil once the lock is held: every member has
// acknowledged the claim and fewer than Limit live claims are ahead of it.
// The lease is then renewed in the background until Unlock, or until a
// renewal cannot be confirmed in time (see Done and OnLost). If ctx ends
// first, the claim is withdrawn and ctx.Err() returned. A claim whose lease
// runs out while it waits (a partition keeps its renewals from being
// acknowledged) is withdrawn and made again, at the back of the line.
func (t *Table) Lock(ctx context.Context, name string) error {
	return t.acquire(ctx, name, false)
}

// TryLock claims name and returns ErrLocked at once if another replica
// holds it or is ahead in line, as far as this replica knows, and as soon
// as a claim ahead of its own comes to light. Otherwise it waits, as Lock
// does, for every member's acknowledgement (one round trip), and returns
// nil once the lock is held. A lock this replica already holds, or that
// another of its goroutines is locking, is ErrLocked too.
func (t *Table) TryLock(ctx context.Context, name string) error {
	return t.acquire(ctx, name, true)
}

func (t *Table) acquire(ctx context.Context, name string, try bool) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	s, err := t.enterSlot(ctx, name, try)
	if err != nil {
		return err
	}
	for {
		oc, err := t.claim(name, try)
		if err != nil {
			t.freeSlot(name, s)
			return err
		}
		st, err := t.await(ctx, oc)
		switch {
		case err != nil:
			t.abandon(oc)
			t.freeSlot(name, s)
			return err
		case st == held:
			return nil // the slot's token now belongs to the hold
		case st == failed:
			t.freeSlot(name, s)
			return ErrLocked
		}
		// expired while waiting: claim again
	}
}

// enterSlot takes name's local slot: it waits (Lock) or fails with
// ErrLocked (TryLock) while another goroutine of this replica holds or
// claims name. TryLock also fails if other replicas' live claims already
// fill the lock's places.
func (t *Table) enterSlot(ctx context.Context, name string, try bool) (*slot, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	s := t.slots[name]
	if s == nil {
		s = &slot{ch: make(chan struct{}, 1)}
		t.slots[name] = s
	}
	s.refs++
	busy := try && t.aheadLocked(name, stamp(t.cfg.Now())) >= t.cfg.limit(name)
	t.mu.Unlock()
	if busy {
		t.dropSlot(name, s)
		return nil, ErrLocked
	}
	if try {
		select {
		case s.ch <- struct{}{}:
			return s, nil
		default:
			t.dropSlot(name, s)
			return nil, ErrLocked
		}
	}
	select {
	case s.ch <- struct{}{}:
		return s, nil
	case <-ctx.Done():
		t.dropSlot(name, s)
		return nil, ctx.Err()
	case <-t.done:
		t.dropSlot(name, s)
		return nil, ErrClosed
	}
}

// await waits until oc leaves the waiting state, ctx ends, or the Table is
// closed.
func (t *Table) await(ctx context.Context, oc *ownClaim) (state, error) {
	for {
		t.mu.Lock()
		st := oc.state
		t.mu.Unlock()
		if st != waiting {
			return st, nil
		}
		select {
		case <-oc.notify:
		case <-ctx.Done():
			return waiting, ctx.Err()
		case <-t.done:
			return waiting, ErrClosed
		}
	}
}

// claim writes a claim for name and registers it as this replica's own.
func (t *Table) claim(name string, try bool) (*ownClaim, error) {
	oc := &ownClaim{name: name, try: try, notify: make(chan struct{}, 1), done: make(chan struct{})}
	t.mu.Lock()
	t.own[name] = oc
	t.mu.Unlock()
	data, err := op{kind: kindClaim, name: name, lease: leaseMs(t.cfg.Lease)}.encode()
	if err == nil {
		_, _, err = t.LocalUpdate(data)
	}
	if err != nil {
		t.mu.Lock()
		if t.own[name] == oc {
			delete(t.own, name)
		}
		t.mu.Unlock()
		return nil, fmt.Errorf("lock: claim %q: %w", name, err)
	}
	t.poke()
	return oc, nil
}

// abandon withdraws a claim whose Lock call gave up. If the claim was
// granted in the meantime, the hold is released unseen.
func (t *Table) abandon(oc *ownClaim) {
	t.mu.Lock()
	active := oc.state == waiting || oc.state == held
	if active {
		t.endLocked(oc, released)
	}
	t.mu.Unlock()
	if active {
		t.writeRelease(oc)
	}
}

// endLocked moves oc to a final state and forgets it as the current claim.
func (t *Table) endLocked(oc *ownClaim, st state) {
	if oc.state == held {
		close(oc.done)
	}
	oc.state = st
	if t.own[oc.name] == oc {
		delete(t.own, oc.name)
	}
	select {
	case oc.notify <- struct{}{}:
	default:
	}
}

// writeRelease writes the release of oc's claim. An error (a failing
// storage) leaves the claim to expire with its lease.
func (t *Table) writeRelease(oc *ownClaim) {
	if oc.c == nil {
		return
	}
	data, err := op{kind: kindRelease, name: oc.name, claim: oc.c.ts}.encode()
	if err == nil {
		t.LocalUpdate(data) //nolint:errcheck // the lease bounds a failed release
	}
}

// freeSlot gives back the slot token of a claim that ended, and the
// reference that came with it.
func (t *Table) freeSlot(name string, s *slot) {
	<-s.ch
	t.dropSlot(name, s)
}

func (t *Table) dropSlot(name string, s *slot) {
	t.mu.Lock()
	s.refs--
	if s.refs == 0 && t.slots[name] == s {
		delete(t.slots, name)
	}
	t.mu.Unlock()
}

// Unlock releases name. It returns ErrNotOwner unless this replica holds
// it: never locked, unlocked already, or its lease lost (in which case the
// table has released the claim itself).
func (t *Table) Unlock(name string) error {
	t.mu.Lock()
	oc := t.own[name]
	if oc == nil || oc.state != held || !t.validLocked(oc, stamp(t.cfg.Now())) {
		t.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotOwner, name)
	}
	t.endLocked(oc, released)
	s := t.slots[name]
	t.mu.Unlock()
	t.writeRelease(oc)
	t.freeSlot(name, s)
	return nil
}

// validLocked reports whether oc's lease is good at now: before its
// confirmed end, less the margin.
func (t *Table) validLocked(oc *ownClaim, now vclock.Timestamp) bool {
	return now < oc.confirmed-leaseStamp(t.cfg.Margin)
}

// Deadline returns when this replica's hold of name ends, by its own clock
// (Config.Now), unless a renewal is confirmed before then, and ok = true;
// or ok = false if it does not hold name. A holder about to act on what the
// lock protects checks that the deadline leaves it time enough: after the
// deadline another replica may be granted the lock.
func (t *Table) Deadline(name string) (deadline time.Time, ok bool) {
	now := stamp(t.cfg.Now())
	t.mu.Lock()
	defer t.mu.Unlock()
	oc := t.own[name]
	if oc == nil || oc.state != held || !t.validLocked(oc, now) {
		return time.Time{}, false
	}
	return (oc.confirmed - leaseStamp(t.cfg.Margin)).Time(), true
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Done returns a channel that is closed when this replica's hold of name
// ends, by Unlock or by the loss of its lease; a closed channel if it does
// not hold name. Work done under the lock selects on it.
func (t *Table) Done(name string) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if oc := t.own[name]; oc != nil && oc.state == held {
		return oc.done
	}
	return closedChan
}

// OnLost calls fn with the name of every lock this replica loses without
// Unlock (its lease ran out before a renewal was confirmed), until cancel
// is called, in the order the callbacks were added. After cancel returns,
// fn is not called again, unless cancel was called by fn itself or
// concurrently with a call in progress. fn runs on the table's goroutine,
// one call at a time: it must return promptly and must not call Lock or
// TryLock; hand longer work to another goroutine.
func (t *Table) OnLost(fn func(name string)) (cancel func()) {
	return t.lost.Add(fn)
}

// Holder returns the first of Holders, and false if there is none.
func (t *Table) Holder(name string) (owner string, ok bool) {
	h := t.Holders(name)
	if len(h) == 0 {
		return "", false
	}
	return h[0], true
}

// Holders returns, as this replica sees it now, the replicas that hold name
// or are about to: the owners of the first Limit live claims in line. A
// claim of another replica is listed from the moment it is first in line,
// before every member's acknowledgement has reached its owner; this
// replica is listed only while it holds the lock. The view lags the other
// replicas by the replication delay.
func (t *Table) Holders(name string) []string {
	now := stamp(t.cfg.Now())
	limit := t.cfg.limit(name)
	t.mu.Lock()
	defer t.mu.Unlock()
	ls := t.locks[name]
	if ls == nil {
		return nil
	}
	var out []string
	n := 0
	for _, c := range ls.claims {
		if n == limit {
			break
		}
		if !c.live(now) {
			continue
		}
		n++
		switch {
		case c.own != nil:
			if c.own.state == held && t.validLocked(c.own, now) {
				out = append(out, c.owner)
			}
		case c.owner != t.ID():
			out = append(out, c.owner)
		}
	}
	return out
}

// aheadLocked counts the live claims of other replicas on name: all of them
// are ahead of a claim this replica would make now.
func (t *Table) aheadLocked(name string, now vclock.Timestamp) int {
	ls := t.locks[name]
	if ls == nil {
		return 0
	}
	n := 0
	for _, c := range ls.claims {
		if c.owner != t.ID() && c.live(now) {
			n++
		}
	}
	return n
}

// Members returns the current member set, sorted.
func (t *Table) Members() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.members)
}

// SetMembers replaces the member set; it must list this replica. Claims
// waiting for a removed member's acknowledgement proceed without it, and
// claims from now on wait for every added member's. Remove only a replica
// that has stopped (crashed or closed): one that keeps claiming locks
// while others do not wait for it can hold a lock at the same time as
// them. Add a replica to every member's set before it takes locks.
func (t *Table) SetMembers(ids []string) error {
	if err := checkMembers(t.ID(), ids); err != nil {
		return err
	}
	t.mu.Lock()
	t.members = normalize(ids)
	t.mu.Unlock()
	t.poke()
	return nil
}

// Close stops the table's goroutine and releases every lock this replica
// holds or waits for; waiting Lock calls return ErrClosed. The replica
// itself stays usable for replication (it still acknowledges others'
// claims while it is served), so a process closes its streams after the
// Table. Close is idempotent and returns nil.
func (t *Table) Close() error {
	t.closeOnce.Do(func() {
		close(t.done)
		t.stopRun()
		t.mu.Lock()
		t.closed = true
		var ended []*ownClaim
		for _, oc := range t.own {
			ended = append(ended, oc)
		}
		for _, oc := range ended {
			t.endLocked(oc, released)
		}
		t.mu.Unlock()
		for _, oc := range ended {
			t.writeRelease(oc)
		}
	})
	return nil
}

// stopRun stops the table's goroutine and waits for it.
func (t *Table) stopRun() {
	t.quitOnce.Do(func() { close(t.quit) })
	<-t.stopped
}

func (t *Table) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// stamp converts a wall time to a timestamp in milliseconds, with the
// fractions Timestamp.Time keeps.
func stamp(tm time.Time) vclock.Timestamp {
	return vclock.Timestamp(float64(tm.UnixNano()) / 1e6)
}

// leaseStamp converts a duration to milliseconds.
func leaseStamp(d time.Duration) vclock.Timestamp { return vclock.Timestamp(leaseMs(d)) }

var (
	_ scuttlebutt.Replica      = replica{}
	_ scuttlebutt.Validator    = replica{}
	_ scuttlebutt.AfterApplier = replica{}
	_ scuttlebutt.Document     = (*Table)(nil)
)
