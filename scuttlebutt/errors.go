package scuttlebutt

import "errors"

// Errors returned by this package. Callers test for them with errors.Is; the
// errors a Link returns from Step wrap ErrProtocol, ErrInvalidUpdate,
// ErrClockOffset or ErrTooManySources with the detail.
var (
	// ErrInvalidID means a replica id is empty, too long, not UTF-8, or
	// contains control characters.
	ErrInvalidID = errors.New("scuttlebutt: invalid replica id")
	// ErrInvalidUpdate means an update is malformed: empty or invalid source,
	// a timestamp that is not positive and finite, data that is not one
	// well-formed CBOR item, data over the size limit, or data the replica's
	// Validator refused.
	ErrInvalidUpdate = errors.New("scuttlebutt: invalid update")
	// ErrClockOffset means a timestamp lies further ahead of the local wall
	// clock than Config.MaxClockOffset allows: a peer's update or clock
	// entry (the error names the peer, the source and the offset), an
	// update given to Apply or Replay, or a clock given to RestoreClock.
	ErrClockOffset = errors.New("scuttlebutt: timestamp too far ahead of the local clock")
	// ErrTooManySources means a clock would name more sources than
	// Config.MaxSources allows.
	ErrTooManySources = errors.New("scuttlebutt: too many sources")
	// ErrClockExhausted means the hybrid logical clock cannot stamp a local
	// update with a valid (positive, finite) timestamp; nothing was
	// written.
	ErrClockExhausted = errors.New("scuttlebutt: no valid timestamp left to stamp with")
	// ErrProtocol means a peer broke the protocol: messages out of order, a
	// second hello, an unknown version, or a clock with invalid entries.
	ErrProtocol = errors.New("scuttlebutt: protocol error")
	// ErrSameID means a peer presented this replica's own source id: a
	// link to itself.
	ErrSameID = errors.New("scuttlebutt: peer has this replica's id")
	// ErrNilReplica means New was given a nil Replica.
	ErrNilReplica = errors.New("scuttlebutt: nil replica")
	// ErrInvalidConfig means a Config field is out of range.
	ErrInvalidConfig = errors.New("scuttlebutt: invalid config")
	// ErrClosed means the link or replica has been closed.
	ErrClosed = errors.New("scuttlebutt: closed")
)
