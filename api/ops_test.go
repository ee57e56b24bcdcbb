package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/scuttle-go/scuttle/node"
)

// opsNode is a fakeNode that is a Readier and a ForceLeaver.
type opsNode struct {
	*fakeNode
	mu     sync.Mutex
	ready  error
	forced []string
}

func (o *opsNode) Ready() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ready
}

func (o *opsNode) ForceLeave(id string) error {
	switch id {
	case "self", "peer":
		return fmt.Errorf("%w: %q", node.ErrMemberAlive, id)
	case "gone":
		o.mu.Lock()
		o.forced = append(o.forced, id)
		o.mu.Unlock()
		return nil
	}
	return fmt.Errorf("%w: %q", node.ErrUnknownMember, id)
}

func TestProbes(t *testing.T) {
	o := &opsNode{fakeNode: newFakeNode(t), ready: errors.New("node: not ready: joining [x]")}
	s, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantOK(t, doString(t, s, "GET", "/healthz", ""), "healthz")
	r := doString(t, s, "GET", "/readyz", "")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.body, "joining") {
		t.Errorf("readyz before ready: %d %s, want 503 saying why", r.code, r.body)
	}
	o.mu.Lock()
	o.ready = nil
	o.mu.Unlock()
	r = doString(t, s, "GET", "/readyz", "")
	wantOK(t, r, "readyz when ready")
	if got := decode[probeBody](t, r); got.Status != "ok" {
		t.Errorf("readyz body %+v", got)
	}
	// A Node that is no Readier is ready.
	_, plain := newServer(t, nil)
	wantOK(t, doString(t, plain, "GET", "/readyz", ""), "readyz of a plain Node")
}

func TestUnauthenticatedRoutesAreRoutes(t *testing.T) {
	_, s := newServer(t, nil)
	for _, p := range UnauthenticatedRoutes {
		method, path, _ := strings.Cut(p, " ")
		req, _ := http.NewRequest(method, path, nil)
		if _, pattern := s.mux.Handler(req); pattern != p {
			t.Errorf("UnauthenticatedRoutes names %q, the mux routes %s %s to %q", p, method, path, pattern)
		}
		if !Unauthenticated(p) {
			t.Errorf("Unauthenticated(%q) = false", p)
		}
	}
	for _, p := range []string{"GET /v1/status", "GET /metrics", "GET /v1/models/{name}"} {
		if Unauthenticated(p) {
			t.Errorf("Unauthenticated(%q) = true", p)
		}
	}
}

func TestForceLeave(t *testing.T) {
	o := &opsNode{fakeNode: newFakeNode(t)}
	s, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range []struct {
		id   string
		code int
	}{
		{"gone", http.StatusOK},
		{"peer", http.StatusConflict},
		{"nobody", http.StatusNotFound},
		{"_bad", http.StatusBadRequest},
	} {
		t.Run(tc.id, func(t *testing.T) {
			r := doString(t, s, "POST", "/v1/members/"+tc.id+"/force-leave", "")
			if r.code != tc.code {
				t.Errorf("force-leave %s: %d %s, want %d", tc.id, r.code, r.body, tc.code)
			}
		})
	}
	if len(o.forced) != 1 || o.forced[0] != "gone" {
		t.Errorf("forced %v, want [gone]", o.forced)
	}
	_, plain := newServer(t, nil)
	if r := doString(t, plain, "POST", "/v1/members/gone/force-leave", ""); r.code != http.StatusNotImplemented {
		t.Errorf("force-leave on a Node without it: %d, want 501", r.code)
	}
}
