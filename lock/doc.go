// Package lock is a replicated table of named locks, built on scuttlebutt
// replication: two replicas never hold the same lock at once while the
// assumptions below hold, a crashed holder loses its locks when its lease
// runs out, and a lock may admit up to N holders (a semaphore).
//
//	members := []string{"a", "b", "c"}
//	t, _ := lock.New("a", &lock.Config{Members: members})
//	defer t.Close()
//	// serve t to the other members with package stream, as any replica
//	if err := t.Lock(ctx, "invoices"); err != nil {
//		return err
//	}
//	defer t.Unlock("invoices")
//	select {
//	case <-t.Done("invoices"): // the lease was lost: stop
//	case <-work():
//	}
//
// # The rule
//
// This is Lamport's mutual exclusion algorithm, which scuttlebutt makes
// possible because every replica applies each source's updates in the
// order the source made them. A claim is an update (name, owner,
// timestamp, lease). Claims stand in line in (timestamp, owner) order. A
// replica's claim is granted when
//
//  1. fewer than Limit live claims on the same name are ahead of it in the
//     replica's view (for a mutex: none), and
//  2. the replica has received, from every member of the table, some update
//     with a timestamp later than the claim.
//
// Each replica acknowledges the claims and renewals it applies with an
// update of its own, so condition 2 comes true one round trip after a
// claim. It is what makes the rule safe: an update later than the claim
// from member m comes after every earlier update of m, so by then the
// claimant knows every claim m made before its own, and of two claims the
// later one waits for the earlier one. A claim is released by its owner's
// Unlock, or runs out with its lease.
//
// # Leases
//
// Every claim carries a lease (Config.Lease). While a claim stands, its
// owner renews it every Config.Renew. The other replicas consider a claim
// over when their clock passes its timestamp plus the lease, or the latest
// renewal's timestamp plus the lease. The owner considers its hold over a
// margin (Config.Margin) earlier, by its own clock, and keeps a renewal's
// new lease end only if every member has acknowledged the renewal before
// the previous end, less the margin: so no member can have considered the
// claim over before it heard of the renewal. A holder learns of the end of
// its hold through Done (a channel closed when the hold ends), OnLost (a
// callback), and Deadline (the time the hold ends unless renewed); work
// under a lock checks them.
//
// # Guarantees and limits
//
// Safety (never more than Limit holders at once) rests on three
// assumptions:
//
//   - Clocks: any two replicas' wall clocks (Config.Now) differ by less
//     than Config.Margin. If a holder's clock runs slow by more than that,
//     another replica can consider its lease over while it still thinks it
//     holds the lock. Keep clocks synchronized (NTP) and the margin well
//     above their worst difference; the default is a tenth of the lease.
//     Clocks may drift at different rates as long as the difference stays
//     within the margin. A process that is paused (GC, swapped out) past its
//     deadline without noticing is the same hazard: check Deadline or Done
//     before acting.
//   - Membership: every replica that takes locks is listed in the Members of
//     every other replica that takes locks. Remove a member only once it has
//     stopped; add a new one everywhere before it takes locks.
//   - Limits: every replica gives a lock the same Limit.
//
// What happens when things go wrong:
//
//   - Partition: a claim needs an acknowledgement from every member, so
//     while the members cannot all reach each other (directly or through
//     others) no replica anywhere is granted a new lock: a minority waits
//     rather than grants, and so does the majority. A holder cut off from
//     any member cannot have its renewals confirmed and loses its hold
//     after at most Lease - Margin; waiting claims are withdrawn and made
//     again at the back of the line as their leases run out. When the
//     partition heals, claims are granted again in line order.
//   - Crashed member: a crashed holder stops renewing, and the others
//     consider its claim over when its lease runs out. But a crashed
//     member also stops acknowledging, so no new claim is granted until
//     it comes back or is removed with SetMembers on every other member
//     (detecting the crash, for example with a membership protocol, is the
//     application's part). A crashed replica restarts under the same id,
//     with an empty table or from a persistent log (package filelog, opened
//     before the table is served); as it hears of the claims of its earlier
//     run, from the others or from its log, it withdraws them.
//   - Slow or lossy network: grants and renewals take a round trip to every
//     member; if renewals are not acknowledged within Lease - Margin, the
//     holder loses the lock (safely: it knows before anyone else can be
//     granted it).
//
// Liveness: once every member can reach every other and the clocks agree
// within the margin, every waiting claim is eventually granted, in line
// order, provided holders unlock or crash.
//
// # Costs
//
// Each claim and each renewal is one update, answered by one
// acknowledgement from every other member, which carries its sender's
// clock (one entry per replica). History holds the standing claims, the
// recent releases and one acknowledgement per replica: the table's memory
// and sync cost grow with the locks in use, not with how often they are
// taken.
package lock
