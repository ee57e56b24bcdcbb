package model

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Errors returned by this package.
var (
	// ErrInvalidValue means a value cannot be replicated: a type CBOR and
	// JSON cannot both carry, a NaN or infinity, an integer beyond int64, or
	// nesting deeper than the limit; or a time to live out of range. From a
	// peer, it means a malformed update payload.
	ErrInvalidValue = errors.New("model: invalid value")
	// ErrLeased means another replica holds the key's lease: Set, SetTTL
	// and Delete return it, wrapped with the holder and the end of its
	// lease, and change nothing (see Leases in the package doc).
	ErrLeased = errors.New("model: key is leased")
	// ErrInvalidConfig means a Config field is out of range.
	ErrInvalidConfig = errors.New("model: invalid config")
)

// Model is a replicated key/value store: string keys, last writer wins per
// key, with optional leases and times to live. It embeds
// *scuttlebutt.Scuttlebutt, so it has ID, Clock and can be served with
// package stream; its History is the base's. The methods the base calls
// (scuttlebutt.Replica, Validator, AfterApplier) are on an unexported
// adapter, not on Model; the base's Validator method returns it. All
// methods are safe for concurrent use.
type Model struct {
	*scuttlebutt.Scuttlebutt

	now   func() time.Time
	lease uint64 // Config.Lease in ms, 0 for none

	mu   sync.RWMutex
	keys keyIndex // per key, the update that decides its value (see decide)
	// more holds, for the few keys that keep more than one update (a
	// holding's record, a void write, a value under a shorter-lived one),
	// all the updates they keep, keys[key] among them.
	more    map[string][]*entry
	sources map[string]uint32 // source id -> index in logs
	logs    []*sourceLog
	lastSrc uint32            // index in logs of the last update's source
	sigs    map[*entry][]byte // signatures of the few updates that carry one
	live    int               // keys whose value is set

	// withOptions is set once an update with options has been applied: until
	// then no key can be leased, and a plain Set skips plan.
	withOptions atomic.Bool

	exp     expiries         // updates with a ttl, by expiry
	nextExp atomic.Uint64    // math.Float64bits of the earliest expiry in exp, 0 if none
	lastNow vclock.Timestamp // the latest wall clock reading an expiry used: expiry never goes back

	watch watchers
}

// entry is one update a key keeps, packed into 32 bytes: a Model's memory
// is mostly its entries. The key is not stored apart; it aliases the
// payload, which is immutable, and so do the options of an update that has
// them: they are read from the payload when needed.
type entry struct {
	ts     vclock.Timestamp
	data   *byte  // the update's payload, [key, value], [key] or [key, value, options]
	n      uint32 // payload length
	voff   uint32 // offset of the value in the payload, 0 for a tombstone
	src    uint32 // index of the source's log in Model.logs
	dead   bool   // no longer kept (dominated or expired); guarded by Model.mu
	gone   bool   // a "tomb" update whose ttl has run out: it reads as deleted; guarded by Model.mu
	olen   uint8  // length of the options at the end of the payload, 0 if none
	queued bool   // in Model.exp; guarded by Model.mu
}

func (e *entry) payload() []byte { return unsafe.Slice(e.data, e.n) }

// holds reports whether s aliases e's payload.
func (e *entry) holds(s string) bool {
	p, d := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(e.data))
	return len(s) > 0 && p >= d && p < d+uintptr(e.n)
}

// value returns the encoded value, or nil for a tombstone.
func (e *entry) value() []byte {
	if e.voff == 0 {
		return nil
	}
	return e.payload()[e.voff : e.n-uint32(e.olen)]
}

// opts returns the update's options.
func (e *entry) opts() options {
	if e.olen == 0 {
		return options{}
	}
	b := e.payload()[e.n-uint32(e.olen):]
	if ttl, ok := ttlOption(b); ok {
		return options{ttl: ttl} // SetTTL's, the common case
	}
	o, _ := parseOptions(b) // checked when applied
	return o
}

// visible reports whether the key reads as set while e decides it: e holds
// a value, and is not a "tomb" update whose ttl has run out.
func (e *entry) visible() bool {
	return e != nil && e.voff != 0 && !e.gone
}

