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
// # Where the work happens
//
// Every decision about the locks is made by the rule (the unexported type
// rule, in rule.go): a plain value holding each lock's line of claims,
// this replica's own claims and what the members' acknowledgements say. It
// takes updates, the time (Config.Now, read by its caller) and the
// replica's vector clock as arguments, and returns what is to be done as
// actions: grant, lose, expire or fail a claim of this replica, write a
// renewal or a release. It does no I/O, takes no lock, reads no clock and
// waits for nothing, so tests step several by hand.
//
// A Table is a thin driver around it, and the only place where I/O and
// waiting happen:
//
//  1. The base calls ApplyUpdate with every update, this replica's and its
//     peers', and the Table applies it to the rule under its mutex; then
//     AfterApply writes an acknowledgement (LocalUpdate) if the rule asked
//     for one, and wakes the Table's goroutine.
//  2. The Table's goroutine reads Config.Now and the replica's clock,
//     steps the rule with them under the mutex, and carries out the
//     actions: under the mutex it wakes Lock calls, closes Done channels
//     and queues OnLost calls; once the mutex is released it writes
//     renewals and releases (LocalUpdate, which may wait for a storage),
//     frees the local slots of lost holds and makes the OnLost calls.
//     Then it sleeps until the deadline the rule returned, an update is
//     applied, or a claim is made.
//  3. Lock and TryLock wait in the calling goroutine, first for the local
//     slot, then for their claim to be granted or fail. Unlock, a Lock
//     call that gives up and Close have the rule release the claim, and
//     write the release in the calling goroutine.
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
