package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// openWatchFrom is openWatch resuming from id, as an EventSource
// reconnecting does (the Last-Event-ID header).
func openWatchFrom(t *testing.T, url, id string) (r *sseReader, cancel context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Last-Event-ID", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch from %q: %s: %s", id, resp.Status, b)
	}
	return &sseReader{t: t, sc: bufio.NewScanner(resp.Body)}, cancel
}

// nextN reads n events, each with an id, and returns "type key-or-event
// value" for each.
func nextN(t *testing.T, r *sseReader, n int) []string {
	t.Helper()
	var got []string
	for range n {
		r.lastID = ""
		ev, ok := r.next()
		if !ok {
			t.Fatalf("stream ended after %v", got)
		}
		if r.lastID == "" {
			t.Errorf("event %v without an id", ev)
		}
		if _, err := decodePosition(r.lastID); err != nil {
			t.Errorf("event %v: id %q: %v", ev, r.lastID, err)
		}
		got = append(got, describe(ev))
	}
	return got
}

func describe(ev sseEvent) string {
	switch {
	case ev.Type == "event":
		return fmt.Sprintf("event %v %v", ev.Data["event"], ev.Data["args"])
	case ev.Data["deleted"] == true:
		return fmt.Sprintf("%s %v deleted", ev.Type, ev.Data["key"])
	}
	return fmt.Sprintf("%s %v %v", ev.Type, ev.Data["key"], ev.Data["value"])
}

