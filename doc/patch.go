package doc

import (
	"cmp"
	"fmt"
	"math"
	"reflect"
	"slices"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/value"
	"github.com/scuttle-go/scuttle/vclock"
)

// Op is one operation of a patch. Set, Unset, Inc, Push and Pull make
// them; Patch applies them.
type Op struct {
	code   byte
	path   string
	value  any
	values []any
	n      float64
}

// Set returns an op that sets path to value. value is nil, a bool, an
// integer within int64, a finite float, a string, []byte, or a slice,
// array or string-keyed map of these. An object value is written member by
// member, so that later writes below path survive it, and an object
// (even {}) stays an object until path is set or unset again. The root
// ("") can only be set to an object.
func Set(path string, value any) Op { return Op{code: opSet, path: path, value: value} }

// Unset returns an op that removes path and everything below it.
func Unset(path string) Op { return Op{code: opUnset, path: path} }

// Inc returns an op that adds n (which may be negative) to the counter at
// path. A missing path counts from 0; a path that holds something other
// than a number is an error (ErrNotNumber). Concurrent increments all count.
func Inc(path string, n float64) Op { return Op{code: opInc, path: path, n: n} }

// Push returns an op that appends values to the array at path. A missing
// path becomes an array; a path that holds something other than an array
// is an error (ErrNotArray). Concurrent pushes all survive.
func Push(path string, values ...any) Op { return Op{code: opPush, path: path, values: values} }

// Pull returns an op that removes every element equal to value from the
// array at path: equal as Get returns them (reflect.DeepEqual of the
// decoded values, so 1 and 1.0 differ). It removes only the elements the
// replica holds when it is applied, not equal ones pushed concurrently. A
// missing path is left as it is.
func Pull(path string, value any) Op { return Op{code: opPull, path: path, value: value} }

var opNames = [...]string{opSet: "set", opUnset: "unset", opInc: "inc", opPush: "push", opPull: "pull"}

// String describes the op for errors: "set /a/b".
func (o Op) String() string { return opNames[o.code] + " " + fmt.Sprintf("%q", o.path) }

// Patch applies ops, in order, as one update: every replica applies all of
// them or none, and observers see the changes of all of them once they are
// all applied. Each op sees the document as the ops before it in the patch
// leave it. If an op is invalid, Patch returns an error wrapping
// ErrInvalidPath, ErrInvalidValue, ErrNotObject, ErrNotNumber,
// ErrNotArray, ErrTooDeep or ErrTooLarge, naming the op, and changes
// nothing; a failure of the replica's storage is returned too, and then
// nothing is visible either. A patch without ops, or whose ops change
// nothing (a Pull of a missing path), writes nothing.
func (d *Doc) Patch(ops ...Op) error {
	if len(ops) == 0 {
		return nil
	}
	if len(ops) > MaxOps {
		return fmt.Errorf("doc: patch of %d ops: %w (the limit is %d)", len(ops), ErrTooLarge, MaxOps)
	}
	b := &builder{d: d, self: d.Source(), ops: make([]bop, len(ops))}
	for i, o := range ops {
		if err := b.prepare(i, o); err != nil {
			return fmt.Errorf("doc: %s: %w", o, err)
		}
	}
	d.wmu.Lock()
	err := d.commit(b, ops)
	d.wmu.Unlock()
	d.notes.Deliver() // the changes AfterApply left to us
	return err
}

// commit finishes b against the document and applies it. d.wmu is held.
func (d *Doc) commit(b *builder, ops []Op) error {
	d.mu.RLock()
	for i := range b.ops {
		if err := b.resolve(i); err != nil {
			d.mu.RUnlock()
			return fmt.Errorf("doc: %s: %w", ops[i], err)
		}
	}
	d.mu.RUnlock()
	data, n, err := b.encode()
	switch {
	case err != nil:
		return fmt.Errorf("doc: patch: %w: %v", ErrInvalidValue, err)
	case n == 0:
		return nil
	case len(data) > d.maxSize:
		return fmt.Errorf("doc: patch of %d bytes: %w (the limit is %d, Config.MaxUpdateSize)", len(data), ErrTooLarge, d.maxSize)
	}
	if _, _, err := d.LocalUpdate(data); err != nil {
		return fmt.Errorf("doc: patch: %w", err)
	}
	return nil
}

