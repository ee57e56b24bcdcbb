package stream

import "errors"

// Errors returned by this package. A Conn's Run wraps them, and the
// scuttlebutt errors for what a peer said (scuttlebutt.ErrProtocol,
// scuttlebutt.ErrInvalidUpdate, scuttlebutt.ErrSameID); test with errors.Is.
var (
	// ErrFrameTooLarge means a frame's length field exceeds the limit, or a
	// message to send encodes larger than it.
	ErrFrameTooLarge = errors.New("stream: frame too large")
	// ErrTruncated means the stream ended inside a frame, or after clock
	// parts but before the message they belong to.
	ErrTruncated = errors.New("stream: truncated frame")
	// ErrMalformed means a frame's body does not decode as its kind says:
	// bad CBOR, a wrong shape, a limit of the decoder exceeded. It also
	// means clock parts that do not make a clock: followed by a frame that
	// is no hello, sync or clock, naming a source twice, or naming more
	// sources than the replica's Config.MaxSources (then the error wraps
	// scuttlebutt.ErrTooManySources too).
	ErrMalformed = errors.New("stream: malformed message")
	// ErrUnknownKind means a frame has a kind this version does not know.
	ErrUnknownKind = errors.New("stream: unknown message kind")
	// ErrInvalidOptions means an Options field is out of range.
	ErrInvalidOptions = errors.New("stream: invalid options")
	// ErrNotSynced means the peer closed the stream before a one-shot sync
	// completed.
	ErrNotSynced = errors.New("stream: closed before sync")
)
