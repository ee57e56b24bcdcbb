package doc_test

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/scuttle-go/scuttle/internal/value"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// The reference evaluates the rules of the package doc naively, from every
// op any replica made: nothing is compacted, nothing is incremental, and
// nothing of package doc is used but the payloads' format (decoded here on
// its own). The randomized tests check every replica against it.

// refOp is one op of one update.
type refOp struct {
	ts   float64
	src  string
	idx  int
	code int64
	path []string
	val  any                   // Set
	vals []any                 // Push
	seen map[string][2]float64 // Set, Unset: refKey(rel path) + "\x01" + source -> totals
	tot  [2]float64            // Inc
	ids  []refID               // Pull
}

type refID struct {
	ts    float64
	src   string
	op, k int64
}

const (
	refSet = iota
	refUnset
	refInc
	refPush
	refPull
)

// refStamp orders ops and element ids: (timestamp, source, op, index).
type refStamp struct {
	ts     float64
	src    string
	op, k  int64
	isZero bool
}

func (a refStamp) cmp(b refStamp) int {
	if a.isZero || b.isZero {
		return cmp.Compare(b2i(!a.isZero), b2i(!b.isZero))
	}
	if c := cmp.Compare(a.ts, b.ts); c != 0 {
		return c
	}
	if c := strings.Compare(a.src, b.src); c != 0 {
		return c
	}
	if c := cmp.Compare(a.op, b.op); c != 0 {
		return c
	}
	return cmp.Compare(a.k, b.k)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (o *refOp) stamp() refStamp { return refStamp{ts: o.ts, src: o.src, op: int64(o.idx)} }

// refDecode decodes the ops of updates.
func refDecode(updates []scuttlebutt.Update) ([]*refOp, error) {
	var ops []*refOp
	for _, u := range updates {
		var payload []any
		if err := value.Dec.Unmarshal(u.Data, &payload); err != nil {
			return nil, fmt.Errorf("%s: %v", u, err)
		}
		var srcs []string
		for _, s := range payload[0].([]any) {
			srcs = append(srcs, s.(string))
		}
		for i, x := range payload[1:] {
			a := x.([]any)
			o := &refOp{ts: float64(u.Timestamp), src: u.Source, idx: i, code: a[0].(int64), path: refPath(a[1])}
			switch o.code {
			case refSet, refUnset:
				rest := a[2:]
				if o.code == refSet {
					o.val, rest = a[2], a[3:]
				}
				o.seen = map[string][2]float64{}
				if len(rest) > 0 {
					for _, e := range rest[0].([]any) {
						e := e.([]any)
						k := refKey(refPath(e[0])) + "\x01" + srcs[e[1].(int64)]
						old := o.seen[k]
						o.seen[k] = [2]float64{math.Max(old[0], toFloat(e[2])), math.Max(old[1], toFloat(e[3]))}
					}
				}
			case refInc:
				o.tot = [2]float64{toFloat(a[2]), toFloat(a[3])}
			case refPush:
				o.vals = a[2:]
			case refPull:
				for _, e := range a[2:] {
					e := e.([]any)
					o.ids = append(o.ids, refID{toFloat(e[0]), srcs[e[1].(int64)], e[2].(int64), e[3].(int64)})
				}
			}
			ops = append(ops, o)
		}
	}
	return ops, nil
}

func refPath(x any) []string {
	var p []string
	for _, s := range x.([]any) {
		p = append(p, s.(string))
	}
	return p
}

func toFloat(x any) float64 {
	switch v := x.(type) {
	case int64:
		return float64(v)
	case float64:
		return v
	}
	panic(fmt.Sprintf("not a number: %T", x))
}

func hasPrefix(p, q []string) bool { return len(p) >= len(q) && slices.Equal(p[:len(q)], q) }

// refDoc is the reference's evaluation of a set of ops.
type refDoc struct {
	ops   []*refOp
	paths map[string][]string // by refKey: every path written at or inside, and their ancestors
	own   map[string]refOwn
}

// refOwn is what a path holds itself.
type refOwn struct {
	present bool
	local   refStamp
	kind    string // "value", "counter", "array" or ""
	st      refStamp
	val     any // the value, counter or array
	isMap   bool
	mapSt   refStamp
}

func refEvaluate(ops []*refOp) map[string]any {
	r := &refDoc{ops: ops, paths: map[string][]string{}, own: map[string]refOwn{}}
	add := func(p []string) {
		for i := 0; i <= len(p); i++ {
			r.paths[refKey(p[:i])] = slices.Clone(p[:i])
		}
	}
	var expand func(p []string, v any)
	expand = func(p []string, v any) {
		add(p)
		if m, ok := v.(map[string]any); ok {
			for k, e := range m {
				expand(append(slices.Clone(p), k), e)
			}
		}
	}
	for _, o := range ops {
		add(o.path)
		if o.code == refSet {
			expand(o.path, o.val)
		}
	}
	for k, p := range r.paths {
		r.own[k] = r.evalOwn(p)
	}
	v, _ := r.value(nil)
	return v.(map[string]any)
}

// reset returns the latest Set or Unset at or above p, or nil.
func (r *refDoc) reset(p []string) *refOp {
	var best *refOp
	for _, o := range r.ops {
		if (o.code == refSet || o.code == refUnset) && hasPrefix(p, o.path) {
			if best == nil || o.stamp().cmp(best.stamp()) > 0 {
				best = o
			}
		}
	}
	return best
}

func (r *refDoc) evalOwn(p []string) refOwn {
	var o refOwn
	R := r.reset(p)
	rs := refStamp{isZero: true}
	var v any
	hasV := false
	if R != nil {
		rs = R.stamp()
		if R.code == refSet {
			v, hasV = R.val, true
			for _, s := range p[len(R.path):] {
				m, ok := v.(map[string]any)
				if !ok {
					hasV = false
					break
				}
				if v, ok = m[s]; !ok {
					hasV = false
					break
				}
			}
		}
	}
	note := func(s refStamp) {
		if !o.present || s.cmp(o.local) > 0 {
			o.local = s
		}
		o.present = true
	}
	cand := func(k string, s refStamp, val any) {
		if o.kind == "" || s.cmp(o.st) > 0 {
			o.kind, o.st, o.val = k, s, val
		}
	}
	if hasV {
		note(rs)
	}
	// Counter: each source's latest Inc here.
	latest := map[string]*refOp{}
	for _, op := range r.ops {
		if op.code == refInc && slices.Equal(op.path, p) {
			if l := latest[op.src]; l == nil || op.stamp().cmp(l.stamp()) > 0 {
				latest[op.src] = op
			}
		}
	}
	var srcs []string
	for s := range latest {
		srcs = append(srcs, s)
	}
	slices.Sort(srcs)
	counting := false
	var cs refStamp
	sum := 0.0
	for _, s := range srcs {
		i := latest[s]
		var seen [2]float64
		if R != nil {
			seen = R.seen[refKey(p[len(R.path):])+"\x01"+s]
		}
		if i.stamp().cmp(rs) <= 0 && i.tot[0] <= seen[0] && i.tot[1] <= seen[1] {
			continue
		}
		if !counting || i.stamp().cmp(cs) > 0 {
			cs = i.stamp()
		}
		counting = true
		sum += math.Max(0, i.tot[0]-seen[0]) - math.Max(0, i.tot[1]-seen[1])
		note(i.stamp())
	}
	// Array: pushes and pulls after R.
	arrayed := false
	var as refStamp
	var elems []refElem
	if hasV {
		if a, ok := v.([]any); ok {
			arrayed, as = true, rs
			for k, e := range a {
				elems = append(elems, refElem{refStamp{ts: R.ts, src: R.src, op: int64(R.idx), k: int64(k)}, e})
			}
		}
	}
	pulled := map[refStamp]bool{}
	for _, op := range r.ops {
		if !slices.Equal(op.path, p) || op.stamp().cmp(rs) <= 0 {
			continue
		}
		switch op.code {
		case refPush:
			for k, e := range op.vals {
				elems = append(elems, refElem{refStamp{ts: op.ts, src: op.src, op: int64(op.idx), k: int64(k)}, e})
			}
		case refPull:
			for _, id := range op.ids {
				s := refStamp{ts: id.ts, src: id.src, op: id.op, k: id.k}
				if s.cmp(refStamp{ts: op.ts, src: op.src, op: int64(op.idx), k: -1}) < 0 {
					pulled[s] = true
				}
			}
		default:
			continue
		}
		if !arrayed || op.stamp().cmp(as) > 0 {
			as = op.stamp()
		}
		arrayed = true
		note(op.stamp())
	}
	switch vv := v.(type) {
	case map[string]any:
		if hasV {
			o.isMap, o.mapSt = true, rs
		}
	case []any:
	case int64, float64:
		if hasV && !counting {
			cand("value", rs, vv)
		}
	default:
		if hasV {
			cand("value", rs, vv)
		}
	}
	if counting {
		base, st := 0.0, cs
		if hasV {
			switch vv := v.(type) {
			case int64:
				base, st = float64(vv), maxRef(cs, rs)
			case float64:
				base, st = vv, maxRef(cs, rs)
			}
		}
		cand("counter", st, refNumber(base+sum))
	}
	if arrayed {
		slices.SortFunc(elems, func(a, b refElem) int { return a.id.cmp(b.id) })
		out := []any{}
		for _, e := range elems {
			if !pulled[e.id] {
				out = append(out, e.v)
			}
		}
		cand("array", as, out)
	}
	return o
}

type refElem struct {
	id refStamp
	v  any
}

func maxRef(a, b refStamp) refStamp {
	if a.cmp(b) >= 0 {
		return a
	}
	return b
}

func refNumber(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
		return int64(f)
	}
	return f
}

