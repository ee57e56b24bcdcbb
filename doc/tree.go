package doc

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// stamp orders ops: the update's (Timestamp, Source) and the op's index in
// the patch. The zero stamp sorts before every op's.
type stamp struct {
	ts  vclock.Timestamp
	src uint32 // index in Doc.logs
	op  uint32
}

// elemID is an array element's id: the stamp of the op that wrote it and
// its index among that op's elements.
type elemID struct {
	stamp
	k uint32
}

// cmpStamp compares a and b in (Timestamp, Source, op) order, Source by
// its id (an index is local to this replica).
func (d *Doc) cmpStamp(a, b stamp) int {
	if a.ts != b.ts {
		return cmp.Compare(a.ts, b.ts)
	}
	if a.src != b.src {
		return strings.Compare(d.logs[a.src].source, d.logs[b.src].source)
	}
	return cmp.Compare(a.op, b.op)
}

// after reports whether a is later than b.
func (d *Doc) after(a, b stamp) bool { return d.cmpStamp(a, b) > 0 }

func (d *Doc) maxStamp(a, b stamp) stamp {
	if d.after(b, a) {
		return b
	}
	return a
}

func (d *Doc) cmpID(a, b elemID) int {
	if c := d.cmpStamp(a.stamp, b.stamp); c != 0 {
		return c
	}
	return cmp.Compare(a.k, b.k)
}

// update is one applied patch. It is kept, and returned by History, while
// live > 0: while any of its ops still counts (see "History" in the
// package doc). Encoded values and element values alias data.
type update struct {
	data   *byte // the payload, n bytes; packed so that an update is 32 bytes
	ts     vclock.Timestamp
	n      uint32
	src    uint32
	live   int32 // ops that still count
	logged bool  // in its source's log
	dead   bool  // in the log, but no op counts any more
}

func newUpdate(data []byte, ts vclock.Timestamp, src uint32) *update {
	return &update{data: unsafe.SliceData(data), n: uint32(len(data)), ts: ts, src: src}
}

// payload returns the update's payload. It is immutable.
func (u *update) payload() []byte { return unsafe.Slice(u.data, u.n) }

// part returns n bytes of the payload from off.
func (u *update) part(off, n uint32) []byte { return u.payload()[off : off+n : off+n] }

func (u *update) stamp(op uint32) stamp { return stamp{u.ts, u.src, op} }

// opRef names one op of an update.
type opRef struct {
	up *update
	op uint32
}

func (r opRef) stamp() stamp { return r.up.stamp(r.op) }

// sourceLog holds one source's kept updates in timestamp order, so that
// History finds what a peer lacks by binary search. Dead updates stay
// until they are more than half the log.
type sourceLog struct {
	source  string
	updates []*update
	dead    int
}

// compact drops the dead updates once they are more than half the log.
func (l *sourceLog) compact() {
	if l.dead < 32 || l.dead*2 < len(l.updates) {
		return
	}
	live := l.updates[:0]
	for _, u := range l.updates {
		if !u.dead {
			live = append(live, u)
		}
	}
	clear(l.updates[len(live):])
	l.updates, l.dead = live, 0
}

// sourceIndex returns the index of source's log, adding one if needed.
func (d *Doc) sourceIndex(source string) uint32 {
	if i, ok := d.sources[source]; ok {
		return i
	}
	i := uint32(len(d.logs))
	source = strings.Clone(source)
	d.sources[source] = i
	d.logs = append(d.logs, &sourceLog{source: source})
	return i
}

// release drops one op's claim on u; an update no op counts in any more
// leaves History.
func (d *Doc) release(u *update) {
	u.live--
	if u.live == 0 && u.logged {
		u.dead = true
		delete(d.sigs, u)
		l := d.logs[u.src]
		l.dead++
		l.compact()
	}
}

// history returns the kept updates newer than sources, in (Timestamp,
// Source) order. d.mu is held.
func (d *Doc) history(sources vclock.Clock) []scuttlebutt.Update {
	type run struct {
		log  *sourceLog
		from int
	}
	var runs []run
	total := 0
	for _, l := range d.logs {
		after := sources[l.source]
		i := sort.Search(len(l.updates), func(i int) bool { return l.updates[i].ts > after })
		if i < len(l.updates) {
			runs = append(runs, run{l, i})
			total += len(l.updates) - i - l.dead // an estimate: dead ones may be before i
		}
	}
	out := make([]scuttlebutt.Update, 0, max(total, 0))
	for _, r := range runs {
		for _, u := range r.log.updates[r.from:] {
			if !u.dead {
				out = append(out, scuttlebutt.Update{Source: r.log.source, Timestamp: u.ts, Data: u.payload(), Signature: d.sigs[u]})
			}
		}
	}
	if len(runs) > 1 {
		slices.SortFunc(out, scuttlebutt.Compare)
	}
	return out
}

// kind is what a path holds, as evaluated.
type kind uint8

const (
	kAbsent  kind = iota
	kValue        // a value written by Set: string, number, bool, null, bytes
	kCounter      // a number with increments counted in
	kArray
	kObject
)

// vkind is the kind of a written value, from its first byte.
type vkind uint8

const (
	vNone vkind = iota
	vScalar
	vNumber
	vArray
	vMap
)

