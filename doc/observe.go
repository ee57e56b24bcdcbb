package doc

import (
	"maps"
	"reflect"
	"slices"
	"sync"

	"github.com/scuttle-go/scuttle/notify"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Change is one change of the document, as delivered to observers.
//
// Changes are reported at the level of the values that changed: where an
// object stays an object, at its members (recursively); elsewhere at the
// path whose value changed as a whole (a scalar, a counter, an array, or
// a path that appeared, disappeared or changed kind), grouped by path in
// the order the paths first appear among the patch's ops, members of an
// object in key order. So a patch's changes replay: setting each Path to New (or removing it where Deleted), in
// order, on a copy of the document before the patch gives the document
// after it, and doing so from an empty document with every change since
// the document was empty gives Snapshot().
type Change struct {
	// Path is the JSON Pointer of the value that changed.
	Path string
	// Old is the value before, nil if there was none; New is the value
	// after, nil if Deleted.
	Old, New any
	// Deleted reports that Path holds no value any more.
	Deleted bool
	// Source and Timestamp identify the patch that made the change: its
	// writer's source id ("n1~k3x9p2qd"; scuttlebutt.ReplicaID(Source) is
	// the replica id) and stamp.
	Source    string
	Timestamp vclock.Timestamp
	// Local reports that this replica made the patch, in this start or an
	// earlier one.
	Local bool
}

// patchNote is the changes of one patch, queued under the locks and
// delivered after them, whole: an observer sees all the changes of a patch
// in one go, never half of them.
type patchNote struct {
	changes   []noteChange
	source    string
	timestamp vclock.Timestamp
	local     bool
}

type noteChange struct {
	path     []string
	old, new any
	deleted  bool
}

// Observe calls fn for every change, local or remote, that touches path (a
// JSON Pointer): at path, below it, or above it (a change of an ancestor
// replaces the value at path too). The changes come in the order patches
// are applied, every change of a patch after the whole patch is applied,
// until cancel is called. fn runs after the document's locks are released,
// one call at a time across all observers, on the goroutine that applied
// the patch (a local writer in Patch, a stream's loop) or on one applying
// a later patch, which delivers what is pending first; it may read and
// write the document. A slow fn delays the writer or stream that delivers.
// Each call gets values of its own.
//
// Observe panics if path is not a JSON Pointer.
func (d *Doc) Observe(path string, fn func(Change)) (cancel func()) {
	return d.ObservePatches(path, func(cs []Change) {
		for _, c := range cs {
			fn(c)
		}
	})
}

// ObservePatches is Observe with the changes of one patch in one call:
// fn gets, for each patch with a change that touches path, those changes
// in order (never none). A watcher that records its position after each
// call (the patch's Source and Timestamp) never records half a patch.
//
// ObservePatches panics if path is not a JSON Pointer.
func (d *Doc) ObservePatches(path string, fn func([]Change)) (cancel func()) {
	segs, err := ParsePointer(path)
	if err != nil {
		panic(err)
	}
	d.observers.Add(1)
	stop := d.notes.Add(func(p *patchNote) {
		var cs []Change
		for _, c := range p.changes {
			if isPrefix(segs, c.path) || isPrefix(c.path, segs) {
				cs = append(cs, Change{
					Path: Pointer(c.path...), Old: clone(c.old), New: clone(c.new), Deleted: c.deleted,
					Source: p.source, Timestamp: p.timestamp, Local: p.local,
				})
			}
		}
		if len(cs) > 0 {
			fn(cs)
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			d.observers.Add(-1)
		})
	}
}

// ObserveChan sends every change that touches path to ch, until cancel is
// called. Each Change holds values of its own. Sends block: give ch a
// buffer, or read it promptly, or writers to the document wait. cancel also
// releases a send that is blocked; once it returns nothing more is sent to
// ch.
func (d *Doc) ObserveChan(path string, ch chan<- Change) (cancel func()) {
	return notify.Chan(func(fn func(Change)) func() { return d.Observe(path, fn) }, ch)
}

// clone copies a decoded value, so that no two observers share one.
func clone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = clone(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = clone(e)
		}
		return s
	case []byte:
		return slices.Clone(x)
	}
	return v
}

