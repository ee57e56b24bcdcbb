package model

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Errors returned by this package.
var (
	// ErrInvalidValue means a value cannot be replicated: a type CBOR and
	// JSON cannot both carry, a NaN or infinity, an integer beyond int64, or
	// nesting deeper than the limit. From a peer, it means a malformed
	// update payload.
	ErrInvalidValue = errors.New("model: invalid value")
)

// Model is a replicated key/value store: string keys, last writer wins per
// key. It embeds *scuttlebutt.Scuttlebutt, so it has ID, Clock and can be
// served with package stream; its History is the base's. The methods the
// base calls (scuttlebutt.Replica, Validator, AfterApplier) are on an
// unexported adapter, not on Model; the base's Validator method returns
// it. All methods are safe for concurrent use.
type Model struct {
	*scuttlebutt.Scuttlebutt

	mu      sync.RWMutex
	keys    keyIndex
	sources map[string]uint32 // source id -> index in logs
	logs    []*sourceLog
	lastSrc uint32            // index in logs of the last update's source
	sigs    map[*entry][]byte // signatures of the few updates that carry one
	live    int               // keys that are not tombstones

	watch watchers
}

// entry is the latest update of one key, packed into 32 bytes: a Model's
// memory is mostly its entries. The key is not stored apart; it aliases the
// payload, which is immutable.
type entry struct {
	ts   vclock.Timestamp
	data *byte  // the update's payload, [key, value] or [key]
	n    uint32 // payload length
	voff uint32 // offset of the value in the payload, 0 for a tombstone
	src  uint32 // index of the source's log in Model.logs
	dead bool   // superseded by a later update of the key; guarded by Model.mu
}

func (e *entry) payload() []byte { return unsafe.Slice(e.data, e.n) }

// value returns the encoded value, or nil for a tombstone.
func (e *entry) value() []byte {
	if e.voff == 0 {
		return nil
	}
	return e.payload()[e.voff:]
}

// isSet reports whether e holds a value rather than a tombstone.
func (e *entry) isSet() bool { return e.voff != 0 }

// sourceLog holds one source's entries in timestamp order, so that History
// finds what a peer lacks by binary search instead of a scan of every key.
// Superseded entries stay until they are more than half the log.
type sourceLog struct {
	source  string
	entries []*entry
	dead    int
}

// source returns the id of the replica that made e.
func (m *Model) source(e *entry) string { return m.logs[e.src].source }

// less orders e against u as scuttlebutt.Update.Less orders updates.
func (m *Model) less(e *entry, u scuttlebutt.Update) bool {
	if e.ts != u.Timestamp {
		return e.ts < u.Timestamp
	}
	return m.source(e) < u.Source
}

// New returns an empty Model with the given replica id; nil cfg means
// scuttlebutt.DefaultConfig. An empty or malformed id is an error wrapping
// scuttlebutt.ErrInvalidID.
func New(id string, cfg *scuttlebutt.Config) (*Model, error) {
	m := &Model{keys: newKeyIndex(0), sources: make(map[string]uint32), sigs: make(map[*entry][]byte)}
	sb, err := scuttlebutt.New(id, replica{m}, cfg)
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
// ErrInvalidValue, and nothing changes.
func (m *Model) Set(key string, value any) error {
	if !utf8.ValidString(key) {
		return fmt.Errorf("model: set %q: %w: key is not UTF-8", key, ErrInvalidValue)
	}
	if err := checkValue(value); err != nil {
		return fmt.Errorf("model: set %q: %w", key, err)
	}
	data, err := encodeUpdate(key, value, false)
	if err != nil {
		return fmt.Errorf("model: set %q: %w: %v", key, ErrInvalidValue, err)
	}
	if _, _, err := m.LocalUpdate(data); err != nil {
		return fmt.Errorf("model: set %q: %w", key, err)
	}
	return nil
}

// Delete removes key and replicates the removal as a tombstone, which wins
// over earlier writes of key on every replica. Deleting a missing key still
// writes a tombstone.
func (m *Model) Delete(key string) error {
	if !utf8.ValidString(key) {
		return fmt.Errorf("model: delete %q: %w: key is not UTF-8", key, ErrInvalidValue)
	}
	data, err := encodeUpdate(key, nil, true)
	if err != nil {
		return fmt.Errorf("model: delete %q: %w", key, err)
	}
	if _, _, err := m.LocalUpdate(data); err != nil {
		return fmt.Errorf("model: delete %q: %w", key, err)
	}
	return nil
}

// Get returns the value of key and whether it is set. The value is decoded
// afresh for each call and shares nothing with the Model: integers come back
// as int64, floats as float64, arrays as []any, maps as map[string]any.
func (m *Model) Get(key string) (value any, ok bool) {
	m.mu.RLock()
	e := m.keys.get(key)
	m.mu.RUnlock()
	if e == nil || !e.isSet() {
		return nil, false
	}
	return decodeValue(e.value()), true
}

// Written returns the source id and timestamp of the update that set key
// (the writer's replica id and incarnation, and when it wrote), and false
// if key is not set.
func (m *Model) Written(key string) (source string, ts vclock.Timestamp, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.keys.get(key)
	if e == nil || !e.isSet() {
		return "", 0, false
	}
	return m.source(e), e.ts, true
}

// Keys returns the keys that are set, sorted.
func (m *Model) Keys() []string {
	m.mu.RLock()
	keys := make([]string, 0, m.live)
	for k, e := range m.keys.all() {
		if e.isSet() {
			keys = append(keys, k)
		}
	}
	m.mu.RUnlock()
	sort.Strings(keys)
	return keys
}

// Len returns how many keys are set.
func (m *Model) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.live
}