// value returns the value at p and whether there is one (the root is
// always an object).
func (r *refDoc) value(p []string) (any, bool) {
	o := r.own[refKey(p)]
	below := false
	var mb refStamp // the latest stamp of anything present below p
	for k, q := range r.paths {
		if len(q) > len(p) && hasPrefix(q, p) && r.own[k].present {
			if !below || r.own[k].local.cmp(mb) > 0 {
				mb = r.own[k].local
			}
			below = true
		}
	}
	obj := o.isMap || below
	if obj && o.kind != "" {
		os := refStamp{isZero: true}
		if o.isMap {
			os = o.mapSt
		}
		if below {
			os = maxRef(os, mb)
		}
		obj = os.cmp(o.st) > 0
	}
	if len(p) > 0 && !obj {
		return o.val, o.kind != ""
	}
	m := map[string]any{}
	for _, q := range r.paths {
		if len(q) == len(p)+1 && hasPrefix(q, p) {
			if v, ok := r.value(q); ok {
				m[q[len(p)]] = v
			}
		}
	}
	return m, true
}

// refKey names a path unambiguously, whatever its segments hold.
func refKey(p []string) string {
	var b strings.Builder
	for _, s := range p {
		fmt.Fprintf(&b, "%d:%s", len(s), s)
	}
	return b.String()
}
