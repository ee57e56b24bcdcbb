package lock

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// rule is the lock table's state machine: Lamport's rule and the leases
// (see the package doc) over what this replica knows of every lock's line
// of claims, of its own claims, and of the members' acknowledgements.
//
// It is a plain value. Updates are applied to it with apply, the time
// moves it on with step, and what a transition asks to be done (wake a
// Lock call, write a renewal, ...) comes back as actions for the caller to
// carry out. It does no I/O, takes no lock, reads no clock, signals no
// channel and starts no goroutine: the time and the replica's vector clock
// are arguments. It is not safe for concurrent use: a Table guards it with
// its mutex; the rule tests step several by hand.
type rule struct {
	id      string   // this replica's id: the owner of its claims, in every incarnation
	source  string   // the source this start stamps its updates with
	members []string // sorted and deduplicated; id among them

	lease, renew, margin time.Duration  // Config's
	limit                int            // Config.Limit
	limits               map[string]int // Config.Limits; never modified

	locks map[string]*lockState // the line of claims on each lock name
	acks  map[string]*ackState  // per source, what its acknowledgements say
	own   map[string]*ownClaim  // this replica's current claim per name: waiting or held
}

// newRule returns the rule of replica id, whose updates carry source, with
// the durations and limits of cfg (which has its defaults filled in) and
// its Members.
func newRule(id, source string, cfg *Config) *rule {
	return &rule{
		id:      id,
		source:  source,
		members: normalize(cfg.Members),
		lease:   cfg.Lease,
		renew:   cfg.Renew,
		margin:  cfg.Margin,
		limit:   cfg.Limit,
		limits:  cfg.Limits,
		locks:   make(map[string]*lockState),
		acks:    make(map[string]*ackState),
		own:     make(map[string]*ownClaim),
	}
}

