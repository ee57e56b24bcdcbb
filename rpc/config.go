package rpc

import (
	"log/slog"
	"time"
)

// Defaults of ServerConfig and ClientConfig.
const (
	// DefaultMaxFrameSize is the default limit on a frame's body, 1 MiB.
	DefaultMaxFrameSize = 1 << 20
	// DefaultMaxInflight is the default number of calls a server runs at
	// once on one connection.
	DefaultMaxInflight = 1024
	// DefaultMaxTimeout is the default bound on a handler's run.
	DefaultMaxTimeout = time.Minute
	// DefaultWriteTimeout is the default bound on one write to the
	// connection.
	DefaultWriteTimeout = 10 * time.Second
	// minFrameSize is the least MaxFrameSize taken: room for an error
	// frame with a short message.
	minFrameSize = 256
)

// ServerConfig configures a Server. A nil *ServerConfig means the
// defaults; NewServer copies it, and reads a zero field as its default.
type ServerConfig struct {
	// MaxFrameSize bounds a frame's body in bytes, read or written. A
	// larger incoming frame ends the connection with
	// stream.ErrFrameTooLarge before its body is read; a result that
	// encodes larger is answered with an error. 0 means
	// DefaultMaxFrameSize (1 MiB); values under 256 are taken as 256. The
	// clients' limit should be the same: a client refuses a larger result.
	MaxFrameSize int
	// MaxInflight bounds the calls running at once on one connection,
	// counted from a call's arrival until its reply is queued for
	// sending: a handler that ignores its context's cancellation holds
	// its place until it returns. A call past the bound is answered at
	// once with an error wrapping ErrBusy, without running. 0 means
	// DefaultMaxInflight (1024). Each running call costs a goroutine and
	// its arguments.
	MaxInflight int
	// MaxTimeout bounds how long a handler runs: its context's deadline
	// is the caller's (sent with the call), or MaxTimeout after the call
	// arrived, whichever comes first. 0 means DefaultMaxTimeout (1
	// minute); a negative value means no bound but the caller's. A
	// handler must watch its context for the bound to take effect.
	MaxTimeout time.Duration
	// WriteTimeout bounds one write of replies to the connection, for a
	// connection with a SetWriteDeadline method (a net.Conn, a yamux
	// stream): a client that stops reading ends the connection with the
	// connection's timeout error once it passes. (The deadline is moved on
	// once a tenth of it has passed, so a write gets between nine tenths
	// and all of it.) 0 means DefaultWriteTimeout (10 s); negative means
	// none.
	WriteTimeout time.Duration
	// Logger, if not nil, receives the panics that handlers raise, with
	// their stacks. nil means they are not logged (the caller still gets
	// an error).
	Logger *slog.Logger
}

// withDefaults returns a copy of c with every zero field set to its
// default.
func (c *ServerConfig) withDefaults() ServerConfig {
	var o ServerConfig
	if c != nil {
		o = *c
	}
	o.MaxFrameSize = frameSize(o.MaxFrameSize)
	if o.MaxInflight <= 0 {
		o.MaxInflight = DefaultMaxInflight
	}
	if o.MaxTimeout == 0 {
		o.MaxTimeout = DefaultMaxTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	return o
}

// ClientConfig configures a Client. A nil *ClientConfig means the
// defaults; NewClient copies it, and reads a zero field as its default.
type ClientConfig struct {
	// MaxFrameSize bounds a frame's body in bytes, read or written: a call
	// whose arguments encode larger fails with stream.ErrFrameTooLarge
	// before anything is sent, and a larger incoming frame ends the
	// connection. 0 means DefaultMaxFrameSize (1 MiB); values under 256
	// are taken as 256. It should match the server's.
	MaxFrameSize int
	// WriteTimeout bounds one write of calls to the connection, for a
	// connection with a SetWriteDeadline method: a server that stops
	// reading ends the connection with the connection's timeout error.
	// 0 means DefaultWriteTimeout (10 s); negative means none.
	WriteTimeout time.Duration
}

func (c *ClientConfig) withDefaults() ClientConfig {
	var o ClientConfig
	if c != nil {
		o = *c
	}
	o.MaxFrameSize = frameSize(o.MaxFrameSize)
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	return o
}

func frameSize(n int) int {
	if n <= 0 {
		return DefaultMaxFrameSize
	}
	return max(n, minFrameSize)
}
