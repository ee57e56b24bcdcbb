package doc

import (
	"math"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/value"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// ownEval is what a node holds itself, under its latest reset: whether it
// holds anything that makes its parent an object (present) and the latest
// stamp of that, the kind of the value written here, and the candidate
// kind that wins among its own (all but object).
type ownEval struct {
	present bool
	local   stamp
	vk      vkind // the value the latest reset at or above writes here
	vs      stamp
	kind    kind // kValue, kCounter or kArray: the latest of them; kAbsent if none
	st      stamp
	cval    float64 // the counter's value, when kind is kCounter
}

// evalOwn evaluates n itself; ec is the stamp of its latest reset (R).
// These are the rules of the package doc:
//
//   - the value R writes here is present, stamped with R;
//   - a source's latest Inc counts unless R is later and had seen its
//     totals; the counter is present, stamped with its latest counting Inc
//     (or R, if R wrote a number), and is worth R's number (or 0) plus,
//     source by source in id order, the increments R had not seen;
//   - pushes and pulls (all later than R) are present, and make, with an
//     array R wrote, the array, stamped with the latest of them.
func (d *Doc) evalOwn(n *node, ec stamp) (o ownEval) {
	note := func(s stamp) {
		if !o.present || d.after(s, o.local) {
			o.local = s
		}
		o.present = true
	}
	cand := func(k kind, s stamp) {
		if o.kind == kAbsent || d.after(s, o.st) {
			o.kind, o.st = k, s
		}
	}
	var v []byte
	if n.vup != nil {
		v = n.val()
		o.vk, o.vs = valueKind(v), n.valStamp()
		note(o.vs)
	}
	var (
		counting bool
		cs       stamp // the latest counting Inc
		sum      float64
		arrayed  = o.vk == vArray
		as       = o.vs // the latest array write
	)
	if x := n.x; x != nil {
		for _, r := range x.incs {
			sp, sn := x.seenOf(r.up.src)
			rs := r.stamp()
			if !d.after(rs, ec) && r.p <= sp && r.n <= sn {
				continue // the reset had seen all of it
			}
			if !counting || d.after(rs, cs) {
				cs = rs
			}
			counting = true
			sum += max(0, r.p-sp) - max(0, r.n-sn)
			note(rs)
		}
		if arr := x.arr; arr != nil && !arr.empty() {
			last := d.lastWrite(arr)
			as, arrayed = d.laterOf(as, last, arrayed), true
			note(last)
		}
	}
	switch o.vk {
	case vScalar:
		cand(kValue, o.vs)
	case vNumber:
		if !counting {
			cand(kValue, o.vs)
		}
	}
	if counting {
		base, st := 0.0, cs
		if o.vk == vNumber {
			r := cborx.NewReader(v)
			base, _ = r.Number()
			st = d.maxStamp(st, o.vs)
		}
		o.cval = base + sum
		cand(kCounter, st)
	}
	if arrayed {
		cand(kArray, as)
	}
	return o
}

// laterOf returns the later of cur (if set) and s.
func (d *Doc) laterOf(cur, s stamp, set bool) stamp {
	if !set || d.after(s, cur) {
		return s
	}
	return cur
}

func (x *extra) seenOf(src uint32) (p, n float64) {
	for _, r := range x.seen {
		if r.src == src {
			return r.p, r.n
		}
	}
	return 0, 0
}

// resolve returns what n is: the latest of its own candidate and the
// object, which it is if R wrote an object here or anything is present
// below, stamped with the latest of those.
func (d *Doc) resolve(n *node, o *ownEval) kind {
	if n.parent == nil {
		return kObject // the root
	}
	below := n.in != nil && n.in.below > 0
	obj := o.vk == vMap || below
	switch {
	case o.kind == kAbsent:
		if obj {
			return kObject
		}
		return kAbsent
	case !obj:
		return o.kind
	}
	var os stamp
	if o.vk == vMap {
		os = o.vs
	}
	if below {
		os = d.maxStamp(os, d.maxBelow(n))
	}
	if d.after(os, o.st) {
		return kObject
	}
	return o.kind
}

// eachElement calls fn with the id and encoded value of every element of
// the array at n, in order: the array its reset wrote, then the pushed
// elements, less those pulled.
func (d *Doc) eachElement(n *node, fn func(id elemID, b []byte)) {
	var arr *arrState
	if n.x != nil {
		arr = n.x.arr
	}
	if v := n.val(); v != nil && valueKind(v) == vArray {
		st := n.valStamp()
		r := cborx.NewReader(v)
		count, _ := r.HeadOf(cborx.MajorArray)
		for k := range count {
			item, _ := r.Item(scuttlebutt.MaxNesting)
			id := elemID{st, uint32(k)}
			if arr != nil {
				if _, gone := arr.pulled[id]; gone {
					continue
				}
			}
			fn(id, item)
		}
	}
	if arr != nil {
		for _, e := range arr.elems {
			fn(e.id, e.data())
		}
	}
}

// materialize returns the value at n, decoded afresh. d.mu is held.
func (d *Doc) materialize(n *node) any {
	switch n.kind {
	case kValue:
		return decode(n.val())
	case kCounter:
		return number(n.x.cval)
	case kArray:
		out := []any{}
		d.eachElement(n, func(_ elemID, b []byte) { out = append(out, decode(b)) })
		return out
	case kObject:
		m := make(map[string]any)
		if n.in != nil {
			for k, c := range n.in.kids {
				if c.kind != kAbsent {
					m[k] = d.materialize(c)
				}
			}
		}
		return m
	}
	return nil
}

// decode decodes an encoded value into the Go types Get documents.
func decode(b []byte) any {
	var v any
	if err := value.Dec.Unmarshal(b, &v); err != nil {
		return nil // unreachable: values are checked before they are kept
	}
	return v
}

// number returns a counter's value: an int64 when it is a whole number
// that float64 holds exactly, else the float64.
func number(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) <= maxExactInt {
		return int64(f)
	}
	return f
}
