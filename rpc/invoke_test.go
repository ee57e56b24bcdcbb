package rpc_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/rpc"
	"github.com/scuttle-go/scuttle/stream"
)

// TestInvokeAsCall: the same calls made through a Client over a
// connection and through Invoke in process give the same results, of the
// same types, and the same errors: the same sentinels, a *RemoteError
// with the same method, message and Timeout, the same text.
func TestInvokeAsCall(t *testing.T) {
	leak.Check(t)
	srv := testServer(&rpc.ServerConfig{MaxFrameSize: 1024, MaxTimeout: 50 * time.Millisecond})
	srv.Handle("struct", func(context.Context, []any) (any, error) { return struct{ X int }{1}, nil })
	srv.Handle("big", func(context.Context, []any) (any, error) { return strings.Repeat("x", 2000), nil })
	srv.Handle("long", func(context.Context, []any) (any, error) { return nil, errors.New(strings.Repeat("é", 3000)) })
	srv.Handle("wait", func(ctx context.Context, _ []any) (any, error) { <-ctx.Done(); return nil, ctx.Err() })
	srv.Handle("keep", func(_ context.Context, args []any) (any, error) {
		args[0].([]any)[0] = "changed by the handler" // the caller's slice must not see it
		return args[0], nil
	})
	s := newSession(t, connTypes[0], srv, &rpc.ClientConfig{MaxFrameSize: 1024})
	for _, tc := range []struct {
		name   string
		method string
		args   []any
		want   error // nil for a result
	}{
		{"ints become int64", "add", []any{1, int8(2), int64(3)}, nil},
		{"values", "args", []any{[]string{"a"}, map[string]int{"k": 1}, 1.5, []byte("b"), nil, true}, nil},
		{"handler owns its arguments", "keep", []any{[]any{"mine"}}, nil},
		{"handler error", "fail", []any{"no luck"}, rpc.ErrRemote},
		{"handler error cut", "long", nil, rpc.ErrRemote},
		{"panic", "panic", []any{"boom"}, rpc.ErrRemote},
		{"result not a value", "struct", nil, rpc.ErrRemote},
		{"result too large", "big", nil, rpc.ErrRemote},
		{"server's deadline", "wait", nil, context.DeadlineExceeded},
		{"unknown method", "nope", nil, rpc.ErrUnknownMethod},
		{"bad name", "", nil, rpc.ErrUnknownMethod},
		{"argument not a value", "echo", []any{math.NaN()}, rpc.ErrInvalidValue},
		{"arguments too large", "echo", []any{strings.Repeat("x", 2000)}, stream.ErrFrameTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			callArgs, invokeArgs := cloneArgs(tc.args), cloneArgs(tc.args)
			wantV, wantErr := s.cl.Call(t.Context(), tc.method, callArgs...)
			gotV, gotErr := srv.Invoke(t.Context(), tc.method, invokeArgs...)
			if !errors.Is(wantErr, tc.want) || tc.want == nil && wantErr != nil {
				t.Fatalf("Call(%q) = %v, %v; the test wants %v", tc.method, wantV, wantErr, tc.want)
			}
			if diff := cmp.Diff(wantV, gotV); diff != "" {
				t.Errorf("Invoke(%q) result differs from Call's (-call +invoke):\n%s", tc.method, diff)
			}
			if diff := cmp.Diff(callArgs, invokeArgs, cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("Invoke(%q) changed its arguments (-call +invoke):\n%s", tc.method, diff)
			}
			if tc.want == nil {
				if gotErr != nil {
					t.Errorf("Invoke(%q) = %v", tc.method, gotErr)
				}
				return
			}
			if !errors.Is(gotErr, tc.want) {
				t.Errorf("Invoke(%q) = %v, want an error wrapping %v", tc.method, gotErr, tc.want)
			}
			if gotErr == nil || wantErr.Error() != gotErr.Error() {
				t.Errorf("Invoke(%q) error %q, Call's %q", tc.method, gotErr, wantErr)
			}
			var want, got *rpc.RemoteError
			if errors.As(wantErr, &want) != errors.As(gotErr, &got) {
				t.Fatalf("Invoke(%q) = %#v, Call = %#v: one is a *RemoteError, the other not", tc.method, gotErr, wantErr)
			}
			if want != nil && (want.Method != got.Method || want.Message != got.Message || want.Timeout() != got.Timeout()) {
				t.Errorf("Invoke(%q): %+v (timeout %v), Call: %+v (timeout %v)", tc.method, got, got.Timeout(), want, want.Timeout())
			}
		})
	}
}

func cloneArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		if s, ok := a.([]any); ok {
			a = append([]any(nil), s...)
		}
		out[i] = a
	}
	return out
}

// TestInvokeContext: a cancelled Invoke returns ctx.Err() at once and
// cancels the handler's context; a deadline reaches the handler.
func TestInvokeContext(t *testing.T) {
	leak.Check(t)
	srv := rpc.NewServer(nil)
	b := newBlocker()
	srv.Handle("block", b.handle)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := srv.Invoke(ctx, "block")
		done <- err
	}()
	b.waitStarted(t, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Invoke = %v, want context.Canceled", err)
	}
	if info := b.waitEnded(t); !errors.Is(info.err, context.Canceled) {
		t.Errorf("the handler's context ended with %v, want context.Canceled", info.err)
	}

	dl := time.Now().Add(30 * time.Second) // within MaxTimeout
	ctx, cancel = context.WithDeadline(t.Context(), dl)
	defer cancel()
	go func() {
		_, err := srv.Invoke(ctx, "block")
		done <- err
	}()
	b.waitStarted(t, 1)
	cancel()
	<-done
	if info := b.waitEnded(t); !info.hasDeadline || !info.deadline.Equal(dl) {
		t.Errorf("the handler's deadline is %v (%v), want the caller's %v", info.deadline, info.hasDeadline, dl)
	}
}
