package model

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

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
// served with package stream. All methods are safe for concurrent use.
type Model struct {
	*scuttlebutt.Scuttlebutt

	mu      sync.RWMutex
	keys    map[string]*entry
	sources map[string]*sourceLog
	live    int // keys that are not tombstones

	watch watchers
}

// entry is the latest update of one key.
type entry struct {
	u     scuttlebutt.Update
	value []byte // encoded value inside u.Data; nil for a tombstone
	dead  bool   // superseded by a later update of the key
}

// sourceLog holds one source's entries in timestamp order, so that History
// finds what a peer lacks by binary search instead of a scan of every key.
// Superseded entries stay until they are more than half the log.
type sourceLog struct {
	entries []*entry
	dead    int
}

// New returns an empty Model with the given replica id; nil cfg means
// scuttlebutt.DefaultConfig. An empty or malformed id is an error wrapping
// scuttlebutt.ErrInvalidID.
func New(id string, cfg *scuttlebutt.Config) (*Model, error) {
	m := &Model{keys: make(map[string]*entry), sources: make(map[string]*sourceLog)}
	sb, err := scuttlebutt.New(id, m, cfg)
	if err != nil {
		return nil, err
	}
	m.Scuttlebutt = sb
	return m, nil
}

// Set sets key to value and replicates the change. Values are nil, bool,
// integers (within int64), finite floats, strings, []byte, and slices and
// string-keyed maps of these; anything else is an error wrapping
// ErrInvalidValue, and nothing changes.
func (m *Model) Set(key string, value any) error {
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
	e := m.keys[key]
	m.mu.RUnlock()
	if e == nil || e.value == nil {
		return nil, false
	}
	return decodeValue(e.value), true
}

// Keys returns the keys that are set, sorted.
func (m *Model) Keys() []string {
	m.mu.RLock()
	keys := make([]string, 0, m.live)
	for k, e := range m.keys {
		if e.value != nil {
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
	for k, e := range m.keys {
		if e.value != nil {
			enc[k] = e.value
		}
	}
	m.mu.RUnlock()
	out := make(map[string]any, len(enc))
	for k, b := range enc {
		out[k] = decodeValue(b)
	}
	return out
}

// History implements scuttlebutt.Replica: the latest update of every key,
// tombstones included, that is newer than sources, in (Timestamp, Source)
// order. It costs O(s log n + k log k) for s sources and k updates returned,
// not a scan of every key.
func (m *Model) History(sources vclock.Clock) []scuttlebutt.Update {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []scuttlebutt.Update
	runs := 0
	for src, log := range m.sources {
		after := sources[src]
		i := sort.Search(len(log.entries), func(i int) bool { return log.entries[i].u.Timestamp > after })
		if i < len(log.entries) {
			runs++
		}
		for _, e := range log.entries[i:] {
			if !e.dead {
				out = append(out, e.u)
			}
		}
	}
	if runs > 1 {
		slices.SortFunc(out, scuttlebutt.Compare)
	}
	return out
}

// ValidateUpdate implements scuttlebutt.Validator: the payload must be
// [key, value] or [key] with a value Set would accept.
func (m *Model) ValidateUpdate(u scuttlebutt.Update) error {
	p, err := parseUpdate(u.Data)
	if err != nil {
		return err
	}
	if p.value != nil {
		if err := checkEncoded(p.value); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidValue, err)
		}
	}
	return nil
}

// ApplyUpdate implements scuttlebutt.Replica: the update wins if it is
// later in (Timestamp, Source) order than the key's current one, so every
// replica keeps the same winner whatever the arrival order.
func (m *Model) ApplyUpdate(u scuttlebutt.Update) bool {
	p, err := parseUpdate(u.Data)
	if err != nil {
		return false // the base validated it; a local update is ours
	}
	m.mu.Lock()
	old := m.keys[p.key]
	if old != nil && !old.u.Less(u) {
		m.mu.Unlock()
		return false
	}
	e := &entry{u: u, value: p.value}
	m.keys[p.key] = e
	log := m.sources[u.Source]
	if log == nil {
		log = &sourceLog{}
		m.sources[u.Source] = log
	}
	log.append(e)
	if old != nil {
		old.dead = true
		m.sources[old.u.Source].compact()
	}
	if old != nil && old.value != nil {
		m.live--
	}
	if e.value != nil {
		m.live++
	}
	m.mu.Unlock()
	m.watch.queue(m, p.key, e, old)
	return true
}

// AfterApply implements scuttlebutt.AfterApplier: it delivers the change
// events of the updates just applied, outside the base's lock.
func (m *Model) AfterApply() { m.watch.deliver() }

// append adds e, which is newer than every entry of the log: the base
// applies each source's updates in timestamp order.
func (l *sourceLog) append(e *entry) {
	l.entries = append(l.entries, e)
}

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
	_ scuttlebutt.Replica      = (*Model)(nil)
	_ scuttlebutt.Validator    = (*Model)(nil)
	_ scuttlebutt.AfterApplier = (*Model)(nil)
	_ scuttlebutt.Document     = (*Model)(nil)
)
