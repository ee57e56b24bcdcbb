package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/rpc"
	"github.com/scuttle-go/scuttle/stream"
)

// TestCallValues sends each kind of value as an argument and gets it back
// decoded as model.Model decodes values.
func TestCallValues(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		leak.Check(t)
		s := newSession(t, ct, testServer(nil), nil)
		for _, tc := range []struct {
			name string
			in   any
			want any
		}{
			{"nil", nil, nil},
			{"true", true, true},
			{"false", false, false},
			{"int", 42, int64(42)},
			{"negative int", -7, int64(-7)},
			{"int64 max", int64(math.MaxInt64), int64(math.MaxInt64)},
			{"int64 min", int64(math.MinInt64), int64(math.MinInt64)},
			{"uint32", uint32(math.MaxUint32), int64(math.MaxUint32)},
			{"uint64 within int64", uint64(1 << 62), int64(1 << 62)},
			{"float", 1.5, 1.5},
			{"float32", float32(0.25), 0.25},
			{"float that is integral", 2.0, 2.0},
			{"string", "hello, 世界", "hello, 世界"},
			{"empty string", "", ""},
			{"bytes", []byte{0, 1, 0xff}, []byte{0, 1, 0xff}},
			{"slice", []any{1, "two", 3.5, nil}, []any{int64(1), "two", 3.5, nil}},
			{"typed slice", []string{"a", "b"}, []any{"a", "b"}},
			{"map", map[string]any{"a": 1, "b": []any{true}}, map[string]any{"a": int64(1), "b": []any{true}}},
			{"typed map", map[string]int{"x": 1}, map[string]any{"x": int64(1)}},
			{"nested", []any{[]any{[]any{map[string]any{"deep": "yes"}}}}, []any{[]any{[]any{map[string]any{"deep": "yes"}}}}},
		} {
			got, err := s.cl.Call(t.Context(), "echo", tc.in)
			if err != nil {
				t.Errorf("echo(%#v): %v", tc.in, err)
				continue
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("echo(%#v) (-want +got):\n%s", tc.in, diff)
			}
		}
	})
}

// TestCallArguments: no arguments, many, and values as deep as a Model's.
func TestCallArguments(t *testing.T) {
	leak.Check(t)
	s := newSession(t, connTypes[0], testServer(nil), nil)
	deep := any("bottom")
	for range 31 { // model.Model's limit: 31 levels of arrays in a value
		deep = []any{deep}
	}
	many := make([]any, 1000)
	for i := range many {
		many[i] = int64(i)
	}
	for _, tc := range []struct {
		name string
		args []any
	}{
		{"none", nil},
		{"one", []any{"x"}},
		{"a thousand", many},
	} {
		got, err := s.cl.Call(t.Context(), "args", tc.args...)
		if err != nil {
			t.Errorf("%s: args(...): %v", tc.name, err)
			continue
		}
		want := tc.args
		if want == nil {
			want = []any{}
		}
		if diff := cmp.Diff(any(want), got); diff != "" {
			t.Errorf("%s: args(...) (-want +got):\n%s", tc.name, diff)
		}
	}
	// As deep as a value may be, as an argument and as a result.
	// (reflect.DeepEqual: cmp.Diff takes exponential time on deep nesting.)
	got, err := s.cl.Call(t.Context(), "echo", deep)
	if err != nil || !reflect.DeepEqual(deep, got) {
		t.Errorf("echo(31 levels deep) = %v, %v; want %v", got, err, deep)
	}
	// One level more is refused before it is sent.
	if _, err := s.cl.Call(t.Context(), "echo", []any{deep}); !errors.Is(err, rpc.ErrInvalidValue) {
		t.Errorf("echo(32 levels deep) = %v, want ErrInvalidValue", err)
	}
}

