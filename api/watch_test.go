package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// sseEvent is one Server-Sent Event.
type sseEvent struct {
	Type string
	Data map[string]any
}

// sseReader reads the events of a stream, skipping comments. lastID is
// the last id the stream sent, as an EventSource keeps it.
type sseReader struct {
	t      *testing.T
	sc     *bufio.Scanner
	lastID string
}

func (r *sseReader) next() (sseEvent, bool) {
	r.t.Helper()
	var ev sseEvent
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if ev.Type != "" {
				return ev, true
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id: "):
			r.lastID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.Type = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data); err != nil {
				r.t.Fatalf("data line %q: %v", line, err)
			}
		default:
			r.t.Fatalf("unexpected line %q in an event stream", line)
		}
	}
	return ev, false
}

// openWatch starts a watch request against a real server and returns its
// reader; cancel ends the request as a client going away does.
func openWatch(t *testing.T, url string) (r *sseReader, cancel context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	return &sseReader{t: t, sc: bufio.NewScanner(resp.Body)}, cancel
}

// waitWatchers waits until s has n open watch streams.
func waitWatchers(t *testing.T, s *Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.watchers.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d watch streams open, want %d", s.watchers.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatchModel(t *testing.T) {
	f, s := newServer(t, &Config{Heartbeat: time.Millisecond})
	hs := httptest.NewServer(s)
	defer hs.Close()
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/before", `0`), "PUT before")

	r, cancel := openWatch(t, hs.URL+"/v1/models/m/watch")
	waitWatchers(t, s, 1)
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/a", `{"x": [1]}`), "PUT a")
	wantOK(t, doString(t, s, "DELETE", "/v1/models/m/keys/before", ""), "DELETE before")
	var got []sseEvent
	for range 2 {
		ev, ok := r.next()
		if !ok {
			t.Fatal("stream ended early")
		}
		delete(ev.Data, "timestamp")
		got = append(got, ev)
	}
	m, err := f.Model("m")
	if err != nil {
		t.Fatal(err)
	}
	want := []sseEvent{
		{"change", map[string]any{"key": "a", "value": map[string]any{"x": []any{1.0}}, "source": m.Source(), "local": true}},
		{"change", map[string]any{"key": "before", "value": nil, "deleted": true, "source": m.Source(), "local": true}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}

	// The client goes away: the handler returns and unsubscribes.
	cancel()
	waitWatchers(t, s, 0)
}

func TestWatchEvents(t *testing.T) {
	f, s := newServer(t, nil)
	hs := httptest.NewServer(s)
	defer hs.Close()
	wantOK(t, doString(t, s, "POST", "/v1/events/chat", `{"event": "old"}`), "emit old")
	r, cancel := openWatch(t, hs.URL+"/v1/events/chat/watch")
	defer cancel()
	waitWatchers(t, s, 1)
	wantOK(t, doString(t, s, "POST", "/v1/events/chat", `{"event": "joined", "args": ["ada"]}`), "emit")
	ev, ok := r.next()
	if !ok {
		t.Fatal("stream ended early")
	}
	delete(ev.Data, "timestamp")
	em, err := f.Emitter("chat")
	if err != nil {
		t.Fatal(err)
	}
	want := sseEvent{"event", map[string]any{"event": "joined", "args": []any{"ada"}, "source": em.Source(), "local": true}}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
}

// TestWatchClose checks that Close ends open watch streams, so that an
// http.Server's Shutdown can finish.
func TestWatchClose(t *testing.T) {
	_, s := newServer(t, nil)
	hs := httptest.NewServer(s)
	defer hs.Close()
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/k", `0`), "PUT")
	r, _ := openWatch(t, hs.URL+"/v1/models/m/watch")
	waitWatchers(t, s, 1)
	s.Close()
	ev, ok := r.next()
	if !ok || ev.Type != "close" {
		t.Errorf("after Close: %+v, %v; want a close event", ev, ok)
	}
	if _, ok := r.next(); ok {
		t.Errorf("the stream goes on after Close")
	}
	waitWatchers(t, s, 0)
	// A watch started after Close ends at once.
	r, _ = openWatch(t, hs.URL+"/v1/models/m/watch")
	if ev, ok := r.next(); !ok || ev.Type != "close" {
		t.Errorf("watch after Close: %+v, %v; want a close event", ev, ok)
	}
}

// stallWriter is a ResponseWriter whose writes after the first block until
// release is closed, as a client that stops reading makes them.
type stallWriter struct {
	header  http.Header
	mu      sync.Mutex
	buf     strings.Builder
	writes  int
	stalled chan struct{} // closed when a write blocks
	release chan struct{}
	once    sync.Once
}

func (w *stallWriter) Header() http.Header { return w.header }
func (w *stallWriter) WriteHeader(int)     {}
func (w *stallWriter) Flush()              {}
func (w *stallWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	n := w.writes
	w.mu.Unlock()
	if n > 1 {
		w.once.Do(func() { close(w.stalled) })
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.WriteString(string(b))
}

// TestWatchSlowClient checks that a client that does not read ends with
// an error event once WatchBuffer changes are queued, and that writers are
// not blocked meanwhile.
func TestWatchSlowClient(t *testing.T) {
	const buffer = 4
	_, s := newServer(t, &Config{WatchBuffer: buffer})
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/k", `0`), "PUT")
	w := &stallWriter{header: http.Header{}, stalled: make(chan struct{}), release: make(chan struct{})}
	req := httptest.NewRequestWithContext(t.Context(), "GET", "/v1/models/m/watch", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeHTTP(w, req)
	}()
	waitWatchers(t, s, 1)
	wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/k", `1`), "PUT 1")
	<-w.stalled // the handler is stuck writing change 1
	for i := 2; i <= 2*buffer+2; i++ {
		// Writers go on while the watcher is stuck.
		wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/k", fmt.Sprint(i)), "PUT")
	}
	close(w.release)
	<-done
	out := w.buf.String()
	// The queue is dropped at the bound: only the change being written
	// goes out, then the error, which says to resume.
	if got := strings.Count(out, "event: change\n"); got != 1 {
		t.Errorf("%d changes written, want 1 (the one being written)\n%s", got, out)
	}
	if !strings.HasSuffix(out, "event: error\ndata: {\"error\":\"watcher fell over 4 events or 16777216 bytes behind; reconnect with the last id received (Last-Event-ID or ?since=) to resume without a gap\",\"resume\":true}\n\n") {
		t.Errorf("stream does not end with the error event:\n%s", out)
	}
	if d := testutil.ToFloat64(s.metrics.dropped); d != 1 {
		t.Errorf("dropped watchers %v, want 1", d)
	}
	waitWatchers(t, s, 0)
}
