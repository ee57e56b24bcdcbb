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
//     The base stamps, applies (through ApplyUpdate) and replicates it.
//  4. Optionally, Validator refuses malformed payloads from peers before
//     any update of their batch is applied, and AfterApplier runs work (such
//     as change callbacks) after the base's lock is released.
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
//
// # Driving a Link
//
// A Link does no I/O and is not safe for concurrent use. Package stream
// drives one over any io.ReadWriter; a custom transport does the same:
//
//	l := doc.Base().NewLink(nil)
//	defer l.Close()
//	for {
//		for _, m := range l.Ready() {
//			send(m) // in order
//		}
//		select {
//		case m := <-received:
//			if err := l.Step(m); err != nil {
//				return err // bad input: nothing of m was applied
//			}
//		case <-l.Wake():
//		}
//	}
//
// # Time
//
// Timestamps are milliseconds since the Unix epoch as float64, as in
// JavaScript scuttlebutt. The wall clock is injected through Config.Now;
// the base never reads the time any other way. Conflicts in last-writer-wins
// types are decided by (Timestamp, Source): see Update.Less.
package scuttlebutt