// TestConcurrentCalls makes 1,000 calls at once on one connection; each
// gets its own answer.
func TestConcurrentCalls(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		leak.Check(t)
		s := newSession(t, ct, testServer(nil), nil)
		const n = 1000
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				got, err := s.cl.Call(t.Context(), "add", i, 1000*i)
				switch {
				case err != nil:
					errs <- fmt.Errorf("add(%d, %d): %w", i, 1000*i, err)
				case got != int64(1001*i):
					errs <- fmt.Errorf("add(%d, %d) = %v, want %d", i, 1000*i, got, 1001*i)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

// TestCancelReachesHandler: cancelling the caller's context cancels the
// handler's, across the wire, and the call returns context.Canceled.
func TestCancelReachesHandler(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		leak.Check(t)
		srv := testServer(nil)
		b := newBlocker()
		srv.Handle("block", b.handle)
		s := newSession(t, ct, srv, nil)

		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := s.cl.Call(ctx, "block")
			errc <- err
		}()
		b.waitStarted(t, 1)
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Call after cancel = %v, want context.Canceled", err)
		}
		info := b.waitEnded(t)
		if !errors.Is(info.err, context.Canceled) {
			t.Errorf("the handler's ctx.Err() = %v, want context.Canceled", info.err)
		}
		if info.cause == nil || !strings.Contains(info.cause.Error(), "cancelled") {
			t.Errorf("the handler's context.Cause = %v, want the caller's cancellation", info.cause)
		}
		// The connection goes on.
		if got, err := s.cl.Call(t.Context(), "echo", "after"); err != nil || got != "after" {
			t.Errorf("echo after a cancelled call = %v, %v", got, err)
		}
	})
}

// TestDeadlineReachesHandler: the caller's deadline is the handler's; a
// handler that blocks past it is cancelled, and the caller gets
// context.DeadlineExceeded.
func TestDeadlineReachesHandler(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		leak.Check(t)
		srv := rpc.NewServer(nil)
		b := newBlocker()
		srv.Handle("block", b.handle)
		s := newSession(t, ct, srv, nil)

		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
		defer cancel()
		_, err := s.cl.Call(ctx, "block")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Call past its deadline = %v, want context.DeadlineExceeded", err)
		}
		info := b.waitEnded(t)
		if !info.hasDeadline {
			t.Errorf("the handler's context had no deadline")
		}
		if !errors.Is(info.err, context.DeadlineExceeded) {
			t.Errorf("the handler's ctx.Err() = %v, want context.DeadlineExceeded", info.err)
		}
	})
}

// TestServerMaxTimeout: a call without a deadline gets the server's bound,
// and the caller an error that says the deadline passed.
func TestServerMaxTimeout(t *testing.T) {
	leak.Check(t)
	srv := rpc.NewServer(&rpc.ServerConfig{MaxTimeout: 10 * time.Millisecond})
	b := newBlocker()
	srv.Handle("block", b.handle)
	s := newSession(t, connTypes[0], srv, nil)

	_, err := s.cl.Call(t.Context(), "block")
	var re *rpc.RemoteError
	if !errors.As(err, &re) || !re.Timeout() || !errors.Is(err, rpc.ErrRemote) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Call past the server's MaxTimeout = %v, want a *RemoteError with Timeout() wrapping ErrRemote and context.DeadlineExceeded", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Call past the server's MaxTimeout = %v, not a net.Error timeout", err)
	}
	if info := b.waitEnded(t); !info.hasDeadline {
		t.Errorf("the handler's context had no deadline")
	}
}

