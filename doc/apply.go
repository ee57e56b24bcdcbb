package doc

import (
	"slices"
	"strings"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// applier applies one update's ops to the tree, with d.mu held, and then
// evaluates again the nodes they touched. Every op is kept only if it
// counts (see "History" in the package doc): up.live counts the ops of the
// update that do.
type applier struct {
	d     *Doc
	up    *update
	data  []byte   // its payload
	srcs  []uint32 // the payload's source table, as log indexes
	dirty []*node  // touched, to evaluate; then their ancestors too
}

func (a *applier) touch(n *node) {
	if !n.dirty {
		n.dirty = true
		a.dirty = append(a.dirty, n)
	}
}

// apply applies op number i of the update.
func (a *applier) apply(i int, op *wireOp) {
	d := a.d
	st := a.up.stamp(uint32(i))
	n, ec := d.find(op.path)
	if op.code != opInc && !d.after(st, ec) {
		return // a later reset at or above its path hides it
	}
	if n == nil {
		n = a.ensure(d.root, op.path)
	}
	switch op.code {
	case opSet, opUnset:
		a.reset(n, st, op)
	case opInc:
		a.inc(n, st, op)
	case opPush:
		a.push(n, st, op)
	case opPull:
		a.pull(n, st, op)
	}
}

// find returns the node at path, or nil if there is none, and the stamp
// of the latest reset at or above it: R(path), as far as nodes exist.
func (d *Doc) find(path []string) (*node, stamp) {
	n := d.root
	ec := n.clearStamp()
	for _, seg := range path {
		if n = n.kid(seg); n == nil {
			return nil, ec
		}
		if c := n.clearStamp(); c.ts != 0 && d.after(c, ec) {
			ec = c
		}
	}
	return n, ec
}

// ensure returns the node at path below n, creating what is missing.
func (a *applier) ensure(n *node, path []string) *node {
	for _, seg := range path {
		c := n.kid(seg)
		if c == nil {
			c = newChild(n, seg)
		}
		n = c
	}
	return n
}

func newChild(n *node, key string) *node {
	c := &node{key: strings.Clone(key), parent: n}
	n.inner().kids[c.key] = c
	return c
}

// reset applies a Set or Unset at n, later than every reset at or above
// n: it hides what is older in n's subtree, writes its value and records
// the totals it had seen.
func (a *applier) reset(n *node, st stamp, op *wireOp) {
	a.clear(n, st, true)
	if op.val != nil {
		a.write(n, st, op.val, true)
	} else {
		n.ext().unset = &opRef{a.up, st.op}
	}
	a.up.live++ // its clear at n
	for i := range op.seen {
		a.seen(n, st, &op.seen[i])
	}
}

// clear drops from m and its subtree what a reset stamped st hides: older
// resets, values, seen totals, pushes and pulls. A subtree under a later
// reset is its own and left alone. Counter totals stay (see Counters in
// the package doc).
func (a *applier) clear(m *node, st stamp, top bool) {
	d := a.d
	if !top {
		if c := m.clearStamp(); c.ts != 0 && d.after(c, st) {
			return
		}
	}
	if m.reset {
		d.release(m.vup)
	}
	m.vup, m.reset = nil, false
	if x := m.x; x != nil {
		if x.unset != nil {
			d.release(x.unset.up)
			x.unset = nil
		}
		x.seen = nil
		if x.arr != nil {
			a.clearArray(x, st)
		}
	}
	a.touch(m)
	if m.in != nil {
		for _, c := range m.in.kids {
			a.clear(c, st, false)
		}
	}
}

// clearArray drops the pushes and pulls older than st.
func (a *applier) clearArray(x *extra, st stamp) {
	d := a.d
	arr := x.arr
	arr.pushes = slices.DeleteFunc(arr.pushes, func(p *pushRec) bool {
		if d.after(p.stamp(), st) {
			return false
		}
		d.release(p.up)
		p.live = -1 // gone: its elements go too
		return true
	})
	arr.elems = slices.DeleteFunc(arr.elems, func(e elem) bool { return e.push.live < 0 })
	n := len(arr.pulls)
	arr.pulls = slices.DeleteFunc(arr.pulls, func(p *pullRec) bool {
		if d.after(p.stamp(), st) {
			return false
		}
		d.release(p.up)
		return true
	})
	if len(arr.pulls) != n {
		arr.pulled = nil
		for _, p := range arr.pulls {
			arr.addPulled(p.ids)
		}
	}
	arr.stale = true
	if arr.empty() {
		x.arr = nil
	}
}

func (arr *arrState) addPulled(ids []elemID) {
	if arr.pulled == nil && len(ids) > 0 {
		arr.pulled = make(map[elemID]struct{}, len(ids))
	}
	for _, id := range ids {
		arr.pulled[id] = struct{}{}
	}
}

// write writes a reset's value v at m and, for an object, its members
// below m, except under a later reset. top is the reset's own path.
func (a *applier) write(m *node, st stamp, v []byte, top bool) {
	m.vup, m.vop = a.up, st.op
	m.voff, m.vlen = uint32(cap(a.data)-cap(v)), uint32(len(v)) // v is a part of the payload
	m.reset = top
	a.touch(m)
	if valueKind(v) != vMap {
		return
	}
	r := cborx.NewReader(v)
	pairs, _ := r.HeadOf(cborx.MajorMap) // checked by parsePayload
	for range pairs {
		key, _ := text(&r)
		sub, _ := r.Item(scuttlebutt.MaxNesting)
		c := m.kid(key)
		if c == nil {
			c = newChild(m, key)
		} else if cs := c.clearStamp(); cs.ts != 0 && a.d.after(cs, st) {
			continue
		}
		a.write(c, st, sub, false)
	}
}

// seen records a total the reset at n had seen, at its path below n,
// unless a later reset there hides the reset.
func (a *applier) seen(n *node, st stamp, s *wireSeen) {
	m := n
	for _, seg := range s.rel {
		c := m.kid(seg)
		if c == nil {
			c = newChild(m, seg)
		} else if cs := c.clearStamp(); cs.ts != 0 && a.d.after(cs, st) {
			return
		}
		m = c
	}
	x := m.ext()
	src := a.srcs[s.src]
	a.touch(m)
	for i := range x.seen {
		if r := &x.seen[i]; r.src == src {
			r.p, r.n = max(r.p, s.p), max(r.n, s.n)
			return
		}
	}
	x.seen = append(x.seen, seenRec{src, s.p, s.n})
}

// inc records the latest totals of the update's source at n, unless it
// already holds later ones.
func (a *applier) inc(n *node, st stamp, op *wireOp) {
	d := a.d
	x := n.ext()
	src := a.up.src
	for i := range x.incs {
		if r := &x.incs[i]; r.up.src == src {
			if !d.after(st, r.stamp()) {
				return // an earlier total of the source: superseded
			}
			d.release(r.up)
			*r = incRec{opRef{a.up, st.op}, op.p, op.n}
			a.up.live++
			a.touch(n)
			return
		}
	}
	name := d.logs[src].source
	i, _ := slices.BinarySearchFunc(x.incs, name, func(r incRec, name string) int {
		return strings.Compare(d.logs[r.up.src].source, name)
	})
	x.incs = slices.Insert(x.incs, i, incRec{opRef{a.up, st.op}, op.p, op.n})
	a.up.live++
	for p := n.parent; p != nil; p = p.parent {
		p.in.ninc++
	}
	a.touch(n)
}

// push adds the elements of a Push at n, later than n's latest reset.
func (a *applier) push(n *node, st stamp, op *wireOp) {
	d := a.d
	arr := n.ext().array()
	pr := &pushRec{opRef: opRef{a.up, st.op}, n: len(op.vals)}
	for k, v := range op.vals {
		id := elemID{st, uint32(k)}
		if _, gone := arr.pulled[id]; gone {
			continue
		}
		i, _ := slices.BinarySearchFunc(arr.elems, id, func(e elem, id elemID) int { return d.cmpID(e.id, id) })
		arr.elems = slices.Insert(arr.elems, i, elem{id, pr, uint32(cap(a.data) - cap(v)), uint32(len(v))})
		pr.live++
	}
	// A push whose every element a pull removed counts no more: the pulls,
	// later, keep the array's place and stamp.
	if pr.n == 0 || pr.live > 0 {
		arr.pushes = append(arr.pushes, pr)
		d.noteWrite(arr, st)
		a.up.live++
	}
	a.touch(n)
}

// pull removes the elements a Pull at n names: those that are here, and
// those that arrive later. Ids not earlier than the pull are ignored.
func (a *applier) pull(n *node, st stamp, op *wireOp) {
	d := a.d
	arr := n.ext().array()
	pl := &pullRec{opRef: opRef{a.up, st.op}}
	for _, w := range op.ids {
		id := elemID{stamp{w.ts, a.srcs[w.src], w.op}, w.k}
		if !d.after(st, id.stamp) {
			continue
		}
		pl.ids = append(pl.ids, id)
		i, ok := slices.BinarySearchFunc(arr.elems, id, func(e elem, id elemID) int { return d.cmpID(e.id, id) })
		if !ok {
			continue
		}
		e := arr.elems[i]
		arr.elems = slices.Delete(arr.elems, i, i+1)
		if e.push.live--; e.push.live == 0 {
			arr.pushes = slices.DeleteFunc(arr.pushes, func(p *pushRec) bool { return p == e.push })
			d.release(e.push.up)
			arr.stale = true
		}
	}
	arr.addPulled(pl.ids)
	arr.pulls = append(arr.pulls, pl)
	d.noteWrite(arr, st)
	a.up.live++
	a.touch(n)
}

func (x *extra) array() *arrState {
	if x.arr == nil {
		x.arr = &arrState{}
	}
	return x.arr
}

// finish evaluates the touched nodes and their ancestors again: first what
// each holds (presence, for its ancestors' counts), then what each is.
func (a *applier) finish() {
	d := a.d
	k := len(a.dirty)
	for _, n := range a.dirty[:k] {
		o := d.evalOwn(n, d.ec(n))
		d.setPresence(n, o.present, o.local)
	}
	for i := 0; i < len(a.dirty); i++ {
		if p := a.dirty[i].parent; p != nil && !p.dirty {
			p.dirty = true
			a.dirty = append(a.dirty, p)
		}
	}
	for _, n := range a.dirty {
		o := d.evalOwn(n, d.ec(n))
		n.kind = d.resolve(n, &o)
		if n.kind == kCounter {
			n.x.cval = o.cval
		}
	}
}

// prune removes the nodes that hold nothing any more.
func (a *applier) prune() {
	for _, n := range a.dirty {
		n.dirty = false
		if n.x != nil && n.x.empty() {
			n.x = nil
		}
	}
	for _, n := range a.dirty {
		for p := n.parent; p != nil && n.empty() && p.kid(n.key) == n; p = n.parent {
			delete(p.in.kids, n.key)
			if len(p.in.kids) == 0 {
				p.in = nil
			}
			n.parent = nil
			n = p
		}
	}
	a.dirty = a.dirty[:0]
}

// setPresence records what n holds for its ancestors: whether anything,
// and the latest stamp of it.
func (d *Doc) setPresence(n *node, present bool, local stamp) {
	wasP, wasL := n.present, n.local
	n.present, n.local = present, local
	if wasP == present && (!present || wasL == local) {
		return
	}
	for p := n.parent; p != nil; p = p.parent {
		in := p.in
		if wasP != present {
			if present {
				in.below++
			} else {
				in.below--
			}
		}
		if present && d.after(local, in.maxb) {
			in.maxb = local
		}
		if wasP && wasL == in.maxb && (!present || d.after(wasL, local)) {
			in.stale = true // the latest may have gone: count again when asked
		}
	}
}

// maxBelow returns the latest stamp held below n.
func (d *Doc) maxBelow(n *node) stamp {
	in := n.in
	if in == nil {
		return stamp{}
	}
	if in.stale {
		var m stamp
		for _, c := range in.kids {
			if c.present && d.after(c.local, m) {
				m = c.local
			}
			if c.in != nil && c.in.below > 0 {
				m = d.maxStamp(m, d.maxBelow(c))
			}
		}
		in.maxb, in.stale = m, false
	}
	return in.maxb
}
