package lock

import (
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// run is the table's goroutine: it steps the table whenever an update is
// applied, a local claim is made, or the next deadline (a renewal, a lease
// end) comes, until Close.
func (t *Table) run() {
	defer close(t.stopped)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(t.step())
		select {
		case <-t.quit:
			return
		case <-t.wake:
		case <-timer.C:
		}
	}
}

// action is a write that step decided on and makes after releasing the
// table's lock.
type action struct {
	kind  kind
	oc    *ownClaim // the claim to renew or release
	name  string
	claim vclock.Timestamp
}

// step looks at this replica's claims and does what is due: it confirms
// renewals every member has acknowledged, ends claims whose leases ran out,
// grants claims that may be granted, fails TryLock claims with others
// ahead, renews claims, releases stale claims of an earlier run of this
// replica, and forgets claims long dead. It returns how long until the
// next deadline.
func (t *Table) step() time.Duration {
	clock := t.Clock() // first: every update it covers is in the table's state
	wall := t.cfg.Now()
	now := stamp(wall)
	margin := leaseStamp(t.cfg.Margin)
	next := now + leaseStamp(t.cfg.Renew)

	var (
		acts  []action
		frees []string // locks lost: their slots to free, their OnLost calls to make
	)
	t.mu.Lock()
	for name, oc := range t.own {
		if oc.c == nil || (oc.state != waiting && oc.state != held) {
			continue
		}
		t.confirmLocked(oc, now)
		if !t.validLocked(oc, now) {
			if oc.state == held {
				frees = append(frees, name)
				t.lost.Queue(name)
			}
			t.endLocked(oc, expired)
			acts = append(acts, action{kind: kindRelease, oc: oc})
			continue
		}
		if oc.state == waiting {
			ahead, wake := t.aheadOfLocked(oc.c, now)
			switch {
			case ahead < t.cfg.limit(name) && t.ackedLocked(clock, oc.c.ts):
				oc.state = held
				select {
				case oc.notify <- struct{}{}:
				default:
				}
			case oc.try && ahead >= t.cfg.limit(name):
				t.endLocked(oc, failed)
				acts = append(acts, action{kind: kindRelease, oc: oc})
				continue
			case wake > 0:
				next = min(next, wake) // a claim ahead expires
			}
		}
		if !wall.Before(oc.nextRenew) {
			oc.nextRenew = wall.Add(t.cfg.Renew)
			acts = append(acts, action{kind: kindRenew, oc: oc})
		}
		next = min(next, stamp(oc.nextRenew), oc.confirmed-margin)
	}
	for name, ls := range t.locks {
		keep := ls.claims[:0]
		for _, c := range ls.claims {
			if now > c.end+margin {
				continue // long dead: forget it, and its release
			}
			keep = append(keep, c)
			next = min(next, c.end+margin)
			if c.owner == t.ID() && c.own == nil && c.release == nil {
				// A claim of an earlier run of this replica, heard from a
				// peer after a restart: nobody waits for it, so withdraw it.
				c.own = &ownClaim{name: name, c: c, state: released}
				acts = append(acts, action{kind: kindRelease, name: name, claim: c.ts})
			}
		}
		clear(ls.claims[len(keep):])
		ls.claims = keep
		if len(keep) == 0 {
			delete(t.locks, name)
		}
	}
	var slots []*slot
	for _, name := range frees {
		slots = append(slots, t.slots[name])
	}
	t.mu.Unlock()

	for _, a := range acts {
		switch {
		case a.kind == kindRenew:
			t.writeRenew(a.oc)
		case a.oc != nil:
			t.writeRelease(a.oc)
		default:
			if data, err := (op{kind: kindRelease, name: a.name, claim: a.claim}).encode(); err == nil {
				t.LocalUpdate(data) //nolint:errcheck // the lease bounds a failed release
			}
		}
	}
	for i, name := range frees {
		t.freeSlot(name, slots[i])
	}
	t.lost.Deliver()
	wait := time.Duration(float64(next-now) * float64(time.Millisecond))
	return max(wait, time.Millisecond)
}

// confirmLocked adopts the latest of oc's renewals that every member has
// acknowledged, if oc's lease is still good: from then on every member
// knows of the new lease end, so none can think the lease over before it.
func (t *Table) confirmLocked(oc *ownClaim, now vclock.Timestamp) {
	for i := len(oc.pending) - 1; i >= 0; i-- {
		r := oc.pending[i]
		if !t.ackedByAllLocked(r.ts) {
			continue
		}
		if t.validLocked(oc, now) {
			oc.confirmed = max(oc.confirmed, r.end)
		}
		oc.pending = oc.pending[i+1:]
		return
	}
}

// ackedByAllLocked reports whether every other member has acknowledged this
// replica's updates up to ts.
func (t *Table) ackedByAllLocked(ts vclock.Timestamp) bool {
	for _, m := range t.members {
		if m == t.ID() {
			continue
		}
		if !t.ackedByLocked(m, ts) {
			return false
		}
	}
	return true
}

// ackedLocked is the safety rule's condition (2): this replica has
// received, from every other member, an update later than ts.
func (t *Table) ackedLocked(clock vclock.Clock, ts vclock.Timestamp) bool {
	latest := map[string]vclock.Timestamp{} // per member, over its incarnations
	for src, at := range clock {
		if m := scuttlebutt.ReplicaID(src); at > latest[m] {
			latest[m] = at
		}
	}
	for _, m := range t.members {
		if m != t.ID() && latest[m] <= ts {
			return false
		}
	}
	return true
}

// ackedByLocked reports whether member m, in any of its incarnations, has
// acknowledged this replica's updates up to ts.
func (t *Table) ackedByLocked(m string, ts vclock.Timestamp) bool {
	for src, a := range t.acks {
		if a.self >= ts && scuttlebutt.ReplicaID(src) == m {
			return true
		}
	}
	return false
}

// aheadOfLocked is the safety rule's condition (1): it counts the live
// claims ahead of c in line, and returns the earliest time one of them
// expires (0 if none).
func (t *Table) aheadOfLocked(c *claim, now vclock.Timestamp) (ahead int, wake vclock.Timestamp) {
	ls := t.locks[c.own.name]
	for _, d := range ls.claims {
		if !d.before(c) {
			break
		}
		if d.live(now) {
			ahead++
			if wake == 0 || d.end < wake {
				wake = d.end
			}
		}
	}
	return ahead, wake
}

// writeRenew writes a renewal of oc's claim and records it as pending
// until every member acknowledges it.
func (t *Table) writeRenew(oc *ownClaim) {
	lease := leaseMs(t.cfg.Lease)
	data, err := op{kind: kindRenew, name: oc.name, claim: oc.c.ts, lease: lease}.encode()
	if err != nil {
		return
	}
	u, _, err := t.LocalUpdate(data)
	if err != nil {
		return // not renewed: the lease runs out unless the next renewal works
	}
	t.mu.Lock()
	if oc.state == waiting || oc.state == held {
		oc.pending = append(oc.pending, renewal{ts: u.Timestamp, end: u.Timestamp + vclock.Timestamp(lease)})
	}
	t.mu.Unlock()
}
