// Package model is a replicated key/value store: string keys, values that
// CBOR and JSON can both carry, last writer wins per key.
//
// Every replica reaches the same value for a key whatever order updates
// arrive in: the update with the later timestamp wins, and equal timestamps
// go to the greater source id. Delete writes a tombstone, so deletes
// replicate and win over earlier writes. History holds only the latest
// update per key (tombstones included), so a Model's history, memory and
// sync cost grow with its keys, not its writes.
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
// # Change events
//
// Watch calls a function for each change, local or remote, in apply order,
// outside the Model's locks; WatchChan is the channel adapter. Each Change
// says key, new and old value, whether it was a delete, the winning source
// and timestamp, and whether this replica made it.
//
// # Limits
//
// Tombstones are kept forever: a deleted key costs its tombstone on every
// replica. Integers beyond int64 and non-string map keys are refused, as
// JSON peers could not carry them.
package model