// Snapshot returns every key that is set with its value, decoded as Get
// does.
func (m *Model) Snapshot() map[string]any {
	m.mu.RLock()
	enc := make(map[string][]byte, m.live)
	for k, e := range m.keys.all() {
		if e.isSet() {
			enc[k] = e.value()
		}
	}
	m.mu.RUnlock()
	out := make(map[string]any, len(enc))
	for k, b := range enc {
		out[k] = decodeValue(b)
	}
	return out
}

// replica is what Model hands the base: the methods only the base calls,
// kept off Model's exported API. It holds just the pointer, so it is stored
// in the base's interfaces without an allocation or another indirection.
type replica struct{ m *Model }

// History implements scuttlebutt.Replica: the latest update of every key,
// tombstones included, that is newer than sources, in (Timestamp, Source)
// order. It costs O(s log n + k log k) for s sources and k updates returned,
// not a scan of every key.
func (r replica) History(sources vclock.Clock) []scuttlebutt.Update {
	m := r.m
	m.mu.RLock()
	defer m.mu.RUnlock()
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
			if !e.dead {
				u := scuttlebutt.Update{Source: r.log.source, Timestamp: e.ts, Data: e.payload()}
				if len(m.sigs) > 0 {
					u.Signature = m.sigs[e]
				}
				out = append(out, u)
			}
		}
	}
	if len(runs) > 1 {
		slices.SortFunc(out, scuttlebutt.Compare)
	}
	return out
}

// ValidateUpdate implements scuttlebutt.Validator: the payload must be
// [key, value] or [key] with a value Set would accept.
func (replica) ValidateUpdate(u scuttlebutt.Update) error {
	p, err := parseUpdate(u.Data)
	if err != nil {
		return err
	}
	if p.voff != 0 {
		if err := checkEncoded(u.Data[p.voff:]); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidValue, err)
		}
	}
	return nil
}

// ApplyUpdate implements scuttlebutt.Replica: the update wins if it is
// later in (Timestamp, Source) order than the key's current one, so every
// replica keeps the same winner whatever the arrival order.
func (r replica) ApplyUpdate(u scuttlebutt.Update) bool {
	m := r.m
	p, err := parseUpdate(u.Data)
	if err != nil {
		return false // the base validated it; a local update is ours
	}
	h := m.keys.hash(p.key)
	m.mu.Lock()
	slot := m.keys.find(p.key, h)
	old := m.keys.slots[slot].e
	if old != nil && !m.less(old, u) {
		m.mu.Unlock()
		return false
	}
	// Updates come in runs of one source: the last one's log first.
	src, ok := m.lastSrc, len(m.logs) > 0 && m.logs[m.lastSrc].source == u.Source
	if !ok {
		if src, ok = m.sources[u.Source]; !ok {
			src = uint32(len(m.logs))
			m.sources[u.Source] = src
			m.logs = append(m.logs, &sourceLog{source: u.Source})
		}
		m.lastSrc = src
	}
	e := &entry{ts: u.Timestamp, data: unsafe.SliceData(u.Data), n: uint32(len(u.Data)), voff: uint32(p.voff), src: src}
	if u.Signature != nil {
		m.sigs[e] = u.Signature
	}
	if old != nil {
		old.dead = true
		delete(m.sigs, old)
		m.logs[old.src].compact()
		if old.isSet() {
			m.live--
		}
	}
	m.keys.set(slot, h, e) // the key is e's now: the old payload can go
	log := m.logs[src]
	if len(log.entries) == cap(log.entries) {
		// Double, not append's quarter past 256 entries: a log grows
		// by one entry an update, and each growth copies it all.
		log.entries = slices.Grow(log.entries, max(len(log.entries), 16))
	}
	log.entries = append(log.entries, e) // newest of its source: see Replica
	if e.isSet() {
		m.live++
	}
	m.mu.Unlock()
	m.watch.queue(m, p.key, u.Source, e, old)
	return true
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
	_ scuttlebutt.Document     = (*Model)(nil)
)
