package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/model"
)

// changeBody is one change of a model as a watch stream sends it.
type changeBody struct {
	Key       string  `json:"key"`
	Value     any     `json:"value"`
	Deleted   bool    `json:"deleted,omitempty"`
	Source    string  `json:"source"`
	Timestamp float64 `json:"timestamp"`
	Local     bool    `json:"local"`
}

func (s *Server) watchModel(w http.ResponseWriter, r *http.Request) error {
	m, err := s.existingModel(r)
	if err != nil {
		return err
	}
	return s.watch(w, r, "change", func(push func(any)) func() {
		return m.Watch(func(c model.Change) {
			push(changeBody{c.Key, c.Value, c.Deleted, c.Source, float64(c.Timestamp), c.Local})
		})
	})
}

func (s *Server) watchEvents(w http.ResponseWriter, r *http.Request) error {
	e, err := s.existingEmitter(r)
	if err != nil {
		return err
	}
	return s.watch(w, r, "event", func(push func(any)) func() {
		return e.OnAny(func(ev emitter.Event) { push(toEventBody(ev)) })
	})
}

// watch serves a Server-Sent Events stream of what subscribe pushes, each
// value as one event of type kind, until the client goes away, the Server
// is closed, or the client falls Config.WatchBuffer events behind.
//
// subscribe's push is called on the document's goroutines and never
// blocks: it queues, and the handler's goroutine writes. The queue is
// bounded, so a slow client costs neither the writers' time nor unbounded
// memory.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, kind string, subscribe func(push func(any)) (cancel func())) error {
	rc := http.NewResponseController(w)
	queue := make(chan any, s.cfg.WatchBuffer)
	overflow := make(chan struct{})
	var overflowed atomic.Bool
	cancel := subscribe(func(v any) {
		if overflowed.Load() {
			return
		}
		select {
		case queue <- v:
		default:
			if overflowed.CompareAndSwap(false, true) {
				close(overflow)
			}
		}
	})
	defer cancel()
	s.watchers.Add(1)
	defer s.watchers.Add(-1)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// write sends one chunk and flushes it, bounded by WriteWait.
	write := func(chunk string) bool {
		rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteWait)) // not every writer supports it
		if _, err := fmt.Fprint(w, chunk); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write(": watching " + r.URL.Path + "\n\n") {
		return nil
	}
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.done:
			write("event: close\ndata: {\"error\":\"server closing\"}\n\n")
			return nil
		case <-beat.C:
			if !write(": keepalive\n\n") {
				return nil
			}
		case v := <-queue:
			b, err := json.Marshal(v)
			if err != nil {
				b, _ = json.Marshal(errorBody{"encoding: " + err.Error()})
			}
			if !write("event: " + kind + "\ndata: " + string(b) + "\n\n") {
				return nil
			}
		case <-overflow:
			// Send what was queued before the overflow, then the error.
			for len(queue) > 0 {
				b, _ := json.Marshal(<-queue)
				if !write("event: " + kind + "\ndata: " + string(b) + "\n\n") {
					return nil
				}
			}
			s.metrics.dropped.Add(1)
			msg, _ := json.Marshal(errorBody{fmt.Sprintf("watcher fell %d events behind; reconnect and read the document again", s.cfg.WatchBuffer)})
			write("event: error\ndata: " + string(msg) + "\n\n")
			return nil
		}
	}
}
