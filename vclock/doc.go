// Package vclock provides vector clocks and the hybrid logical timestamps
// behind them.
//
// # Timestamps
//
// A [Timestamp] is a point in time in milliseconds since the Unix epoch,
// carried as a float64 so that it matches the timestamps of JavaScript
// scuttlebutt (1795385884149, 1795385884149.001, ...) and round-trips
// bit-exactly through CBOR and JSON. Only positive finite values are valid;
// [Timestamp.Valid] says which.
//
// Local timestamps come from an [HLC], a hybrid logical clock: it follows the
// injected wall clock while that moves forward, never hands out the same
// timestamp twice, keeps increasing when the wall clock steps back, and after
// [HLC.Observe] of a remote timestamp t its next timestamp is later than t.
//
// # Clocks
//
// A [Clock] maps a source (a replica id) to the highest timestamp seen from
// it. Because scuttlebutt delivers each source's updates in timestamp order,
// an entry is a watermark: "I hold every update of this source up to here".
// Clocks merge by taking the per-source maximum, and compare partially:
//
//	switch a.Compare(b) {
//	case vclock.Before:     // b has seen everything a has, and more
//	case vclock.After:      // the reverse
//	case vclock.Equal:
//	case vclock.Concurrent: // each has seen something the other has not
//	}
//
// A Clock is a plain map and is not safe for concurrent mutation; the
// replicas in package scuttlebutt hand out copies.
package vclock
