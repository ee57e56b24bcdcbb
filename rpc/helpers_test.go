package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"testing/iotest"
	"time"

	"github.com/scuttle-go/scuttle/rpc"
)

// timeout bounds every wait in the tests: passing it fails the test. No
// test asserts how long anything takes.
const timeout = 10 * time.Second

// connType makes a connected pair of connections: the client's end and
// the server's.
type connType struct {
	name string
	pair func(t testing.TB) (client, server net.Conn)
}

// connTypes are the transports every end-to-end test runs over: net.Pipe,
// which buffers nothing; TCP loopback; and pipes whose ends read through
// pathological readers (bufio_test's readMakers).
var connTypes = []connType{
	{"pipe", pipePair},
	{"tcp", tcpPair},
	{"one-byte-reader", wrapReaders(iotest.OneByteReader)},
	{"half-reader", wrapReaders(iotest.HalfReader)},
}

// testConnTypes runs body once per transport, as a named subtest.
func testConnTypes(t *testing.T, body func(t *testing.T, ct connType)) {
	for _, ct := range connTypes {
		t.Run(ct.name, func(t *testing.T) { body(t, ct) })
	}
}

func pipePair(t testing.TB) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		ch <- accepted{c, err}
	}()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		t.Fatalf("accept: %v", r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}

// readerConn reads through r but writes, closes and sets deadlines on the
// connection itself.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// wrapReaders returns a pipe pair whose ends both read through wrap.
func wrapReaders(wrap func(io.Reader) io.Reader) func(t testing.TB) (net.Conn, net.Conn) {
	return func(t testing.TB) (net.Conn, net.Conn) {
		a, b := pipePair(t)
		return &readerConn{Conn: a, r: wrap(a)}, &readerConn{Conn: b, r: wrap(b)}
	}
}

// session is a Server serving one connection, and a Client of it.
type session struct {
	srv      *rpc.Server
	cl       *rpc.Client
	cconn    net.Conn   // the client's end
	sconn    net.Conn   // the server's end
	cancel   func()     // ends Serve
	serveErr chan error // Serve's result
}

// newSession serves srv on a connection of type ct and returns a client
// of it. Everything is closed when the test ends.
func newSession(t *testing.T, ct connType, srv *rpc.Server, ccfg *rpc.ClientConfig) *session {
	t.Helper()
	cc, sc := ct.pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{srv: srv, cconn: cc, sconn: sc, cancel: cancel, serveErr: make(chan error, 1)}
	go func() { s.serveErr <- srv.Serve(ctx, sc) }()
	s.cl = rpc.NewClient(cc, ccfg)
	t.Cleanup(func() {
		s.cl.Close()
		cancel()
		s.wait(t)
	})
	return s
}

// wait returns Serve's result, failing the test if Serve does not return.
func (s *session) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.serveErr:
		s.serveErr <- err // for a later wait
		return err
	case <-time.After(timeout):
		t.Fatalf("Serve did not return within %v; goroutines:\n%s", timeout, stacks())
		return nil
	}
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// blocker is a handler that blocks until its context ends, and tells the
// test when it has started and what ended it.
type blocker struct {
	started chan struct{}  // a value for each call that started
	ended   chan blockInfo // a value for each call that ended
}

type blockInfo struct {
	err         error     // ctx.Err()
	cause       error     // context.Cause(ctx)
	deadline    time.Time // ctx's deadline, if any
	hasDeadline bool
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}, 2048), ended: make(chan blockInfo, 2048)}
}

func (b *blocker) handle(ctx context.Context, args []any) (any, error) {
	b.started <- struct{}{}
	<-ctx.Done()
	dl, ok := ctx.Deadline()
	b.ended <- blockInfo{err: ctx.Err(), cause: context.Cause(ctx), deadline: dl, hasDeadline: ok}
	return nil, ctx.Err()
}

// waitStarted waits for n calls of b to start.
func (b *blocker) waitStarted(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-b.started:
		case <-time.After(timeout):
			t.Fatalf("%d of %d blocking calls started within %v", i, n, timeout)
		}
	}
}

// waitEnded returns what ended the next call of b.
func (b *blocker) waitEnded(t *testing.T) blockInfo {
	t.Helper()
	select {
	case info := <-b.ended:
		return info
	case <-time.After(timeout):
		t.Fatalf("no blocking call ended within %v", timeout)
		return blockInfo{}
	}
}

// testServer returns a server with the handlers the tests share:
//
//	echo(x) -> x
//	args(...) -> the arguments as an array
//	add(a, b, ...) -> the sum of integers
//	fail(msg) -> an error with message msg
//	panic(msg) -> panics with msg
func testServer(cfg *rpc.ServerConfig) *rpc.Server {
	s := rpc.NewServer(cfg)
	s.Handle("echo", func(_ context.Context, args []any) (any, error) {
		if len(args) != 1 {
			return nil, fmt.Errorf("echo takes 1 argument, not %d", len(args))
		}
		return args[0], nil
	})
	s.Handle("args", func(_ context.Context, args []any) (any, error) { return args, nil })
	s.HandleMethod(rpc.Method{Name: "add", Idempotent: true}, func(_ context.Context, args []any) (any, error) {
		var sum int64
		for i, a := range args {
			n, ok := a.(int64)
			if !ok {
				return nil, fmt.Errorf("argument %d is a %T, not an integer", i, a)
			}
			sum += n
		}
		return sum, nil
	})
	s.Handle("fail", func(_ context.Context, args []any) (any, error) {
		return nil, errors.New(args[0].(string))
	})
	s.Handle("panic", func(_ context.Context, args []any) (any, error) {
		panic(args[0])
	})
	return s
}
