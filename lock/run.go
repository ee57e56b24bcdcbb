package lock

import (
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// This file is the Table's side of the rule: where the time is read, where
// the rule's actions are carried out, and where the replicated base calls
// in. Every decision is the rule's (rule.go).

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

// step steps the rule to the replica's clock and wall clock (Config.Now)
// and carries out its actions: the signals under mu, then the writes, the
// slots of lost holds and the OnLost calls. It returns how long until the
// rule's next deadline, at least a millisecond.
func (t *Table) step() time.Duration {
	clock := t.Clock() // first: every update it covers is in the rule's state
	wall := t.cfg.Now()
	t.mu.Lock()
	acts, next := t.rule.step(clock, wall)
	lost := t.signalLocked(acts)
	t.mu.Unlock()
	t.perform(acts)
	for _, l := range lost {
		t.freeSlot(l.name, l.slot)
	}
	t.lost.Deliver()
	return max(next.Sub(wall), time.Millisecond)
}

// lostHold is a hold the rule found lost, with the slot its token is in.
type lostHold struct {
	name string
	slot *slot
}

// signalLocked makes known, with mu held, the changes of state acts
// report: it wakes the Lock call of a claim granted or ended, closes the
// Done channel of a hold that ended, and queues the OnLost calls of holds
// lost. It returns the holds lost, whose slots the caller frees once mu is
// released.
func (t *Table) signalLocked(acts []action) (lost []lostHold) {
	for _, a := range acts {
		w := t.waits[a.oc]
		if w == nil {
			continue // a write of a claim nobody waits for (actWithdraw)
		}
		switch a.kind {
		case actGrant:
			w.signal()
		case actLose, actUnlock:
			close(w.done)
			if a.kind == actLose {
				lost = append(lost, lostHold{a.oc.name, t.slots[a.oc.name]})
				t.lost.Queue(a.oc.name)
			}
			fallthrough
		case actExpire, actFail, actCancel:
			w.signal()
			delete(t.waits, a.oc)
		}
	}
	return lost
}

// perform makes the writes acts ask for, in order, with mu released. A
// write that fails (a failing storage) is dropped: a release or renewal
// not written leaves the claim to run out with its lease.
func (t *Table) perform(acts []action) {
	for _, a := range acts {
		switch a.kind {
		case actRenew:
			u, ok := t.write(a.op)
			if ok {
				t.mu.Lock()
				t.rule.renewed(a.oc, u.Timestamp)
				t.mu.Unlock()
			}
		case actRelease, actWithdraw:
			t.write(a.op)
		}
	}
}

// write writes o as a local update.
func (t *Table) write(o op) (u scuttlebutt.Update, ok bool) {
	data, err := o.encode()
	if err != nil {
		return u, false
	}
	u, _, err = t.LocalUpdate(data)
	return u, err == nil
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
	return t.rule.history(sources)
}

// ValidateUpdate implements scuttlebutt.Validator: the payload must be a
// claim, renewal, release or acknowledgement with the fields of its kind.
func (replica) ValidateUpdate(u scuttlebutt.Update) error {
	_, err := decodeOp(u.Data)
	return err
}

// ApplyUpdate implements scuttlebutt.Replica: it applies a claim, renewal,
// release or acknowledgement to the rule, and notes that a foreign claim
// or renewal needs acknowledging.
func (r replica) ApplyUpdate(u scuttlebutt.Update) bool {
	t := r.t
	o, err := decodeOp(u.Data)
	if err != nil {
		return false // the base validated it; a local update is ours
	}
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	changed, ack := t.rule.apply(u, o, now)
	t.ackDue = t.ackDue || ack
	return changed
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
		_, ok := t.write(op{kind: kindAck, clock: t.Clock()})
		t.mu.Lock()
		t.acking = false
		if !ok {
			t.ackDue = true // the next apply retries
		}
		t.mu.Unlock()
		if !ok {
			break
		}
	}
	t.poke()
}
