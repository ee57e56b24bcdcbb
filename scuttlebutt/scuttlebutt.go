package scuttlebutt

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scuttle-go/scuttle/vclock"
)

// Scuttlebutt is the base every replicated type embeds. It owns the replica
// id, the vector clock, the hybrid logical clock that stamps local updates,
// and the live subscriptions of the links that serve the replica to peers.
// It calls the embedding type through the Replica interface.
//
// All methods are safe for concurrent use.
type Scuttlebutt struct {
	id         string
	source     string // id~incarnation: the Source of local updates
	twinPrefix string // id~: the prefix of every incarnation's source
	r          Replica
	val        Validator    // nil if r is not one
	whole      bool         // r is a WholeValidator: val scans Data itself
	after      AfterApplier // nil if r is not one
	batch      BatchApplier // nil if r is not one
	hlc        *vclock.HLC
	now        func() time.Time
	maxSize    int
	maxOffset  vclock.Timestamp // Config.MaxClockOffset in ms
	maxSources int
	log        *slog.Logger
	applied    func([]Update) // Config.Applied, or nil
	// twinAfter is the start time plus the clock offset bound: an update of
	// another incarnation of this id stamped later was made by a process
	// that is alive now, not by an earlier run.
	twinAfter vclock.Timestamp

	offsetRefused, sourcesRefused, sourcesDropped, twinCount, forgedCount atomic.Uint64 // Stats

	mu    sync.Mutex // guards everything below and every call into r
	clock vclock.Clock
	// clockOnly holds the sources of the clock that no update applied here
	// came from: learned from a peer's sync or clock message, or a log's
	// clock record. They alone make room for new writers when the clock is
	// full (see Sources in the package doc).
	clockOnly map[string]bool
	subs      []*subscription // few: a slice is faster to walk per update than a map
	store     Storage         // nil until Attach
	gen       uint64          // counts Attach calls: a sync of an older storage is not ours
	seq       uint64          // the last sequence number store returned
	durable   atomic.Uint64   // the highest sequence number store has synced
	// pending holds local updates appended to the storage and waiting for
	// it to sync, in stamp order: they are applied, and so become visible,
	// only once durable, and never if the storage fails.
	pending []*pendingUpdate
	twins   map[string]bool // other live incarnations of this id, reported once
	// replayed is set when Replay has applied updates whose AfterApply is
	// still due: Attach makes the call.
	replayed bool
}

// pendingUpdate is a local update waiting for its storage to sync.
type pendingUpdate struct {
	u       Update
	seq     uint64
	gen     uint64
	durable bool          // its storage has synced it
	changed bool          // what ApplyUpdate reported, once applied
	done    chan struct{} // closed when applied or dropped
}

// Stats counts what the base refused or noticed. The counters only grow.
type Stats struct {
	// OffsetRefused counts updates and clock messages refused with
	// ErrClockOffset.
	OffsetRefused uint64 `json:"offset_refused"`
	// SourcesRefused counts those refused with ErrTooManySources.
	SourcesRefused uint64 `json:"sources_refused"`
	// SourcesDropped counts clock entries of sources no update came from
	// that were not kept because the clock was full: entries of a peer's
	// sync or clock message left out, and entries given up to make room
	// for a writer whose updates arrived.
	SourcesDropped uint64 `json:"sources_dropped"`
	// Twins counts other live processes seen using this replica's id
	// (sources id~x other than Source()).
	// Each is logged once as a warning. An update of another incarnation
	// counts only if it is stamped later than this start plus
	// MaxClockOffset, which an earlier run cannot have done; a link from
	// one counts at once.
	Twins uint64 `json:"twins"`
	// ForgedOwn counts updates and clock entries of this start's own
	// Source that peers sent although it never made them: skipped, and
	// the next local write is stamped after them.
	ForgedOwn uint64 `json:"forged_own"`
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
// New returns ErrInvalidID for an empty or malformed id, or one longer
// than MaxReplicaIDLen.
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
	if len(id) > MaxReplicaIDLen {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d (MaxReplicaIDLen)", ErrInvalidID, len(id), MaxReplicaIDLen)
	}
	source := SourceID(id, c.Incarnation)
	s := &Scuttlebutt{
		id:         id,
		source:     source,
		twinPrefix: id + incarnationSep,
		r:          r,
		hlc:        vclock.NewHLC(c.Now),
		now:        c.Now,
		maxSize:    c.MaxUpdateSize,
		maxOffset:  vclock.Timestamp(c.MaxClockOffset.Milliseconds()),
		maxSources: c.MaxSources,
		log:        c.Logger,
		applied:    c.Applied,
		clock:      vclock.Clock{},
	}
	s.twinAfter = vclock.FromTime(c.Now()) + s.maxOffset
	s.val, _ = r.(Validator)
	_, s.whole = r.(WholeValidator)
	s.after, _ = r.(AfterApplier)
	s.batch, _ = r.(BatchApplier)
	return s, nil
}