// normalize sorts ids and drops duplicates, in a copy.
func normalize(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// actKind says what an action asks of the rule's caller.
type actKind uint8

const (
	// actGrant: the claim is granted; wake the Lock call waiting on it.
	actGrant actKind = iota + 1
	// actLose: the claim was held and its lease ran out before a renewal
	// was confirmed; end the hold (Done, OnLost, the local slot) and wake
	// the Lock call.
	actLose
	// actExpire: the claim's lease ran out while it waited; wake the Lock
	// call, which claims again.
	actExpire
	// actFail: the TryLock claim has others ahead; wake the Lock call.
	actFail
	// actUnlock: this replica ended its hold (Unlock, Close); end the hold
	// (Done).
	actUnlock
	// actCancel: this replica withdrew the waiting claim (a Lock call gave
	// up, Close); wake the Lock call.
	actCancel
	// actRenew: write op, a renewal of the claim, and then tell the rule
	// its timestamp with renewed.
	actRenew
	// actRelease: write op, the release of the claim.
	actRelease
	// actWithdraw: write op, the release of a claim of an earlier run of
	// this replica; oc is nil.
	actWithdraw
)

// action is one thing a transition of the rule decided and leaves to its
// caller.
//
// The claim actions (actGrant to actCancel) report a change the rule has
// already made to a claim of this replica: the caller makes it known to
// whoever waits on the claim. The writes (actRenew, actRelease,
// actWithdraw) carry an update the caller writes as this replica's own,
// which comes back to the rule through apply like any update. Each action
// stands alone, so no order among them is needed for safety: a write that
// is late or never made only leaves a claim to run out with its lease. A
// Table makes the changes known at once, under the lock it stepped the
// rule under, and writes in the order given once it has released the lock;
// for a renewal it calls renewed after the write, with the update's
// timestamp.
type action struct {
	kind actKind
	oc   *ownClaim // the claim; nil for actWithdraw
	op   op        // for actRenew, actRelease and actWithdraw: the update to write
}

// String describes a for test failures and traces: "grant x",
// "renew x 1764.25".
func (a action) String() string {
	kinds := [...]string{actGrant: "grant", actLose: "lose", actExpire: "expire", actFail: "fail",
		actUnlock: "unlock", actCancel: "cancel", actRenew: "renew", actRelease: "release", actWithdraw: "withdraw"}
	name := "?"
	if int(a.kind) < len(kinds) && kinds[a.kind] != "" {
		name = kinds[a.kind]
	}
	if a.oc == nil {
		return fmt.Sprintf("%s %s %v", name, a.op.name, a.op.claim)
	}
	if a.op.kind != 0 {
		return fmt.Sprintf("%s %s %v", name, a.oc.name, a.op.claim)
	}
	return name + " " + a.oc.name
}

// claim registers a claim of this replica on name, which replaces any
// claim of its own still registered for name, and returns it with the
// update to write. The claim stands in line once that update is applied.
func (r *rule) claim(name string, try bool) (oc *ownClaim, write op) {
	oc = &ownClaim{name: name, try: try}
	r.own[name] = oc
	return oc, op{kind: kindClaim, name: name, lease: leaseMs(r.lease)}
}

// unclaim forgets oc, whose update could not be written.
func (r *rule) unclaim(oc *ownClaim) {
	if r.own[oc.name] == oc {
		delete(r.own, oc.name)
	}
}

// apply records u, a claim, renewal, release or acknowledgement decoded as
// o, from any replica, this one included; now is this replica's wall
// clock, from which the first renewal of its own claim is scheduled.
// changed reports whether the state changed; ack whether u is another
// replica's claim or renewal, which this replica acknowledges. A renewal
// or release of a claim this replica does not know (released, expired and
// forgotten, or never seen) changes nothing.
func (r *rule) apply(u scuttlebutt.Update, o op, now time.Time) (changed, ack bool) {
	self := u.Source == r.source
	ack = !self && (o.kind == kindClaim || o.kind == kindRenew)
	switch o.kind {
	case kindClaim:
		c := &claim{owner: scuttlebutt.ReplicaID(u.Source), ts: u.Timestamp, end: u.Timestamp + vclock.Timestamp(o.lease), u: u}
		ls := r.locks[o.name]
		if ls == nil {
			ls = &lockState{}
			r.locks[o.name] = ls
		}
		ls.insert(c)
		if oc := r.own[o.name]; self && oc != nil && oc.c == nil {
			oc.c, c.own = c, oc
			oc.confirmed = c.end
			oc.nextRenew = now.Add(r.renew)
		}
		return true, ack
	case kindRenew, kindRelease:
		ls := r.locks[o.name]
		if ls == nil {
			return false, ack
		}
		c := ls.find(scuttlebutt.ReplicaID(u.Source), o.claim)
		if c == nil || c.release != nil {
			return false, ack
		}
		if o.kind == kindRelease {
			c.release, c.renew = &u, nil
			return true, ack
		}
		c.renew = &u
		c.end = max(c.end, u.Timestamp+vclock.Timestamp(o.lease))
		return true, ack
	case kindAck:
		a := r.acks[u.Source]
		if a == nil {
			a = &ackState{}
			r.acks[u.Source] = a
		}
		a.u = u
		a.self = max(a.self, o.clock[r.source])
		return true, false
	}
	return false, ack
}

// renewed records that the renewal step asked for (actRenew) was written
// and stamped ts: it is pending until every member acknowledges it.
func (r *rule) renewed(oc *ownClaim, ts vclock.Timestamp) {
	if oc.state == waiting || oc.state == held {
		oc.pending = append(oc.pending, renewal{ts: ts, end: ts + leaseStamp(r.lease)})
	}
}

// step moves the rule on to wall, this replica's wall clock, with clock its
// vector clock (which must not cover updates not yet applied): it confirms
// renewals every member has acknowledged, ends claims whose leases ran out
// (a held one is lost), grants claims that may be granted, fails TryLock
// claims with others ahead, renews claims, withdraws stale claims of an
// earlier run of this replica, and forgets claims long dead. It returns
// what is to be done, in order, and when to step next unless an update is
// applied or a claim made first.
func (r *rule) step(clock vclock.Clock, wall time.Time) (acts []action, next time.Time) {
	now := stamp(wall)
	margin := leaseStamp(r.margin)
	nx := now + leaseStamp(r.renew)
	for _, name := range slices.Sorted(maps.Keys(r.own)) {
		oc := r.own[name]
		if oc.c == nil {
			continue // its update is not applied yet
		}
		r.confirm(oc, now)
		if !r.valid(oc, now) {
			k := actExpire
			if oc.state == held {
				k = actLose
			}
			r.end(oc, expired)
			acts = append(acts, action{kind: k, oc: oc}, r.release(oc))
			continue
		}
		if oc.state == waiting {
			ahead, wake := r.ahead(oc.c, now)
			switch {
			case ahead < r.limitOf(name) && r.acked(clock, oc.c.ts):
				oc.state = held
				acts = append(acts, action{kind: actGrant, oc: oc})
			case oc.try && ahead >= r.limitOf(name):
				r.end(oc, failed)
				acts = append(acts, action{kind: actFail, oc: oc}, r.release(oc))
				continue
			case wake > 0:
				nx = min(nx, wake) // a claim ahead expires
			}
		}
		if !wall.Before(oc.nextRenew) {
			oc.nextRenew = wall.Add(r.renew)
			acts = append(acts, action{kind: actRenew, oc: oc,
				op: op{kind: kindRenew, name: name, claim: oc.c.ts, lease: leaseMs(r.lease)}})
		}
		nx = min(nx, stamp(oc.nextRenew), oc.confirmed-margin)
	}
	for _, name := range slices.Sorted(maps.Keys(r.locks)) {
		ls := r.locks[name]
		keep := ls.claims[:0]
		for _, c := range ls.claims {
			if now > c.end+margin {
				continue // long dead: forget it, and its release
			}
			keep = append(keep, c)
			nx = min(nx, c.end+margin)
			if c.owner == r.id && c.own == nil && c.release == nil {
				// A claim of an earlier run of this replica, heard from a
				// peer or read from its log after a restart: nobody waits
				// for it, so withdraw it.
				c.own = &ownClaim{name: name, c: c, state: released}
				acts = append(acts, action{kind: actWithdraw, op: op{kind: kindRelease, name: name, claim: c.ts}})
			}
		}
		clear(ls.claims[len(keep):])
		ls.claims = keep
		if len(keep) == 0 {
			delete(r.locks, name)
		}
	}
	return acts, nx.Time()
}

// unlock ends this replica's hold of name, if it holds it at wall (by its
// own clock, its lease good), and returns the actions that makes known
// (actUnlock, actRelease); ok is false if it does not hold name.
func (r *rule) unlock(name string, wall time.Time) (acts []action, ok bool) {
	oc := r.own[name]
	if oc == nil || oc.state != held || !r.valid(oc, stamp(wall)) {
		return nil, false
	}
	return r.relinquish(oc), true
}

// cancel withdraws oc, whose Lock call gave up: if it still waits or holds
// (it may have been granted meanwhile), it is released, and the actions
// say so; otherwise there is nothing to do.
func (r *rule) cancel(oc *ownClaim) []action {
	if oc.state != waiting && oc.state != held {
		return nil
	}
	return r.relinquish(oc)
}

// close releases every claim of this replica, waiting or held, for Close.
func (r *rule) close() []action {
	var acts []action
	for _, name := range slices.Sorted(maps.Keys(r.own)) {
		acts = append(acts, r.relinquish(r.own[name])...)
	}
	return acts
}

// relinquish releases oc, waiting or held, by this replica's own decision:
// actUnlock or actCancel, and actRelease once its claim is applied. (A
// claim applied after it was relinquished is one nobody waits for: step
// withdraws it, or, once the Table is closed, it runs out with its lease.)
func (r *rule) relinquish(oc *ownClaim) []action {
	k := actCancel
	if oc.state == held {
		k = actUnlock
	}
	r.end(oc, released)
	acts := []action{{kind: k, oc: oc}}
	if oc.c != nil {
		acts = append(acts, r.release(oc))
	}
	return acts
}

// end moves oc to a final state and forgets it as the current claim.
func (r *rule) end(oc *ownClaim, st state) {
	oc.state = st
	if r.own[oc.name] == oc {
		delete(r.own, oc.name)
	}
}

// release returns the write of the release of oc's claim, which has been
// applied.
func (r *rule) release(oc *ownClaim) action {
	return action{kind: actRelease, oc: oc, op: op{kind: kindRelease, name: oc.name, claim: oc.c.ts}}
}

// setMembers replaces the member set (see Table.SetMembers).
func (r *rule) setMembers(ids []string) {
	r.members = normalize(ids)
}

// limitOf returns how many may hold name at once.
func (r *rule) limitOf(name string) int {
	if n, ok := r.limits[name]; ok {
		return n
	}
	return r.limit
}

// valid reports whether oc's lease is good at now: before its confirmed
// end, less the margin.
func (r *rule) valid(oc *ownClaim, now vclock.Timestamp) bool {
	return now < oc.confirmed-leaseStamp(r.margin)
}

// confirm adopts the latest of oc's renewals that every member has
// acknowledged, if oc's lease is still good: from then on every member
// knows of the new lease end, so none can think the lease over before it.
func (r *rule) confirm(oc *ownClaim, now vclock.Timestamp) {
	for i := len(oc.pending) - 1; i >= 0; i-- {
		rn := oc.pending[i]
		if !r.ackedByAll(rn.ts) {
			continue
		}
		if r.valid(oc, now) {
			oc.confirmed = max(oc.confirmed, rn.end)
		}
		oc.pending = oc.pending[i+1:]
		return
	}
}

// ackedByAll reports whether every other member has acknowledged this
// replica's updates up to ts.
func (r *rule) ackedByAll(ts vclock.Timestamp) bool {
	for _, m := range r.members {
		if m != r.id && !r.ackedBy(m, ts) {
			return false
		}
	}
	return true
}

// ackedBy reports whether member m, in any of its incarnations, has
// acknowledged this replica's updates up to ts.
func (r *rule) ackedBy(m string, ts vclock.Timestamp) bool {
	for src, a := range r.acks {
		if a.self >= ts && scuttlebutt.ReplicaID(src) == m {
			return true
		}
	}
	return false
}

// acked is the safety rule's condition (2): this replica, whose vector
// clock is clock, has received from every other member an update later
// than ts.
func (r *rule) acked(clock vclock.Clock, ts vclock.Timestamp) bool {
	latest := map[string]vclock.Timestamp{} // per member, over its incarnations
	for src, at := range clock {
		if m := scuttlebutt.ReplicaID(src); at > latest[m] {
			latest[m] = at
		}
	}
	for _, m := range r.members {
		if m != r.id && latest[m] <= ts {
			return false
		}
	}
	return true
}

// ahead is the safety rule's condition (1): it counts the live claims
// ahead of c, one of this replica's, in line, and returns the earliest time
// one of them expires (0 if none).
func (r *rule) ahead(c *claim, now vclock.Timestamp) (n int, wake vclock.Timestamp) {
	for _, d := range r.locks[c.own.name].claims {
		if !d.before(c) {
			break
		}
		if d.live(now) {
			n++
			if wake == 0 || d.end < wake {
				wake = d.end
			}
		}
	}
	return n, wake
}

// full reports whether the live claims of other replicas on name fill its
// places at wall: all of them would be ahead of a claim this replica made
// now, so a TryLock would fail.
func (r *rule) full(name string, wall time.Time) bool {
	ls := r.locks[name]
	if ls == nil {
		return false
	}
	now, n := stamp(wall), 0
	for _, c := range ls.claims {
		if c.owner != r.id && c.live(now) {
			n++
		}
	}
	return n >= r.limitOf(name)
}

// holding returns this replica's claim on name if it is held, nil
// otherwise. Unlike deadline, it does not look at the lease.
func (r *rule) holding(name string) *ownClaim {
	if oc := r.own[name]; oc != nil && oc.state == held {
		return oc
	}
	return nil
}

// deadline returns when this replica's hold of name ends by its own clock,
// unless a renewal is confirmed first, and ok = true; ok = false if it
// does not hold name at wall.
func (r *rule) deadline(name string, wall time.Time) (end time.Time, ok bool) {
	oc := r.own[name]
	if oc == nil || oc.state != held || !r.valid(oc, stamp(wall)) {
		return time.Time{}, false
	}
	return (oc.confirmed - leaseStamp(r.margin)).Time(), true
}

// holders returns the owners of the first limit live claims on name at
// wall, as Table.Holders documents: this replica only while it holds the
// lock.
func (r *rule) holders(name string, wall time.Time) []string {
	ls := r.locks[name]
	if ls == nil {
		return nil
	}
	now, limit := stamp(wall), r.limitOf(name)
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
			if c.own.state == held && r.valid(c.own, now) {
				out = append(out, c.owner)
			}
		case c.owner != r.id:
			out = append(out, c.owner)
		}
	}
	return out
}

// history returns what a peer with clock sources lacks of the claims that
// stand (each claim and its latest renewal), of the releases whose claims'
// leases have not yet run out, and the latest acknowledgement of every
// replica, in (Timestamp, Source) order: the replica's History (see
// replica.History).
func (r *rule) history(sources vclock.Clock) []scuttlebutt.Update {
	var out []scuttlebutt.Update
	for _, ls := range r.locks {
		for _, c := range ls.claims {
			if c.release != nil {
				if c.release.Timestamp > sources[c.release.Source] {
					out = append(out, *c.release)
				}
				continue
			}
			if c.ts > sources[c.u.Source] {
				out = append(out, c.u)
			}
			if c.renew != nil && c.renew.Timestamp > sources[c.renew.Source] {
				out = append(out, *c.renew)
			}
		}
	}
	for src, a := range r.acks {
		if a.u.Timestamp > sources[src] {
			out = append(out, a.u)
		}
	}
	slices.SortFunc(out, scuttlebutt.Compare)
	return out
}