// sourceLog holds one source's entries in timestamp order, so that History
// finds what a peer lacks by binary search instead of a scan of every key.
// Entries no longer kept stay until they are more than half the log.
type sourceLog struct {
	source  string
	rid     string // scuttlebutt.ReplicaID(source)
	entries []*entry
	dead    int
}

// source returns the id of the replica that made e.
func (m *Model) source(e *entry) string { return m.logs[e.src].source }

// fact returns what the rules need of e (see rule.go).
func (m *Model) fact(e *entry) fact {
	l := m.logs[e.src]
	return newFact(e.ts, l.source, l.rid, e.opts())
}

// less orders e against u as scuttlebutt.Update.Less orders updates.
func (m *Model) less(e *entry, u scuttlebutt.Update) bool {
	if e.ts != u.Timestamp {
		return e.ts < u.Timestamp
	}
	return m.source(e) < u.Source
}

// New returns an empty Model with the given replica id; nil cfg means
// scuttlebutt.DefaultConfig. An empty or malformed id is an error wrapping
// scuttlebutt.ErrInvalidID. It is NewWithConfig with Config.Replica set to
// cfg: no leases.
func New(id string, cfg *scuttlebutt.Config) (*Model, error) {
	return NewWithConfig(id, &Config{Replica: cfg})
}

// NewWithConfig returns an empty Model with the given replica id; nil cfg
// means DefaultConfig. An empty or malformed id is an error wrapping
// scuttlebutt.ErrInvalidID, a Config out of range one wrapping
// ErrInvalidConfig.
func NewWithConfig(id string, cfg *Config) (*Model, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Model{
		now:     c.now(),
		lease:   uint64(c.Lease / time.Millisecond),
		keys:    newKeyIndex(0),
		more:    make(map[string][]*entry),
		sources: make(map[string]uint32),
		sigs:    make(map[*entry][]byte),
	}
	sb, err := scuttlebutt.New(id, replica{m}, c.Replica)
	if err != nil {
		return nil, err
	}
	m.Scuttlebutt = sb
	return m, nil
}

// Grow makes room for n more keys, so that loading many keys at once (a
// log replay, a bulk import) does not rehash the key index step by step.
func (m *Model) Grow(n int) {
	if n <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.keys.grow(n)
}

// Set sets key to value and replicates the change. Values are nil, bool,
// integers (within int64), finite floats, strings, []byte, and slices and
// string-keyed maps of these; anything else is an error wrapping
// ErrInvalidValue, and nothing changes. With Config.Lease, the write takes
// (or renews) the key's lease; while another replica holds it, Set returns
// an error wrapping ErrLeased and nothing changes.
func (m *Model) Set(key string, value any) error {
	return m.write("set", key, value, false, 0)
}

// SetTTL sets key to value for ttl, and replicates the change: once the
// write's timestamp plus ttl has passed on a replica's wall clock
// (Config.Replica.Now), the key reads as absent there, as if deleted, and
// the write is gone: it costs nothing more, in memory or in History. ttl is
// rounded up to a whole millisecond and must be within MaxTTL, or the
// error wraps ErrInvalidValue. Writing the key again before then (SetTTL,
// Set or Delete) replaces the write, as Set does: SetTTL again refreshes
// it. Leases apply as to Set. See Times to live in the package doc.
func (m *Model) SetTTL(key string, value any, ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxTTL {
		return fmt.Errorf("model: set %q: %w: ttl %v is not within 1ms to %v", key, ErrInvalidValue, ttl, MaxTTL)
	}
	return m.write("set", key, value, false, uint64((ttl+time.Millisecond-1)/time.Millisecond))
}

// Delete removes key and replicates the removal as a tombstone, which wins
// over earlier writes of key on every replica. Deleting a missing key still
// writes a tombstone. While another replica holds the key's lease, Delete
// returns an error wrapping ErrLeased and nothing changes; the holder's
// Delete ends its lease at once.
func (m *Model) Delete(key string) error {
	return m.write("delete", key, nil, true, 0)
}