// Base returns s itself, so that *Scuttlebutt and every type that embeds it
// satisfy Document.
func (s *Scuttlebutt) Base() *Scuttlebutt { return s }

// Validator returns the replica's Validator, or nil if it has none: what
// checks an update's data as the base does before applying a peer's. A type
// may keep its Replica methods on an unexported adapter (package model
// does), so callers that check updates ahead of the base, such as package
// filelog, ask the base for the Validator rather than the type.
func (s *Scuttlebutt) Validator() Validator { return s.val }

// ID returns the replica's id, as given to New.
func (s *Scuttlebutt) ID() string { return s.id }

// Source returns the source id this start of the replica stamps its updates
// with: ID, a tilde and the incarnation (see Incarnations in the package
// doc). Updates and clock entries of every earlier start of the replica
// carry other sources with the same ID; ReplicaID maps them back.
func (s *Scuttlebutt) Source() string { return s.source }

// MaxSources returns Config.MaxSources: the most sources a clock of this
// replica may name. Package stream bounds the clocks it decodes with it.
func (s *Scuttlebutt) MaxSources() int { return s.maxSources }

// Clock returns a copy of the replica's vector clock.
func (s *Scuttlebutt) Clock() vclock.Clock {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clock.Clone()
}

// WithClock calls fn with a copy of the replica's clock while no update can
// be applied, so that whatever fn reads of the replicated type's state is
// exactly the state that clock describes: a checkpoint, a digest to compare
// with a peer's. fn must not call back into the base (LocalUpdate, Clock,
// Apply...): that would deadlock.
func (s *Scuttlebutt) WithClock(fn func(c vclock.Clock)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.clock.Clone())
}

// Stats returns the base's counters.
func (s *Scuttlebutt) Stats() Stats {
	return Stats{
		OffsetRefused:  s.offsetRefused.Load(),
		SourcesRefused: s.sourcesRefused.Load(),
		SourcesDropped: s.sourcesDropped.Load(),
		Twins:          s.twinCount.Load(),
		ForgedOwn:      s.forgedCount.Load(),
	}
}

// Now returns a fresh timestamp from the replica's hybrid logical clock,
// later than every timestamp the replica has made or seen, or zero if none
// is left (see ErrClockExhausted).
func (s *Scuttlebutt) Now() vclock.Timestamp { return s.hlc.Now() }

// LocalUpdate stamps data with this replica's Source and a fresh timestamp,
// applies it through ApplyUpdate and sends it to every live peer. data must
// be one well-formed CBOR item of at most Config.MaxUpdateSize bytes that
// the type's Validator, if any, accepts; the base keeps it, so the caller
// must not modify it afterwards. The returned bool is what ApplyUpdate
// reported.
//
// With a Storage attached, the update is applied, and so becomes visible
// to readers and peers, only once the storage has made it durable: if
// Append or Sync fails, LocalUpdate returns the error and nothing changes.
func (s *Scuttlebutt) LocalUpdate(data []byte) (u Update, changed bool, err error) {
	u = Update{Source: s.source, Data: data}
	u.Timestamp = 1 // placeholder so validate checks the rest
	if err := s.validate(u, true); err != nil {
		return Update{}, false, err
	}
	if s.val != nil {
		if err := s.val.ValidateUpdate(u); err != nil {
			return Update{}, false, fmt.Errorf("%w: %s: %v", ErrInvalidUpdate, s.source, err)
		}
	}
	return s.localUpdate(u)
}

