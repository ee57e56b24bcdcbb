package api

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/node"
)

// ui holds the console's files: plain HTML, CSS and JavaScript, no build
// step, and vendor/scuttlebutt.js, npm scuttlebutt for the browser, built
// by web/bundle/build.sh and committed.
//
//go:embed ui/*.html ui/*.css ui/*.js ui/*.svg ui/vendor/*.js
var ui embed.FS

// UI returns the console's files, as the Server serves them under /ui/;
// an application serving its own pages can load /ui/vendor/scuttlebutt.js.
func UI() fs.FS {
	sub, err := fs.Sub(ui, "ui")
	if err != nil {
		panic(err) // the embedded tree has a ui directory
	}
	return sub
}

// StatusInterval is the shortest time between two events of a status
// stream: the node's status is read at most this often, and sent only when
// it changed.
const StatusInterval = time.Second

func (s *Server) serveUI() http.Handler {
	files := http.StripPrefix("/ui/", http.FileServerFS(UI()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// The console loads nothing from elsewhere.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; connect-src 'self'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

// docStats is what a status stream adds to node.DocumentInfo: the count of
// keys or events, and the replication lag seen on this node.
type docStats struct {
	// Count is the number of keys of a model or events of an emitter; -1
	// for other types.
	Count int `json:"count"`
	// LagMS is the lag of the last update that arrived from another node:
	// the time it arrived less the time its writer stamped it, in
	// milliseconds (so the nodes' clocks' offset counts in); LagMaxMS the
	// largest of the last minute. Both 0 before any has arrived, and for
	// lock tables and JSON documents.
	LagMS    float64 `json:"lag_ms"`
	LagMaxMS float64 `json:"lag_max_ms"`
	// LastWrite is when the newest update of the document was written, as
	// its clock says; absent for an empty document.
	LastWrite *time.Time `json:"last_write,omitempty"`
}

// statusEvent is one event of GET /v1/status/watch.
type statusEvent struct {
	node.Status
	Now  time.Time           `json:"now"`
	Docs map[string]docStats `json:"doc_stats"`
}

// lagTracker measures the replication lag of models and emitters: it
// watches each one the first time a status stream reports it, until the
// Server is closed.
type lagTracker struct {
	mu   sync.Mutex
	docs map[string]*lag // guarded by mu
	stop []func()        // guarded by mu
}

type lag struct {
	last, max float64 // ms
	maxAt     time.Time
}

func (l *lagTracker) observe(name string, remote bool, written time.Time) {
	if !remote {
		return
	}
	now := time.Now()
	ms := float64(now.Sub(written)) / float64(time.Millisecond)
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.docs[name]
	d.last = ms
	if ms > d.max || now.Sub(d.maxAt) > time.Minute {
		d.max, d.maxAt = ms, now
	}
}

// track starts watching the documents of infos that are not watched yet.
func (s *Server) track(infos []node.DocumentInfo) {
	l := &s.lags
	for _, d := range infos {
		l.mu.Lock()
		_, ok := l.docs[d.Name]
		if !ok {
			if l.docs == nil {
				l.docs = make(map[string]*lag)
			}
			l.docs[d.Name] = &lag{}
		}
		l.mu.Unlock()
		if ok {
			continue
		}
		var cancel func()
		name := d.Name
		switch d.Type {
		case typeModel:
			if m, err := s.n.Model(name); err == nil {
				cancel = m.Watch(func(c model.Change) { l.observe(name, !c.Local, c.Timestamp.Time()) })
			}
		case typeEmitter:
			if e, err := s.n.Emitter(name); err == nil {
				cancel = e.OnAny(func(ev emitter.Event) { l.observe(name, !ev.Local, ev.Timestamp.Time()) })
			}
		}
		if cancel != nil {
			l.mu.Lock()
			l.stop = append(l.stop, cancel)
			l.mu.Unlock()
		}
	}
}

func (l *lagTracker) close() {
	l.mu.Lock()
	stop := l.stop
	l.stop = nil
	l.mu.Unlock()
	for _, f := range stop {
		f()
	}
}

// statusEvent reads the node's status and the documents' figures.
func (s *Server) statusEvent() statusEvent {
	st := s.n.Status()
	s.track(st.Documents)
	ev := statusEvent{Status: st, Now: time.Now().UTC(), Docs: make(map[string]docStats, len(st.Documents))}
	for _, d := range st.Documents {
		ds := docStats{Count: -1}
		switch d.Type {
		case typeModel:
			if m, err := s.n.Model(d.Name); err == nil {
				ds.Count = m.Len()
			}
		case typeEmitter:
			if e, err := s.n.Emitter(d.Name); err == nil {
				ds.Count = e.Len()
			}
		}
		if src := maxSource(d.Clock); src != "" {
			t := d.Clock[src].Time().UTC()
			ds.LastWrite = &t
		}
		s.lags.mu.Lock()
		if l := s.lags.docs[d.Name]; l != nil {
			ds.LagMS = l.last
			if time.Since(l.maxAt) <= time.Minute {
				ds.LagMaxMS = l.max
			}
		}
		s.lags.mu.Unlock()
		ev.Docs[d.Name] = ds
	}
	return ev
}

// maxSource returns the source of c's newest timestamp.
func maxSource[C ~map[string]T, T ~float64](c C) (src string) {
	var newest T
	for s, ts := range c {
		if ts > newest || (ts == newest && s < src) {
			src, newest = s, ts
		}
	}
	return src
}

// watchStatus serves GET /v1/status/watch: the node's status as
// Server-Sent Events of type "status", one at once and then one whenever it
// changed, read at most every StatusInterval. Each is /v1/status with the
// server's time ("now") and, per document, its count of keys or events,
// its replication lag and its last write ("doc_stats").
func (s *Server) watchStatus(w http.ResponseWriter, r *http.Request) error {
	rc := http.NewResponseController(w)
	s.watchers.Add(1)
	defer s.watchers.Add(-1)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	write := func(chunk string) bool {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteWait))
		if _, err := fmt.Fprint(w, chunk); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	tick := time.NewTicker(StatusInterval)
	defer tick.Stop()
	var last []byte
	quiet := 0 // ticks since the last write
	for {
		ev := s.statusEvent()
		// Compare without the clock of the server: "now" always changes.
		ev.Now = time.Time{}
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		switch {
		case string(b) != string(last):
			last = b
			ev.Now = time.Now().UTC()
			b, _ = json.Marshal(ev)
			if !write("event: status\ndata: " + string(b) + "\n\n") {
				return nil
			}
			quiet = 0
		case time.Duration(quiet)*StatusInterval >= s.cfg.Heartbeat:
			if !write(": keepalive\n\n") {
				return nil
			}
			quiet = 0
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-s.done:
			write("event: close\ndata: {\"error\":\"server closing\"}\n\n")
			return nil
		case <-tick.C:
			quiet++
		}
	}
}
