package lock

import (
	"slices"
	"sort"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// This file holds the data the rule keeps: the line of claims on each
// lock, this replica's own claims, and what each replica's
// acknowledgements say. Like the rule, it is guarded by Table.mu in a
// Table and owned by the test in the rule tests.

// state is where one of this replica's claims stands.
type state int

const (
	waiting  state = iota // in line, not granted
	held                  // granted; this replica holds the lock
	expired               // its lease ran out (held: the lease was lost)
	failed                // TryLock found others ahead
	released              // Unlock, a cancelled Lock, or Close
)

// String returns the state's name, for test failures and traces.
func (s state) String() string {
	names := [...]string{"waiting", "held", "expired", "failed", "released"}
	if s < 0 || int(s) >= len(names) {
		return "state(?)"
	}
	return names[s]
}

// ownClaim is this replica's bookkeeping for one claim of its own. Its
// pointer is the claim's identity: actions name it, and a Table keys the
// channels of the Lock call waiting on it (waiter) by it. name and try never
// change; the rest is the rule's, changed only by its methods.
type ownClaim struct {
	name      string
	try       bool             // a TryLock claim: fails rather than waits behind others
	c         *claim           // set when the claim is applied
	state     state            // waiting or held while it is in rule.own
	confirmed vclock.Timestamp // the lease end every member has acknowledged
	pending   []renewal        // renewals sent, not yet acknowledged by all
	nextRenew time.Time        // when to renew next, by this replica's wall clock
}

// renewal is a renewal this replica sent: its timestamp and lease end.
type renewal struct {
	ts, end vclock.Timestamp
}

// lockState holds the claims on one lock name this replica knows of, in
// (timestamp, owner) order: the order of the line.
type lockState struct {
	claims []*claim
}

// claim is one claim on a lock, by any replica.
type claim struct {
	owner   string // the replica id of the claim's source: any incarnation may release it
	ts      vclock.Timestamp
	end     vclock.Timestamp    // the latest lease end this replica has heard of
	u       scuttlebutt.Update  // the claim itself
	renew   *scuttlebutt.Update // the latest renewal, nil if none
	release *scuttlebutt.Update // the release, nil while the claim stands
	// own is this replica's bookkeeping, for its own claims; for a claim of
	// an earlier run of this replica that step has withdrawn, a stand-in in
	// state released, so that it is withdrawn once.
	own *ownClaim
}

// before reports whether c is ahead of d in line: (timestamp, source)
// order.
func (c *claim) before(d *claim) bool {
	if c.ts != d.ts {
		return c.ts < d.ts
	}
	return c.u.Source < d.u.Source
}

// live reports whether c stands at now in this replica's view: not
// released, and its lease not over.
func (c *claim) live(now vclock.Timestamp) bool {
	return c.release == nil && now <= c.end
}

// ackState is what one replica's acknowledgements say.
type ackState struct {
	u    scuttlebutt.Update // the latest acknowledgement, the one History keeps
	self vclock.Timestamp   // how far it has applied this replica's updates
}

// insert adds c in line order.
func (ls *lockState) insert(c *claim) {
	i := sort.Search(len(ls.claims), func(i int) bool { return c.before(ls.claims[i]) })
	ls.claims = slices.Insert(ls.claims, i, c)
}

// find returns owner's claim stamped ts, or nil.
func (ls *lockState) find(owner string, ts vclock.Timestamp) *claim {
	for _, c := range ls.claims {
		if c.ts == ts && c.owner == owner {
			return c
		}
	}
	return nil
}

// stamp converts a wall time to a timestamp in milliseconds, with the
// fractions Timestamp.Time keeps.
func stamp(tm time.Time) vclock.Timestamp {
	return vclock.Timestamp(float64(tm.UnixNano()) / 1e6)
}

// leaseStamp converts a duration to milliseconds.
func leaseStamp(d time.Duration) vclock.Timestamp { return vclock.Timestamp(leaseMs(d)) }