// LocalUpdateChecked is LocalUpdate for data the replicated type has
// encoded itself, in a form it knows to be one well-formed CBOR item that
// its Validator accepts: it checks only the size (Config.MaxUpdateSize),
// and not the rest again, which is most of a small local write's cost. An
// update that breaks that promise is applied and sent here, and refused by
// every peer, whose stream with this replica then ends: when in doubt,
// call LocalUpdate.
func (s *Scuttlebutt) LocalUpdateChecked(data []byte) (u Update, changed bool, err error) {
	u = Update{Source: s.source, Data: data}
	u.Timestamp = 1 // placeholder so validateHead checks the size
	if err := validateHead(u, s.maxSize, true); err != nil {
		return Update{}, false, err
	}
	return s.localUpdate(u)
}

// localUpdate is LocalUpdate once u, stamped with a placeholder, is
// checked.
func (s *Scuttlebutt) localUpdate(u Update) (_ Update, changed bool, err error) {
	s.mu.Lock()
	if u.Timestamp = s.hlc.Now(); !u.Timestamp.Valid() {
		s.mu.Unlock()
		return Update{}, false, fmt.Errorf("%w: the last timestamp is %v", ErrClockExhausted, s.hlc.Last())
	}
	st := s.store
	if st == nil {
		changed = s.applyLocked(u, nil, 0, false)
		s.mu.Unlock()
		s.afterApply()
		return u, changed, nil
	}
	seq, err := st.Append([]Update{u})
	if err != nil {
		s.mu.Unlock()
		return Update{}, false, err
	}
	s.seq = seq
	p := &pendingUpdate{u: u, seq: seq, gen: s.gen, done: make(chan struct{})}
	s.pending = append(s.pending, p)
	gen := s.gen
	s.mu.Unlock()

	err = s.sync(st, gen, seq)
	s.mu.Lock()
	if err != nil && !p.durable {
		// Nothing of it was applied: drop it, and let what waits behind it go.
		s.pending = slices.DeleteFunc(s.pending, func(q *pendingUpdate) bool { return q == p })
		close(p.done)
		s.applyPendingLocked()
		s.mu.Unlock()
		return Update{}, false, err
	}
	s.applyPendingLocked()
	s.mu.Unlock()
	<-p.done // applied by now, unless an older storage's writer is still syncing
	s.afterApply()
	return u, p.changed, nil
}

// applyPendingLocked applies the durable local updates at the head of the
// pending queue, in stamp order.
func (s *Scuttlebutt) applyPendingLocked() {
	n := 0
	for n < len(s.pending) && s.pending[n].durable {
		p := s.pending[n]
		p.changed = s.applyLocked(p.u, nil, 0, false)
		close(p.done)
		n++
	}
	if n > 0 {
		clear(s.pending[:n])
		s.pending = s.pending[n:]
		if len(s.pending) == 0 {
			s.pending = nil
		}
	}
}

// Apply applies updates that came from elsewhere (a file, a custom
// transport), as a link does with what a peer sends. Every update is checked
// first, against the bounds too; if one is refused, Apply returns an error
// wrapping ErrInvalidUpdate, ErrClockOffset or ErrTooManySources and
// applies none. Stale and duplicate updates are skipped; applied reports
// how many advanced the clock.
func (s *Scuttlebutt) Apply(updates ...Update) (applied int, err error) {
	if err := s.check(updates, ""); err != nil {
		return 0, err
	}
	return s.apply(updates, nil, "")
}

