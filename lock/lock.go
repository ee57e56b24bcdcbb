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
	cfg Config // for Now; the rule has the durations, the limits and Members (under mu)

	// A Table is the driver of its rule, which decides everything about the
	// locks (rule.go): it feeds the rule updates, the time and the
	// replica's clock under mu, and carries out the actions the rule
	// returns: it wakes and ends the waits under mu, so that a change of
	// state and its signal are one step, and writes updates and frees slots
	// once mu is released (run.go).
	mu     sync.Mutex
	rule   *rule
	slots  map[string]*slot
	waits  map[*ownClaim]*waiter // the waits of the claims in rule.own
	ackDue bool                  // a foreign claim or renewal awaits acknowledgement
	acking bool                  // a goroutine is sending an acknowledgement
	closed bool

	lost notify.Notifier[string] // names of locks lost; delivered by run

	wake      chan struct{} // capacity 1: coalesced wakeups of run
	done      chan struct{} // closed by Close
	quit      chan struct{} // closed to stop run
	stopped   chan struct{} // closed when run returns
	closeOnce sync.Once
	quitOnce  sync.Once
}

// waiter is what waits on one of this replica's claims: the Lock call that
// made it, and, once it is held, the holder's Done. The rule never sees it.
type waiter struct {
	notify chan struct{} // capacity 1: wakes the Lock call waiting on the claim
	done   chan struct{} // closed when a hold ends
}

// signal wakes the Lock call waiting on w, if it is not already woken.
func (w *waiter) signal() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
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
		slots:   make(map[string]*slot),
		waits:   make(map[*ownClaim]*waiter),
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
	t.rule = newRule(id, sb.Source(), &c) // before anything is applied: the base applies nothing in New
	go t.run()
	return t, nil
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
		oc, w, err := t.claim(name, try)
		if err != nil {
			t.freeSlot(name, s)
			return err
		}
		st, err := t.await(ctx, oc, w)
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
	busy := try && t.rule.full(name, t.cfg.Now())
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
// closed; w is oc's waiter.
func (t *Table) await(ctx context.Context, oc *ownClaim, w *waiter) (state, error) {
	for {
		t.mu.Lock()
		st := oc.state
		t.mu.Unlock()
		if st != waiting {
			return st, nil
		}
		select {
		case <-w.notify:
		case <-ctx.Done():
			return waiting, ctx.Err()
		case <-t.done:
			return waiting, ErrClosed
		}
	}
}

// claim has the rule register a claim on name, writes it, and returns it
// with its waiter.
func (t *Table) claim(name string, try bool) (*ownClaim, *waiter, error) {
	w := &waiter{notify: make(chan struct{}, 1), done: make(chan struct{})}
	t.mu.Lock()
	oc, o := t.rule.claim(name, try)
	t.waits[oc] = w
	t.mu.Unlock()
	data, err := o.encode()
	if err == nil {
		_, _, err = t.LocalUpdate(data)
	}
	if err != nil {
		t.mu.Lock()
		t.rule.unclaim(oc)
		delete(t.waits, oc)
		t.mu.Unlock()
		return nil, nil, fmt.Errorf("lock: claim %q: %w", name, err)
	}
	t.poke()
	return oc, w, nil
}

// abandon withdraws a claim whose Lock call gave up. If the claim was
// granted in the meantime, the hold is released unseen.
func (t *Table) abandon(oc *ownClaim) {
	t.mu.Lock()
	acts := t.rule.cancel(oc)
	t.signalLocked(acts)
	t.mu.Unlock()
	t.perform(acts)
}

// freeSlot gives back the slot token of a claim that ended, and the
// reference that came with it.
func (t *Table) freeSlot(name string, s *slot) {
	<-s.ch
	t.dropSlot(name, s)
}

// dropSlot gives back a reference to name's slot s, and forgets the slot
// once nobody refers to it.
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
	acts, ok := t.rule.unlock(name, t.cfg.Now())
	if !ok {
		t.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotOwner, name)
	}
	t.signalLocked(acts)
	s := t.slots[name]
	t.mu.Unlock()
	t.perform(acts)
	t.freeSlot(name, s)
	return nil
}

// Deadline returns when this replica's hold of name ends, by its own clock
// (Config.Now), unless a renewal is confirmed before then, and ok = true;
// or ok = false if it does not hold name. A holder about to act on what the
// lock protects checks that the deadline leaves it time enough: after the
// deadline another replica may be granted the lock.
func (t *Table) Deadline(name string) (deadline time.Time, ok bool) {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rule.deadline(name, now)
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
	if oc := t.rule.holding(name); oc != nil {
		return t.waits[oc].done
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
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rule.holders(name, now)
}

// Held returns the names of the locks that Holders reports someone
// holding now, sorted: the table's locks in use, as this replica sees them.
func (t *Table) Held() []string {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for name := range t.rule.locks {
		if len(t.rule.holders(name, now)) > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Members returns the current member set, sorted.
func (t *Table) Members() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.rule.members)
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
	t.rule.setMembers(ids)
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
		acts := t.rule.close()
		t.signalLocked(acts)
		t.mu.Unlock()
		t.perform(acts)
	})
	return nil
}

// stopRun stops the table's goroutine and waits for it.
func (t *Table) stopRun() {
	t.quitOnce.Do(func() { close(t.quit) })
	<-t.stopped
}

// poke wakes the table's goroutine to step the rule.
func (t *Table) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

var (
	_ scuttlebutt.Replica      = replica{}
	_ scuttlebutt.Validator    = replica{}
	_ scuttlebutt.AfterApplier = replica{}
	_ scuttlebutt.Document     = (*Table)(nil)
)