// write makes one local write: a set (with ttl in ms, or 0), or a
// tombstone.
func (m *Model) write(op, key string, value any, del bool, ttl uint64) error {
	if !utf8.ValidString(key) {
		return fmt.Errorf("model: %s %q: %w: key is not UTF-8", op, key, ErrInvalidValue)
	}
	if !del {
		if err := checkValue(value); err != nil {
			return fmt.Errorf("model: %s %q: %w", op, key, err)
		}
	}
	var o options
	if ttl != 0 || m.lease != 0 || m.withOptions.Load() {
		var err error
		if o, err = m.plan(key, del, ttl); err != nil {
			return fmt.Errorf("model: %s %q: %w", op, key, err)
		}
	}
	data, err := encodeUpdate(key, value, del, o)
	if err != nil {
		return fmt.Errorf("model: %s %q: %w: %v", op, key, ErrInvalidValue, err)
	}
	if o.selfChecked() && sizeHint(value) != 0 {
		// encodeUpdate wrote a checked key and value of a common type
		// itself, without options or with SetTTL's: what ValidateUpdate
		// accepts.
		_, _, err = m.LocalUpdateChecked(data)
	} else {
		_, _, err = m.LocalUpdate(data)
	}
	if err != nil {
		return fmt.Errorf("model: %s %q: %w", op, key, err)
	}
	return nil
}

// Get returns the value of key and whether it is set. The value is decoded
// afresh for each call and shares nothing with the Model: integers come back
// as int64, floats as float64, arrays as []any, maps as map[string]any.
func (m *Model) Get(key string) (value any, ok bool) {
	m.sweepDue()
	m.mu.RLock()
	e := m.keys.get(key)
	vis := e.visible()
	m.mu.RUnlock()
	if !vis {
		return nil, false
	}
	return decodeValue(e.value()), true
}

// Written returns the source id and timestamp of the update that set key
// (the writer's replica id and incarnation, and when it wrote), and false
// if key is not set.
func (m *Model) Written(key string) (source string, ts vclock.Timestamp, ok bool) {
	m.sweepDue()
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.keys.get(key)
	if !e.visible() {
		return "", 0, false
	}
	return m.source(e), e.ts, true
}

// Keys returns the keys that are set, sorted.
func (m *Model) Keys() []string {
	m.sweepDue()
	m.mu.RLock()
	keys := make([]string, 0, m.live)
	for k, e := range m.keys.all() {
		if e.visible() {
			keys = append(keys, k)
		}
	}
	m.mu.RUnlock()
	sort.Strings(keys)
	return keys
}

// Len returns how many keys are set.
func (m *Model) Len() int {
	m.sweepDue()
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.live
}

// Snapshot returns every key that is set with its value, decoded as Get
// does.
func (m *Model) Snapshot() map[string]any {
	m.sweepDue()
	m.mu.RLock()
	enc := m.encodedLocked()
	m.mu.RUnlock()
	return decodeSnapshot(enc)
}

// replica is what Model hands the base: the methods only the base calls,
// kept off Model's exported API. It holds just the pointer, so it is stored
// in the base's interfaces without an allocation or another indirection.
type replica struct{ m *Model }

// History implements scuttlebutt.Replica: the updates every key keeps
// (see rule.go: for most keys, the latest one), tombstones included, that
// are newer than sources, in (Timestamp, Source) order, leaving out those
// whose ttl has run out. It costs O(s log n + k log k) for s sources and k
// updates returned, not a scan of every key.
func (r replica) History(sources vclock.Clock) []scuttlebutt.Update {
	m := r.m
	m.mu.RLock()
	defer m.mu.RUnlock()
	var now vclock.Timestamp
	if m.exp.Len() > 0 {
		now = max(m.wallTS(), m.lastNow)
	}
	type run struct {
		log  *sourceLog
		from int
	}
	var runs []run
	total := 0
	for _, log := range m.logs {
		after := sources[log.source]
		i := sort.Search(len(log.entries), func(i int) bool { return log.entries[i].ts > after })
		if i < len(log.entries) {
			runs = append(runs, run{log, i})
			total += len(log.entries) - i
		}
	}
	out := make([]scuttlebutt.Update, 0, total)
	for _, r := range runs {
		for _, e := range r.log.entries[r.from:] {
			if e.dead || (now != 0 && e.vanished(now)) {
				continue
			}
			u := scuttlebutt.Update{Source: r.log.source, Timestamp: e.ts, Data: e.payload()}
			if len(m.sigs) > 0 {
				u.Signature = m.sigs[e]
			}
			out = append(out, u)
		}
	}
	if len(runs) > 1 {
		slices.SortFunc(out, scuttlebutt.Compare)
	}
	return out
}