// TestWatchResumeModel reads some changes, disconnects, lets the model
// change, and resumes from the last id: the changes missed come once each,
// at their latest value (deletes included), then live ones, with no
// change seen before repeated.
func TestWatchResumeModel(t *testing.T) {
	_, s := newServer(t, nil)
	hs := httptest.NewServer(s)
	defer hs.Close()
	put := func(k, v string) { wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/"+k, v), "PUT "+k) }
	put("seen", `0`)
	r, cancel := openWatch(t, hs.URL+"/v1/models/m/watch")
	waitWatchers(t, s, 1)
	put("a", `1`)
	put("b", `2`)
	if diff := cmp.Diff([]string{"change a 1", "change b 2"}, nextN(t, r, 2)); diff != "" {
		t.Errorf("live (-want +got):\n%s", diff)
	}
	id := r.lastID
	cancel()
	waitWatchers(t, s, 0)

	put("c", `3`)
	put("a", `10`)
	put("a", `11`)
	wantOK(t, doString(t, s, "DELETE", "/v1/models/m/keys/b", ""), "DELETE b")
	r, cancel = openWatchFrom(t, hs.URL+"/v1/models/m/watch", id)
	defer cancel()
	waitWatchers(t, s, 1)
	put("d", `4`)
	want := []string{"change c 3", "change a 11", "change b deleted", "change d 4"}
	if diff := cmp.Diff(want, nextN(t, r, len(want))); diff != "" {
		t.Errorf("resumed (-want +got):\n%s", diff)
	}

	// ?since= resumes the same way, and 0 is from the start.
	r2, cancel2 := openWatch(t, hs.URL+"/v1/models/m/watch?since="+r.lastID)
	defer cancel2()
	put("e", `5`)
	if diff := cmp.Diff([]string{"change e 5"}, nextN(t, r2, 1)); diff != "" {
		t.Errorf("since the last id (-want +got):\n%s", diff)
	}
	r3, cancel3 := openWatch(t, hs.URL+"/v1/models/m/watch?since=0")
	defer cancel3()
	want = []string{"change seen 0", "change c 3", "change a 11", "change b deleted", "change d 4", "change e 5"}
	if diff := cmp.Diff(want, nextN(t, r3, len(want))); diff != "" {
		t.Errorf("since 0 (-want +got):\n%s", diff)
	}
}

// TestWatchResumeEvents: an emitter's watch resumed gets exactly the
// events it missed, in order, then live ones.
func TestWatchResumeEvents(t *testing.T) {
	_, s := newServer(t, nil)
	hs := httptest.NewServer(s)
	defer hs.Close()
	emit := func(i int) {
		wantOK(t, doString(t, s, "POST", "/v1/events/log", fmt.Sprintf(`{"event": "e", "args": [%d]}`, i)), "emit")
	}
	emit(0)
	r, cancel := openWatch(t, hs.URL+"/v1/events/log/watch")
	waitWatchers(t, s, 1)
	for i := 1; i <= 3; i++ {
		emit(i)
	}
	if diff := cmp.Diff([]string{"event e [1]", "event e [2]"}, nextN(t, r, 2)); diff != "" {
		t.Errorf("live (-want +got):\n%s", diff)
	}
	id := r.lastID // event 3 was sent, maybe received, but not read
	cancel()
	waitWatchers(t, s, 0)
	for i := 4; i <= 5; i++ {
		emit(i)
	}
	r, cancel = openWatchFrom(t, hs.URL+"/v1/events/log/watch", id)
	defer cancel()
	waitWatchers(t, s, 1)
	emit(6)
	want := []string{"event e [3]", "event e [4]", "event e [5]", "event e [6]"}
	if diff := cmp.Diff(want, nextN(t, r, len(want))); diff != "" {
		t.Errorf("resumed (-want +got):\n%s", diff)
	}
}

// TestWatchResumeDoc: a document's watch resumed after changes gets the
// value at its path now, marked resync, then live changes.
func TestWatchResumeDoc(t *testing.T) {
	_, s := newServer(t, nil)
	hs := httptest.NewServer(s)
	defer hs.Close()
	patch := func(body string) { wantOK(t, doString(t, s, "PATCH", "/v1/docs/d", body), "PATCH") }
	patch(`{"$set": {"a.x": 1}}`)
	r, cancel := openWatch(t, hs.URL+"/v1/docs/d/watch?path=a")
	waitWatchers(t, s, 1)
	patch(`{"$set": {"a.x": 2}}`)
	if ev, ok := r.next(); !ok || ev.Data["value"] != 2.0 {
		t.Fatalf("live: %v %v", ev, ok)
	}
	// The changes of one patch share one position: only the last of them
	// carries the id, so a client never records half a patch.
	patch(`{"$set": {"a.p": 1, "a.q": 2}}`)
	for i, want := range []string{"", "id"} {
		r.lastID = ""
		ev, ok := r.next()
		if !ok {
			t.Fatal("stream ended")
		}
		if got := map[bool]string{true: "id", false: ""}[r.lastID != ""]; got != want {
			t.Errorf("change %d of a patch (%v): id %q, want %q", i, ev.Data["path"], r.lastID, want)
		}
	}
	id := r.lastID
	cancel()
	waitWatchers(t, s, 0)

	// Nothing changed: nothing is sent again.
	r, cancel = openWatchFrom(t, hs.URL+"/v1/docs/d/watch?path=a", id)
	waitWatchers(t, s, 1)
	patch(`{"$set": {"a.y": 3}}`)
	if ev, ok := r.next(); !ok || ev.Data["path"] != "/a/y" || ev.Data["resync"] != nil {
		t.Fatalf("resumed without a change, then a live one: %v %v", ev, ok)
	}
	cancel()
	waitWatchers(t, s, 0)

	patch(`{"$set": {"a.x": 4}}`)
	r, cancel = openWatchFrom(t, hs.URL+"/v1/docs/d/watch?path=a", id)
	defer cancel()
	ev, ok := r.next()
	want := map[string]any{"path": "/a", "value": map[string]any{"x": 4.0, "y": 3.0, "p": 1.0, "q": 2.0}, "old": nil, "source": "", "timestamp": 0.0, "local": false, "resync": true}
	if !ok || !cmp.Equal(want, ev.Data) {
		t.Errorf("resumed after changes: %v %v; want %v", ev, ok, want)
	}
}

// TestWatchMissingDocument: a watch of a document the node does not hold
// waits, without creating it, and once it is created sends everything it
// holds, then live changes.
func TestWatchMissingDocument(t *testing.T) {
	f, s := newServer(t, nil)
	hs := httptest.NewServer(s)
	defer hs.Close()
	r, cancel := openWatch(t, hs.URL+"/v1/models/later/watch")
	defer cancel()
	waitWatchers(t, s, 1)
	if strings.Contains(f.state(), "later") {
		t.Fatalf("the watch created the document: %s", f.state())
	}
	wantOK(t, doString(t, s, "PUT", "/v1/models/later/keys/a", `1`), "PUT a")
	wantOK(t, doString(t, s, "PUT", "/v1/models/later/keys/b", `2`), "PUT b")
	got := nextN(t, r, 2)
	if diff := cmp.Diff([]string{"change a 1", "change b 2"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	// Created as another type meanwhile: the stream ends with an error.
	r, cancel = openWatch(t, hs.URL+"/v1/models/other/watch")
	defer cancel()
	waitWatchers(t, s, 2)
	wantOK(t, doString(t, s, "POST", "/v1/events/other", `{"event": "x"}`), "emit")
	if ev, ok := r.next(); !ok || ev.Type != "error" || !strings.Contains(fmt.Sprint(ev.Data["error"]), "created as a emitter") {
		t.Errorf("watch of a model created as an emitter: %v %v", ev, ok)
	}
}

// TestWatchByteBound: a client that stops reading is dropped once the
// bytes queued for it pass WatchMaxBytes, long before WatchBuffer events,
// with an error that says to resume; resuming from its last id loses
// nothing.
func TestWatchByteBound(t *testing.T) {
	const maxBytes = 4096
	_, s := newServer(t, &Config{WatchMaxBytes: maxBytes})
	hs := httptest.NewServer(s)
	defer hs.Close()
	value := `"` + strings.Repeat("v", 1500) + `"`
	put := func(k string) { wantOK(t, doString(t, s, "PUT", "/v1/models/m/keys/"+k, value), "PUT "+k) }
	put("k0")
	w := &stallWriter{header: http.Header{}, stalled: make(chan struct{}), release: make(chan struct{})}
	req := httptest.NewRequestWithContext(t.Context(), "GET", "/v1/models/m/watch", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeHTTP(w, req)
	}()
	waitWatchers(t, s, 1)
	put("k1")
	<-w.stalled // the handler is stuck writing k1
	for i := 2; i <= 9; i++ {
		put(fmt.Sprintf("k%d", i)) // writers go on
	}
	close(w.release)
	<-done
	out := w.buf.String()
	if got := strings.Count(out, "event: change\n"); got != 1 {
		t.Errorf("%d changes written, want 1 (the one being written)", got)
	}
	if !strings.Contains(out, "event: error\n") || !strings.Contains(out, `"resume":true`) || !strings.Contains(out, "4096 bytes") {
		t.Errorf("stream does not end with a resumable error over 4096 bytes:\n%.300s", out[strings.LastIndex(out, "event:"):])
	}
	id := out[strings.LastIndex(out, "id: ")+4:]
	id = id[:strings.IndexByte(id, '\n')]

	r, cancel := openWatchFrom(t, hs.URL+"/v1/models/m/watch", id)
	defer cancel()
	got := nextN(t, r, 8)
	var want []string
	for i := 2; i <= 9; i++ {
		want = append(want, fmt.Sprintf("change k%d %s", i, strings.Trim(value, `"`)))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resumed (-want +got):\n%s", diff)
	}
}
