package scuttlebutt

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/scuttle-go/scuttle/vclock"
)

// Scuttlebutt is the base every replicated type embeds. It owns the replica
// id, the vector clock, the hybrid logical clock that stamps local updates,
// and the live subscriptions of the links that serve the replica to peers.
// It calls the embedding type through the Replica interface.
//
// All methods are safe for concurrent use.
type Scuttlebutt struct {
	id      string
	r       Replica
	val     Validator    // nil if r is not one
	after   AfterApplier // nil if r is not one
	hlc     *vclock.HLC
	maxSize int

	mu      sync.Mutex // guards clock, subs, store, seq and every call into r
	clock   vclock.Clock
	subs    []*subscription // few: a slice is faster to walk per update than a map
	store   Storage         // nil until Attach
	seq     uint64          // the last sequence number store returned
	durable atomic.Uint64   // the highest sequence number store has synced
	// replayed is set when Replay has applied updates whose AfterApply is
	// still due: Attach makes the call.
	replayed bool
}

// New returns the base for replica r with the given id. A nil cfg means
// DefaultConfig. The embedding type passes itself as r and stores the result
// in its embedded field:
//
//	c := &Counter{}
//	sb, err := scuttlebutt.New(id, c, nil)
//	if err != nil {
//		return nil, err
//	}
//	c.Scuttlebutt = sb
//
// New returns ErrInvalidID for an empty or malformed id.
func New(id string, r Replica, cfg *Config) (*Scuttlebutt, error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, ErrNilReplica
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Scuttlebutt{
		id:      id,
		r:       r,
		hlc:     vclock.NewHLC(c.Now),
		maxSize: c.MaxUpdateSize,
		clock:   vclock.Clock{},
	}
	s.val, _ = r.(Validator)
	s.after, _ = r.(AfterApplier)
	return s, nil
}

// Base returns s itself, so that *Scuttlebutt and every type that embeds it
// satisfy Document.
func (s *Scuttlebutt) Base() *Scuttlebutt { return s }

// ID returns the replica's id.
func (s *Scuttlebutt) ID() string { return s.id }

// Clock returns a copy of the replica's vector clock.
func (s *Scuttlebutt) Clock() vclock.Clock {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock.Clone()
}

// Now returns a fresh timestamp from the replica's hybrid logical clock,
// later than every timestamp the replica has made or seen.
func (s *Scuttlebutt) Now() vclock.Timestamp { return s.hlc.Now() }

// LocalUpdate stamps data with this replica's id and a fresh timestamp,
// applies it through ApplyUpdate and sends it to every live peer. data must be
// one well-formed CBOR item of at most Config.MaxUpdateSize bytes; the base
// keeps it, so the caller must not modify it afterwards. The returned bool is
// what ApplyUpdate reported.
func (s *Scuttlebutt) LocalUpdate(data []byte) (u Update, changed bool, err error) {
	u = Update{Source: s.id, Data: data}
	u.Timestamp = 1 // placeholder so validate checks the rest
	if err := validate(u, s.maxSize, true); err != nil {
		return Update{}, false, err
	}
	s.mu.Lock()
	u.Timestamp = s.hlc.Now()
	if err := s.appendLocked([]Update{u}); err != nil {
		s.mu.Unlock()
		return Update{}, false, err
	}
	changed = s.applyLocked(u, nil)
	seq := s.seq
	s.mu.Unlock()
	s.afterApply()
	if err := s.sync(seq); err != nil {
		return u, changed, err
	}
	return u, changed, nil
}

// Apply applies updates that came from elsewhere (a file, a custom
// transport), as a link does with what a peer sends. Every update is checked
// first; if one is invalid, Apply returns an error wrapping ErrInvalidUpdate
// and applies none. Stale and duplicate updates are skipped; applied reports
// how many advanced the clock.
func (s *Scuttlebutt) Apply(updates ...Update) (applied int, err error) {
	if err := s.check(updates); err != nil {
		return 0, err
	}
	return s.apply(updates, nil)
}