// ValidatesWhole implements scuttlebutt.WholeValidator: ValidateUpdate
// parses the payload whole (parseUpdate, and checkEncoded for the value),
// refusing all that the base's own scan would, so the base skips that scan
// (FuzzValidateUpdateWhole).
func (replica) ValidatesWhole() {}

// ValidateUpdate implements scuttlebutt.Validator: the payload must be
// [key, value], [key] or [key, value, options] with a value Set would
// accept and options within their bounds.
func (replica) ValidateUpdate(u scuttlebutt.Update) error {
	p, err := parseUpdate(u.Data)
	if err != nil {
		return err
	}
	if p.voff != 0 {
		if err := checkEncoded(u.Data[p.voff:p.vend]); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidValue, err)
		}
	}
	return nil
}

// ApplyUpdate implements scuttlebutt.Replica: the key keeps the update
// unless one it keeps dominates it, drops those the update dominates, and
// the lease rule decides its value again (see rule.go), so that every
// replica keeps the same updates and value whatever the arrival order.
// Without options on either side, that is last writer wins by (Timestamp,
// Source). It reports whether the key kept the update.
func (r replica) ApplyUpdate(u scuttlebutt.Update) bool {
	m := r.m
	p, err := parseUpdate(u.Data)
	if err != nil {
		return false // the base validated it; a local update is ours
	}
	h := m.keys.hash(p.key)
	m.mu.Lock()
	kept := m.applyLocked(u, p, h)
	m.mu.Unlock()
	return kept
}

// ApplyUpdates implements scuttlebutt.BatchApplier: ApplyUpdate of each
// update, aheadUpdates of them under one lock (readers wait no longer than
// that, even for a history of a million keys). It parses those updates
// and reads their keys' slots of the index before it applies them, so
// that the memory reads of those slots, which miss the cache in a large
// index, overlap instead of waiting one after the other.
func (r replica) ApplyUpdates(us []scuttlebutt.Update) {
	m := r.m
	var ps [aheadUpdates]parsed
	var hs [aheadUpdates]uint64
	var ok [aheadUpdates]bool
	for len(us) > 0 {
		n := min(len(us), aheadUpdates)
		for i, u := range us[:n] {
			p, err := parseUpdate(u.Data)
			// The base validated it: err is never set.
			if ok[i] = err == nil; ok[i] {
				ps[i], hs[i] = p, m.keys.hash(p.key)
			}
		}
		m.mu.Lock()
		var sum uint64
		for i := range n {
			if ok[i] {
				sum += m.keys.peek(hs[i])
			}
		}
		m.keys.sink += sum
		for i, u := range us[:n] {
			if ok[i] {
				m.applyLocked(u, ps[i], hs[i])
			}
		}
		m.mu.Unlock()
		us = us[n:]
	}
}

// aheadUpdates is how many updates ApplyUpdates parses, looks up and
// applies at a time.
const aheadUpdates = 16

// applyLocked is ApplyUpdate with m.mu held, u parsed into p and its key's
// hash h.
func (m *Model) applyLocked(u scuttlebutt.Update, p parsed, h uint64) bool {
	var now vclock.Timestamp
	if p.ext || m.exp.Len() > 0 {
		now = m.nowLocked()
		m.sweepLocked(now)
	}
	// After the sweep, which may take keys out of the index.
	slot := m.keys.find(p.key, h)
	old := m.keys.slots[slot].e
	if !p.ext && (old == nil || old.olen == 0) && (len(m.more) == 0 || m.more[p.key] == nil) {
		// The common case, no options on either side: last writer wins.
		if old != nil && !m.less(old, u) {
			return false
		}
		e := &entry{ts: u.Timestamp, data: unsafe.SliceData(u.Data), n: uint32(len(u.Data)), voff: uint32(p.voff)}
		m.add(e, u)
		if old != nil {
			m.drop(old)
		}
		m.keys.set(slot, h, e) // the key is e's now: the old payload can go
		m.note(p.key, e, old, old.visible(), nil)
		return true
	}
	return m.applyOptions(p, p.options(u.Data), u, old, slot, h, now)
}

