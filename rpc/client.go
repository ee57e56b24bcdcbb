package rpc

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Client calls the handlers of the server at the other end of one
// connection. Many calls may run at once: each has its own id, and
// replies come back in any order. Its methods are safe for concurrent
// use.
//
// A Client has a reader and a writer goroutine from NewClient until the
// connection ends: Close ends it, and so does the first error reading or
// writing it, or a frame from the server that breaks the protocol. Calls
// pending then return an error wrapping ErrClosed and the cause.
type Client struct {
	c          *conn
	cfg        ClientConfig
	readerDone chan struct{}

	last    atomic.Uint64 // the last call id taken; ids start at 1
	mu      sync.Mutex
	pending map[uint64]chan reply // calls waiting for their reply, by id
}

// reply is a call's result (code 0) or error as the reader hands it to
// the caller.
type reply struct {
	res  any
	code code
	msg  string
}

// NewClient returns a client of the server at the other end of conn and
// starts its reader and writer goroutines. A nil cfg means the defaults;
// NewClient copies it. Close the client when done: it closes conn, which
// must make a pending Read on conn return (as closing a net.Conn or a
// yamux stream does; one with a SetReadDeadline method is also given a
// deadline in the past).
func NewClient(conn io.ReadWriteCloser, cfg *ClientConfig) *Client {
	o := cfg.withDefaults()
	cl := &Client{
		c:          newConn(conn, o.MaxFrameSize, o.WriteTimeout),
		cfg:        o,
		readerDone: make(chan struct{}),
		pending:    make(map[uint64]chan reply),
	}
	go cl.c.writeLoop()
	go cl.readLoop()
	return cl
}

// Call calls the handler registered as name on the server with args, and
// returns its result, decoded as model.Model decodes values (int64,
// float64, string, []byte, bool, nil, []any, map[string]any). Each
// argument must be a value of the kinds a model.Model holds; if one is
// not, Call returns an error wrapping ErrInvalidValue and sends nothing.
//
// ctx bounds the call. If it has a deadline, the server's handler gets
// the same one (within the server's MaxTimeout); if it is cancelled
// before the reply, Call returns ctx.Err() at once and the server
// cancels the handler's context.
//
// The error is a *RemoteError wrapping ErrRemote if the handler failed
// (with its message), ErrUnknownMethod if the server has no such
// handler, ErrBusy if it had too many calls running; ctx.Err(); an error
// wrapping ErrClosed if the connection ended before the reply (a call
// that had been sent may have run); or an error wrapping ErrInvalidValue
// or stream.ErrFrameTooLarge for arguments that cannot be sent.
func (cl *Client) Call(ctx context.Context, name string, args ...any) (any, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownMethod, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := call{name: name, id: cl.last.Add(1)}
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			return nil, context.DeadlineExceeded
		}
		c.timeout = uint64((d + time.Millisecond - 1) / time.Millisecond) // rounded up
		c.hasTimeout = true
	}
	f, err := cl.c.newFrame(kindCall, callBody(c, args))
	if err != nil {
		return nil, err
	}

	ch := make(chan reply, 1)
	cl.mu.Lock()
	cl.pending[c.id] = ch
	cl.mu.Unlock()
	if !cl.c.send(f, ctx.Done()) {
		cl.forget(c.id)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, cl.c.closedErr()
	}
	select {
	case r := <-ch:
		return r.result(name)
	case <-ctx.Done():
		if !cl.forget(c.id) {
			return (<-ch).result(name) // the reply came first
		}
		if ctx.Err() == context.Canceled {
			// At a deadline the server's own ends the handler.
			cl.cancel(c.id)
		}
		return nil, ctx.Err()
	case <-cl.c.done:
		select {
		case r := <-ch: // the reply came first
			return r.result(name)
		default:
		}
		cl.forget(c.id)
		return nil, cl.c.closedErr()
	}
}

func (r reply) result(name string) (any, error) {
	if r.code == 0 {
		return r.res, nil
	}
	return nil, remoteError(name, r.code, r.msg)
}