// Replay applies updates read back from the replica's own log, as Apply
// does, with the same checks of sources, timestamps (the clock offset
// bound included) and sizes, but not of Data: the log checked that (a
// persistence package checks, before it replays anything, that Data is one
// well-formed item the type's Validator accepts, as package filelog does,
// so that a log it cannot take leaves the replica as it was). It defers
// AfterApply: the base calls it
// once, when the next storage is attached, instead of after each batch. A
// persistence package replays with it before Attach (see Storage), so that
// a type that writes in AfterApply (package lock acknowledges claims) does
// not stamp a local update in the middle of the replay, which would make
// the rest of its own logged updates look stale, and so that what it
// writes then is logged.
func (s *Scuttlebutt) Replay(updates ...Update) (applied int, err error) {
	if err := s.checkReplay(updates); err != nil {
		return 0, err
	}
	return s.applyBatch(updates, nil, "", false)
}

// RestoreClock merges c into the replica's clock and makes the hybrid
// logical clock observe every entry, without applying anything and without
// telling anyone: no link sends it and AfterApply is not called. It is for
// persistence: a log records that the replica held everything up to c,
// including updates its History has since left out (an emitter's events
// past retention, a model's superseded writes), and its replay restores
// that with RestoreClock, before Attach and before the replica is served.
// The restarted replica then does not take again from peers what it had.
//
// c is checked as a peer's clock is: an invalid entry is an ErrProtocol,
// one past the clock offset bound an ErrClockOffset, and a clock of more
// than MaxSources sources an ErrTooManySources; then nothing is restored.
// Entries of new sources that do not fit the clock are left out, as from a
// peer's clock message (see Sources in the package doc).
func (s *Scuttlebutt) RestoreClock(c vclock.Clock) error {
	if err := s.checkClock(c, ""); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var latest vclock.Timestamp
	for src, t := range s.admitClockLocked(c, "", true) {
		if s.advanceClockLocked(src, t) {
			latest = max(latest, t)
		}
	}
	s.hlc.Observe(latest)
	return nil
}

// advanceClockLocked raises src's entry to t from a clock, not an update,
// and reports whether it moved; a source new to the clock is clock-only.
func (s *Scuttlebutt) advanceClockLocked(src string, t vclock.Timestamp) bool {
	_, known := s.clock[src]
	if !s.clock.Advance(src, t) {
		return false
	}
	if !known {
		if s.clockOnly == nil {
			s.clockOnly = map[string]bool{}
		}
		s.clockOnly[src] = true
	}
	return true
}

// CheckClock reports what Replay and RestoreClock would refuse of a log
// whose latest timestamps per source are c, and changes nothing: an
// invalid entry (ErrProtocol) or one past the clock offset bound
// (ErrClockOffset). A persistence package calls it before it replays
// anything, so that a log it cannot take leaves the replica untouched.
func (s *Scuttlebutt) CheckClock(c vclock.Clock) error { return s.checkTimes(c, "") }

// checkTimes checks a clock's ids and timestamps, against the horizon too.
func (s *Scuttlebutt) checkTimes(c vclock.Clock, peer string) error {
	var horizon vclock.Timestamp
	for src, t := range c {
		if err := ValidID(src); err != nil {
			return fmt.Errorf("%w: clock source: %v", ErrProtocol, err)
		}
		if t != 0 && !t.Valid() {
			return fmt.Errorf("%w: clock entry %s:%v is not positive and finite", ErrProtocol, src, float64(t))
		}
		if t > horizon {
			if horizon == 0 {
				horizon = s.horizon()
			}
			if t > horizon {
				return s.offsetError(peer, src, t, horizon)
			}
		}
	}
	return nil
}

// horizon returns the latest timestamp the replica accepts now: the wall
// clock plus the offset bound.
func (s *Scuttlebutt) horizon() vclock.Timestamp {
	return vclock.FromTime(s.now()) + s.maxOffset
}

