package emitter

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Errors returned by this package. Callers test for them with errors.Is.
var (
	// ErrInvalidArg means an event argument cannot be replicated: a type
	// CBOR and JSON cannot both carry, a NaN or infinity, an integer beyond
	// int64, a string that is not UTF-8, or nesting deeper than the limit.
	// From a peer, it means a malformed event payload.
	ErrInvalidArg = errors.New("emitter: invalid argument")
	// ErrInvalidName means an event name is not UTF-8.
	ErrInvalidName = errors.New("emitter: invalid event name")
	// ErrInvalidConfig means a Config field is out of range.
	ErrInvalidConfig = errors.New("emitter: invalid config")
)

// DefaultMaxEvents is the default of Config.MaxEvents.
const DefaultMaxEvents = 10000

// Config configures an Emitter. A nil *Config and every zero field mean the
// default; New copies the Config and never modifies the caller's.
type Config struct {
	// Now is the wall clock: it stamps events (through the replica's hybrid
	// logical clock) and decides which are older than MaxAge. nil means
	// time.Now. Tests inject a fake clock here.
	Now func() time.Time

	// MaxUpdateSize is the largest encoded event (name and arguments), in
	// bytes: scuttlebutt.Config.MaxUpdateSize. 0 means its default, 1 MiB.
	MaxUpdateSize int

	// Replica configures the replicated base: its bounds on peers' clocks
	// and sources, its incarnation and its logger (see scuttlebutt.Config).
	// nil means the defaults. Now and MaxUpdateSize above take precedence
	// over its fields of the same name.
	Replica *scuttlebutt.Config

	// MaxEvents is how many events the Emitter keeps for replication, from
	// all sources together; past it the oldest, by (Timestamp, Source), are
	// dropped. 0 means DefaultMaxEvents (10,000). A negative value means no
	// count limit, allowed only with a MaxAge, so that memory stays bounded
	// by the event rate times MaxAge. Memory is about MaxEvents times the
	// average encoded event plus 64 bytes.
	MaxEvents int

	// MaxAge drops events older than MaxAge by the timestamp they carry, on
	// this replica's clock (Now). 0 means no age limit. Dropping happens as
	// events are applied and as history is read, so an idle Emitter keeps
	// what it had until the next event or sync, without growing.
	MaxAge time.Duration
}

// withDefaults returns a copy of c (nil allowed) with the defaults filled
// in, or an error naming a field that is out of range.
func (c *Config) withDefaults() (Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	switch {
	case out.MaxAge < 0:
		return out, fmt.Errorf("%w: MaxAge %v is negative", ErrInvalidConfig, out.MaxAge)
	case out.MaxEvents == 0:
		out.MaxEvents = DefaultMaxEvents
	case out.MaxEvents < 0 && out.MaxAge == 0:
		return out, fmt.Errorf("%w: no MaxEvents and no MaxAge: memory would grow without bound", ErrInvalidConfig)
	}
	return out, nil
}

// Emitter is a replicated event emitter: every event emitted on any replica
// is delivered, exactly once, to the listeners of every replica it reaches.
// It embeds *scuttlebutt.Scuttlebutt, so it has ID and Clock and can be
// served with package stream; its History is the base's. The methods the
// base calls (scuttlebutt.Replica, Validator, AfterApplier) are on an
// unexported adapter, not on Emitter; the base's Validator method returns
// it. All methods are safe for concurrent use.
type Emitter struct {
	*scuttlebutt.Scuttlebutt

	now       func() time.Time
	maxEvents int // < 0: no count limit
	maxAge    time.Duration

	mu      sync.Mutex
	sources map[string]*sourceLog
	count   int // events retained, all sources

	listen listeners
}

// sourceLog holds one source's retained events in timestamp order (the
// base applies each source's updates in that order), oldest first.
type sourceLog struct {
	events []scuttlebutt.Update
}

// New returns an Emitter with the given replica id and no events; nil cfg
// means the defaults. An empty or malformed id is an error wrapping
// scuttlebutt.ErrInvalidID; a bad Config one wrapping ErrInvalidConfig.
func New(id string, cfg *Config) (*Emitter, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Emitter{
		now:       c.Now,
		maxEvents: c.MaxEvents,
		maxAge:    c.MaxAge,
		sources:   make(map[string]*sourceLog),
	}
	sb, err := scuttlebutt.New(id, replica{e}, c.base())
	if err != nil {
		return nil, err
	}
	e.Scuttlebutt = sb
	return e, nil
}

// Emit emits an event named event with the given arguments: it is applied
// here (listeners of this replica receive it with Local set) and replicated
// to every peer. The name is data and means nothing to the Emitter: any
// UTF-8 string is a name, and no name triggers any behaviour. Arguments are
// nil, bool, integers (within int64), finite floats, strings, []byte, and
// slices and string-keyed maps of these; anything else is an error wrapping
// ErrInvalidArg, and nothing is emitted.
//
// Emit returns once the event is applied (and, with a storage attached,
// durable); listeners may run before or just after it returns.
func (e *Emitter) Emit(event string, args ...any) error {
	if !utf8.ValidString(event) {
		return fmt.Errorf("emitter: emit %q: %w", event, ErrInvalidName)
	}
	for i, a := range args {
		if err := checkArg(a); err != nil {
			return fmt.Errorf("emitter: emit %q: argument %d: %w", event, i, err)
		}
	}
	data, err := encodePayload(event, args)
	if err != nil {
		return fmt.Errorf("emitter: emit %q: %w: %v", event, ErrInvalidArg, err)
	}
	if _, _, err := e.LocalUpdate(data); err != nil {
		return fmt.Errorf("emitter: emit %q: %w", event, err)
	}
	return nil
}