func remoteError(name string, c code, msg string) *RemoteError {
	e := &RemoteError{Method: name, Message: msg, kind: ErrRemote}
	switch c {
	case codeUnknown:
		e.kind = ErrUnknownMethod
	case codeBusy:
		e.kind = ErrBusy
	case codeTimeout:
		e.timeout = true
	}
	return e
}

// forget removes a pending call and reports whether it was pending; false
// means the reader has taken it, and its reply is in its channel.
func (cl *Client) forget(id uint64) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	_, ok := cl.pending[id]
	delete(cl.pending, id)
	return ok
}

// cancel sends a cancel frame for call id, after the call's frame. It does
// not wait: if the writer is backed up, a goroutine waits for it, until
// the frame is queued or the connection ends.
func (cl *Client) cancel(id uint64) {
	f, _ := cl.c.newFrame(kindCancel, func(b []byte) ([]byte, error) {
		return appendCancel(b, id), nil
	})
	select {
	case cl.c.out <- f:
	default:
		go cl.c.send(f, nil)
	}
}

// Close ends the connection: it closes it, makes pending calls return an
// error wrapping ErrClosed, and waits for the reader and writer
// goroutines to end. It returns nil; later calls do nothing.
func (cl *Client) Close() error {
	cl.c.fail(ErrClosed)
	<-cl.readerDone
	<-cl.c.writerDone
	return nil
}

// Done returns a channel that is closed when the connection has ended.
func (cl *Client) Done() <-chan struct{} { return cl.c.done }

// Err returns nil while the connection runs, and then why it ended: an
// error wrapping ErrClosed, and the cause if there was one: an error of
// the connection, or what the server did wrong (ErrMalformed,
// ErrProtocol, ...). ErrClosed alone means Close was called, or the
// server closed the connection between frames.
func (cl *Client) Err() error {
	select {
	case <-cl.c.done:
		return cl.c.closedErr()
	default:
		return nil
	}
}

// clientHandlers dispatch the frames a server sends, by kind.
var clientHandlers = [numKinds]func(*Client, []byte) error{
	kindResult - kindFirst: (*Client).onResult,
	kindError - kindFirst:  (*Client).onError,
}

func (cl *Client) readLoop() {
	defer close(cl.readerDone)
	for {
		k, body, err := cl.c.readFrame()
		if err == nil {
			switch {
			case k < kindFirst || k > kindLast || clientHandlers[k-kindFirst] == nil:
				err = unknownKind(k, "a server")
			default:
				err = clientHandlers[k-kindFirst](cl, body)
			}
		} else {
			err = readError(err)
		}
		if err != nil {
			cl.c.fail(err)
			return
		}
	}
}

// take removes call id from the pending calls and returns its channel, or
// nil if the caller has given up on it. An id never used is an error.
func (cl *Client) take(id uint64) (chan reply, error) {
	if id > cl.last.Load() {
		return nil, fmt.Errorf("%w: a reply to call %d, which was never made", ErrProtocol, id)
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	ch := cl.pending[id]
	delete(cl.pending, id)
	return ch, nil
}

func (cl *Client) onResult(body []byte) error {
	id, v, err := parseResult(body)
	if err != nil {
		return err
	}
	// Decoded before the call is taken: a caller that finds its call
	// taken waits for the reply, which must then come.
	res, err := decodeValue(v)
	if err != nil {
		return malformed(kindResult, fmt.Errorf("result: %w", err))
	}
	ch, err := cl.take(id)
	if ch == nil {
		return err
	}
	ch <- reply{res: res}
	return nil
}

func (cl *Client) onError(body []byte) error {
	id, c, msg, err := parseError(body)
	if err != nil {
		return err
	}
	ch, err := cl.take(id)
	if ch == nil {
		return err
	}
	if c == 0 {
		c = codeRemote
	}
	ch <- reply{code: c, msg: msg}
	return nil
}
