package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/rpc"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// waitServers waits until n sees want members serving name.
func waitServers(t *testing.T, n *Node, name string, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s sees %d servers of %q", n.ID(), want, name), func() bool {
		return len(n.servers(name)) == want
	})
}

// TestRPCCall: a handler registered on n2 is called from n1 and n3 (over
// their links) and from n2 itself (in process), with the same values; its
// errors, panics and blocking reach the caller as errors and leave the
// node serving, the same errors (*rpc.RemoteError, same text) over a link
// and in process; an unknown method and an unregistered one are
// ErrUnknownMethod.
func TestRPCCall(t *testing.T) {
	var logs syncBuffer
	nodes := cluster(t, []string{"n1", "n2", "n3"}, func(c *Config) {
		if c.ID == "n2" {
			c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testLogWriter(t)), nil))
		}
	})
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	n2.Handle("add", func(ctx context.Context, args []any) (any, error) {
		a, _ := args[0].(int64)
		b, _ := args[1].(int64)
		return []any{a + b, "n2"}, nil
	})
	n2.Handle("fail", func(ctx context.Context, args []any) (any, error) { return nil, errors.New("no luck") })
	n2.Handle("panic", func(ctx context.Context, args []any) (any, error) { panic("boom") })
	n2.Handle("block", func(ctx context.Context, args []any) (any, error) { <-ctx.Done(); return nil, ctx.Err() })
	for _, n := range nodes {
		waitServers(t, n, "add", 1)
	}
	for _, from := range nodes {
		t.Run("from "+from.ID(), func(t *testing.T) {
			got, err := from.Call(t.Context(), "add", 2, 3)
			if err != nil {
				t.Fatalf("Call(add, 2, 3): %v", err)
			}
			if s, ok := got.([]any); !ok || len(s) != 2 || s[0] != int64(5) || s[1] != "n2" {
				t.Fatalf("Call(add, 2, 3) = %#v, want [5 n2]", got)
			}
			// The handler's errors are the same whether n2 serves the
			// call over a link or in process.
			for _, e := range []struct{ method, message string }{{"fail", "no luck"}, {"panic", "panic: boom"}} {
				_, err := from.Call(t.Context(), e.method)
				var re *rpc.RemoteError
				if !errors.Is(err, rpc.ErrRemote) || !errors.As(err, &re) || re.Method != e.method || re.Message != e.message {
					t.Fatalf("Call(%s) = %#v, want a *rpc.RemoteError wrapping ErrRemote with message %q", e.method, err, e.message)
				}
				if want := fmt.Sprintf("node: call %q on n2: rpc: remote error: %s: %s", e.method, e.method, e.message); err.Error() != want {
					t.Errorf("Call(%s) = %q, want %q", e.method, err, want)
				}
			}
			// n2 logs each panic, with its stack.
			if !strings.Contains(logs.String(), "rpc: handler panicked") {
				t.Errorf("n2 did not log the handler's panic:\n%s", logs.String())
			}
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			if _, err := from.Call(ctx, "block"); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Call(block) = %v, want DeadlineExceeded", err)
			}
			if _, err := from.Call(t.Context(), "nobody"); !errors.Is(err, rpc.ErrUnknownMethod) {
				t.Fatalf("Call(nobody) = %v, want ErrUnknownMethod", err)
			}
		})
	}
	if err := n2.Unhandle("add"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{n1, n3} {
		waitServers(t, n, "add", 0)
		if _, err := n.Call(t.Context(), "add", 1, 1); !errors.Is(err, rpc.ErrUnknownMethod) {
			t.Fatalf("%s: Call(add) after Unhandle = %v, want ErrUnknownMethod", n.ID(), err)
		}
	}
	if got := n2.Documents(); len(got) != 0 {
		t.Fatalf("n2.Documents() = %v, want none: the registry is the node's own", got)
	}
}

// TestRPCFailover: n2 and n3 serve the same methods; n1 calls, and the
// member whose handler got the call is closed before answering. The call
// of an idempotent method is answered by the other member; that of a
// non-idempotent one fails with rpc.ErrClosed.
func TestRPCFailover(t *testing.T) {
	for _, tc := range []struct {
		name       string
		idempotent bool
	}{{"idempotent", true}, {"not idempotent", false}} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := cluster(t, []string{"n1", "n2", "n3"}, nil)
			n1 := nodes[0]
			var calls atomic.Int32
			started := make(chan *Node, 1)
			for _, n := range nodes[1:] {
				n.HandleMethod(rpc.Method{Name: "get", Idempotent: tc.idempotent}, func(ctx context.Context, args []any) (any, error) {
					if calls.Add(1) == 1 {
						started <- n
						<-ctx.Done() // the first call never answers
						return nil, ctx.Err()
					}
					return n.ID(), nil
				})
			}
			waitServers(t, n1, "get", 2)
			type result struct {
				v   any
				err error
			}
			done := make(chan result, 1)
			go func() {
				v, err := n1.Call(t.Context(), "get")
				done <- result{v, err}
			}()
			dying := <-started
			dying.Close()
			r := <-done
			if !tc.idempotent {
				if !errors.Is(r.err, rpc.ErrClosed) {
					t.Fatalf("Call(get) = %v, %v; want ErrClosed once %s closed", r.v, r.err, dying.ID())
				}
				return
			}
			other := nodes[1]
			if other == dying {
				other = nodes[2]
			}
			if r.err != nil || r.v != other.ID() {
				t.Fatalf("Call(get) = %v, %v; want %q once %s closed", r.v, r.err, other.ID(), dying.ID())
			}
		})
	}
}

