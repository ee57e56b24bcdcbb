package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Errors returned by this package; test with errors.Is. A call's error
// wraps one of them, and a connection that ends wraps its cause: what
// the peer did wrong (ErrMalformed, ErrUnknownKind, ErrProtocol, or
// stream.ErrFrameTooLarge and stream.ErrTruncated, since frames are read
// with a stream.FrameReader), or the error of the underlying connection.
var (
	// ErrRemote is wrapped by the error of a call whose handler returned
	// an error, panicked, ran out of time or returned a result that is
	// not a value. The error is a *RemoteError that holds the message.
	ErrRemote = errors.New("rpc: remote error")
	// ErrUnknownMethod means the server has no handler of the name
	// called, or the name is not one a server accepts (empty, longer than
	// MaxNameLen, not UTF-8).
	ErrUnknownMethod = errors.New("rpc: unknown method")
	// ErrBusy means the server refused the call because as many calls as
	// its ServerConfig.MaxInflight allows were running on the connection.
	// Nothing ran; the call may be retried.
	ErrBusy = errors.New("rpc: server busy")
	// ErrClosed means the connection has ended: Close was called, the
	// peer closed it, or an error ended it (wrapped too). A call pending
	// at that moment gets it instead of waiting for a reply.
	ErrClosed = errors.New("rpc: connection closed")
	// ErrInvalidValue means an argument or a result is not a value of the
	// kinds a model.Model holds (see the package doc).
	ErrInvalidValue = errors.New("rpc: invalid value")
	// ErrMalformed means a frame's body is not what its kind says: bad
	// CBOR, a wrong shape, a method name out of bounds, an argument or
	// result that is not a value.
	ErrMalformed = errors.New("rpc: malformed frame")
	// ErrUnknownKind means a frame has a kind this version does not know,
	// or one that only the other role sends (a call to a client, a
	// result to a server).
	ErrUnknownKind = errors.New("rpc: unknown frame kind")
	// ErrProtocol means the peer broke the protocol with well-formed
	// frames: a call with the id of a call still running or id 0, a reply
	// for an id the client never used.
	ErrProtocol = errors.New("rpc: protocol error")
)

// RemoteError is the error of a call that the server answered with an
// error. It wraps ErrRemote, ErrUnknownMethod or ErrBusy, and also
// context.DeadlineExceeded when the handler's deadline passed (Timeout
// reports it). It implements net.Error.
type RemoteError struct {
	// Method is the name called.
	Method string
	// Message is the server's description: the handler's error text
	// (at most MaxMessageLen bytes), "panic: ..." for a handler that
	// panicked, or why the server refused the call.
	Message string

	kind    error // ErrRemote, ErrUnknownMethod or ErrBusy
	timeout bool
}

var _ net.Error = (*RemoteError)(nil)

func (e *RemoteError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%v: %s", e.kind, e.Method)
	}
	return fmt.Sprintf("%v: %s: %s", e.kind, e.Method, e.Message)
}

// Unwrap returns the sentinel the error wraps, and
// context.DeadlineExceeded for a timeout.
func (e *RemoteError) Unwrap() []error {
	if e.timeout {
		return []error{e.kind, context.DeadlineExceeded}
	}
	return []error{e.kind}
}

// Timeout reports whether the handler's deadline passed: the caller's,
// sent with the call, or the server's ServerConfig.MaxTimeout.
func (e *RemoteError) Timeout() bool { return e.timeout }

// Temporary reports whether the same call may succeed if made again: the
// server was busy or the handler ran out of time.
//
// Deprecated: as net.Error's Temporary; it is here to implement net.Error.
func (e *RemoteError) Temporary() bool { return e.timeout || e.kind == ErrBusy }