// Replay applies updates read back from the replica's own log, as Apply
// does, but defers AfterApply: the base calls it once, when the next
// storage is attached, instead of after each batch. A persistence package
// replays with it before Attach (see Storage), so that a type that writes
// in AfterApply (package lock acknowledges claims) does not stamp a local
// update in the middle of the replay, which would make the rest of its own
// logged updates look stale, and so that what it writes then is logged.
func (s *Scuttlebutt) Replay(updates ...Update) (applied int, err error) {
	if err := s.check(updates); err != nil {
		return 0, err
	}
	return s.applyBatch(updates, nil, false)
}

// RestoreClock merges c into the replica's clock and makes the hybrid
// logical clock observe every entry, without applying anything and without
// telling anyone: no link sends it and AfterApply is not called. It is for
// persistence: a log records that the replica held everything up to c,
// including updates its History has since left out (an emitter's events
// past retention, a model's superseded writes), and its replay restores
// that with RestoreClock, before Attach and before the replica is served.
// The restarted replica then neither takes from peers again what it had
// nor stamps a local update at or before a timestamp it already used.
// Entries with an invalid timestamp are ignored.
func (s *Scuttlebutt) RestoreClock(c vclock.Clock) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for src, t := range c {
		if t.Valid() {
			s.clock.Advance(src, t)
			s.hlc.Observe(t)
		}
	}
}

// check validates a batch of foreign updates without applying any.
func (s *Scuttlebutt) check(updates []Update) error {
	for i, u := range updates {
		// A batch repeats few sources: check each id once.
		known := i > 0 && u.Source == updates[i-1].Source
		if err := validate(u, s.maxSize, known); err != nil {
			return err
		}
		if s.val != nil {
			if err := s.val.ValidateUpdate(u); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrInvalidUpdate, u, err)
			}
		}
	}
	return nil
}

// apply applies checked updates, skipping the subscription they came from,
// and with storage attached, returns once they are durable.
func (s *Scuttlebutt) apply(updates []Update, from *subscription) (applied int, err error) {
	return s.applyBatch(updates, from, true)
}