// offsetError reports a timestamp past the horizon; peer is "" for
// updates that did not come from a link.
func (s *Scuttlebutt) offsetError(peer, source string, t, horizon vclock.Timestamp) error {
	s.offsetRefused.Add(1)
	bound := time.Duration(s.maxOffset) * time.Millisecond
	ahead := float64(t - horizon + s.maxOffset) // ms ahead of the wall clock
	at, how := fmt.Sprintf("%.6g", float64(t)), "centuries"
	if ahead < float64(100*365*24*time.Hour/time.Millisecond) {
		at, how = t.String(), (time.Duration(ahead) * time.Millisecond).String()
	}
	return fmt.Errorf("%w: %ssource %s at %s, %s ahead, the bound is %v", ErrClockOffset, fromPeer(peer), source, at, how, bound)
}

// check validates a batch of foreign updates without applying any: each
// update on its own, and its timestamp against the horizon.
func (s *Scuttlebutt) check(updates []Update, peer string) error {
	var horizon vclock.Timestamp
	for i, u := range updates {
		// A batch repeats few sources: check each id once.
		known := i > 0 && u.Source == updates[i-1].Source
		if err := s.validate(u, known); err != nil {
			return err
		}
		if u.Timestamp > horizon {
			if horizon == 0 {
				horizon = s.horizon()
			}
			if u.Timestamp > horizon {
				return s.offsetError(peer, u.Source, u.Timestamp, horizon)
			}
		}
		if s.val != nil {
			if err := s.val.ValidateUpdate(u); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrInvalidUpdate, u, err)
			}
		}
	}
	return nil
}

// checkReplay is check for updates the replica's own log has checked:
// everything but Data.
func (s *Scuttlebutt) checkReplay(updates []Update) error {
	horizon := s.horizon()
	for i, u := range updates {
		if err := validateHead(u, s.maxSize, i > 0 && u.Source == updates[i-1].Source); err != nil {
			return err
		}
		if u.Timestamp > horizon {
			return s.offsetError("", u.Source, u.Timestamp, horizon)
		}
	}
	return nil
}

// checkClock validates a clock a peer (or a log) sent: ids, timestamps,
// the horizon and the number of sources.
func (s *Scuttlebutt) checkClock(c vclock.Clock, peer string) error {
	if len(c) > s.maxSources {
		return s.sourcesError(peer, fmt.Sprintf("a clock of %d sources", len(c)))
	}
	return s.checkTimes(c, peer)
}

// sourcesError reports a clock that would grow past MaxSources.
func (s *Scuttlebutt) sourcesError(peer, what string) error {
	s.sourcesRefused.Add(1)
	return fmt.Errorf("%w: %s%s, the limit is %d", ErrTooManySources, fromPeer(peer), what, s.maxSources)
}

// admitLocked checks what a checked batch would do to the clock, and
// returns the updates to apply: no more sources than the limit (else an
// error, and nothing is applied), and, unless own says the updates come
// from this replica's own log, none of this start's own source that it
// never made (see forgedLocked).
func (s *Scuttlebutt) admitLocked(updates []Update, peer string, own bool) ([]Update, error) {
	var added map[string]bool
	forged := false
	var cur vclock.Timestamp
	ok := false
	for i, u := range updates {
		if i == 0 || u.Source != updates[i-1].Source {
			// Batches come in runs of one source: one look-up a run.
			cur, ok = s.clock[u.Source]
		}
		if u.Timestamp <= cur {
			continue
		}
		if u.Source == s.source && !own {
			forged = true
			continue
		}
		if !ok && !added[u.Source] {
			if added == nil {
				added = map[string]bool{}
			}
			added[u.Source] = true
		}
	}
	if over := len(s.clock) + len(added) - s.maxSources; over > 0 && !s.evictLocked(over, updates) {
		return nil, s.sourcesError(peer, fmt.Sprintf("%d new sources on top of %d, %d of them clock-only", len(added), len(s.clock), len(s.clockOnly)))
	}
	if forged {
		kept := make([]Update, 0, len(updates))
		for _, u := range updates {
			if u.Source == s.source && u.Timestamp > s.clock[u.Source] {
				s.forgedLocked(peer, u.Timestamp)
				continue
			}
			kept = append(kept, u)
		}
		updates = kept
	}
	return updates, nil
}

