// Package emitter is a replicated event emitter: an event emitted on one
// replica is delivered to the listeners of every replica, exactly once per
// replica, also when it arrives after a disconnect or a partition.
//
//	a, _ := emitter.New("a", nil)
//	b, _ := emitter.New("b", nil)
//	b.On("joined", func(ev emitter.Event) { fmt.Println(ev.Args[0], "joined") })
//	stream.Pipe(ctx, a, b) // synced, then live
//	a.Emit("joined", "alice") // b prints: alice joined
//
// # Events
//
// Every event is its own immutable update, stamped with its source and a
// hybrid logical timestamp; nothing ever overwrites it, so two events with
// the same name are two events. Arguments follow package model's value
// rules (nil, bool, integers within int64, finite floats, strings, []byte,
// slices and string-keyed maps), and listeners get them decoded afresh:
// integers as int64, floats as float64, arrays as []any, maps as
// map[string]any, whether the event was local or remote.
//
// Event names are data. The Emitter gives no name any meaning: "error",
// "dispose", "close" or "" are events like any other and never end a
// stream or change the Emitter's behaviour (JavaScript scuttlebutt's
// emitter ends every stream when someone emits "dispose"; this one does
// not).
//
// # Delivery
//
// On, OnAny and Chan register listeners. Each replica delivers each event
// it applies once to each listener registered at the time, in apply order:
//
//   - Per source, events arrive in the order their source emitted them, so
//     a listener never sees a source's later event before an earlier one.
//     Events of different sources interleave in arrival order.
//   - Exactly once per replica: the base applies an update only if it is
//     newer than everything the replica has from that source, so an event
//     that reaches a replica over two streams, or again after a reconnect,
//     is delivered once.
//   - None lost across disconnects: when two replicas meet again they swap
//     clocks and each sends every retained event the other lacks, so events
//     emitted on both sides of a partition reach both sides once it heals.
//
// Listeners run on the goroutine that applied the event, outside the
// Emitter's locks, one at a time; a listener may Emit, and its event is
// delivered after it returns.
//
// # Restarts
//
// With a persistent log (package filelog), a restarted replica replays its
// log (scuttlebutt.Replay) before it is served. Replayed events are
// history, not news: they are delivered only to listeners already
// registered when the log is opened. Register listeners after opening the log, and a listener
// sees only events the replica did not have before the crash, each once,
// including the ones peers emitted while it was down. An event the replica
// had written to its log but not yet delivered when it crashed is then not
// delivered; an application that must process every event exactly once
// across crashes records, with its own results, the clock of the events it
// has processed, and after a restart asks Events(thatClock) for the rest.
//
// Retention does not make a restart deliver events twice: when the log
// compacts to the retained events, it records the replica's clock with
// them, so a replica restarted from a compacted log still knows how far it
// had got with every source, and a peer with a longer retention (a larger
// MaxEvents or MaxAge) does not send it again what it had delivered.
//
// # Retention
//
// An Emitter keeps at most Config.MaxEvents events (10,000 by default),
// dropping the oldest by (Timestamp, Source), and, with Config.MaxAge,
// none older than MaxAge. What falls out of retention is no longer
// replicated: a replica that joins later, or that was partitioned for
// longer than retention covers, never receives those events, and its clock
// still moves past them (it is told they are gone, not that they are
// coming). Retention only bounds what is kept for others: every event a
// replica does receive is delivered, however old. Memory stays bounded by
// MaxEvents (or the event rate times MaxAge) whatever the event rate.
package emitter
