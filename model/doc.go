// Package model is a replicated key/value store: string keys, values that
// CBOR and JSON can both carry, last writer wins per key; optionally, keys
// that their writer owns for a while (leases) and keys that disappear when
// their writer stops refreshing them (times to live).
//
// Every replica reaches the same value for a key whatever order updates
// arrive in: the update with the later timestamp wins, and equal timestamps
// go to the greater source id. Delete writes a tombstone, so deletes
// replicate and win over earlier writes. History holds only the updates
// that still count, for most keys the latest (tombstones included), so a
// Model's history, memory and sync cost grow with its keys, not its
// writes.
//
//	a, _ := model.New("a", nil)
//	b, _ := model.New("b", nil)
//	stream.Pipe(ctx, a, b) // synced, then live
//	a.Set("greeting", "hello")
//	v, ok := b.Get("greeting") // soon: "hello", true
//
// # Values
//
// Set accepts nil, bool, integers within int64, finite floats, strings,
// []byte, and slices, arrays and string-keyed maps of these, nested at most
// 31 deep. Get and change events decode afresh: integers as int64, floats
// as float64, arrays as []any, maps as map[string]any, so a local and a
// remote reader see the same Go types.
//
// # Leases
//
// With Config.Lease (NewWithConfig), a key a replica writes belongs to it
// until the lease after its last write runs out, measured from the
// write's timestamp. Meanwhile Set, SetTTL and Delete of the key by any
// other replica return an error wrapping ErrLeased and change nothing.
// The owner renews the lease by writing the key again, and ends it at once
// with Delete. The owner is a replica id, not a start of it: a replica
// restarted from its log (package filelog) still owns its keys, and so
// does one restarted without it once it has heard of them from a peer
// (what it writes before that counts as anyone else's write would). Holder
// says who owns a key and until when. A replica without a lease takes none
// but respects the others'.
//
// That is what each replica refuses by what it knows. Writes made where
// the owner's latest writes had not arrived (across a partition, or at the
// same moment) are decided by a rule every replica computes the same from
// the updates alone:
//
//  1. Take the key's writes in (timestamp, source) order.
//  2. A write is void, and does not count, while an earlier valid write
//     of another replica has a lease that covers its timestamp.
//  3. The key's value is that of its latest valid write.
//
// "Earlier" means the holding that began first: a renewal names the start
// of the holding it renews (its claim), so that the owner's latest write
// covers the key from the start of its holding to the end of its lease,
// and stands for its earlier writes. At equal timestamps the write with
// the smaller source (the smaller replica id) is the earlier one, so it
// holds the key: two replicas that take a free key at the same millisecond
// are decided by their ids, in the order last writer wins sorts them. A
// void write still advances every clock, as every update does, and is
// kept and relayed, but it changes no value. Leases are measured by the
// writers' timestamps, never by a receiver's clock, so every replica
// decides the same.
//
// An example of a race. a holds "leader" with a 10 s lease from its write
// at 12:00:00. b, cut off from a, knows only that write; a renews at
// 12:00:08, its holding now running to 12:00:18. At 12:00:11 b's clock
// says a's lease ran out, and b writes "leader". When the partition heals,
// every replica, in whatever order the updates reach it, finds b's write
// inside a's renewed lease, holding since 12:00:00: void. "leader" is a's
// value on all of them, and b's next Set returns ErrLeased until a stops
// renewing. Had a not renewed, and written again at 12:00:12 without
// hearing of b, the key would be b's: a's lease ran out at 12:00:10, b's
// write at 12:00:11 began a holding, and a's write falls inside it.
//
// The lease travels in each write, so replicas need not agree on
// Config.Lease. A SetTTL write holds the key no longer than it lives.
//
// # Times to live
//
// SetTTL(key, value, ttl) sets a key that disappears: once the write's
// timestamp plus ttl has passed on a replica's own wall clock (the Now of
// Config.Replica), the key reads as absent there. The ttl is in the
// update, so every replica expires the key at the same instant by its
// clock; clocks that differ make them do so at slightly different
// moments. Writing the key again replaces the write: a replica refreshing
// a presence key with SetTTL every second, with a ttl of a few seconds,
// keeps it alive, and when the replica stops (or dies) the key vanishes
// everywhere within the ttl. A refresh replaces the key's update as a Set
// does, with the same allocations and a little more work: a look at the
// key before the write, to choose its options, the options themselves
// (not checked again after encoding, as a peer's update is), and
// its place in an expiry queue, taken over in place when the key was the
// last one queued, as a replica's own presence key is
// (BenchmarkSetTTLRefresh and BenchmarkSetTTLRefreshOne, against
// BenchmarkSet). An expired key costs nothing: it leaves memory and
// History, and a replica that hears of it only later drops it on arrival.
//
// Costing nothing means that an expired write counts no more anywhere, as
// if it had never been made. So a value the key held before it comes
// back, if it outlives it. SetTTL takes care of what the writer knows of:
// if the key holds a value without a ttl (or one that would outlive the
// new write), the write says so ("tomb"), and when it runs out the key
// reads as deleted, and the write stays, costing what a tombstone costs,
// until a later write replaces it. A key only ever written with SetTTL
// leaves nothing behind. A value written elsewhere, without knowledge of
// the TTL write and earlier than it, comes back when the TTL write runs
// out (on every replica alike).
//
// # Expiry
//
// The Model starts no goroutine and sets no timer: expiry goes by
// Config.Replica.Now, read where something may have run out. Reads (Get,
// Keys, Len, Snapshot, Checkpoint, Holder) never show a key whose time is
// up, and drop it; writes and updates from peers drop what is due too.
// Watchers hear of an expiry as a change with Deleted and Expired set, at
// the next write, update or call of Expire, never from a read. A program
// that watches TTL keys calls Expire from a timer, at the time Expire
// returns or sooner:
//
//	for {
//		next := m.Expire() // drops what ran out, tells the watchers
//		wait := time.Second
//		if !next.IsZero() {
//			wait = min(wait, time.Until(next))
//		}
//		select {
//		case <-ctx.Done():
//			return
//		case <-time.After(wait):
//		}
//	}
//
// Tests drive expiry by moving a fake Now and calling Expire.
//
// # Change events
//
// Watch calls a function for each change, local or remote, in apply order,
// outside the Model's locks; WatchChan is the channel adapter. Each Change
// says key, new and old value, whether it was a delete, the winning source
// and timestamp, whether this replica made it, and whether it was an
// expiry.
//
// # Payload
//
// An update's data is a CBOR array: [key, value] for a Set, [key] for a
// Delete, as JavaScript scuttlebutt's Model writes them. A write with
// options adds a third element, a map with text keys:
//
//	[key, value, {"ttl": 3000}]                           SetTTL, 3 s
//	[key, value, {"lease": 10000}]                        Set with a 10 s lease
//	[key, value, {"lease": 10000, "since": 1795385884149}] a renewal: since is the claim
//	[key, value, {"ttl": 3000, "tomb": true}]             deleted, not gone, when it runs out
//	[key, null, {"since": 1795385884149, "del": true}]     the owner's Delete: a release
//
// "ttl" and "lease" are whole milliseconds, 1 to MaxTTL (10 years) and 1 to
// MaxLease (1 hour); "since" is a timestamp; "del" and "tomb" are true when
// present; "tomb" needs a "ttl"; "del" needs "since", a null value and
// neither "ttl", "lease" nor "tomb"; no other key, none twice, no empty map.
// A payload outside these bounds is refused, as a malformed value is. The
// two-element forms are unchanged, so updates written before options
// existed decode as they did. A JavaScript replica reads the first two
// elements and relays the third, so options cross it intact (see
// DataFromJSON).
//
// # History and its cost
//
// A key keeps the updates that no other update of it makes irrelevant,
// and History returns what every key keeps. For a key without leases or
// ttls that is its latest update, as before. A key may keep more: a
// holding's latest write, while a write racing it could still arrive
// (until the key has a write at least MaxLease after the holding ends);
// a void write, while it could still count if another update arrived; a
// value that outlives a later TTL write. Which updates a key keeps is
// decided by the updates alone, by a relation that every replica computes
// the same, so replicas that saw different updates, in different orders,
// or only another's History, keep the same ones; rule.go states it and
// proves why dropping the others never changes a value (with one bounded
// exception, chains of racing leases spanning more than MaxLease, where
// all replicas still agree).
//
// # Limits
//
// Tombstones are kept forever: a deleted key costs its tombstone on every
// replica. Integers beyond int64 and non-string map keys are refused, as
// JSON peers could not carry them. A replica's wall clock decides when its
// TTL keys run out, and the writer's timestamps when leases do: clocks
// that disagree disagree about expiry by as much, and a writer whose clock
// runs ahead holds leases longer (within the base's MaxClockOffset). A
// replica whose clock is ahead also drops a TTL write sooner, and then
// relays that it holds everything up to it: a replica that syncs with it
// only, whose clock is behind, never gets the write, and so loses the key
// earlier than its own clock would, by up to the difference of the clocks.
// A key written less often than every Lease starts a new holding with each
// write, and keeps each holding's record until a write MaxLease later. A
// JavaScript replica relays leases and ttls but does not honour them.
package model
