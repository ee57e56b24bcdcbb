package emitter

import (
	"github.com/scuttle-go/scuttle/internal/value"
	"github.com/scuttle-go/scuttle/notify"
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

// listeners holds the Emitter's listeners and the events waiting for them.
// Events are queued while the base's lock is held (in ApplyUpdate) and
// delivered after it is released (in AfterApply); see package notify for
// the order. An update is decoded afresh for each listener.
type listeners struct {
	n notify.Notifier[scuttlebutt.Update]
}

func (l *listeners) queue(u scuttlebutt.Update) { l.n.Queue(u) }

func (l *listeners) deliver(*Emitter) { l.n.Deliver() }

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

// addListener registers fn for the events named in names, or for every
// event if names is nil.
func (e *Emitter) addListener(names map[string]bool, fn func(Event)) (cancel func()) {
	return e.listen.n.Add(func(u scuttlebutt.Update) {
		if names != nil {
			if name, ok := payloadName(u.Data); !ok || !names[name] {
				return
			}
		}
		if ev, ok := e.event(u); ok {
			fn(ev)
		}
	})
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
	return e.addListener(map[string]bool{event: true}, fn)
}

// OnAny calls fn for every event this replica applies from now on, whatever
// its name, as On does.
func (e *Emitter) OnAny(fn func(Event)) (cancel func()) {
	return e.addListener(nil, fn)
}

// Chan sends to ch every event this replica applies from now on whose name
// is one of events, or every event if none are given, until cancel is
// called. Each Event holds arguments of its own. Sends block: give ch a
// buffer, or read it promptly, or writers and streams wait. cancel also
// releases a send that is blocked; once it returns nothing more is sent to
// ch.
func (e *Emitter) Chan(ch chan<- Event, events ...string) (cancel func()) {
	var names map[string]bool
	if len(events) > 0 {
		names = make(map[string]bool, len(events))
		for _, n := range events {
			names[n] = true
		}
	}
	return notify.Chan(func(fn func(Event)) func() { return e.addListener(names, fn) }, ch)
}
