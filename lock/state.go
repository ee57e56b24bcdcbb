package lock

import (
	"slices"
	"sort"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

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
	own     *ownClaim           // this replica's bookkeeping, for its own claims
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

// replica is what Table hands the base: the methods only the base calls,
// kept off Table's exported API. It holds just the pointer, so it is stored
// in the base's interfaces without an allocation or another indirection.
type replica struct{ t *Table }

// History implements scuttlebutt.Replica: what a peer with clock sources
// lacks of the claims that stand (each claim and its latest renewal), of
// the releases whose claims' leases have not yet run out, and the latest
// acknowledgement of every replica, in (Timestamp, Source) order.
// Superseded renewals and acknowledgements, released claims and the claims
// and releases past their lease are left out. The table is small (the
// claims that stand, one acknowledgement per replica), so History walks it.
func (r replica) History(sources vclock.Clock) []scuttlebutt.Update {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []scuttlebutt.Update
	for _, ls := range t.locks {
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
	for src, a := range t.acks {
		if a.u.Timestamp > sources[src] {
			out = append(out, a.u)
		}
	}
	slices.SortFunc(out, scuttlebutt.Compare)
	return out
}

// ValidateUpdate implements scuttlebutt.Validator: the payload must be a
// claim, renewal, release or acknowledgement with the fields of its kind.
func (replica) ValidateUpdate(u scuttlebutt.Update) error {
	_, err := decodeOp(u.Data)
	return err
}

// ApplyUpdate implements scuttlebutt.Replica: it records a claim, renewal,
// release or acknowledgement, and notes that a foreign claim or renewal
// needs acknowledging. A renewal or release of a claim this replica does not
// know (released, expired and forgotten, or never seen) changes nothing.
func (r replica) ApplyUpdate(u scuttlebutt.Update) bool {
	t := r.t
	o, err := decodeOp(u.Data)
	if err != nil {
		return false // the base validated it; a local update is ours
	}
	self := u.Source == t.Source()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !self && (o.kind == kindClaim || o.kind == kindRenew) {
		t.ackDue = true
	}
	switch o.kind {
	case kindClaim:
		c := &claim{owner: scuttlebutt.ReplicaID(u.Source), ts: u.Timestamp, end: u.Timestamp + vclock.Timestamp(o.lease), u: u}
		ls := t.locks[o.name]
		if ls == nil {
			ls = &lockState{}
			t.locks[o.name] = ls
		}
		ls.insert(c)
		if oc := t.own[o.name]; self && oc != nil && oc.c == nil {
			oc.c, c.own = c, oc
			oc.confirmed = c.end
			oc.nextRenew = t.cfg.Now().Add(t.cfg.Renew)
		}
		return true
	case kindRenew, kindRelease:
		ls := t.locks[o.name]
		if ls == nil {
			return false
		}
		c := ls.find(scuttlebutt.ReplicaID(u.Source), o.claim)
		if c == nil || c.release != nil {
			return false
		}
		if o.kind == kindRelease {
			c.release, c.renew = &u, nil
			return true
		}
		c.renew = &u
		c.end = max(c.end, u.Timestamp+vclock.Timestamp(o.lease))
		return true
	case kindAck:
		a := t.acks[u.Source]
		if a == nil {
			a = &ackState{}
			t.acks[u.Source] = a
		}
		a.u = u
		a.self = max(a.self, o.clock[t.Source()])
		return true
	}
	return false
}

// AfterApply implements scuttlebutt.AfterApplier: if a foreign claim or
// renewal has been applied since this replica last acknowledged, it sends
// an acknowledgement carrying its clock; then it wakes the table's
// goroutine to look at grants and renewals again.
func (r replica) AfterApply() {
	t := r.t
	for {
		t.mu.Lock()
		if t.acking || !t.ackDue {
			t.mu.Unlock()
			break
		}
		t.acking, t.ackDue = true, false
		t.mu.Unlock()
		data, err := op{kind: kindAck, clock: t.Clock()}.encode()
		if err == nil {
			_, _, err = t.LocalUpdate(data)
		}
		t.mu.Lock()
		t.acking = false
		if err != nil {
			t.ackDue = true // the next apply retries
		}
		t.mu.Unlock()
		if err != nil {
			break
		}
	}
	t.poke()
}