// admitClockLocked returns the entries of c to merge into the clock: all
// but a forged entry of this start's own source (see forgedLocked, skipped
// unless own says c comes from this replica's own log), and, when the
// clock is full, the entries of new sources that do not fit: those are
// dropped, first in source order, and counted. A clock entry alone never
// ends a session for the source limit: no update is lost by not keeping
// it, and a peer can fill the clock with made-up ones (see Sources in the
// package doc).
func (s *Scuttlebutt) admitClockLocked(c vclock.Clock, peer string, own bool) vclock.Clock {
	var skip []string
	var fresh []string
	for src, t := range c {
		cur, ok := s.clock[src]
		switch {
		case t <= cur:
		case src == s.source && !own:
			s.forgedLocked(peer, t)
			skip = append(skip, src)
		case !ok:
			fresh = append(fresh, src)
		}
	}
	room := max(s.maxSources-len(s.clock), 0)
	if len(skip) == 0 && len(fresh) <= room {
		return c
	}
	out := maps.Clone(c)
	for _, src := range skip {
		delete(out, src)
	}
	if len(fresh) > room {
		slices.Sort(fresh)
		for _, src := range fresh[room:] {
			delete(out, src)
		}
		s.sourcesDropped.Add(uint64(len(fresh) - room))
		s.log.Warn("scuttlebutt: the clock is full: entries of sources no update came from were left out",
			"source", s.source, "peer", peer, "dropped", len(fresh)-room, "limit", s.maxSources)
	}
	return out
}

// evictLocked gives up n clock-only entries to make room for the sources
// of updates, which must not be among them, and reports whether there were
// enough. It gives up the oldest first, in (Timestamp, Source) order.
func (s *Scuttlebutt) evictLocked(n int, updates []Update) bool {
	if len(s.clockOnly) < n {
		return false
	}
	batch := map[string]bool{}
	for _, u := range updates {
		batch[u.Source] = true
	}
	victims := make([]Update, 0, len(s.clockOnly))
	for src := range s.clockOnly {
		if !batch[src] {
			victims = append(victims, Update{Source: src, Timestamp: s.clock[src]})
		}
	}
	if len(victims) < n {
		return false
	}
	slices.SortFunc(victims, Compare)
	for _, v := range victims[:n] {
		delete(s.clock, v.Source)
		delete(s.clockOnly, v.Source)
	}
	s.sourcesDropped.Add(uint64(n))
	s.log.Warn("scuttlebutt: the clock is full: gave up entries of sources no update came from, for new writers",
		"source", s.source, "dropped", n, "limit", s.maxSources)
	return true
}

// forgedLocked notes a peer's claim, at t, on this start's own source past
// everything it has made: a forged update or clock entry, by the peer or
// relayed by it from whoever forged it. Refusing the session would cut
// this replica off from an innocent relay, so the claim is skipped instead:
// not applied, not merged. The hybrid logical clock moves past t (the
// claim is within the offset bound), so that this replica's next writes are
// later than the claim and reach the replicas that believed it. It is
// counted in Stats, and logged the 1st, 2nd, 4th, 8th... time.
func (s *Scuttlebutt) forgedLocked(peer string, t vclock.Timestamp) {
	s.hlc.Observe(t)
	if n := s.forgedCount.Add(1); n&(n-1) == 0 {
		s.log.Warn("scuttlebutt: a peer claims updates of this replica's own source that it never made; skipped",
			"source", s.source, "peer", peer, "at", t.String(), "count", n)
	}
}

func fromPeer(peer string) string {
	if peer == "" {
		return ""
	}
	return "peer " + peer + ": "
}

// noteTwinLocked reports, once per source, another incarnation of this
// replica's id that wrote at t, after this one started: a second live
// process with the same id.
func (s *Scuttlebutt) noteTwinLocked(source string, t vclock.Timestamp) {
	if t <= s.twinAfter || source == s.source || !strings.HasPrefix(source, s.twinPrefix) ||
		ReplicaID(source) != s.id {
		return
	}
	s.reportTwinLocked(source, "it wrote at "+t.String())
}