// registryKeys returns n's registry keys of member id, sorted.
func registryKeys(n *Node, id string) []string {
	var keys []string
	for _, k := range n.registryModel().Keys() {
		if _, kid, ok := parseRegistryKey(k); ok && kid == id {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// waitRegistry waits until every node's registry holds want as the keys
// of member id.
func waitRegistry(t *testing.T, id string, want []string, nodes ...*Node) {
	t.Helper()
	for _, n := range nodes {
		waitFor(t, fmt.Sprintf("%s's registry lists %v for %s", n.ID(), want, id), func() bool {
			return slices.Equal(registryKeys(n, id), want)
		})
	}
}

// TestRPCRegistryOwnEntries: a node's own registry entries follow its
// handlers whatever its peers write: an entry a peer deletes is set again,
// one it writes for a name the node does not serve is deleted (once a
// run, so that twins cannot fight), and calls work throughout.
func TestRPCRegistryOwnEntries(t *testing.T) {
	nodes := cluster(t, []string{"a", "b", "c"}, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	c.HandleMethod(rpc.Method{Name: "echo", Idempotent: true}, func(ctx context.Context, args []any) (any, error) { return args[0], nil })
	waitRegistry(t, "c", []string{"echo/c"}, nodes...)

	// a takes c for gone and deletes its entry: c sets it again.
	if err := a.registryModel().Delete("echo/c"); err != nil {
		t.Fatal(err)
	}
	waitRegistry(t, "c", []string{"echo/c"}, nodes...)
	for _, n := range nodes {
		if got, err := n.Call(t.Context(), "echo", "hi"); err != nil || got != "hi" {
			t.Errorf("%s: Call(echo, hi) = %v, %v", n.ID(), got, err)
		}
	}

	// b writes an entry for c as an earlier run of c would have left it:
	// c deletes it, once.
	if err := b.registryModel().Set("old/c", map[string]any{"idempotent": false}); err != nil {
		t.Fatal(err)
	}
	waitRegistry(t, "c", []string{"echo/c"}, nodes...)
	if err := b.registryModel().Set("old/c", map[string]any{"idempotent": false}); err != nil {
		t.Fatal(err)
	}
	waitRegistry(t, "c", []string{"echo/c", "old/c"}, nodes...)
	if _, err := a.Call(t.Context(), "old"); !errors.Is(err, rpc.ErrUnknownMethod) {
		t.Errorf("Call(old), which c lists but does not serve = %v, want ErrUnknownMethod", err)
	}
}

// TestRPCRegistryUnknownMember: entries of a member no node knows are
// never called and are deleted, once, by the live member with the
// smallest id, ReapAfter after it found them.
func TestRPCRegistryUnknownMember(t *testing.T) {
	const reap = time.Second
	nodes := cluster(t, []string{"a", "b", "c"}, func(c *Config) { c.ReapAfter = reap })
	a, b, c := nodes[0], nodes[1], nodes[2]
	var mu sync.Mutex
	var deleters []string
	cancel := b.registryModel().Watch(func(ch model.Change) {
		if ch.Deleted && strings.HasSuffix(ch.Key, "/ghost") {
			mu.Lock()
			deleters = append(deleters, scuttlebutt.ReplicaID(ch.Source))
			mu.Unlock()
		}
	})
	defer cancel()
	written := time.Now()
	for _, k := range []string{"get/ghost", "put/ghost"} {
		if err := c.registryModel().Set(k, map[string]any{"idempotent": true}); err != nil {
			t.Fatal(err)
		}
	}
	waitRegistry(t, "ghost", []string{"get/ghost", "put/ghost"}, b, a)
	if _, err := b.Call(t.Context(), "get"); !errors.Is(err, rpc.ErrUnknownMethod) {
		t.Errorf("Call(get) served only by an unknown member = %v, want ErrUnknownMethod", err)
	}
	waitRegistry(t, "ghost", nil, nodes...)
	if d := time.Since(written); d < reap {
		t.Errorf("the entries went after %v, before ReapAfter (%v)", d, reap)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(deleters, []string{"a", "a"}) {
		t.Errorf("the entries were deleted by %v, want by a, once each", deleters)
	}
}
