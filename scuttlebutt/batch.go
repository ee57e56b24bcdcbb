package scuttlebutt

// BatchApplier is implemented by replicas that apply a batch of updates for
// less than its updates one by one: under one lock, with the work of the
// next updates started ahead. The base calls ApplyUpdates, when the
// replica implements it, with every batch of two or more updates it
// applies from a peer (a message, a history), and Apply, and Replay; a
// local update still goes through ApplyUpdate.
//
// ApplyUpdates must do exactly what ApplyUpdate would do with each of
// updates, in order: the base promises the same of them (valid, newer than
// everything applied from their source, in timestamp order per source),
// holds its lock around the call as around ApplyUpdate's, and uses no
// result (it records every update's timestamp in the clock either way).
// Like ApplyUpdate, it must not call back into the base; and it must not
// keep the slice past the call (the updates in it it may keep).
type BatchApplier interface {
	ApplyUpdates(updates []Update)
}