// Events returns the retained events newer than since (every retained
// event for a nil or empty clock), in (Timestamp, Source) order, each with
// arguments of its own. An application that records which events it has
// processed (say, the Clock of the events it has handled) uses Events after
// a restart to find what it has not.
func (e *Emitter) Events(since vclock.Clock) []Event {
	us := replica{e}.History(since)
	out := make([]Event, 0, len(us))
	for _, u := range us {
		if ev, ok := e.event(u); ok {
			out = append(out, ev)
		}
	}
	return out
}

// Len returns how many events the Emitter retains.
func (e *Emitter) Len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.count
}

// replica is what Emitter hands the base: the methods only the base calls,
// kept off Emitter's exported API. It holds just the pointer, so it is
// stored in the base's interfaces without an allocation or another
// indirection.
type replica struct{ e *Emitter }

// History implements scuttlebutt.Replica: every retained event newer than
// sources, in (Timestamp, Source) order. Events past MaxAge are dropped
// first. It costs O(s log n + k log k) for s sources and k events returned.
func (r replica) History(sources vclock.Clock) []scuttlebutt.Update {
	e := r.e
	e.mu.Lock()
	defer e.mu.Unlock()
	e.expireLocked()
	var out []scuttlebutt.Update
	runs := 0
	for src, log := range e.sources {
		after := sources[src]
		i := sort.Search(len(log.events), func(i int) bool { return log.events[i].Timestamp > after })
		if i < len(log.events) {
			runs++
			out = append(out, log.events[i:]...)
		}
	}
	if runs > 1 {
		slices.SortFunc(out, scuttlebutt.Compare)
	}
	return out
}

// ValidateUpdate implements scuttlebutt.Validator: the payload must be
// [name, [args...]] with a UTF-8 name and arguments Emit would accept.
func (replica) ValidateUpdate(u scuttlebutt.Update) error {
	_, args, err := decodePayload(u.Data)
	if err != nil {
		return err
	}
	for i, a := range args {
		if err := checkArg(a); err != nil {
			return fmt.Errorf("argument %d: %w", i, err)
		}
	}
	return nil
}

// ApplyUpdate implements scuttlebutt.Replica: it retains the event, drops
// what falls out of retention, and queues the event for this replica's
// listeners. Every event is new (the base applies each update once, in
// per-source timestamp order), so it always reports true.
func (r replica) ApplyUpdate(u scuttlebutt.Update) bool {
	e := r.e
	e.mu.Lock()
	log := e.sources[u.Source]
	if log == nil {
		log = &sourceLog{}
		e.sources[u.Source] = log
	}
	log.events = append(log.events, u)
	e.count++
	e.expireLocked()
	if e.maxEvents >= 0 {
		for e.count > e.maxEvents {
			e.dropOldestLocked()
		}
	}
	e.mu.Unlock()
	e.listen.queue(u)
	return true
}

// AfterApply implements scuttlebutt.AfterApplier: it delivers the events
// just applied to the listeners, outside the base's lock.
func (r replica) AfterApply() { r.e.listen.deliver(r.e) }

// expireLocked drops the events older than MaxAge.
func (e *Emitter) expireLocked() {
	if e.maxAge <= 0 {
		return
	}
	cutoff := vclock.FromTime(e.now().Add(-e.maxAge))
	for src, log := range e.sources {
		n := sort.Search(len(log.events), func(i int) bool { return log.events[i].Timestamp >= cutoff })
		e.dropLocked(src, log, n)
	}
}

// dropOldestLocked drops the oldest retained event by (Timestamp, Source).
func (e *Emitter) dropOldestLocked() {
	var (
		oldest    scuttlebutt.Update
		oldestSrc string
		found     bool
	)
	for src, log := range e.sources {
		if len(log.events) > 0 && (!found || log.events[0].Less(oldest)) {
			oldest, oldestSrc, found = log.events[0], src, true
		}
	}
	if found {
		e.dropLocked(oldestSrc, e.sources[oldestSrc], 1)
	}
}

// dropLocked drops the first n events of src's log, and the log itself once
// it is empty. It clears the dropped slots so their payloads can be freed
// before the slice is reallocated.
func (e *Emitter) dropLocked(src string, log *sourceLog, n int) {
	if n == 0 {
		return
	}
	clear(log.events[:n])
	log.events = log.events[n:]
	e.count -= n
	if len(log.events) == 0 {
		delete(e.sources, src)
	}
}

var (
	_ scuttlebutt.Replica      = replica{}
	_ scuttlebutt.Validator    = replica{}
	_ scuttlebutt.AfterApplier = replica{}
	_ scuttlebutt.Document     = (*Emitter)(nil)
)

// base returns the configuration of the replicated base: Replica, with
// this Config's Now and MaxUpdateSize.
func (c *Config) base() *scuttlebutt.Config {
	return c.Replica.With(c.Now, c.MaxUpdateSize)
}