// capture holds what the paths a patch writes held before it: a trie of
// the ops' paths. At an op's path, the whole old value; above one, what
// the path was, and its value unless an object (an object's old value is
// rebuilt from the members that did not change and the old values of those
// that did).
type capture struct {
	root *capNode
}

type capNode struct {
	key      string
	kids     []*capNode
	terminal bool // an op's path: old is the whole value
	oldKind  kind
	old      any
	oldOK    bool
}

func (c *capNode) child(key string) *capNode {
	for _, k := range c.kids {
		if k.key == key {
			return k
		}
	}
	return nil
}

// captureBefore records, before p is applied, what its paths hold.
func (d *Doc) captureBefore(p *wirePayload) *capture {
	root := &capNode{}
	for i := range p.ops {
		c := root
		for _, seg := range p.ops[i].path {
			if c.terminal {
				break
			}
			k := c.child(seg)
			if k == nil {
				k = &capNode{key: seg}
				c.kids = append(c.kids, k)
			}
			c = k
		}
		c.terminal = true
		c.kids = nil
	}
	d.captureNode(root, d.root)
	return &capture{root}
}

func (d *Doc) captureNode(c *capNode, n *node) {
	if n != nil {
		c.oldKind = n.kind
	}
	if c.oldKind == kAbsent {
		return
	}
	if c.terminal || c.oldKind != kObject {
		c.old, c.oldOK = d.materialize(n), true
		return
	}
	for _, k := range c.kids {
		d.captureNode(k, n.kid(k.key))
	}
}

// changes works out the changes of the patch just applied. d.mu is held.
func (c *capture) changes(d *Doc, u scuttlebutt.Update) *patchNote {
	note := &patchNote{source: u.Source, timestamp: u.Timestamp, local: scuttlebutt.ReplicaID(u.Source) == d.ID()}
	d.diffNode(c.root, d.root, nil, &note.changes)
	if len(note.changes) == 0 {
		return nil
	}
	return note
}

func (d *Doc) diffNode(c *capNode, n *node, path []string, out *[]noteChange) {
	k := kAbsent
	if n != nil {
		k = n.kind
	}
	var nv any
	if k != kAbsent {
		nv = d.materialize(n)
	}
	if c.terminal {
		diffValues(path, c.old, c.oldOK, nv, k != kAbsent, out)
		return
	}
	switch {
	case c.oldKind == kObject && k == kObject:
		for _, kc := range c.kids {
			d.diffNode(kc, n.kid(kc.key), append(path[:len(path):len(path)], kc.key), out)
		}
		return
	case c.oldKind == kAbsent && k == kAbsent:
		return
	}
	old, ok := d.oldValue(c, n)
	if ok && k != kAbsent && reflect.DeepEqual(old, nv) {
		return
	}
	*out = append(*out, noteChange{path: slices.Clone(path), old: old, new: nv, deleted: k == kAbsent})
}

// oldValue rebuilds what c's path held before the patch.
func (d *Doc) oldValue(c *capNode, n *node) (any, bool) {
	if c.terminal || c.oldKind != kObject {
		return c.old, c.oldOK
	}
	m := make(map[string]any)
	if n != nil && n.in != nil {
		for key, kid := range n.in.kids {
			if c.child(key) == nil && kid.kind != kAbsent {
				m[key] = d.materialize(kid) // untouched by the patch
			}
		}
	}
	for _, kc := range c.kids {
		if v, ok := d.oldValue(kc, n.kid(kc.key)); ok {
			m[kc.key] = v
		}
	}
	return m, true
}

// diffValues appends the changes from old to new at path: members of
// objects that stay objects, else the whole value.
func diffValues(path []string, old any, oldOK bool, new any, newOK bool, out *[]noteChange) {
	if !oldOK && !newOK {
		return
	}
	if oldOK && newOK {
		om, ook := old.(map[string]any)
		nm, nok := new.(map[string]any)
		if ook && nok {
			keys := slices.Sorted(maps.Keys(om))
			for k := range nm {
				if _, ok := om[k]; !ok {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			for _, k := range keys {
				ov, o := om[k]
				nv, n := nm[k]
				diffValues(append(path[:len(path):len(path)], k), ov, o, nv, n, out)
			}
			return
		}
		if reflect.DeepEqual(old, new) {
			return
		}
	}
	*out = append(*out, noteChange{path: slices.Clone(path), old: old, new: new, deleted: !newOK})
}
