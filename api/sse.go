package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scuttle-go/scuttle/emitter"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/vclock"
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

func toChangeBody(c model.Change) changeBody {
	return changeBody{c.Key, c.Value, c.Deleted, c.Source, float64(c.Timestamp), c.Local}
}

// watchItem is one event of a watch stream: its body, and the update that
// made it, which moves the stream's position.
type watchItem struct {
	source string
	ts     vclock.Timestamp
	// always: sent even if the position covers the update, and without
	// moving it (a model key's expiry carries the expired update's stamp).
	always bool
	// body is the event's data; a group (the changes of one patch) is
	// several events, and the position moves after the last.
	body any
}

// group is a body of several events of one update, sent together: only
// the last carries an id.
type group []any

// bodies returns the data of the events of body.
func bodies(body any) [][]byte {
	if g, ok := body.(group); ok {
		out := make([][]byte, len(g))
		for i, b := range g {
			out[i] = mustJSON(b)
		}
		return out
	}
	return [][]byte{mustJSON(body)}
}

// chunks writes the events of data, the last with id.
func (st *sseStream) chunks(kind string, data [][]byte, id string) bool {
	for i, d := range data {
		if i < len(data)-1 && !st.put(eventChunk(kind, d, "")) {
			return false
		}
	}
	return st.put(eventChunk(kind, data[len(data)-1], id))
}

// watchFeed is what the watch of one document needs: how to subscribe to
// its live events, and how to read what it holds beyond a position.
type watchFeed struct {
	// kind is the type of the stream's events.
	kind string
	// subscribe starts pushing live events; push never blocks.
	subscribe func(push func(watchItem)) (cancel func())
	// since returns what the document holds beyond position (nil for a
	// fresh watch: nothing), and the document's clock read at the same
	// instant, which those items bring the watcher up to.
	since func(position vclock.Clock) (items []watchItem, clock vclock.Clock)
}

func (s *Server) watchModel(w http.ResponseWriter, r *http.Request) error {
	return s.watchDocument(w, r, typeModel, func(name string) (watchFeed, error) {
		m, err := s.n.Model(name)
		if err != nil {
			return watchFeed{}, err
		}
		return watchFeed{
			kind: "change",
			subscribe: func(push func(watchItem)) func() {
				return m.Watch(func(c model.Change) {
					push(watchItem{c.Source, c.Timestamp, c.Expired, toChangeBody(c)})
				})
			},
			since: func(pos vclock.Clock) ([]watchItem, vclock.Clock) {
				if pos == nil {
					return nil, m.Clock()
				}
				cs, clock := m.ChangedSince(pos)
				items := make([]watchItem, len(cs))
				for i, c := range cs {
					items[i] = watchItem{c.Source, c.Timestamp, false, toChangeBody(c)}
				}
				return items, clock
			},
		}, nil
	})
}

func (s *Server) watchEvents(w http.ResponseWriter, r *http.Request) error {
	return s.watchDocument(w, r, typeEmitter, func(name string) (watchFeed, error) {
		e, err := s.n.Emitter(name)
		if err != nil {
			return watchFeed{}, err
		}
		return watchFeed{
			kind: "event",
			subscribe: func(push func(watchItem)) func() {
				return e.OnAny(func(ev emitter.Event) { push(watchItem{ev.Source, ev.Timestamp, false, toEventBody(ev)}) })
			},
			since: func(pos vclock.Clock) (items []watchItem, clock vclock.Clock) {
				e.WithClock(func(c vclock.Clock) {
					clock = c
					if pos == nil {
						return
					}
					for _, ev := range e.Events(pos) { // the Emitter's own lock, not the base's
						items = append(items, watchItem{ev.Source, ev.Timestamp, false, toEventBody(ev)})
					}
				})
				return items, clock
			},
		}, nil
	})
}

