package scuttlebutt

// Storage is the hook that makes a replica durable: a persistence package
// (see package filelog) implements it and attaches it with
// Scuttlebutt.Attach, for any replicated type.
//
// Once attached, the base appends every update it applies, local or remote,
// before applying it, and does not let any link send an update, or a history
// holding it, until Sync has reported it durable: durability before
// advertising. A local update is applied, and acknowledged (LocalUpdate
// returns), only after Sync, and never if Sync fails: so a local update
// can be in the storage while Clock and History do not show it yet, and a
// storage that rewrites itself from History (a compaction) must keep such
// records.
//
// # Replay
//
// On restart, a persistence package brings a new replica back from its log
// before attaching itself:
//
//  1. Replay the logged updates, in log order, with Replay (not Apply):
//     Replay applies them without calling AfterApply between batches, so a
//     type that writes from AfterApply (package lock acknowledges claims)
//     does not stamp a local update in the middle of the replay, which
//     would make the rest of its own logged updates look stale, and does
//     not write anything that is not logged.
//  2. Restore, with RestoreClock, every clock the log recorded: what the
//     replica held beyond its History (updates its type has dropped or
//     superseded), so that its clock and hybrid logical clock do not go
//     back. A log that compacts to History(nil) must record the clock with
//     it, taken before the History.
//  3. Attach. If the replay applied anything, Attach calls AfterApply
//     once, with the storage attached, so that the type delivers or
//     writes what the replayed updates call for, and its writes are
//     logged.
type Storage interface {
	// Append adds updates to the log, in order, and returns the sequence
	// number of the last one; sequence numbers increase with every call. It
	// is called with the base's lock held, so it must only buffer (the
	// operating system's cache is a buffer), never wait for the disk. An
	// error means nothing was appended; the updates are then not applied,
	// and the error reaches the writer or ends the stream that brought them.
	// It must not keep the slice past the call (a driver may decode the
	// next message into its array); the updates in it are immutable and
	// may be kept.
	Append(updates []Update) (seq uint64, err error)
	// Sync returns once every update up to seq is as durable as the
	// storage's policy promises (for an fsync-per-write policy: on disk).
	// Concurrent callers should share one flush (group commit). It is called
	// without the base's lock and may be called concurrently.
	Sync(seq uint64) error
}