// builder turns ops into a payload: it checks each against the document as
// the ops before it leave it, and fills in what the document decides (the
// totals of counters, the ids of elements to pull).
type builder struct {
	d    *Doc
	self string // this replica's source
	ops  []bop
}

// bop is an op being built.
type bop struct {
	code   byte
	path   []string
	enc    []byte   // Set: the encoded value
	encs   [][]byte // Push: the encoded values
	norm   any      // Set: the decoded value, once needed
	norms  []any    // Push: the decoded values, once needed
	edited bool     // a Pull of the same patch took elements out of norm or norms
	delta  float64  // Inc
	p, n   float64  // Inc: this source's totals after it
	want   any      // Pull: the decoded value to remove
	seen   []seenOut
	ids    []idOut
	skip   bool // a Pull that removes nothing, left out of the payload
}

type seenOut struct {
	rel  []string
	src  string
	p, n float64
}

type idOut struct {
	ts    vclock.Timestamp
	src   string
	op, k uint32
}

// prepare checks what can be checked of an op without the document.
func (b *builder) prepare(i int, o Op) error {
	path, err := ParsePointer(o.path)
	if err != nil {
		return err
	}
	if len(path) > MaxDepth {
		return fmt.Errorf("%w: %d segments, the limit is %d", ErrTooDeep, len(path), MaxDepth)
	}
	bo := &b.ops[i]
	bo.code, bo.path = o.code, path
	switch o.code {
	case opSet:
		if bo.enc, err = encodeValue(o.value, MaxDepth-len(path)); err != nil {
			return err
		}
		if len(path) == 0 && valueKind(bo.enc) != vMap {
			return ErrNotObject
		}
	case opInc:
		if len(path) == 0 {
			return ErrNotNumber
		}
		if math.IsNaN(o.n) || math.IsInf(o.n, 0) {
			return fmt.Errorf("%w: inc by %v", ErrInvalidValue, o.n)
		}
		bo.delta = o.n
	case opPush:
		if len(path) == 0 {
			return ErrNotArray
		}
		if len(path)+1 > MaxDepth {
			return fmt.Errorf("%w: elements at depth %d, the limit is %d", ErrTooDeep, len(path)+1, MaxDepth)
		}
		bo.encs = make([][]byte, len(o.values))
		for j, v := range o.values {
			if bo.encs[j], err = encodeValue(v, MaxDepth-len(path)-1); err != nil {
				return err
			}
		}
	case opPull:
		if len(path) == 0 {
			return ErrNotArray
		}
		enc, err := encodeValue(o.value, MaxDepth)
		if err != nil {
			return err
		}
		bo.want = decode(enc)
	}
	return nil
}