// watchDocument serves a watch of the document of type kind named by r:
// the events feed opens, from the position r resumes from (see
// watchPosition), as Server-Sent Events, each with an id: the position
// after it. If the node holds no such document yet, it waits for one
// (without creating it), then sends everything the document holds. If
// the document is deleted, the stream ends (see failDeleted).
func (s *Server) watchDocument(w http.ResponseWriter, r *http.Request, kind string, open func(name string) (watchFeed, error)) error {
	name, err := docName(r)
	if err != nil {
		return err
	}
	pos, err := watchPosition(r)
	if err != nil {
		return err
	}
	st := s.startStream(w)
	defer st.end()
	switch have, ok := s.existing(name); {
	case ok && have != kind:
		return errorf(http.StatusConflict, "document %q is a %s, not a %s", name, have, kind)
	case !ok:
		st.begin()
		if !st.write(": waiting for document " + strconv.Quote(name) + "\n\n") {
			return nil
		}
		if err := s.awaitDocument(r.Context(), st, name, kind); err != nil {
			st.fail(err.Error(), false)
			return nil
		}
		if pos == nil {
			pos = vclock.Clock{} // everything it holds: it did not exist when asked
		}
	}
	// Before open: a deletion after the node was seen holding the
	// document closes it, even if the name is created again at once.
	dropped, ok := s.dropped(name)
	if !ok { // deleted since
		st.begin()
		st.failDeleted(name)
		return nil
	}
	feed, err := open(name)
	if err != nil {
		if !st.begun {
			return err
		}
		_, msg := s.classify(err)
		st.fail(msg, false)
		return nil
	}
	s.stream(st, r, feed, pos, name, dropped)
	return nil
}

// watchPosition returns the position a watch resumes from: the
// Last-Event-ID header (an EventSource reconnecting sends it) or else the
// since parameter, either an id the stream sent or "0", everything the
// document holds. nil means neither: a fresh watch, from now on.
func watchPosition(r *http.Request) (vclock.Clock, error) {
	id, what := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if id == "" {
		id, what = r.URL.Query().Get("since"), "since"
		if id == "" {
			return nil, nil
		}
		if id == "0" {
			return vclock.Clock{}, nil
		}
	}
	pos, err := decodePosition(id)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "%s: %v", what, err)
	}
	return pos, nil
}

// missingPoll is how often a watch of a document that does not exist yet
// looks for it among the node's documents, if the Node does not say when
// they change (documentNotifier).
const missingPoll = 200 * time.Millisecond

// awaitDocument waits until the node holds a document called name, and
// returns nil if it is of type kind, an error if it is of another type or
// the watch ends first. It sends heartbeats meanwhile.
func (s *Server) awaitDocument(ctx context.Context, st *sseStream, name, kind string) error {
	dn, notifies := s.n.(documentNotifier)
	var poll <-chan time.Time
	if !notifies {
		t := time.NewTicker(missingPoll)
		defer t.Stop()
		poll = t.C
	}
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		var changed <-chan struct{}
		if notifies {
			changed = dn.DocumentsChanged() // before looking: a creation after wakes it
		}
		switch have, ok := s.existing(name); {
		case ok && have != kind:
			return fmt.Errorf("document %q was created as a %s, not a %s", name, have, kind)
		case ok:
			return nil
		}
		if err := s.idle(ctx, st, beat.C, changed, poll); err != nil {
			return err
		}
	}
}

// idle waits for changed or poll, sending heartbeats on beat, and
// returns an error if the watch ends first.
func (s *Server) idle(ctx context.Context, st *sseStream, beat <-chan time.Time, changed <-chan struct{}, poll <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return errServerClosing
		case <-beat:
			if !st.write(": keepalive\n\n") {
				return errWriteFailed
			}
		case <-changed:
			return nil
		case <-poll:
			return nil
		}
	}
}

// Errors that end a stream; their text is what the client reads.
var (
	errServerClosing = errorf(http.StatusServiceUnavailable, "server closing")
	errWriteFailed   = errorf(http.StatusServiceUnavailable, "writing to the client failed")
)

