package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/node"
	"github.com/scuttle-go/scuttle/rpc"
)

// callerNode is a fakeNode that calls functions: "add" sums int64s,
// "fail" fails, "slow" waits for its context; the rest are unknown.
type callerNode struct {
	*fakeNode
}

func (c callerNode) Call(ctx context.Context, name string, args ...any) (any, error) {
	switch name {
	case "add", "x/add":
		var sum int64
		for _, a := range args {
			i, ok := a.(int64)
			if !ok {
				return nil, fmt.Errorf("%w: %T argument", rpc.ErrInvalidValue, a)
			}
			sum += i
		}
		return sum, nil
	case "fail":
		return nil, fmt.Errorf("node: call %q: %w: no luck", name, rpc.ErrRemote)
	case "gone":
		return nil, fmt.Errorf("node: call %q: %w", name, rpc.ErrClosed)
	case "slow":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("node: call %q: %w", name, rpc.ErrUnknownMethod)
}

func TestCallRoute(t *testing.T) {
	s, err := New(callerNode{newFakeNode(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, tc := range []struct {
		name, path, body string
		code             int
		want             string // in the body
	}{
		{"result", "/v1/rpc/add", "[1, 2, 3]", http.StatusOK, `{"result":6}`},
		{"no arguments", "/v1/rpc/add", "[]", http.StatusOK, `{"result":0}`},
		{"slash in the name", "/v1/rpc/x/add", "[2]", http.StatusOK, `{"result":2}`},
		{"handler error", "/v1/rpc/fail", "[]", http.StatusBadGateway, "no luck"},
		{"member gone", "/v1/rpc/gone", "[]", http.StatusBadGateway, "connection closed"},
		{"unknown", "/v1/rpc/nobody", "[]", http.StatusNotFound, "unknown method"},
		{"bad argument", "/v1/rpc/add", `["x"]`, http.StatusBadRequest, "invalid value"},
		{"bad JSON", "/v1/rpc/add", "[1,", http.StatusBadRequest, "malformed JSON"},
		{"not an array", "/v1/rpc/add", `{"a": 1}`, http.StatusBadRequest, "JSON array"},
		{"empty body", "/v1/rpc/add", "", http.StatusBadRequest, "empty body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := doString(t, s, "POST", tc.path, tc.body)
			if r.code != tc.code || !strings.Contains(r.body, tc.want) {
				t.Fatalf("POST %s %s = %d %s, want %d with %q", tc.path, tc.body, r.code, r.body, tc.code, tc.want)
			}
		})
	}
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		req := httptest.NewRequestWithContext(ctx, "POST", "/v1/rpc/slow", strings.NewReader("[]"))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusGatewayTimeout {
			t.Fatalf("POST /v1/rpc/slow, cancelled = %d %s, want 504", rec.Code, rec.Body)
		}
	})
}

func TestCallRouteWithoutCaller(t *testing.T) {
	_, s := newServer(t, nil)
	if r := doString(t, s, "POST", "/v1/rpc/add", "[]"); r.code != http.StatusNotImplemented {
		t.Fatalf("POST /v1/rpc/add on a Node without Call = %d %s, want 501", r.code, r.body)
	}
}

// TestCallRouteNode calls a real node's function over HTTP.
func TestCallRouteNode(t *testing.T) {
	n, err := node.New(&node.Config{ID: "n1", BindAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	n.Handle("echo", func(ctx context.Context, args []any) (any, error) { return args, nil })
	n.Handle("fail", func(ctx context.Context, args []any) (any, error) { return nil, errors.New("no luck") })
	s, err := New(n, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r := doString(t, s, "POST", "/v1/rpc/echo", `[1, "two", {"three": 3.5}]`)
	wantOK(t, r, "POST /v1/rpc/echo")
	got := decode[map[string]any](t, r)
	want := map[string]any{"result": []any{json.Number("1"), "two", map[string]any{"three": json.Number("3.5")}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("POST /v1/rpc/echo (-want +got):\n%s", diff)
	}
	if r := doString(t, s, "POST", "/v1/rpc/fail", "[]"); r.code != http.StatusBadGateway || !strings.Contains(r.body, "no luck") {
		t.Fatalf("POST /v1/rpc/fail = %d %s, want 502 with the message", r.code, r.body)
	}
	if r := doString(t, s, "POST", "/v1/rpc/nobody", "[]"); r.code != http.StatusNotFound {
		t.Fatalf("POST /v1/rpc/nobody = %d %s, want 404", r.code, r.body)
	}
}

// TestCallRouteCluster calls over n1's API a function that only n2
// serves.
func TestCallRouteCluster(t *testing.T) {
	start := func(id string, join ...string) *node.Node {
		n, err := node.New(&node.Config{ID: id, BindAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Join: join})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	n1 := start("n1")
	n2 := start("n2", n1.GossipAddr())
	n2.Handle("whoami", func(ctx context.Context, args []any) (any, error) { return "n2", nil })
	s, err := New(n1, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// 404 until n1 holds n2's entry of the registry and a link to n2.
	deadline := time.Now().Add(30 * time.Second)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		r := doString(t, s, "POST", "/v1/rpc/whoami", "[]")
		if r.code == http.StatusOK {
			if r.body != "{\"result\":\"n2\"}\n" {
				t.Fatalf("POST /v1/rpc/whoami on n1 = %s, want n2's answer", r.body)
			}
			return
		}
		if r.code != http.StatusNotFound || time.Now().After(deadline) {
			t.Fatalf("POST /v1/rpc/whoami on n1 = %d %s", r.code, r.body)
		}
		time.Sleep(wait)
	}
}
