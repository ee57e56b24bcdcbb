// Package scuttlebutt is the base of every replicated type: it keeps the
// replica's id and vector clock, stamps local updates with a hybrid logical
// clock, applies remote updates in per-source timestamp order, and runs the
// anti-entropy protocol with each peer as a Link.
//
// # Writing a replicated type
//
// A replicated type embeds *Scuttlebutt, implements Replica, and hands
// itself to New in its constructor (Go embedding does not dispatch
// virtually, so the base calls the type through the interface):
//
//	type Counter struct {
//		*scuttlebutt.Scuttlebutt
//		mu     sync.Mutex
//		counts map[string]counted // latest update per source
//	}
//
//	func NewCounter(id string) (*Counter, error) {
//		c := &Counter{counts: map[string]counted{}}
//		sb, err := scuttlebutt.New(id, c, nil)
//		if err != nil {
//			return nil, err
//		}
//		c.Scuttlebutt = sb
//		return c, nil
//	}
//
// The type's obligations:
//
//  1. History(sources) returns every update it holds newer than sources,
//     sorted by (Timestamp, Source). It may leave out updates it has
//     superseded.
//  2. ApplyUpdate(u) applies u, or returns false for an update it
//     supersedes. Per source, updates arrive in increasing timestamp order;
//     the base drops stale and duplicate ones before they get here.
//  3. Local changes go through LocalUpdate(data), with data one CBOR item.
//     The base stamps it with Source(), applies it (through ApplyUpdate)
//     and replicates it. State kept per writer is kept per source: the
//     type's own entry is the one of Source(), not ID() (see Incarnations).
//  4. Optionally, Validator refuses malformed payloads from peers before
//     any update of their batch is applied, AfterApplier runs work (such
//     as change callbacks) after the base's lock is released, and
//     BatchApplier applies a peer's batch in one call (ApplyUpdates: what
//     ApplyUpdate does with each, for less: one lock, work started ahead).
//     A type that encodes a payload itself, in a form it knows its
//     Validator accepts, may write it with LocalUpdateChecked, which skips
//     all checks but the size. A Validator that checks a payload's CBOR
//     whole itself is a WholeValidator: the base then leaves that scan to
//     it rather than make it twice.
//
// # The protocol
//
// Each side of a session sends a hello (protocol version, id, clock), then
// every update the peer lacks (History of the peer's clock), then a sync
// carrying the clock that history brings the peer up to, then live updates
// as they are applied. Neither side waits for the other before sending its
// hello. A Link is synced once it has sent its sync and received the
// peer's.
//
// Guarantees a Link keeps:
//
//   - No echo: it never sends an update the peer is known to hold, whether
//     the peer's clock covers it or the peer sent it on this link.
//   - Prefix property: per source, updates go out in increasing timestamp
//     order, so each clock entry is a watermark, "everything up to here".
//   - Bounded memory: live updates for a slow peer queue up to
//     LinkOptions.MaxQueueBytes; past that the queue is dropped and the
//     peer's delta is recomputed from History once it catches up.
//   - Durability before advertising: with a Storage attached, nothing is
//     sent before the storage has made it durable.
//   - Whole histories: a history leaves out superseded updates, so a prefix
//     of one could raise a clock entry past an update the receiver holds
//     neither itself nor superseded. A Link holds the peer's history and
//     applies it as one batch when the peer's sync arrives (up to
//     LinkOptions.MaxHistoryBytes); a session cut before its sync applies
//     none of it. The same holds after the sync for a batch this replica
//     relays (a history it received from a third peer) and for the
//     history a link recomputes after its live queue overflowed: each goes
//     out as one unit, split over messages marked Message.More if it
//     outgrows a batch, and the peer applies it whole at its end.
//
// # Driving a Link
//
// A Link does no network I/O, starts no goroutine and is not safe for
// concurrent use: one goroutine, the driver's loop, owns it. Package stream
// drives one over any io.ReadWriter; a custom transport does the same:
//
//	l := doc.Base().NewLink(nil)
//	defer l.Close()
//	for {
//		for _, m := range l.Ready() {
//			send(m) // in order, without waiting for the peer
//		}
//		select {
//		case m := <-received: // from a reader goroutine
//			if err := l.Step(m); err != nil {
//				return err // bad input: nothing of m was applied
//			}
//		case <-l.Wake():
//		}
//	}
//
// Where the loop waits, and what the driver must do about it:
//
//  1. Step waits on the storage. It applies the peer's updates, so with a
//     Storage attached it appends them and returns only once Storage.Sync
//     has made them durable; and it runs AfterApply (see AfterApplier),
//     on the loop's goroutine, before it returns.
//  2. Ready, Wake, Synced and Done never wait. Ready holds back what the
//     storage has not made durable yet, and Wake signals once it has, as
//     it does when live updates are queued.
//  3. The network is the driver's. It reads on a goroutine of its own and
//     hands the messages to the loop over a channel, so that a Step that
//     waits on the disk does not stop it reading. It must not let send wait
//     for the peer to read either: both peers may be writing at once, and
//     if neither loop came back to receive, neither would read. Package
//     stream's Conn writes from a goroutine of its own, one batch at a
//     time, and its loop keeps receiving meanwhile.
//
// Two promises let a driver spare the collector an update slice a message.
// Step keeps no message's Updates slice, so a reader may decode the next
// message into one the loop has stepped; and Recycle hands Ready's
// messages back once sent (before the next Ready), so that the next live
// batches fill the same arrays. Package stream's Conn does both.
//
// # Time
//
// Timestamps are milliseconds since the Unix epoch as float64, as in
// JavaScript scuttlebutt. The wall clock is injected through Config.Now;
// the base never reads the time any other way. Conflicts in last-writer-wins
// types are decided by (Timestamp, Source): see Update.Less.
//
// # Incarnations
//
// A source id names one continuous history: updates of one source are
// stamped in increasing order, and a clock entry "source: t" means "every
// update of source up to t". Two processes writing under one source break
// that: a replica restarted without its log (a memory-only node, a lost
// disk) would stamp a new update later than its lost ones, and a peer's
// clock entry would then claim them all, so they would never be sent
// again; a second live process with the same id (a cloned machine) would
// have its updates dropped as already held.
//
// So every start of a replica is a source of its own: New stamps local
// updates with Source() = ID() + "~" + incarnation, where the incarnation is
// 8 random base32 characters (Config.Incarnation sets it, for tests). A
// restarted replica replays its old updates from its log, if it has one,
// under their old sources, and peers send it whatever it lost of them;
// its new updates can hide nothing. A twin's updates are kept apart the
// same way, and the base reports a twin once, through Config.Logger and
// Stats().Twins: an update of another incarnation of its id stamped after
// it started (plus the clock offset bound, so that an earlier run's last
// writes do not count), or a link from one.
//
// The cost: a clock gains one entry per start of each writer, about 100
// bytes plus the id in memory per clock copy and the id plus 10 bytes in
// every hello, and they are never retired: nothing here can prove that no
// replica anywhere still lacks an old incarnation's updates. Config.
// MaxSources bounds the total. Types see each incarnation as a writer of
// its own; ReplicaID maps a source back to its replica, and a type that
// keys state by writer keys it by source (a counter counts each
// incarnation) or by replica id where the replica is what matters (the lock
// table's owners and members). The alternative, a recovery handshake that
// asks peers for the replica's own latest timestamp before it writes,
// would keep clocks small but could not write offline and could not tell
// twins apart.
//
// # Trust and bounds
//
// A linked peer is trusted to relay other replicas' updates: until updates
// are signed, it can forge an update of any source but this replica's own
// current one, and it can claim in a sync or clock message to have sent
// updates it has not (the claimed updates, up to the time bound, are then
// not asked for again). It cannot push the replica past these bounds, each
// checked before anything of the offending message is applied; the session
// ends with an error and the replica stays usable by everyone else:
//
//   - Time: no timestamp further ahead of the local wall clock than
//     Config.MaxClockOffset (default 30 s), in an update or in a hello,
//     sync or clock message (ErrClockOffset, naming peer, source and
//     offset). The hybrid logical clock observes only accepted
//     timestamps, so no peer can drag local stamps into the future, and
//     a local write is never stamped with an invalid timestamp
//     (ErrClockExhausted). Apply, Replay and RestoreClock check the same.
//   - Sources: no more than Config.MaxSources in the replica's clock or in
//     a peer's hello. A peer can name made-up sources in its clock
//     messages, and nothing tells them from the sources of writers whose
//     updates are all superseded; so entries that no update came with are
//     the ones that give way: past the limit, new ones are left out of a
//     merge, and old ones, oldest first, make room for a writer whose
//     updates arrive. Only a clock full of writers refuses a new one
//     (ErrTooManySources). Stats counts what was dropped and refused.
//   - Size: no update larger than Config.MaxUpdateSize, no payload that is
//     not one well-formed CBOR item of bounded nesting (checked by the
//     base, or by a WholeValidator), nothing the type's Validator refuses
//     (ErrInvalidUpdate); package stream bounds frames.
//   - Identity: no update or clock entry of this start's own source that it
//     did not make (ErrProtocol), so no peer can hide its next writes.
//
// Local writes are held to the same rules: LocalUpdate runs the Validator
// (LocalUpdateChecked leaves that to the type),
// and with a Storage attached it applies an update only once the storage
// has made it durable, so a failed write leaves nothing visible.
package scuttlebutt