// applyOptions is ApplyUpdate for a key where either side has options:
// the general rule, over every update the key keeps. old is in the key's
// slot of the index, whose hash is h.
func (m *Model) applyOptions(p parsed, o options, u scuttlebutt.Update, old *entry, slot int, h uint64, now vclock.Timestamp) bool {
	if p.ext && !m.withOptions.Load() {
		m.withOptions.Store(true)
	}
	if o.ttl != 0 && !o.tomb && u.Timestamp+vclock.Timestamp(o.ttl) <= now {
		return false // its time has run out here: it is gone already
	}
	if o.ttlOnly() && (len(m.more) == 0 || m.more[p.key] == nil) {
		if kept, ok := m.applyPlain(p, o, u, old, slot, h); ok {
			return kept
		}
	}
	src, known := m.sourceIndex(u.Source)
	var rid string
	if known {
		rid = m.logs[src].rid
	} else {
		rid = scuttlebutt.ReplicaID(u.Source)
	}
	nf := newFact(u.Timestamp, u.Source, rid, o)
	var one [1]*entry
	members := m.membersLocked(p.key, old, &one)
	var fb [4]fact
	fs := fb[:0]
	for _, e := range members {
		f := m.fact(e)
		if dominates(&f, &nf) {
			return false
		}
		fs = append(fs, f)
	}
	e := &entry{ts: u.Timestamp, data: unsafe.SliceData(u.Data), n: uint32(len(u.Data)), voff: uint32(p.voff), olen: uint8(int32(len(u.Data)) - p.vend)}
	e.gone = o.tomb && u.Timestamp+vclock.Timestamp(o.ttl) <= now
	m.addAt(e, u, src, known)
	var buf [4]*entry
	kept := buf[:0]
	for i, k := range members {
		if dominates(&nf, &fs[i]) {
			m.drop(k)
		} else {
			kept = append(kept, k)
		}
	}
	kept = append(kept, e)
	if o.ttl != 0 && !e.gone {
		m.exp.push(e, u.Timestamp+vclock.Timestamp(o.ttl))
		m.setNextExp()
	}
	m.settle(p.key, kept, old, old.visible(), nil)
	return true
}

// applyPlain is applyOptions where the key keeps at most one update, old,
// and neither it nor u has an option but a ttl: both are plain writes (see
// rule.go), so one dominates the other by LWW order and expiry alone, and
// the one the key keeps decides it. That is a TTL key refreshed, or Set
// over it. ok is false when neither dominates: the key would keep both,
// which the general rule decides.
func (m *Model) applyPlain(p parsed, o options, u scuttlebutt.Update, old *entry, slot int, h uint64) (kept, ok bool) {
	expD := expiryOf(u.Timestamp, o)
	if old != nil {
		oo := old.opts()
		if !oo.ttlOnly() {
			return false, false
		}
		oldD := expiryOf(old.ts, oo)
		switch {
		case m.less(old, u) && oldD <= expD:
			// u dominates old: old is dropped below.
		case old.ts > u.Timestamp || old.ts == u.Timestamp && m.source(old) > u.Source:
			return false, expD <= oldD // old dominates u, or both are kept
		default:
			return false, false
		}
	}
	e := &entry{ts: u.Timestamp, data: unsafe.SliceData(u.Data), n: uint32(len(u.Data)), voff: uint32(p.voff), olen: uint8(int32(len(u.Data)) - p.vend)}
	m.add(e, u)
	// Before drop, which counts old as a dead entry queued if it still is.
	replaced := o.ttl != 0 && old != nil && old.queued && m.exp.replaceLast(old, e, expD)
	if old != nil {
		m.drop(old)
	}
	m.keys.set(slot, h, e) // as settle does for a single update, with the slot known
	if o.ttl != 0 {
		if !replaced {
			m.exp.push(e, expD)
		}
		m.setNextExp()
	}
	m.note(p.key, e, old, old.visible(), nil)
	return true, true
}

// membersLocked returns the updates key keeps; decider is m.keys[key], and
// one holds it when it is the only one.
func (m *Model) membersLocked(key string, decider *entry, one *[1]*entry) []*entry {
	if decider == nil {
		return nil
	}
	if len(m.more) > 0 {
		if ms := m.more[key]; ms != nil {
			return ms
		}
	}
	one[0] = decider
	return one[:]
}

// add records e, the entry of u, in its source's log and the signatures.
func (m *Model) add(e *entry, u scuttlebutt.Update) {
	src, ok := m.sourceIndex(u.Source)
	m.addAt(e, u, src, ok)
}

