package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// Handler runs one call: args are the caller's arguments, decoded as
// model.Model decodes values (see the package doc), and the handler's to
// keep. ctx is cancelled when the caller cancels its context, when the
// deadline passes (the caller's, or the server's MaxTimeout), and when the
// connection ends; a handler that may run long should watch it. The
// result must be a value of the kinds a model.Model holds, or nil.
//
// Handlers run concurrently, each call in its own goroutine. A handler
// that panics is recovered: the caller gets an error wrapping ErrRemote.
type Handler func(ctx context.Context, args []any) (result any, err error)

// Method describes a handler for Server.HandleMethod and Server.Methods.
type Method struct {
	// Name is what callers call: 1 to MaxNameLen bytes of UTF-8.
	Name string
	// Idempotent says that running the call twice does no more than
	// running it once, so that a caller may retry it elsewhere when the
	// server dies before answering. The server only records it, for
	// Methods.
	Idempotent bool
}

// Server runs the handlers registered with Handle for the calls of the
// clients on the connections it serves. Its methods are safe for
// concurrent use, and a handler may be registered or removed while
// connections are served: a call runs the handler registered when it
// arrives.
type Server struct {
	cfg ServerConfig

	mu      sync.RWMutex
	methods map[string]method
}

type method struct {
	Method
	fn Handler
}

// NewServer returns a server with no handlers. A nil cfg means the
// defaults; NewServer copies it.
func NewServer(cfg *ServerConfig) *Server {
	return &Server{cfg: cfg.withDefaults(), methods: make(map[string]method)}
}

// Handle registers fn under name, replacing any handler of that name. It
// panics if name is empty, longer than MaxNameLen or not UTF-8, or fn is
// nil, as net/http's Handle does for a bad pattern.
func (s *Server) Handle(name string, fn Handler) {
	s.HandleMethod(Method{Name: name}, fn)
}

// HandleMethod registers fn under m.Name, with m's options, replacing any
// handler of that name. It panics as Handle does.
func (s *Server) HandleMethod(m Method, fn Handler) {
	if err := checkName(m.Name); err != nil {
		panic("rpc: Handle: " + err.Error())
	}
	if fn == nil {
		panic("rpc: Handle: nil handler for " + m.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.methods[m.Name] = method{Method: m, fn: fn}
}

// Remove unregisters the handler of name; calls that arrive later get
// ErrUnknownMethod. Calls already running go on.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.methods, name)
}

// Methods returns the registered methods, sorted by name.
func (s *Server) Methods() []Method {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Method, 0, len(s.methods))
	for _, name := range slices.Sorted(maps.Keys(s.methods)) {
		out = append(out, s.methods[name].Method)
	}
	return out
}

func (s *Server) lookup(name string) (method, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok := s.methods[name]
	return m, ok
}

// errServeDone ends a connection whose Serve context ended.
var errServeDone = fmt.Errorf("%w: the server's context ended", ErrClosed)

// Serve serves the calls of the client at the other end of conn until ctx
// ends, the client closes the connection, or an error occurs; it returns
// nil in the first two cases. A client that breaks the protocol (a frame
// too large, malformed, of an unknown kind, a duplicate call id) ends the
// connection with an error wrapping the cause: ErrMalformed,
// ErrUnknownKind, ErrProtocol, stream.ErrFrameTooLarge,
// stream.ErrTruncated, or the connection's own error.
//
// Serve reads frames in its own goroutine and writes them in another,
// and runs each call in a goroutine of its own. When it returns it has
// closed conn, cancelled the contexts of the calls still running, and
// stopped the writer; it does not wait for the handlers to return (their
// results are dropped), so that one that ignores its context cannot hold
// it. Serve may be called for many connections at once.
func (s *Server) Serve(ctx context.Context, conn io.ReadWriteCloser) error {
	c := newConn(conn, s.cfg.MaxFrameSize, s.cfg.WriteTimeout)
	// The handlers' contexts have ctx's values, and end once the
	// connection has: a handler that ctx's end cancelled would otherwise
	// race its reply against the close.
	base, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(ErrClosed)
	sc := &serverConn{s: s, c: c, base: base, calls: make(map[uint64]context.CancelCauseFunc)}
	stop := context.AfterFunc(ctx, func() { c.fail(errServeDone) })
	defer stop()
	go c.writeLoop()

	c.fail(sc.readLoop())
	cancel(ErrClosed)
	<-c.writerDone
	if c.err == errServeDone || errors.Is(c.err, io.EOF) {
		return nil
	}
	return c.err
}

// serverConn is a connection Serve serves.
type serverConn struct {
	s    *Server
	c    *conn
	base context.Context // the handlers' contexts derive from it

	mu    sync.Mutex
	calls map[uint64]context.CancelCauseFunc // the calls running, by id
}

// serverHandlers dispatch the frames a client sends, by kind.
var serverHandlers = [numKinds]func(*serverConn, []byte) error{
	kindCall - kindFirst:   (*serverConn).onCall,
	kindCancel - kindFirst: (*serverConn).onCancel,
}

