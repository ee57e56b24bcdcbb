package emitter

import (
	"github.com/scuttle-go/scuttle/internal/value"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Event is one event as delivered to a listener. Each listener receives an
// Event of its own: Args shares nothing with other listeners or with the
// Emitter.
type Event struct {
	// Name is the event's name, as given to Emit.
	Name string
	// Args are the arguments, decoded afresh: integers as int64, floats as
	// float64, arrays as []any, maps as map[string]any; nil when there are
	// none.
	Args []any
	// Source is the source id of the replica that emitted the event (its
	// replica id and incarnation, "n1~k3x9p2qd"; scuttlebutt.ReplicaID
	// gives the replica id), and Timestamp when it did; together they
	// identify the event.
	Source    string
	Timestamp vclock.Timestamp
	// Local reports that this replica emitted the event, in this start or
	// an earlier one (ReplicaID(Source) is its id).
	Local bool
}

// event decodes u into an Event for one listener.
func (e *Emitter) event(u scuttlebutt.Update) (Event, bool) {
	name, args, err := decodePayload(u.Data)
	if err != nil {
		return Event{}, false // unreachable: payloads are checked before they are applied
	}
	return Event{Name: name, Args: args, Source: u.Source, Timestamp: u.Timestamp, Local: scuttlebutt.ReplicaID(u.Source) == e.ID()}, true
}

// listener is one registered callback and the names it listens to; nil
// names means every event. off is set by cancel, so that a listener
// cancelled in the middle of a batch is not called again.
type listener struct {
	names map[string]bool
	fn    func(Event)
	off   atomic.Bool
}

// listeners holds the callbacks and the events waiting for them. Events are
// queued while the base's lock is held (in ApplyUpdate) and delivered after
// it is released (in AfterApply), in apply order, one delivery at a time
// across all listeners: a listener may call Emit, and its own event is
// delivered after it returns.
type listeners struct {
	mu       sync.Mutex
	next     int
	fns      map[int]*listener
	pending  []scuttlebutt.Update
	draining bool
}

func (l *listeners) queue(u scuttlebutt.Update) {
	l.mu.Lock()
	if len(l.fns) > 0 {
		l.pending = append(l.pending, u)
	}
	l.mu.Unlock()
}

func (l *listeners) deliver(e *Emitter) {
	l.mu.Lock()
	if l.draining {
		l.mu.Unlock()
		return // the goroutine already delivering takes these too
	}
	l.draining = true
	for len(l.pending) > 0 {
		batch := l.pending
		l.pending = nil
		ids := make([]int, 0, len(l.fns))
		for id := range l.fns {
			ids = append(ids, id)
		}
		slices.Sort(ids) // registration order
		fns := make([]*listener, len(ids))
		for i, id := range ids {
			fns[i] = l.fns[id]
		}
		l.mu.Unlock()
		for _, u := range batch {
			for _, f := range fns {
				if f.off.Load() {
					continue
				}
				if f.names != nil {
					name, ok := payloadName(u.Data)
					if !ok || !f.names[name] {
						continue
					}
				}
				if ev, ok := e.event(u); ok {
					f.fn(ev)
				}
			}
		}
		l.mu.Lock()
	}
	l.draining = false
	l.mu.Unlock()
}

// payloadName reads the name of an event payload without decoding the
// arguments.
func payloadName(data []byte) (string, bool) {
	if len(data) < 1 || data[0] != 0x82 {
		return "", false
	}
	var name string
	if _, err := value.Dec.UnmarshalFirst(data[1:], &name); err != nil {
		return "", false
	}
	return name, true
}

func (l *listeners) add(f *listener) (cancel func()) {
	l.mu.Lock()
	if l.fns == nil {
		l.fns = make(map[int]*listener)
	}
	id := l.next
	l.next++
	l.fns[id] = f
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.off.Store(true)
			l.mu.Lock()
			delete(l.fns, id)
			l.mu.Unlock()
		})
	}
}

// On calls fn for every event named event that this replica applies from
// now on, local or remote, until cancel is called. Events are delivered in
// the order they are applied, which keeps each source's order; each event
// once. After cancel returns, fn is not called again, unless cancel is
// called by fn itself or concurrently with a call in progress. fn runs on
// the goroutine that applied the event (the emitter, or
// the stream that brought it), after the Emitter's locks are released, one
// call at a time across all listeners; it may call Emit. A slow fn delays
// the writer or stream that brought the event.
func (e *Emitter) On(event string, fn func(Event)) (cancel func()) {
	return e.listen.add(&listener{names: map[string]bool{event: true}, fn: fn})
}

// OnAny calls fn for every event this replica applies from now on, whatever
// its name, as On does.
func (e *Emitter) OnAny(fn func(Event)) (cancel func()) {
	return e.listen.add(&listener{fn: fn})
}

// Chan sends to ch every event this replica applies from now on whose name
// is one of events, or every event if none are given, until cancel is
// called. Each Event holds arguments of its own. Sends block: give ch a
// buffer, or read it promptly, or writers and streams wait. cancel also
// releases a send that is blocked.
func (e *Emitter) Chan(ch chan<- Event, events ...string) (cancel func()) {
	done := make(chan struct{})
	send := func(ev Event) {
		select {
		case ch <- ev:
		case <-done:
		}
	}
	f := &listener{fn: send}
	if len(events) > 0 {
		f.names = make(map[string]bool, len(events))
		for _, n := range events {
			f.names[n] = true
		}
	}
	stop := e.listen.add(f)
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			stop()
		})
	}
}