// encodeValue checks and encodes a value that may nest depth deep.
func encodeValue(v any, depth int) ([]byte, error) {
	if err := value.Check(v, depth); err != nil {
		if value.Check(v, 1<<16) == nil {
			return nil, fmt.Errorf("%w: %v", ErrTooDeep, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	enc, err := value.Enc.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return enc, nil
}

// The kinds of value the builder tells apart.
type bkind uint8

const (
	bAbsent bkind = iota
	bScalar
	bNumber
	bArray
	bObject
)

// resolve checks op i against the document and the ops before it, and
// fills in what the document decides. d.mu is read-locked.
func (b *builder) resolve(i int) error {
	o := &b.ops[i]
	for j := 1; j < len(o.path); j++ {
		if b.kindAt(o.path[:j], i) == bArray {
			return fmt.Errorf("%w: %s holds an array", ErrInvalidPath, Pointer(o.path[:j]...))
		}
	}
	switch o.code {
	case opSet, opUnset:
		o.seen = b.seenBelow(o.path, i)
	case opInc:
		if k := b.kindAt(o.path, i); k != bAbsent && k != bNumber {
			return ErrNotNumber
		}
		p, n := b.totals(o.path, i)
		if o.delta >= 0 {
			p += o.delta
		} else {
			n -= o.delta
		}
		if math.IsInf(p, 0) || math.IsInf(n, 0) {
			return fmt.Errorf("%w: the counter's total would overflow", ErrInvalidValue)
		}
		o.p, o.n = p, n
	case opPush:
		if k := b.kindAt(o.path, i); k != bAbsent && k != bArray {
			return ErrNotArray
		}
	case opPull:
		switch b.kindAt(o.path, i) {
		case bAbsent:
			o.skip = true
		case bArray:
			b.pull(i)
		default:
			return ErrNotArray
		}
	}
	return nil
}

// kindAt returns what path holds once ops before k are applied.
func (b *builder) kindAt(path []string, k int) bkind {
	for j := k - 1; j >= 0; j-- {
		o := &b.ops[j]
		if o.skip {
			continue
		}
		if isPrefix(o.path, path) {
			rel := path[len(o.path):]
			switch o.code {
			case opSet:
				if len(rel) == 0 {
					return bkindOf(valueKind(o.enc))
				}
				v, ok := walkObject(o.normValue(), rel)
				return goKind(v, ok)
			case opUnset:
				return bAbsent
			case opInc:
				if len(rel) == 0 {
					return bNumber
				}
			default:
				if len(rel) == 0 {
					return bArray
				}
			}
			return bAbsent // below a number or an array that op wrote
		}
		if isPrefix(path, o.path) && o.code != opUnset {
			return bObject // a later write below makes it an object
		}
	}
	return b.d.kindAtState(path)
}

func bkindOf(k vkind) bkind {
	switch k {
	case vNumber:
		return bNumber
	case vArray:
		return bArray
	case vMap:
		return bObject
	}
	return bScalar
}

func goKind(v any, ok bool) bkind {
	if !ok {
		return bAbsent
	}
	switch v.(type) {
	case map[string]any:
		return bObject
	case []any:
		return bArray
	case int64, float64:
		return bNumber
	}
	return bScalar
}

// walkObject follows path through the objects of a decoded value.
func walkObject(v any, path []string) (any, bool) {
	for _, seg := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return v, true
}

func (o *bop) normValue() any {
	if o.norm == nil {
		o.norm = decode(o.enc)
	}
	return o.norm
}

func (o *bop) normValues() []any {
	if o.norms == nil {
		o.norms = make([]any, len(o.encs))
		for i, e := range o.encs {
			o.norms[i] = decode(e)
		}
	}
	return o.norms
}

// kindAtState returns what path holds in the document. d.mu is held.
func (d *Doc) kindAtState(path []string) bkind {
	n := d.root
	for _, seg := range path {
		if n.kind != kObject {
			return bAbsent
		}
		if n = n.kid(seg); n == nil {
			return bAbsent
		}
	}
	switch n.kind {
	case kValue:
		return bkindOf(valueKind(n.val()))
	case kCounter:
		return bNumber
	case kArray:
		return bArray
	case kObject:
		return bObject
	}
	return bAbsent
}

// node returns the node at path, whatever its ancestors are, or nil.
func (d *Doc) node(path []string) *node {
	n := d.root
	for _, seg := range path {
		if n = n.kid(seg); n == nil {
			return nil
		}
	}
	return n
}

// totals returns this source's totals at path before op k.
func (b *builder) totals(path []string, k int) (p, n float64) {
	for j := k - 1; j >= 0; j-- {
		if o := &b.ops[j]; o.code == opInc && slices.Equal(o.path, path) {
			return o.p, o.n
		}
	}
	if nd := b.d.node(path); nd != nil && nd.x != nil {
		for _, r := range nd.x.incs {
			if b.d.logs[r.up.src].source == b.self {
				return r.p, r.n
			}
		}
	}
	return 0, 0
}

// seenBelow returns the totals of every counter at or below path that a
// reset there before op k has seen, sorted by path and source.
func (b *builder) seenBelow(path []string, k int) []seenOut {
	var out []seenOut
	if nd := b.d.node(path); nd != nil {
		b.d.collectIncs(nd, nil, &out)
	}
	for j := 0; j < k; j++ {
		o := &b.ops[j]
		if o.code != opInc || !isPrefix(path, o.path) {
			continue
		}
		rel := o.path[len(path):]
		i := slices.IndexFunc(out, func(s seenOut) bool { return s.src == b.self && slices.Equal(s.rel, rel) })
		if i < 0 {
			out = append(out, seenOut{rel: rel, src: b.self})
			i = len(out) - 1
		}
		out[i].p, out[i].n = o.p, o.n
	}
	slices.SortFunc(out, func(a, b seenOut) int {
		if c := slices.Compare(a.rel, b.rel); c != 0 {
			return c
		}
		return cmp.Compare(a.src, b.src)
	})
	return out
}

func (d *Doc) collectIncs(n *node, rel []string, out *[]seenOut) {
	if n.x != nil {
		for _, r := range n.x.incs {
			if r.p != 0 || r.n != 0 {
				*out = append(*out, seenOut{rel: slices.Clone(rel), src: d.logs[r.up.src].source, p: r.p, n: r.n})
			}
		}
	}
	if n.in == nil || n.in.ninc == 0 {
		return
	}
	for key, c := range n.in.kids {
		if c.in != nil && c.in.ninc > 0 || c.x != nil && len(c.x.incs) > 0 {
			d.collectIncs(c, append(rel[:len(rel):len(rel)], key), out)
		}
	}
}

// pull finds what Pull op i removes: the equal elements the document holds
// at its path, unless an op before it in the patch replaced them, and the
// equal elements that ops before it in the patch add, which it takes out
// of those ops instead.
func (b *builder) pull(i int) {
	o := &b.ops[i]
	base := -1
	for j := i - 1; j >= 0; j-- {
		q := &b.ops[j]
		if !q.skip && isPrefix(q.path, o.path) && (q.code == opSet || q.code == opUnset || len(q.path) < len(o.path)) {
			base = j
			break
		}
	}
	if base >= 0 {
		if q := &b.ops[base]; q.code == opSet {
			if v, ok := removeAt(q.normValue(), o.path[len(q.path):], o.want); ok {
				q.norm, q.edited = v, true
			}
		}
	} else if n := b.d.evalNode(o.path); n != nil && n.kind == kArray {
		b.d.eachElement(n, func(id elemID, e []byte) {
			if reflect.DeepEqual(decode(e), o.want) {
				o.ids = append(o.ids, idOut{id.ts, b.d.logs[id.src].source, id.op, id.k})
			}
		})
	}
	for j := base + 1; j < i; j++ {
		q := &b.ops[j]
		if q.code != opPush || q.skip || !slices.Equal(q.path, o.path) {
			continue
		}
		vs := q.normValues()
		kept := slices.DeleteFunc(slices.Clone(vs), func(v any) bool { return reflect.DeepEqual(v, o.want) })
		if len(kept) != len(vs) {
			q.norms, q.edited = kept, true
		}
	}
	if len(o.ids) == 0 {
		o.skip = true
	}
}

// removeAt removes the elements equal to want from the array at path in v,
// a decoded value the builder owns, and reports whether it removed any.
func removeAt(v any, path []string, want any) (any, bool) {
	if len(path) == 0 {
		arr, ok := v.([]any)
		if !ok {
			return v, false
		}
		kept := slices.DeleteFunc(slices.Clone(arr), func(e any) bool { return reflect.DeepEqual(e, want) })
		return kept, len(kept) != len(arr)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return v, false
	}
	c, ok := removeAt(m[path[0]], path[1:], want)
	if ok {
		m[path[0]] = c
	}
	return v, ok
}

// evalNode returns the node at path if every path above it is an object.
func (d *Doc) evalNode(path []string) *node {
	n := d.root
	for _, seg := range path {
		if n.kind != kObject {
			return nil
		}
		if n = n.kid(seg); n == nil {
			return nil
		}
	}
	return n
}

// encode returns the payload (see "Wire form" in the package doc) and how
// many ops it holds.
func (b *builder) encode() (data []byte, ops int, err error) {
	var srcs []string
	index := map[string]int{}
	ref := func(s string) int {
		i, ok := index[s]
		if !ok {
			i = len(srcs)
			index[s] = i
			srcs = append(srcs, s)
		}
		return i
	}
	size := 8
	for i := range b.ops {
		o := &b.ops[i]
		if o.skip {
			continue
		}
		ops++
		for _, s := range o.seen {
			ref(s.src)
		}
		for _, id := range o.ids {
			ref(id.src)
		}
		size += 8 + len(o.enc) + 24*len(o.seen) + 16*len(o.ids)
		for _, e := range o.encs {
			size += len(e)
		}
		for _, s := range o.path {
			size += 2 + len(s)
		}
	}
	if ops == 0 {
		return nil, 0, nil
	}
	out := make([]byte, 0, size)
	out = cborx.AppendHead(out, cborx.MajorArray, uint64(1+ops))
	out = cborx.AppendHead(out, cborx.MajorArray, uint64(len(srcs)))
	for _, s := range srcs {
		out = appendText(out, s)
	}
	for i := range b.ops {
		o := &b.ops[i]
		if o.skip {
			continue
		}
		items := 2
		switch o.code {
		case opSet:
			items++
			fallthrough
		case opUnset:
			if len(o.seen) > 0 {
				items++
			}
		case opInc:
			items += 2
		case opPush:
			if o.edited {
				items += len(o.norms)
			} else {
				items += len(o.encs)
			}
		case opPull:
			items += len(o.ids)
		}
		out = cborx.AppendHead(out, cborx.MajorArray, uint64(items))
		out = cborx.AppendHead(out, cborx.MajorUint, uint64(o.code))
		out = appendPath(out, o.path)
		switch o.code {
		case opSet:
			v := o.enc
			if o.edited {
				if v, err = value.Enc.Marshal(o.norm); err != nil {
					return nil, 0, err
				}
			}
			out = append(out, v...)
			fallthrough
		case opUnset:
			if len(o.seen) > 0 {
				out = cborx.AppendHead(out, cborx.MajorArray, uint64(len(o.seen)))
				for _, s := range o.seen {
					out = append(out, 0x84)
					out = appendPath(out, s.rel)
					out = cborx.AppendHead(out, cborx.MajorUint, uint64(index[s.src]))
					out = appendTotal(out, s.p)
					out = appendTotal(out, s.n)
				}
			}
		case opInc:
			out = appendTotal(out, o.p)
			out = appendTotal(out, o.n)
		case opPush:
			if o.edited {
				for _, v := range o.norms {
					e, err := value.Enc.Marshal(v)
					if err != nil {
						return nil, 0, err
					}
					out = append(out, e...)
				}
			} else {
				for _, e := range o.encs {
					out = append(out, e...)
				}
			}
		case opPull:
			for _, id := range o.ids {
				out = append(out, 0x84)
				out = appendFloat64(out, float64(id.ts))
				out = cborx.AppendHead(out, cborx.MajorUint, uint64(index[id.src]))
				out = cborx.AppendHead(out, cborx.MajorUint, uint64(id.op))
				out = cborx.AppendHead(out, cborx.MajorUint, uint64(id.k))
			}
		}
	}
	return out, ops, nil
}