// sourceIndex returns the index in logs of source's log, if known.
func (m *Model) sourceIndex(source string) (src uint32, known bool) {
	// Updates come in runs of one source: the last one's log first.
	if len(m.logs) > 0 && m.logs[m.lastSrc].source == source {
		return m.lastSrc, true
	}
	src, known = m.sources[source]
	return src, known
}

// addAt is add with the source's index in m.sources looked up: src, if
// known.
func (m *Model) addAt(e *entry, u scuttlebutt.Update, src uint32, known bool) {
	if !known {
		src = uint32(len(m.logs))
		m.sources[u.Source] = src
		m.logs = append(m.logs, &sourceLog{source: u.Source, rid: scuttlebutt.ReplicaID(u.Source)})
	}
	m.lastSrc = src
	e.src = src
	if u.Signature != nil {
		m.sigs[e] = u.Signature
	}
	log := m.logs[src]
	if len(log.entries) == cap(log.entries) {
		// Double, not append's quarter past 256 entries: a log grows
		// by one entry an update, and each growth copies it all.
		log.entries = slices.Grow(log.entries, max(len(log.entries), 16))
	}
	log.entries = append(log.entries, e) // newest of its source: see Replica
}

// drop marks e as no longer kept.
func (m *Model) drop(e *entry) {
	e.dead = true
	delete(m.sigs, e)
	m.logs[e.src].compact()
	if e.queued {
		m.exp.dropped()
	}
}

// settle makes members (at least one; settle keeps a copy) the updates
// key keeps, decides its value, and queues the change, if any, from old
// (which was visible or not) to the new decider. expired is the update
// whose expiry caused it, or nil.
func (m *Model) settle(key string, members []*entry, old *entry, oldVis bool, expired *entry) {
	var e *entry
	if len(members) == 1 {
		e = members[0]
	} else {
		var fb [8]fact
		fs := fb[:0]
		for _, k := range members {
			fs = append(fs, m.fact(k))
		}
		e = members[decide(fs, nil, nil)]
	}
	// The index reads a slot's key from its entry, so e's payload holds
	// it from now on. more keeps the key string it was first given, which
	// aliases a payload: re-insert with e's, so that dropped payloads can
	// be freed.
	m.keys.put(key, e)
	if len(members) > 1 {
		ekey := key
		if !e.holds(key) {
			ekey = keyOf(e.payload())
		}
		delete(m.more, key)
		m.more[ekey] = slices.Clone(members)
	} else if len(m.more) > 0 {
		delete(m.more, key)
	}
	m.note(key, e, old, oldVis, expired)
}

// note updates the count of keys set and queues the change of key from old
// to e (nil: the key is gone), if anything a reader sees changed.
func (m *Model) note(key string, e, old *entry, oldVis bool, expired *entry) {
	vis := e.visible()
	switch {
	case vis && !oldVis:
		m.live++
	case oldVis && !vis:
		m.live--
	}
	if e == old && vis == oldVis || !m.watch.active() {
		return
	}
	c := pendingChange{key: key, new: e, old: old, expired: expired, newSet: vis, oldSet: oldVis}
	if e != nil {
		c.source = m.source(e)
	} else {
		c.source = m.source(expired)
	}
	m.watch.queue(c)
}

// AfterApply implements scuttlebutt.AfterApplier: it delivers the change
// events of the updates just applied, outside the base's lock.
func (r replica) AfterApply() { r.m.watch.deliver() }

// compact counts one more dead entry and drops the dead ones once they are
// more than half the log, so a log's size stays within twice its live keys.
func (l *sourceLog) compact() {
	l.dead++
	if l.dead < 32 || l.dead*2 < len(l.entries) {
		return
	}
	live := l.entries[:0]
	for _, e := range l.entries {
		if !e.dead {
			live = append(live, e)
		}
	}
	clear(l.entries[len(live):])
	l.entries, l.dead = live, 0
}

var (
	_ scuttlebutt.Replica      = replica{}
	_ scuttlebutt.Validator    = replica{}
	_ scuttlebutt.AfterApplier = replica{}
	_ scuttlebutt.BatchApplier = replica{}
	_ scuttlebutt.Document     = (*Model)(nil)
)