func valueKind(b []byte) vkind {
	switch b[0] >> 5 {
	case 0, 1:
		return vNumber
	case 4:
		return vArray
	case 5:
		return vMap
	case 7:
		if info := b[0] & 0x1f; info >= 25 && info <= 27 {
			return vNumber
		}
	}
	return vScalar
}

// node is one path of the document. What is written at a path is kept at
// its node: the value of the latest reset (Set or Unset) at or above it,
// the latest reset exactly here, counter totals, array writes.
//
// Invariants, kept by the applier: every value, seen entry, push and pull
// kept at a node belongs to (is later than, for pushes and pulls) the
// latest reset at or above it; a reset's own clear is kept at its path
// only while no later reset covers it.
type node struct {
	key    string
	parent *node
	in     *inner // nil for a node without children

	// The value the latest reset at or above this path writes here, an
	// encoded value in vup's payload; vup is nil when there is none.
	vup  *update
	vop  uint32
	voff uint32
	vlen uint32
	// reset says that the op of vup is a Set of exactly this path: its
	// clear (the latest reset here).
	reset bool

	kind    kind  // evaluated
	present bool  // holds something that counts for its ancestors (see evalOwn)
	dirty   bool  // queued for evaluation by the applier
	local   stamp // the latest stamp of what it holds, when present

	x *extra // rare parts: counters, arrays, unsets, seen totals
}

// inner is what a node with children keeps of them.
type inner struct {
	kids  map[string]*node
	below int32 // descendants that are present
	ninc  int32 // counter records (source totals) in descendants
	maxb  stamp // the latest local stamp of a present descendant; an upper bound if stale
	stale bool
}

// extra holds the parts of a node most nodes lack.
type extra struct {
	unset *opRef    // the latest reset here, when it is an Unset
	incs  []incRec  // the latest Inc of each source, sorted by source id
	seen  []seenRec // the totals the latest reset at or above had seen here
	arr   *arrState // pushes and pulls since that reset
	cval  float64   // the counter's value, when kind is kCounter
}

func (x *extra) empty() bool {
	return x.unset == nil && len(x.incs) == 0 && len(x.seen) == 0 && (x.arr == nil || x.arr.empty())
}

// incRec is the latest Inc of one source at a path: its cumulative totals.
type incRec struct {
	opRef
	p, n float64
}

// seenRec is the total of one source a reset had seen at a path.
type seenRec struct {
	src  uint32
	p, n float64
}

// arrState holds the pushes and pulls of an array path made after its
// latest reset.
type arrState struct {
	pushes []*pushRec // kept pushes: not every element pulled
	pulls  []*pullRec
	elems  []elem              // pushed elements not pulled, sorted by id
	pulled map[elemID]struct{} // ids the pulls remove
	last   stamp               // the latest stamp of pushes and pulls, unless stale
	stale  bool
}

// lastWrite returns the latest stamp of the pushes and pulls.
func (d *Doc) lastWrite(a *arrState) stamp {
	if a.stale {
		var m stamp
		for _, p := range a.pushes {
			m = d.maxStamp(m, p.stamp())
		}
		for _, p := range a.pulls {
			m = d.maxStamp(m, p.stamp())
		}
		a.last, a.stale = m, false
	}
	return a.last
}

// noteWrite records a push or pull stamped s.
func (d *Doc) noteWrite(a *arrState, s stamp) {
	if !a.stale && d.after(s, a.last) {
		a.last = s
	}
}

func (a *arrState) empty() bool { return len(a.pushes) == 0 && len(a.pulls) == 0 }

type pushRec struct {
	opRef
	n    int // values pushed
	live int // of them, not pulled
}

type pullRec struct {
	opRef
	ids []elemID
}

type elem struct {
	id   elemID
	push *pushRec
	off  uint32 // in push.up.data
	n    uint32
}

func (e elem) data() []byte { return e.push.up.part(e.off, e.n) }

func (n *node) ext() *extra {
	if n.x == nil {
		n.x = &extra{}
	}
	return n.x
}

func (n *node) inner() *inner {
	if n.in == nil {
		n.in = &inner{kids: make(map[string]*node)}
	}
	return n.in
}

func (n *node) kid(key string) *node {
	if n == nil || n.in == nil {
		return nil
	}
	return n.in.kids[key]
}

// val returns the encoded value written here, or nil.
func (n *node) val() []byte {
	if n.vup == nil {
		return nil
	}
	return n.vup.part(n.voff, n.vlen)
}

func (n *node) valStamp() stamp { return n.vup.stamp(n.vop) }

// clearStamp returns the stamp of the latest reset exactly at n, or zero.
func (n *node) clearStamp() stamp {
	if n.reset {
		return n.valStamp()
	}
	if n.x != nil && n.x.unset != nil {
		return n.x.unset.stamp()
	}
	return stamp{}
}

// ec returns the stamp of the latest reset at or above n: R(n).
func (d *Doc) ec(n *node) stamp {
	var s stamp
	for ; n != nil; n = n.parent {
		if c := n.clearStamp(); c.ts != 0 && d.after(c, s) {
			s = c
		}
	}
	return s
}

// empty reports whether n holds nothing and can go.
func (n *node) empty() bool {
	return n.vup == nil && (n.in == nil || len(n.in.kids) == 0) && (n.x == nil || n.x.empty())
}
