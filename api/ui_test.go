package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/stream"
)

func TestUIFiles(t *testing.T) {
	_, s := newServer(t, nil)
	for _, tc := range []struct {
		path, contains, ctype string
	}{
		{"/ui/", "<title>scuttle console</title>", "text/html"},
		{"/ui/app.js", "/v1/status/watch", "javascript"},
		{"/ui/app.css", "prefers-color-scheme: dark", "text/css"},
		{"/ui/replica.html", "vendor/scuttlebutt.js", "text/html"},
		{"/ui/vendor/scuttlebutt.js", "npm scuttlebutt@5.6.15", "javascript"},
	} {
		r := do(t, s, "GET", tc.path, nil)
		if r.code != http.StatusOK || !strings.Contains(r.body, tc.contains) || !strings.Contains(r.header.Get("Content-Type"), tc.ctype) {
			t.Errorf("GET %s: %d %q, body without %q", tc.path, r.code, r.header.Get("Content-Type"), tc.contains)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
		}
	}
	if r := do(t, s, "GET", "/", nil); r.code != http.StatusFound || r.header.Get("Location") != "/ui/" {
		t.Errorf("GET /: %d to %q, want 302 to /ui/", r.code, r.header.Get("Location"))
	}
	if r := do(t, s, "GET", "/ui/nothing.js", nil); r.code != http.StatusNotFound {
		t.Errorf("GET /ui/nothing.js: %d, want 404", r.code)
	}
}

func TestModelWrites(t *testing.T) {
	f, s := newServer(t, nil)
	m, _ := f.Model("m")
	m.Set("a", 1)
	m.Set("b", "x")
	m.Delete("b")
	got := decode[map[string]writtenBody](t, do(t, s, "GET", "/v1/models/m?writes=1", nil))
	src, ts, _ := m.Written("a")
	if len(got) != 1 || got["a"].Source != src || got["a"].Timestamp != float64(ts) || fmt.Sprint(got["a"].Value) != "1" {
		t.Errorf("GET ?writes=1: %+v, want only a = 1 by %s at %v", got, src, ts)
	}
}

func TestStatusWatch(t *testing.T) {
	f, s := newServer(t, &Config{Heartbeat: time.Hour})
	hs := httptest.NewServer(s)
	defer hs.Close()
	m, _ := f.Model("m")
	m.Set("a", 1)
	r, cancel := openWatch(t, hs.URL+"/v1/status/watch")
	defer cancel()
	ev, ok := r.next()
	if !ok || ev.Type != "status" {
		t.Fatalf("first event %+v, %v", ev, ok)
	}
	ds, _ := ev.Data["doc_stats"].(map[string]any)
	if m, _ := ds["m"].(map[string]any); m == nil || m["count"] != 1.0 || m["last_write"] == nil {
		t.Fatalf("doc_stats %v: want m with count 1 and a last_write", ds)
	}
	start := time.Now()
	m.Set("b", 2)
	ev, ok = r.next()
	ds, _ = ev.Data["doc_stats"].(map[string]any)
	if m, _ := ds["m"].(map[string]any); !ok || m["count"] != 2.0 {
		t.Fatalf("after a write, %+v: want a status with count 2", ev)
	}
	if d := time.Since(start); d > StatusInterval+500*time.Millisecond {
		t.Errorf("the change took %s to be sent, over StatusInterval", d)
	}
	s.Close()
	if ev, _ := r.next(); ev.Type != "close" {
		t.Errorf("after Close: %+v, want a close event", ev)
	}
}

// dialReplica opens the replicate WebSocket of model name as a Go client.
func dialReplica(t *testing.T, hs *httptest.Server, name string) (*websocket.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/models/"+name+"/replicate", nil)
	if err != nil {
		if resp != nil {
			return nil, errors.New(resp.Status)
		}
		return nil, err
	}
	return c, nil
}

// TestReplicate runs a Go model over the WebSocket with the JSON-lines
// codec, as the browser's npm scuttlebutt does: both directions, and a
// line over the size limit ends the session with 1009.
func TestReplicate(t *testing.T) {
	f, s := newServer(t, &Config{MaxBodySize: 1 << 10})
	hs := httptest.NewServer(s)
	defer hs.Close()
	c, err := dialReplica(t, hs, "shared")
	if err != nil {
		t.Fatal(err)
	}
	client, _ := model.New("browser", nil)
	client.Set("from-client", "hello")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- stream.NewConn(client, websocket.NetConn(ctx, c, websocket.MessageText), &stream.Options{Codec: stream.JSONLines}).Run(ctx)
	}()
	server, _ := f.Model("shared") // the endpoint created it
	server.Set("from-node", 42)
	waitFor(t, "both replicas hold both keys", func() bool {
		a, _ := server.Get("from-client")
		b, _ := client.Get("from-node")
		return a == "hello" && b != nil
	})
	cancel()
	<-done

	// A line over MaxBodySize plus the margin.
	c, err = dialReplica(t, hs, "shared")
	if err != nil {
		t.Fatal(err)
	}
	big := `[["k","` + strings.Repeat("x", 1<<10+frameMargin) + `"],1795385884149,"B"]` + "\n"
	c.Write(t.Context(), websocket.MessageText, []byte(`{"id":"B","clock":{}}`+"\n"))
	c.Write(t.Context(), websocket.MessageText, []byte(big))
	for {
		if _, _, err = c.Read(t.Context()); err != nil {
			break
		}
	}
	if got := websocket.CloseStatus(err); got != websocket.StatusMessageTooBig {
		t.Errorf("after a line over the limit: %v (close status %d), want 1009", err, got)
	}

	// Another type of document of that name.
	f.Emitter("events")
	if _, err := dialReplica(t, hs, "events"); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("replicating an emitter: %v, want 409", err)
	}
	if _, err := dialReplica(t, hs, "bad%20name"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("replicating a bad name: %v, want 400", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not true after 5s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
