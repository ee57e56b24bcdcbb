package doc

import (
	"sync"
	"sync/atomic"

	"github.com/scuttle-go/scuttle/notify"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Doc is a replicated JSON document. It embeds *scuttlebutt.Scuttlebutt,
// so it has ID, Clock and History and can be served with package stream.
// The methods the base calls (scuttlebutt.Replica, Validator,
// AfterApplier) are on an unexported adapter, not on Doc; the base's
// Validator method returns it.
//
// All methods are safe for concurrent use. Reads (Get, Snapshot) run in
// parallel with each other; local patches are applied one at a time, in
// the order they are stamped.
type Doc struct {
	*scuttlebutt.Scuttlebutt

	maxSize int // Config.MaxUpdateSize

	// wmu serializes local patches from the reading of the state they are
	// built on to their application, so that a source's counter totals
	// grow in the order its updates are stamped.
	wmu sync.Mutex

	mu      sync.RWMutex // guards everything below; taken under the base's lock in ApplyUpdate
	root    *node
	logs    []*sourceLog
	sources map[string]uint32  // source id -> index in logs
	sigs    map[*update][]byte // signatures of the few updates that carry one

	notes     notify.Notifier[*patchNote]
	observers atomic.Int32 // observers registered: changes are worked out only if some are
}

// New returns an empty document with the given replica id; nil cfg means
// scuttlebutt.DefaultConfig. An empty or malformed id is an error wrapping
// scuttlebutt.ErrInvalidID.
func New(id string, cfg *scuttlebutt.Config) (*Doc, error) {
	d := &Doc{
		maxSize: scuttlebutt.DefaultMaxUpdateSize,
		root:    &node{kind: kObject},
		sources: make(map[string]uint32),
		sigs:    make(map[*update][]byte),
	}
	if cfg != nil && cfg.MaxUpdateSize > 0 {
		d.maxSize = cfg.MaxUpdateSize
	}
	sb, err := scuttlebutt.New(id, replica{d}, cfg)
	if err != nil {
		return nil, err
	}
	d.Scuttlebutt = sb
	return d, nil
}

// Get returns the value at path, a JSON Pointer, and whether there is
// one. Array elements are read by index ("/list/0"), and so is what is
// inside them. The value is decoded afresh for each call and shares
// nothing with the document: integers come back as int64, other numbers as
// float64 (a counter as int64 when it is a whole number within ±2^53),
// strings, bools, nil for null, []byte, arrays as []any and objects as
// map[string]any. A malformed path returns false.
func (d *Doc) Get(path string) (value any, ok bool) {
	segs, err := ParsePointer(path)
	if err != nil {
		return nil, false
	}
	d.mu.RLock()
	n := d.root
	i := 0
	for ; i < len(segs) && n.kind == kObject; i++ {
		if n = n.kid(segs[i]); n == nil || n.kind == kAbsent {
			d.mu.RUnlock()
			return nil, false
		}
	}
	if i == len(segs) {
		v := d.materialize(n)
		d.mu.RUnlock()
		return v, true
	}
	if n.kind != kArray {
		d.mu.RUnlock()
		return nil, false
	}
	idx, ok := arrayIndex(segs[i])
	var item []byte
	if ok {
		j := 0
		d.eachElement(n, func(_ elemID, b []byte) {
			if j == idx {
				item = b
			}
			j++
		})
	}
	d.mu.RUnlock()
	if item == nil {
		return nil, false
	}
	return walkValue(decode(item), segs[i+1:])
}

// walkValue follows path inside a decoded value.
func walkValue(v any, path []string) (any, bool) {
	for _, seg := range path {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[seg]; !ok {
				return nil, false
			}
		case []any:
			i, ok := arrayIndex(seg)
			if !ok || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// Snapshot returns the whole document, the root object, decoded as Get
// decodes values.
func (d *Doc) Snapshot() map[string]any {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.materialize(d.root).(map[string]any)
}

// Checkpoint returns the document, as Snapshot does, and the clock of the
// replica when it held exactly that state: the snapshot reflects every
// update clock covers and none it does not. Use it to pair a state with a
// clock (a checkpoint, a digest to compare with a peer's); Snapshot then
// Clock could pair a state with a later clock.
func (d *Doc) Checkpoint() (snapshot map[string]any, clock vclock.Clock) {
	d.WithClock(func(c vclock.Clock) {
		snapshot, clock = d.Snapshot(), c
	})
	return snapshot, clock
}

// replica is what Doc hands the base: the methods only the base calls,
// kept off Doc's exported API.
type replica struct{ d *Doc }

// History implements scuttlebutt.Replica: every update that still counts
// (see "History" in the package doc) and is newer than sources, in
// (Timestamp, Source) order.
func (r replica) History(sources vclock.Clock) []scuttlebutt.Update {
	r.d.mu.RLock()
	defer r.d.mu.RUnlock()
	return r.d.history(sources)
}

// ValidatesWhole implements scuttlebutt.WholeValidator: ValidateUpdate
// parses the payload whole, every value with its nesting bounded (MaxDepth
// leaves room for the payload's two arrays within
// scuttlebutt.MaxNesting), so the base skips its own scan of it
// (FuzzPayload, TestValidatorNesting).
func (replica) ValidatesWhole() {}

// ValidateUpdate implements scuttlebutt.Validator: the payload must be one
// Patch could have made (see "Wire form" in the package doc), within the
// limits. It depends on the payload alone.
func (replica) ValidateUpdate(u scuttlebutt.Update) error {
	_, err := parsePayload(u.Data)
	return err
}

// ApplyUpdate implements scuttlebutt.Replica: it applies every op of the
// patch, keeps the update if any of them counts, and reports whether one
// did. Observers' changes are queued, to be delivered by AfterApply.
func (r replica) ApplyUpdate(u scuttlebutt.Update) bool {
	d := r.d
	p, err := parsePayload(u.Data)
	if err != nil {
		return false // the base validated it; a local update is ours
	}
	d.mu.Lock()
	a := applier{d: d, up: newUpdate(u.Data, u.Timestamp, d.sourceIndex(u.Source)), data: u.Data}
	a.srcs = make([]uint32, len(p.sources))
	for i, s := range p.sources {
		a.srcs[i] = d.sourceIndex(s)
	}
	var cap *capture
	if d.observers.Load() > 0 {
		cap = d.captureBefore(p)
	}
	for i := range p.ops {
		a.apply(i, &p.ops[i])
	}
	a.finish()
	changed := a.up.live > 0
	if changed {
		l := d.logs[a.up.src]
		a.up.logged = true
		l.updates = append(l.updates, a.up) // newest of its source: see Replica
		if u.Signature != nil {
			d.sigs[a.up] = u.Signature
		}
	}
	var note *patchNote
	if cap != nil {
		note = cap.changes(d, u)
	}
	a.prune()
	d.mu.Unlock()
	if note != nil {
		d.notes.Queue(note)
	}
	return changed
}

// AfterApply implements scuttlebutt.AfterApplier: it delivers the changes
// of the patches just applied, outside every lock. While a local Patch is
// in progress it leaves that to Patch, which delivers once it is done.
func (r replica) AfterApply() {
	if r.d.wmu.TryLock() {
		r.d.wmu.Unlock()
		r.d.notes.Deliver()
	}
}

var (
	_ scuttlebutt.Replica      = replica{}
	_ scuttlebutt.Validator    = replica{}
	_ scuttlebutt.AfterApplier = replica{}
	_ scuttlebutt.Document     = (*Doc)(nil)
)