// TestRemoteErrors: a handler's error, a panic, an unknown method, a
// result that is not a value, each with its sentinel and message; the
// server serves on after each.
func TestRemoteErrors(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		leak.Check(t)
		srv := testServer(nil)
		srv.Handle("struct", func(context.Context, []any) (any, error) { return struct{ X int }{1}, nil })
		srv.Handle("badutf8", func(context.Context, []any) (any, error) { return nil, errors.New("bad \xff byte") })
		srv.Handle("long", func(context.Context, []any) (any, error) {
			return nil, errors.New(strings.Repeat("é", 3000)) // 6000 bytes
		})
		s := newSession(t, ct, srv, nil)
		for _, tc := range []struct {
			name    string
			method  string
			args    []any
			want    error
			message string // RemoteError.Message, or a prefix ending in "..."
		}{
			{"handler error", "fail", []any{"division by zero"}, rpc.ErrRemote, "division by zero"},
			{"handler error, not UTF-8", "badutf8", nil, rpc.ErrRemote, "bad \uFFFD byte"},
			{"panic", "panic", []any{"oh no"}, rpc.ErrRemote, "panic: oh no"},
			{"unknown method", "nope", nil, rpc.ErrUnknownMethod, ""},
			{"result not a value", "struct", nil, rpc.ErrRemote, "rpc: invalid value: result: struct { X int } cannot be replicated"},
			{"long message", "long", nil, rpc.ErrRemote, strings.Repeat("é", (rpc.MaxMessageLen-3)/2) + "..."},
		} {
			_, err := s.cl.Call(t.Context(), tc.method, tc.args...)
			var re *rpc.RemoteError
			if !errors.Is(err, tc.want) || !errors.As(err, &re) {
				t.Errorf("%s: Call(%q) = %v, want a *RemoteError wrapping %v", tc.name, tc.method, err, tc.want)
				continue
			}
			if re.Method != tc.method || re.Message != tc.message {
				t.Errorf("%s: Call(%q): RemoteError{Method: %q, Message: %q}, want {%q, %q}", tc.name, tc.method, re.Method, re.Message, tc.method, tc.message)
			}
			if len(re.Message) > rpc.MaxMessageLen {
				t.Errorf("%s: a message of %d bytes, over MaxMessageLen", tc.name, len(re.Message))
			}
			if got, err := s.cl.Call(t.Context(), "add", 1, 2); err != nil || got != int64(3) {
				t.Errorf("%s: add(1, 2) after = %v, %v; want 3", tc.name, got, err)
			}
		}
	})
}

// TestErrorText: the text of a call's error names the sentinel, the method
// and the message.
func TestErrorText(t *testing.T) {
	leak.Check(t)
	s := newSession(t, connTypes[0], testServer(nil), nil)
	for _, tc := range []struct {
		method string
		args   []any
		want   string
	}{
		{"fail", []any{"boom"}, "rpc: remote error: fail: boom"},
		{"nope", nil, "rpc: unknown method: nope"},
	} {
		_, err := s.cl.Call(t.Context(), tc.method, tc.args...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Call(%q) = %v, want %q", tc.method, err, tc.want)
		}
	}
}

// TestBusy: calls past MaxInflight are refused with ErrBusy and run
// nothing; once calls end, calls run again.
func TestBusy(t *testing.T) {
	leak.Check(t)
	srv := rpc.NewServer(&rpc.ServerConfig{MaxInflight: 3})
	b := newBlocker()
	srv.Handle("block", b.handle)
	srv.Handle("ok", func(context.Context, []any) (any, error) { return "ok", nil })
	s := newSession(t, connTypes[0], srv, nil)

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { s.cl.Call(ctx, "block") })
	}
	b.waitStarted(t, 3)
	_, err := s.cl.Call(t.Context(), "ok")
	var re *rpc.RemoteError
	if !errors.Is(err, rpc.ErrBusy) || !errors.As(err, &re) || !re.Temporary() {
		t.Errorf("a fourth call with MaxInflight 3 = %v, want a temporary *RemoteError wrapping ErrBusy", err)
	}
	cancel()
	wg.Wait()
	for range 3 {
		b.waitEnded(t)
	}
	// The cancelled calls end on the server after their callers have
	// returned: retry until their places are free.
	for {
		got, err := s.cl.Call(t.Context(), "ok")
		if errors.Is(err, rpc.ErrBusy) {
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil || got != "ok" {
			t.Errorf("a call once the others ended = %v, %v; want ok", got, err)
		}
		break
	}
}