// applyBatch is apply; without after, it leaves AfterApply to Attach.
func (s *Scuttlebutt) applyBatch(updates []Update, from *subscription, after bool) (applied int, err error) {
	s.mu.Lock()
	fresh := updates
	if s.store != nil {
		// Only what advances the clock goes to the log. Per source, updates
		// increase, so a later duplicate in the batch is dropped here too.
		fresh = nil
		seen := vclock.Clock{}
		for _, u := range updates {
			if !s.clock.Covers(u.Source, u.Timestamp) && seen.Advance(u.Source, u.Timestamp) {
				fresh = append(fresh, u)
			}
		}
		if err := s.appendLocked(fresh); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
	var latest vclock.Timestamp
	for _, u := range fresh {
		if s.clock.Covers(u.Source, u.Timestamp) {
			continue
		}
		s.applyLocked(u, from)
		latest = max(latest, u.Timestamp)
		applied++
	}
	s.hlc.Observe(latest) // once per batch: the next local write is later
	seq := s.seq
	if applied > 0 && !after {
		s.replayed = true
	}
	s.mu.Unlock()
	if applied > 0 && after {
		s.afterApply()
	}
	return applied, s.sync(seq)
}

// appendLocked hands updates to the storage, if any.
func (s *Scuttlebutt) appendLocked(us []Update) error {
	if s.store == nil || len(us) == 0 {
		return nil
	}
	seq, err := s.store.Append(us)
	if err != nil {
		return err
	}
	s.seq = seq
	return nil
}

// sync waits until the storage has made seq durable, then lets links send
// what it covers.
func (s *Scuttlebutt) sync(seq uint64) error {
	if seq == 0 || s.durable.Load() >= seq {
		return nil
	}
	s.mu.Lock()
	st := s.store
	s.mu.Unlock()
	if err := st.Sync(seq); err != nil {
		return err
	}
	for {
		d := s.durable.Load()
		if d >= seq {
			return nil
		}
		if s.durable.CompareAndSwap(d, seq) {
			break
		}
	}
	s.mu.Lock()
	for _, sub := range s.subs {
		sub.poke()
	}
	s.mu.Unlock()
	return nil
}

// Attach makes st the replica's storage: from now on every update applied is
// appended to st, and links hold back what st has not made durable. A
// persistence package first replays its log with Replay (and
// RestoreClock), then attaches itself, before the replica is served or
// written to. If Replay applied updates, Attach (of a non-nil st) then
// calls AfterApply once, so that the type acts on them with st attached.
// Attach replaces any storage attached before; nil detaches.
func (s *Scuttlebutt) Attach(st Storage) {
	s.mu.Lock()
	s.store = st
	s.seq = 0
	s.durable.Store(0)
	due := st != nil && s.replayed
	if due {
		s.replayed = false
	}
	s.mu.Unlock()
	if due {
		s.afterApply()
	}
}

// applyLocked applies one update newer than the clock's entry for its
// source, advances the clock and queues the update on every subscription but
// from. An update that ApplyUpdate refused as superseded is still forwarded,
// so that peers' clocks advance past it as ours does.
func (s *Scuttlebutt) applyLocked(u Update, from *subscription) bool {
	changed := s.r.ApplyUpdate(u)
	s.clock[u.Source] = u.Timestamp
	for _, sub := range s.subs {
		if sub != from {
			sub.push(item{update: u, seq: s.seq})
		}
	}
	return changed
}

// mergeClock raises the clock to cover c, after a peer has sent everything
// of its state up to c, and passes the advance on to the other subscriptions.
func (s *Scuttlebutt) mergeClock(c vclock.Clock, from *subscription) {
	s.mu.Lock()
	var moved vclock.Clock
	for src, t := range c {
		if s.clock.Advance(src, t) {
			if moved == nil {
				moved = vclock.Clock{}
			}
			moved[src] = t
			s.hlc.Observe(t)
		}
	}
	if moved != nil {
		for _, sub := range s.subs {
			if sub != from {
				sub.push(item{clock: moved})
			}
		}
	}
	s.mu.Unlock()
	if moved != nil {
		s.afterApply() // types whose state depends on the clock re-read it
	}
}

func (s *Scuttlebutt) afterApply() {
	if s.after != nil {
		s.after.AfterApply()
	}
}

// History returns the replica's updates newer than sources, as
// Replica.History does, with the base's lock held so that it is consistent
// with concurrent writes.
func (s *Scuttlebutt) History(sources vclock.Clock) []Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.r.History(sources)
}

// subscribe computes the history a peer with clock peer lacks, and at the
// same instant starts (or restarts) sub's live queue, so that every update is
// either in the history or queued, never lost between the two. It returns the
// history, the clock it brings the peer up to, and the sequence number that
// must be durable before the history may be sent.
func (s *Scuttlebutt) subscribe(sub *subscription, peer vclock.Clock) ([]Update, vclock.Clock, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.r.History(peer)
	sub.reset()
	if !slices.Contains(s.subs, sub) {
		s.subs = append(s.subs, sub)
	}
	return h, s.clock.Clone(), s.seq
}

// isDurable reports whether the storage has synced seq.
func (s *Scuttlebutt) isDurable(seq uint64) bool {
	return seq == 0 || s.durable.Load() >= seq
}

func (s *Scuttlebutt) unsubscribe(sub *subscription) {
	s.mu.Lock()
	s.subs = slices.DeleteFunc(s.subs, func(x *subscription) bool { return x == sub })
	s.mu.Unlock()
}
