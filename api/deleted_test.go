package api

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/node"
)

// clusterTimeout bounds what waits on replication between two nodes.
const clusterTimeout = 30 * time.Second

// twoNodes starts two joined nodes, each with a Server, and returns them
// with the Servers' test HTTP servers.
func twoNodes(t *testing.T) (n1, n2 *node.Node, s1, s2 *Server, h1, h2 *httptest.Server) {
	t.Helper()
	start := func(id string, join ...string) (*node.Node, *Server, *httptest.Server) {
		n, err := node.New(&node.Config{ID: id, BindAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Join: join})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		s, err := New(n, nil)
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(s)
		t.Cleanup(func() { s.Close(); hs.Close() })
		return n, s, hs
	}
	n1, s1, h1 = start("n1")
	n2, s2, h2 = start("n2", n1.GossipAddr())
	return n1, n2, s1, s2, h1, h2
}

// waitHeld waits until n holds the document called name, on its
// DocumentsChanged.
func waitHeld(t *testing.T, n *node.Node, name string) {
	t.Helper()
	deadline := time.After(clusterTimeout)
	for {
		changed := n.DocumentsChanged()
		if _, ok := n.DocumentType(name); ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s does not hold %q after %v", n.ID(), name, clusterTimeout)
		}
	}
}

// wantDeleted reads the next event of r: the final "error" of a deleted
// document.
func wantDeleted(t *testing.T, r *sseReader, what string) {
	t.Helper()
	ev, ok := r.next()
	if !ok || ev.Type != "error" || ev.Data["deleted"] != true || !strings.Contains(fmt.Sprint(ev.Data["error"]), "document deleted") {
		t.Errorf("%s: %+v %v, want an error event with deleted true", what, ev, ok)
	}
	if ev, ok := r.next(); ok {
		t.Errorf("%s: %+v after the deleted event, want the end of the stream", what, ev)
	}
}

// TestWatchDeleted: the watches of a model, an emitter and a JSON
// document, and the replicate WebSocket of a model, end when their
// document is deleted, on the node that deleted it and on a peer that
// hears of it through the catalog; a watch then waiting for the name sees
// the new generation, from its start, without the old data.
func TestWatchDeleted(t *testing.T) {
	_, n2, s1, s2, h1, h2 := twoNodes(t)
	wantOK(t, doString(t, s1, "PUT", "/v1/models/m/keys/old", `1`), "PUT m")
	wantOK(t, doString(t, s1, "POST", "/v1/events/e", `{"event": "x"}`), "emit e")
	wantOK(t, doString(t, s1, "PATCH", "/v1/docs/d", `{"$set": {"a": 1}}`), "PATCH d")
	waitHeld(t, n2, "m")
	m2, err := n2.Model("m")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(clusterTimeout)
	for _, ok := m2.Get("old"); !ok; _, ok = m2.Get("old") { // before n2's watch starts, or it sees it
		if time.Now().After(deadline) {
			t.Fatalf("n2's m has no key old after %v", clusterTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}

	local := map[string]*sseReader{}
	for _, p := range []string{"/v1/models/m/watch", "/v1/events/e/watch", "/v1/docs/d/watch"} {
		r, cancel := openWatch(t, h1.URL+p)
		defer cancel()
		local[p] = r
	}
	remote, cancel := openWatch(t, h2.URL+"/v1/models/m/watch")
	defer cancel()
	ctx, cancelWS := context.WithTimeout(t.Context(), clusterTimeout)
	defer cancelWS()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h2.URL, "http")+"/v1/models/m/replicate", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	wsEnd := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				wsEnd <- err
				return
			}
		}
	}()
	waitWatchers(t, s1, 3)
	waitWatchers(t, s2, 2)

	for _, name := range []string{"m", "e", "d"} {
		wantOK(t, doString(t, s1, "DELETE", "/v1/documents/"+name, ""), "DELETE "+name)
	}
	for p, r := range local {
		wantDeleted(t, r, "n1 "+p)
	}
	wantDeleted(t, remote, "n2 /v1/models/m/watch")
	err = <-wsEnd
	if websocket.CloseStatus(err) != StatusDocumentDeleted {
		t.Errorf("the replicate WebSocket ended with %v, want close status %d", err, StatusDocumentDeleted)
	}

	// A watch waiting for the deleted name sees it created again on n2.
	// openWatch returns with the headers, which a watch of a missing
	// document sends before it waits.
	waiting, cancel := openWatch(t, h1.URL+"/v1/models/m/watch")
	defer cancel()
	wantOK(t, doString(t, s2, "PUT", "/v1/models/m/keys/new", `2`), "PUT m again")
	if diff := cmp.Diff([]string{"change new 2"}, nextN(t, waiting, 1)); diff != "" {
		t.Errorf("the waiting watch (-want +got):\n%s", diff)
	}
}