// sseStream writes one Server-Sent Events response.
type sseStream struct {
	s     *Server
	w     http.ResponseWriter
	rc    *http.ResponseController
	begun bool // the headers are written
}

func (s *Server) startStream(w http.ResponseWriter) *sseStream {
	s.watchers.Add(1)
	return &sseStream{s: s, w: w, rc: http.NewResponseController(w)}
}

func (st *sseStream) end() { st.s.watchers.Add(-1) }

// begin writes the headers, once.
func (st *sseStream) begin() {
	if st.begun {
		return
	}
	st.begun = true
	h := st.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	st.w.WriteHeader(http.StatusOK)
}

// write sends chunk and flushes it, bounded by WriteWait.
func (st *sseStream) write(chunk string) bool {
	return st.put(chunk) && st.flush()
}

// put writes chunk without flushing it, bounded by WriteWait.
func (st *sseStream) put(chunk string) bool {
	st.rc.SetWriteDeadline(time.Now().Add(st.s.cfg.WriteWait)) // not every writer supports it
	_, err := fmt.Fprint(st.w, chunk)
	return err == nil
}

func (st *sseStream) flush() bool { return st.rc.Flush() == nil }

// fail sends the final "error" event of a stream. resume says the client
// may resume from the last id it received and lose nothing.
func (st *sseStream) fail(msg string, resume bool) {
	b, _ := json.Marshal(streamError{Error: msg, Resume: resume})
	st.write("event: error\ndata: " + string(b) + "\n\n")
}

// failDeleted sends the final "error" event of a stream whose document
// called name was deleted: {"error": "document deleted: \"name\"",
// "deleted": true}.
func (st *sseStream) failDeleted(name string) {
	b, _ := json.Marshal(streamError{Error: fmt.Sprintf("%v: %q", errDocumentDeleted, name), Deleted: true})
	st.write("event: error\ndata: " + string(b) + "\n\n")
}

// streamError is the data of a stream's final "error" event.
type streamError struct {
	Error string `json:"error"`
	// Resume: reconnecting with the last id received (Last-Event-ID, or
	// ?since=) continues the stream without a gap.
	Resume bool `json:"resume,omitempty"`
	// Deleted: the document was deleted; a new watch of the name waits
	// for it to be created again, and sees the new document whole.
	Deleted bool `json:"deleted,omitempty"`
}

// stream subscribes to feed, sends what the document holds beyond pos,
// then its live events, until the client goes away, the Server is closed,
// the document called name is deleted (dropped closes), or the client
// falls Config.WatchBuffer events or Config.WatchMaxBytes bytes behind.
//
// feed's push is called on the document's goroutines and never blocks: it
// encodes and queues, and this goroutine writes. The queue is bounded in
// events and bytes, so a slow client costs neither the writers' time nor
// unbounded memory: past a bound, the queue is dropped and the stream ends
// with an "error" event saying to resume, which loses nothing, since a
// resumed stream reads the document's history from the client's last id.
func (s *Server) stream(st *sseStream, r *http.Request, feed watchFeed, pos vclock.Clock, name string, dropped <-chan struct{}) {
	q := newWatchQueue(s.cfg.WatchBuffer, s.cfg.WatchMaxBytes)
	cancel := feed.subscribe(q.push)
	defer cancel()
	items, clock := feed.since(pos)
	// base: what the client has (pos) or is sent now (items), so a live
	// event it covers is not sent again; position moves with every event.
	base := clock
	position := vclock.Clock{}
	position.Merge(pos)
	st.begin()
	for _, it := range items { // a prefix of them is a position too
		position.Advance(it.source, it.ts)
		if !st.chunks(feed.kind, bodies(it.body), idLine(position)) {
			return
		}
	}
	position.Merge(clock)
	head := ": watching " + r.URL.Path + "\n\n"
	if base != nil {
		head = idLine(position) + head // an id alone: the position, even if no event follows
	}
	if !st.write(head) {
		return
	}
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			st.write("event: close\ndata: {\"error\":\"server closing\"}\n\n")
			return
		case <-dropped:
			st.failDeleted(name)
			return
		case <-beat.C:
			if !st.write(": keepalive\n\n") {
				return
			}
		case <-q.wake:
			batch, over := q.take()
			for _, it := range batch {
				ok := true
				switch {
				case base == nil || it.always:
					ok = st.chunks(feed.kind, it.data, "")
				case !base.Covers(it.source, it.ts):
					position.Advance(it.source, it.ts)
					ok = st.chunks(feed.kind, it.data, idLine(position))
				}
				q.sent(it.size)
				if !ok {
					q.dropped(s.metrics)
					return
				}
			}
			if !st.flush() {
				q.dropped(s.metrics)
				return
			}
			if over {
				s.metrics.dropped.Add(1)
				st.fail(fmt.Sprintf("watcher fell over %d events or %d bytes behind; reconnect with the last id received (Last-Event-ID or ?since=) to resume without a gap", s.cfg.WatchBuffer, s.cfg.WatchMaxBytes), base != nil)
				return
			}
		}
	}
}