// TestLocalErrors: what the client refuses before sending anything.
func TestLocalErrors(t *testing.T) {
	leak.Check(t)
	srv := testServer(nil)
	calls := 0
	srv.Handle("count", func(context.Context, []any) (any, error) { calls++; return calls, nil })
	s := newSession(t, connTypes[0], srv, &rpc.ClientConfig{MaxFrameSize: 1024})
	expired, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	cancelled, cancel2 := context.WithCancel(t.Context())
	cancel2()
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		method string
		args   []any
		want   error
	}{
		{"channel argument", t.Context(), "count", []any{make(chan int)}, rpc.ErrInvalidValue},
		{"NaN argument", t.Context(), "count", []any{math.NaN()}, rpc.ErrInvalidValue},
		{"uint64 over int64", t.Context(), "count", []any{uint64(math.MaxUint64)}, rpc.ErrInvalidValue},
		{"int-keyed map", t.Context(), "count", []any{map[int]string{1: "a"}}, rpc.ErrInvalidValue},
		{"nested in a slice", t.Context(), "count", []any{[]any{1, func() {}}}, rpc.ErrInvalidValue},
		{"frame too large", t.Context(), "count", []any{strings.Repeat("x", 2000)}, stream.ErrFrameTooLarge},
		{"empty name", t.Context(), "", nil, rpc.ErrUnknownMethod},
		{"name too long", t.Context(), strings.Repeat("n", rpc.MaxNameLen+1), nil, rpc.ErrUnknownMethod},
		{"name not UTF-8", t.Context(), "\xff", nil, rpc.ErrUnknownMethod},
		{"deadline passed", expired, "count", nil, context.DeadlineExceeded},
		{"cancelled", cancelled, "count", nil, context.Canceled},
	} {
		if _, err := s.cl.Call(tc.ctx, tc.method, tc.args...); !errors.Is(err, tc.want) {
			t.Errorf("%s: Call = %v, want an error wrapping %v", tc.name, err, tc.want)
		}
	}
	if got, err := s.cl.Call(t.Context(), "count"); err != nil || got != int64(1) {
		t.Errorf("count() = %v, %v; want 1: a refused call reached the server", got, err)
	}
}

// TestResultTooLarge: a result larger than the server's frame limit is an
// error for the caller, not the end of the connection.
func TestResultTooLarge(t *testing.T) {
	leak.Check(t)
	srv := testServer(&rpc.ServerConfig{MaxFrameSize: 1024})
	srv.Handle("big", func(context.Context, []any) (any, error) { return strings.Repeat("x", 2000), nil })
	s := newSession(t, connTypes[0], srv, nil)
	_, err := s.cl.Call(t.Context(), "big")
	if !errors.Is(err, rpc.ErrRemote) || !strings.Contains(err.Error(), "frame too large") {
		t.Errorf("a 2000-byte result with a 1024-byte frame limit = %v, want ErrRemote saying the frame is too large", err)
	}
	if got, err := s.cl.Call(t.Context(), "echo", "small"); err != nil || got != "small" {
		t.Errorf("echo after = %v, %v", got, err)
	}
}

// TestConnectionCut: cutting the connection under calls in flight makes
// every pending call return an error wrapping ErrClosed, Serve return and
// the handlers' contexts end; no goroutine is left.
func TestConnectionCut(t *testing.T) {
	for _, side := range []string{"client side", "server side"} {
		testConnTypes(t, func(t *testing.T, ct connType) {
			t.Run(side, func(t *testing.T) {
				leak.Check(t)
				srv := rpc.NewServer(nil)
				b := newBlocker()
				srv.Handle("block", b.handle)
				s := newSession(t, ct, srv, nil)

				const n = 10
				errc := make(chan error, n)
				for range n {
					go func() {
						_, err := s.cl.Call(t.Context(), "block")
						errc <- err
					}()
				}
				b.waitStarted(t, n)
				if side == "client side" {
					s.cconn.Close()
				} else {
					s.sconn.Close()
				}
				for range n {
					select {
					case err := <-errc:
						if !errors.Is(err, rpc.ErrClosed) {
							t.Errorf("a call when the connection was cut = %v, want an error wrapping ErrClosed", err)
						}
					case <-time.After(timeout):
						t.Fatalf("a pending call did not return within %v of the cut", timeout)
					}
				}
				for range n {
					if info := b.waitEnded(t); !errors.Is(info.err, context.Canceled) {
						t.Errorf("a handler's ctx.Err() after the cut = %v, want context.Canceled", info.err)
					}
				}
				s.wait(t)
				if err := s.cl.Err(); !errors.Is(err, rpc.ErrClosed) {
					t.Errorf("Err after the cut = %v, want an error wrapping ErrClosed", err)
				}
				if _, err := s.cl.Call(t.Context(), "block"); !errors.Is(err, rpc.ErrClosed) {
					t.Errorf("a call after the cut = %v, want an error wrapping ErrClosed", err)
				}
			})
		})
	}
}

