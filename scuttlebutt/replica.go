package scuttlebutt

import "github.com/scuttle-go/scuttle/vclock"

// Replica is what a replicated type implements. The type embeds
// *Scuttlebutt and passes itself to New; the base calls these methods.
//
// The base never calls ApplyUpdate and History concurrently with each other
// or with themselves: it holds its own lock around every call. A replica
// therefore needs its own lock only to guard readers of its state (Get,
// Keys...) against ApplyUpdate. ApplyUpdate and History must not call back
// into the base (LocalUpdate, Apply, Clock...): that would deadlock.
type Replica interface {
	// History returns every update this replica holds that is newer than
	// sources (sources[u.Source] < u.Timestamp, or the source is absent),
	// sorted by (Timestamp, Source), see Update.Less. It must not return
	// updates the replica has superseded if it does not want them replicated
	// (a last-writer-wins map returns the latest update per key). The caller
	// may keep the returned slice but not modify the updates in it.
	History(sources vclock.Clock) []Update
	// ApplyUpdate applies u and reports whether it changed anything. It
	// returns false for a stale or superseded update; the base still records
	// u's timestamp in the clock so the update is not asked for again. The
	// base calls it only with a valid update newer than everything it has
	// applied from u.Source, so per source, updates arrive in timestamp order.
	ApplyUpdate(u Update) bool
}

// Validator is implemented by replicas that can tell a malformed payload
// before it is applied. The base calls ValidateUpdate on every update that
// arrives from a peer, before applying any update of the batch, so that a
// forged or malformed update ends the stream with ErrInvalidUpdate and changes
// nothing. It may be called concurrently with anything; it must not depend on
// the replica's state.
type Validator interface {
	ValidateUpdate(u Update) error
}

// AfterApplier is implemented by replicas that act on applied updates outside
// the base's lock, for example to deliver change events to callbacks that may
// themselves write to the replica. The base calls AfterApply after each call
// of LocalUpdate or Apply, after each batch a Link applies, and after a
// peer's sync or clock message advanced the clock without any update (so a
// type whose decisions read Clock, such as package lock's acknowledgements,
// learns of the advance), on the goroutine that applied the updates, with
// no lock of the base held. A call may therefore come with nothing new for
// ApplyUpdate to have seen.
type AfterApplier interface {
	AfterApply()
}

// Document is anything that embeds *Scuttlebutt: every replicated type, and
// *Scuttlebutt itself. Package stream accepts a Document so that users hand
// it their own type (a *model.Model) rather than the base.
type Document interface {
	Base() *Scuttlebutt
}

var (
	_ Document = (*Scuttlebutt)(nil)
)