// readLoop reads and dispatches frames until one ends the connection, and
// returns why (io.EOF for a clean end between frames).
func (sc *serverConn) readLoop() error {
	for {
		k, body, err := sc.c.readFrame()
		if err != nil {
			return readError(err)
		}
		if k < kindFirst || k > kindLast || serverHandlers[k-kindFirst] == nil {
			return unknownKind(k, "a client")
		}
		if err := serverHandlers[k-kindFirst](sc, body); err != nil {
			return err
		}
	}
}

func readError(err error) error {
	if err == io.EOF {
		return err
	}
	return fmt.Errorf("rpc: read: %w", err)
}

func unknownKind(k kind, from string) error {
	if k >= kindFirst && k <= kindLast {
		return fmt.Errorf("%w: %s from %s", ErrUnknownKind, k, from)
	}
	return fmt.Errorf("%w: %#x", ErrUnknownKind, byte(k))
}

func (sc *serverConn) onCall(body []byte) error {
	c, err := parseCall(body)
	if err != nil {
		return err
	}
	// Only this goroutine adds calls, so the checks hold until the add
	// below; calls that end meanwhile only make room.
	sc.mu.Lock()
	_, dup := sc.calls[c.id]
	running := len(sc.calls)
	sc.mu.Unlock()
	if dup {
		return fmt.Errorf("%w: call %d has the id of a call still running", ErrProtocol, c.id)
	}
	if running >= sc.s.cfg.MaxInflight {
		sc.refuse(c.id, codeBusy, fmt.Sprintf("%d calls in flight, the limit", running))
		return nil
	}
	m, ok := sc.s.lookup(c.name)
	if !ok {
		sc.refuse(c.id, codeUnknown, "")
		return nil
	}
	args, err := decodeArgs(c.args)
	if err != nil {
		return malformed(kindCall, fmt.Errorf("arguments: %w", err))
	}

	ctx, cancel := context.WithCancelCause(sc.base)
	d := time.Duration(-1)
	if c.hasTimeout {
		d = time.Duration(min(c.timeout, maxTimeoutMillis)) * time.Millisecond
	}
	if limit := sc.s.cfg.MaxTimeout; limit > 0 && (d < 0 || d > limit) {
		d = limit
	}
	stopTimer := context.CancelFunc(func() {})
	if d >= 0 {
		ctx, stopTimer = context.WithTimeout(ctx, d)
	}
	sc.mu.Lock()
	sc.calls[c.id] = cancel
	sc.mu.Unlock()
	go func() {
		defer cancel(nil)
		defer stopTimer()
		sc.run(ctx, c.id, m, args)
	}()
	return nil
}

// errCancelled is the cause of a handler context's cancellation by the
// caller.
var errCancelled = errors.New("rpc: the caller cancelled the call")

func (sc *serverConn) onCancel(body []byte) error {
	id, err := parseCancel(body)
	if err != nil {
		return err
	}
	sc.mu.Lock()
	cancel := sc.calls[id]
	sc.mu.Unlock()
	if cancel != nil { // else the call has ended: its reply is on its way
		cancel(errCancelled)
	}
	return nil
}

// run runs one call's handler and sends its reply.
func (sc *serverConn) run(ctx context.Context, id uint64, m method, args []any) {
	res, err := sc.s.invoke(ctx, m, args)
	var f *frame
	if err == nil {
		f, err = sc.c.newFrame(kindResult, func(b []byte) ([]byte, error) {
			return appendResultValue(b, id, res)
		})
	}
	if err != nil {
		c, msg := sc.s.failure(err)
		f = sc.errorFrame(id, c, msg)
	}
	// The call counts until its reply is queued, so that replies waiting
	// for a client that does not read are bounded by MaxInflight.
	sc.c.send(f, nil)
	sc.mu.Lock()
	delete(sc.calls, id)
	sc.mu.Unlock()
}

// invoke calls the handler, recovering a panic.
func (s *Server) invoke(ctx context.Context, m method, args []any) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			if s.cfg.Logger != nil {
				s.cfg.Logger.Error("rpc: handler panicked", "method", m.Name, "panic", p, "stack", string(debug.Stack()))
			}
			res, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return m.fn(ctx, args)
}

// refuse answers a call that does not run, from the reader: it waits while
// the writer is backed up, which stops reading a client that sends calls
// faster than it reads their replies.
func (sc *serverConn) refuse(id uint64, c code, msg string) {
	sc.c.send(sc.errorFrame(id, c, msg), nil)
}

// errorFrame returns an error frame, its message cut to fit.
func (sc *serverConn) errorFrame(id uint64, c code, msg string) *frame {
	msg = sc.s.message(msg)
	f, err := sc.c.newFrame(kindError, func(b []byte) ([]byte, error) {
		return appendError(b, id, c, msg), nil
	})
	if err != nil {
		panic(err) // unreachable: the message is cut to fit
	}
	return f
}