// eventChunk is one event: id (an idLine, or ""), type and data.
func eventChunk(kind string, data []byte, id string) string {
	return id + "event: " + kind + "\ndata: " + string(data) + "\n\n"
}

// idLine is the id field of position, or "" if it does not fit in
// MaxWatchIDSize: the client keeps its previous id, and a resumption from
// it repeats events rather than miss any.
func idLine(position vclock.Clock) string {
	id := encodePosition(position)
	if len(id) > MaxWatchIDSize {
		return ""
	}
	return "id: " + id + "\n"
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(errorBody{"encoding: " + err.Error()})
	}
	return b
}

// queuedItem is a watchItem encoded.
type queuedItem struct {
	source string
	ts     vclock.Timestamp
	always bool
	data   [][]byte // one or more events
	size   int      // bytes of data
}

// watchQueue holds the encoded events a watch stream has not sent yet,
// bounded in events and bytes. push is called on the documents'
// goroutines; take and sent on the stream's.
type watchQueue struct {
	maxEvents int
	maxBytes  int64
	wake      chan struct{} // capacity 1: a push since the last take
	over      atomic.Bool   // a bound was passed: the queue is dropped for good

	mu     sync.Mutex
	items  []queuedItem // guarded by mu
	events int          // unsent, queued or being written; guarded by mu
	bytes  int64        // likewise
}

func newWatchQueue(maxEvents int, maxBytes int64) *watchQueue {
	return &watchQueue{maxEvents: maxEvents, maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

// push encodes it and queues it, or, if that would pass a bound, drops the
// queue and marks it over. One event is always accepted into an empty
// queue, however large.
func (q *watchQueue) push(it watchItem) {
	if q.over.Load() {
		return
	}
	data := bodies(it.body)
	size := 0
	for _, d := range data {
		size += len(d)
	}
	q.mu.Lock()
	switch {
	case q.over.Load():
	case q.events > 0 && (q.events >= q.maxEvents || q.bytes+int64(size) > q.maxBytes):
		q.over.Store(true)
		q.items = nil // freed now, not when the stalled write returns
	default:
		q.items = append(q.items, queuedItem{it.source, it.ts, it.always, data, size})
		q.events++
		q.bytes += int64(size)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns the items queued since the last take, and whether the
// queue is over a bound (after the items returned).
func (q *watchQueue) take() (items []queuedItem, over bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	items, q.items = q.items, nil
	return items, q.over.Load()
}

// dropped counts a stream whose write failed as dropped if it was over a
// bound: a client that stopped reading, whose write timed out.
func (q *watchQueue) dropped(m *Metrics) {
	if q.over.Load() {
		m.dropped.Add(1)
	}
}

// sent accounts for one item taken, of n bytes, as written.
func (q *watchQueue) sent(n int) {
	q.mu.Lock()
	q.events--
	q.bytes -= int64(n)
	q.mu.Unlock()
}