// TestClientClose: Close makes pending calls return ErrClosed, and the
// server sees a clean end.
func TestClientClose(t *testing.T) {
	testConnTypes(t, func(t *testing.T, ct connType) {
		leak.Check(t)
		srv := rpc.NewServer(nil)
		b := newBlocker()
		srv.Handle("block", b.handle)
		s := newSession(t, ct, srv, nil)
		errc := make(chan error, 1)
		go func() {
			_, err := s.cl.Call(t.Context(), "block")
			errc <- err
		}()
		b.waitStarted(t, 1)
		if err := s.cl.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
		if err := <-errc; !errors.Is(err, rpc.ErrClosed) {
			t.Errorf("a pending call at Close = %v, want ErrClosed", err)
		}
		if err := s.wait(t); err != nil {
			t.Errorf("Serve after the client's Close = %v, want nil", err)
		}
		b.waitEnded(t)
		if err := s.cl.Close(); err != nil {
			t.Errorf("a second Close = %v", err)
		}
		select {
		case <-s.cl.Done():
		default:
			t.Errorf("Done not closed after Close")
		}
	})
}

// TestServeContext: Serve returns nil when its context ends, and the
// client's pending calls get ErrClosed.
func TestServeContext(t *testing.T) {
	leak.Check(t)
	srv := rpc.NewServer(nil)
	b := newBlocker()
	srv.Handle("block", b.handle)
	s := newSession(t, connTypes[1], srv, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := s.cl.Call(t.Context(), "block")
		errc <- err
	}()
	b.waitStarted(t, 1)
	s.cancel()
	if err := s.wait(t); err != nil {
		t.Errorf("Serve after its context ended = %v, want nil", err)
	}
	if err := <-errc; !errors.Is(err, rpc.ErrClosed) {
		t.Errorf("a pending call = %v, want ErrClosed", err)
	}
	b.waitEnded(t)
}

// TestOneServerManyClients serves several connections at once with one
// Server.
func TestOneServerManyClients(t *testing.T) {
	leak.Check(t)
	srv := testServer(nil)
	var sessions []*session
	for range 5 {
		sessions = append(sessions, newSession(t, connTypes[1], srv, nil))
	}
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() {
			for j := range 50 {
				if got, err := s.cl.Call(t.Context(), "add", i, j); err != nil || got != int64(i+j) {
					t.Errorf("client %d: add(%d, %d) = %v, %v", i, i, j, got, err)
				}
			}
		})
	}
	wg.Wait()
}

// TestRegistry: Handle replaces, Remove unregisters, Methods lists.
func TestRegistry(t *testing.T) {
	leak.Check(t)
	srv := rpc.NewServer(nil)
	srv.Handle("b", func(context.Context, []any) (any, error) { return "first", nil })
	srv.HandleMethod(rpc.Method{Name: "a", Idempotent: true}, func(context.Context, []any) (any, error) { return "a", nil })
	srv.Handle("b", func(context.Context, []any) (any, error) { return "second", nil })
	want := []rpc.Method{{Name: "a", Idempotent: true}, {Name: "b"}}
	if diff := cmp.Diff(want, srv.Methods()); diff != "" {
		t.Errorf("Methods (-want +got):\n%s", diff)
	}
	s := newSession(t, connTypes[0], srv, nil)
	if got, err := s.cl.Call(t.Context(), "b"); err != nil || got != "second" {
		t.Errorf("b() after replacing = %v, %v; want second", got, err)
	}
	srv.Remove("b")
	if _, err := s.cl.Call(t.Context(), "b"); !errors.Is(err, rpc.ErrUnknownMethod) {
		t.Errorf("b() after Remove = %v, want ErrUnknownMethod", err)
	}
}

// TestHandlePanics: a name a client could not call, or a nil handler, is a
// programming error.
func TestHandlePanics(t *testing.T) {
	ok := func(context.Context, []any) (any, error) { return nil, nil }
	for _, tc := range []struct {
		name   string
		method string
		fn     rpc.Handler
	}{
		{"empty name", "", ok},
		{"name too long", strings.Repeat("n", rpc.MaxNameLen+1), ok},
		{"name not UTF-8", "\xfe", ok},
		{"nil handler", "x", nil},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: Handle did not panic", tc.name)
				}
			}()
			rpc.NewServer(nil).Handle(tc.method, tc.fn)
		}()
	}
	rpc.NewServer(nil).Handle(strings.Repeat("n", rpc.MaxNameLen), ok) // the longest name
}