// reportTwinLocked logs and counts a twin the first time it is seen.
func (s *Scuttlebutt) reportTwinLocked(source, how string) {
	if s.twins[source] {
		return
	}
	if s.twins == nil {
		s.twins = map[string]bool{}
	}
	s.twins[source] = true
	s.twinCount.Add(1)
	s.log.Warn("scuttlebutt: another live process uses this replica's id; its updates are kept apart under its own source",
		"id", s.id, "source", s.source, "other", source, "seen", how)
}

// apply applies checked updates, skipping the subscription they came from,
// and with storage attached, returns once they are durable.
func (s *Scuttlebutt) apply(updates []Update, from *subscription, peer string) (applied int, err error) {
	return s.applyBatch(updates, from, peer, true)
}

// applyBatch is apply; without after, it leaves AfterApply to Attach.
func (s *Scuttlebutt) applyBatch(updates []Update, from *subscription, peer string, after bool) (applied int, err error) {
	s.mu.Lock()
	updates, err = s.admitLocked(updates, peer, !after)
	if err != nil {
		s.mu.Unlock()
		return 0, err
	}
	// Only what advances the clock is logged, applied and passed on.
	fresh := advancing(s.clock, updates)
	st, gen := s.store, s.gen
	if err := s.appendLocked(fresh); err != nil {
		s.mu.Unlock()
		return 0, err
	}
	// The batch goes to the other links as one unit (see item.more).
	latest := s.applyAllLocked(fresh, from, s.seq)
	applied = len(fresh)
	s.hlc.Observe(latest) // once per batch: the next local write is later
	seq := s.seq
	if applied > 0 && !after {
		s.replayed = true
	}
	s.mu.Unlock()
	if applied > 0 && after {
		s.afterApply()
		if s.applied != nil {
			s.applied(fresh[:len(fresh):len(fresh)])
		}
	}
	return applied, s.sync(st, gen, seq)
}

