package scuttlebutt

// Storage is the hook that makes a replica durable: a persistence package
// (see package filelog) implements it and attaches it with
// Scuttlebutt.Attach, for any replicated type.
//
// Once attached, the base appends every update it applies, local or remote,
// before applying it, and does not let any link send an update, or a history
// holding it, until Sync has reported it durable: durability before
// advertising. A local update is acknowledged (LocalUpdate returns) only
// after Sync.
type Storage interface {
	// Append adds updates to the log, in order, and returns the sequence
	// number of the last one; sequence numbers increase with every call. It
	// is called with the base's lock held, so it must only buffer (the
	// operating system's cache is a buffer), never wait for the disk. An
	// error means nothing was appended; the updates are then not applied,
	// and the error reaches the writer or ends the stream that brought them.
	Append(updates []Update) (seq uint64, err error)
	// Sync returns once every update up to seq is as durable as the
	// storage's policy promises (for an fsync-per-write policy: on disk).
	// Concurrent callers should share one flush (group commit). It is called
	// without the base's lock and may be called concurrently.
	Sync(seq uint64) error
}