// advancing returns the updates that advance clock, in order: per source,
// updates increase, so a later duplicate in the batch is left out too. It
// returns updates itself when all of them do. Batches come in runs of one
// source: it looks the source up once a run, not once an update.
func advancing(clock vclock.Clock, updates []Update) []Update {
	var seen vclock.Clock // the floors of the sources of the runs before
	var out []Update
	all := true
	var floor vclock.Timestamp // what the current run's updates must pass
	for i, u := range updates {
		if i == 0 || u.Source != updates[i-1].Source {
			if i > 0 {
				if seen == nil {
					seen = vclock.Clock{}
				}
				seen.Advance(updates[i-1].Source, floor)
			}
			floor = max(clock[u.Source], seen[u.Source])
		}
		if u.Timestamp <= floor {
			if all {
				out, all = append(out, updates[:i]...), false
			}
			continue
		}
		floor = u.Timestamp
		if !all {
			out = append(out, u)
		}
	}
	if all {
		return updates
	}
	return out
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

// sync waits until st, the storage of generation gen, has made seq
// durable, then lets links send what it covers and marks the local
// updates it covers as ready to apply. st is the storage the caller
// appended to, read under the lock then: Attach may have replaced it since.
func (s *Scuttlebutt) sync(st Storage, gen, seq uint64) error {
	if st == nil || seq == 0 {
		return nil
	}
	s.mu.Lock()
	done := gen == s.gen && s.durable.Load() >= seq
	if done {
		s.markDurableLocked(gen, seq)
	}
	s.mu.Unlock()
	if done {
		return nil
	}
	if err := st.Sync(seq); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.markDurableLocked(gen, seq)
	if gen != s.gen || s.durable.Load() >= seq {
		return nil // replaced meanwhile (its counter is gone), or synced further
	}
	s.durable.Store(seq) // written only with mu held; read without it
	for _, sub := range s.subs {
		sub.poke()
	}
	return nil
}

// markDurableLocked marks the pending local updates of generation gen up
// to seq durable.
func (s *Scuttlebutt) markDurableLocked(gen, seq uint64) {
	for _, p := range s.pending {
		if p.gen == gen && p.seq <= seq {
			p.durable = true
		}
	}
}

// Attach makes st the replica's storage: from now on every update applied is
// appended to st, and links hold back what st has not made durable. A
// persistence package first replays its log with Replay (and
// RestoreClock), then attaches itself, before the replica is served or
// written to. If Replay applied updates, Attach (of a non-nil st) then
// calls AfterApply once, so that the type acts on them with st attached.
// Attach replaces any storage attached before; nil detaches. It is safe to
// call while writers run: a local update appended to the storage it
// replaces is applied once that storage has synced it.
func (s *Scuttlebutt) Attach(st Storage) {
	s.mu.Lock()
	s.store = st
	s.gen++
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
// from, to be sent once the storage has synced seq; more says that the
// next update queued belongs to the same batch (see item.more). An update
// that ApplyUpdate refused as superseded is still forwarded, so that
// peers' clocks advance past it as ours does.
func (s *Scuttlebutt) applyLocked(u Update, from *subscription, seq uint64, more bool) bool {
	changed := s.r.ApplyUpdate(u)
	s.clock[u.Source] = u.Timestamp
	if len(s.clockOnly) > 0 {
		delete(s.clockOnly, u.Source)
	}
	for _, sub := range s.subs {
		if sub != from {
			sub.push(item{update: u, seq: seq, more: more})
		}
	}
	return changed
}

// applyAllLocked is applyLocked for a batch of updates that advance the
// clock (see advancing), queued on the subscriptions as one unit, and
// returns the latest timestamp among them. A BatchApplier applies them in
// one call; the clock moves once a run of one source, and each
// subscription takes the batch under one lock.
func (s *Scuttlebutt) applyAllLocked(fresh []Update, from *subscription, seq uint64) (latest vclock.Timestamp) {
	if s.batch == nil || len(fresh) < 2 {
		for i, u := range fresh {
			if u.Timestamp > s.twinAfter {
				s.noteTwinLocked(u.Source, u.Timestamp)
			}
			s.applyLocked(u, from, seq, i < len(fresh)-1)
			latest = max(latest, u.Timestamp)
		}
		return latest
	}
	s.batch.ApplyUpdates(fresh)
	for i, u := range fresh {
		if u.Timestamp > s.twinAfter {
			s.noteTwinLocked(u.Source, u.Timestamp)
		}
		if i == len(fresh)-1 || fresh[i+1].Source != u.Source {
			// The last of its run: per source, fresh increases.
			s.clock[u.Source] = u.Timestamp
			if len(s.clockOnly) > 0 {
				delete(s.clockOnly, u.Source)
			}
		}
		latest = max(latest, u.Timestamp)
	}
	for _, sub := range s.subs {
		if sub != from {
			sub.pushAll(fresh, seq)
		}
	}
	return latest
}

// mergeClock raises the clock to cover c, after a peer has sent everything
// of its state up to c, and passes the advance on to the other
// subscriptions. c has been checked with checkClock; entries that do not
// fit the source limit are dropped (see admitClockLocked).
func (s *Scuttlebutt) mergeClock(c vclock.Clock, from *subscription, peer string) {
	s.mu.Lock()
	var moved vclock.Clock
	var latest vclock.Timestamp
	for src, t := range s.admitClockLocked(c, peer, false) {
		if s.advanceClockLocked(src, t) {
			if moved == nil {
				moved = vclock.Clock{}
			}
			moved[src] = t
			latest = max(latest, t)
			if t > s.twinAfter {
				s.noteTwinLocked(src, t)
			}
		}
	}
	s.hlc.Observe(latest)
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

// notePeer reports a peer that is another incarnation of this replica's id:
// a link is live, so that process is too.
func (s *Scuttlebutt) notePeer(source string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if source != s.source && ReplicaID(source) == s.id {
		s.reportTwinLocked(source, "it linked to this replica")
	}
}

// noteForged is forgedLocked for a peer's hello.
func (s *Scuttlebutt) noteForged(peer string, t vclock.Timestamp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t > s.clock[s.source] {
		s.forgedLocked(peer, t)
	}
}
