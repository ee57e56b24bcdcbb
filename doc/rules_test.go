package doc_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// scene is a few writers whose wall clocks the test sets before each
// patch, so that it decides which patch is later. Writers are named "a",
// "b", "c"...: a tie on timestamps goes to the later name.
type scene struct {
	t     *testing.T
	docs  map[string]*doc.Doc
	walls map[string]*wall
	all   []scuttlebutt.Update // every patch, in the order made
}

func newScene(t *testing.T, ids ...string) *scene {
	s := &scene{t: t, docs: map[string]*doc.Doc{}, walls: map[string]*wall{}}
	for _, id := range ids {
		s.docs[id], s.walls[id] = newDoc(t, id, today)
	}
	return s
}

// at makes a patch on writer id with its wall clock at today+ms.
func (s *scene) at(id string, ms int64, ops ...doc.Op) scuttlebutt.Update {
	s.t.Helper()
	s.walls[id].set(today + ms)
	patch(s.t, s.docs[id], ops...)
	u := lastUpdate(s.t, s.docs[id])
	s.all = append(s.all, u)
	return u
}

// sees makes writer id receive everything writer from holds: id's later
// patches have seen it.
func (s *scene) sees(id, from string) {
	s.t.Helper()
	pull(s.t, s.docs[id], s.docs[from])
}

// checkOrders applies every patch of the scene to fresh replicas in every
// order of its writers (each writer's patches in their order, as
// scuttlebutt delivers them), one update at a time, and checks that each
// ends with want.
func (s *scene) checkOrders(want map[string]any) {
	s.t.Helper()
	bySource := map[string][]scuttlebutt.Update{}
	var sources []string
	for _, u := range s.all {
		if _, ok := bySource[u.Source]; !ok {
			sources = append(sources, u.Source)
		}
		bySource[u.Source] = append(bySource[u.Source], u)
	}
	for _, order := range permutations(sources) {
		d, _ := newDoc(s.t, "fresh", today)
		for _, src := range order {
			for _, u := range bySource[src] {
				if _, err := d.Apply(u); err != nil {
					s.t.Fatalf("order %v: Apply(%v): %v", order, u, err)
				}
			}
		}
		if diff := cmp.Diff(want, d.Snapshot()); diff != "" {
			s.t.Errorf("arrival order %s (-want +got):\n%s", strings.Join(order, ", "), diff)
		}
	}
}

func permutations(xs []string) [][]string {
	if len(xs) <= 1 {
		return [][]string{append([]string(nil), xs...)}
	}
	var out [][]string
	for i := range xs {
		rest := append(append([]string(nil), xs[:i]...), xs[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{xs[i]}, p...))
		}
	}
	return out
}

type obj = map[string]any
type arr = []any

// TestRules checks each rule of the package doc on a conflict, in every
// arrival order.
func TestRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(s *scene) map[string]any
	}{
		// Set.
		{"later write below an object survives it", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/user", obj{"name": "x"}))
			s.at("b", 2, doc.Set("/user/age", 3))
			return obj{"user": obj{"name": "x", "age": int64(3)}}
		}},
		{"earlier write below a set path is hidden", func(s *scene) map[string]any {
			s.at("b", 1, doc.Set("/user/age", 3))
			s.at("a", 2, doc.Set("/user", obj{"name": "x"}))
			return obj{"user": obj{"name": "x"}}
		}},
		{"later write below a scalar makes it an object", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/a", 5))
			s.at("b", 2, doc.Set("/a/b", 1))
			return obj{"a": obj{"b": int64(1)}}
		}},
		{"earlier write below a scalar is hidden", func(s *scene) map[string]any {
			s.at("b", 1, doc.Set("/a/b", 1))
			s.at("a", 2, doc.Set("/a", 5))
			return obj{"a": int64(5)}
		}},
		{"later write below an array makes it an object", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/a", arr{1}))
			s.at("b", 2, doc.Set("/a/b", 1)) // b has not seen the array
			return obj{"a": obj{"b": int64(1)}}
		}},
		{"an empty object survives", func(s *scene) map[string]any {
			s.at("b", 1, doc.Set("/a/b", 1))
			s.at("a", 2, doc.Set("/a", obj{}))
			return obj{"a": obj{}}
		}},
		{"nested objects are written member by member", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/a", obj{"x": obj{"y": 1, "z": obj{}}, "w": 2}))
			s.at("b", 2, doc.Set("/a/x/y", 9))
			s.at("c", 3, doc.Unset("/a/w"))
			return obj{"a": obj{"x": obj{"y": int64(9), "z": obj{}}}}
		}},
		{"equal timestamps go to the greater source", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/k", "from a"))
			s.at("b", 1, doc.Set("/k", "from b"))
			return obj{"k": "from b"}
		}},
		{"later ops of a patch win over earlier ones", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/k", 1), doc.Set("/k", 2), doc.Set("/j", obj{"x": 1}), doc.Set("/j/y", 2))
			return obj{"k": int64(2), "j": obj{"x": int64(1), "y": int64(2)}}
		}},
		// Unset.
		{"unset wins over earlier writes at and below it", func(s *scene) map[string]any {
			s.at("b", 1, doc.Set("/a/b", 1), doc.Set("/c", 1))
			s.at("a", 2, doc.Unset("/a"), doc.Unset("/c"))
			return obj{}
		}},
		{"a later write below an unset path brings it back", func(s *scene) map[string]any {
			s.at("a", 1, doc.Unset("/a"))
			s.at("b", 2, doc.Set("/a/b", 1))
			return obj{"a": obj{"b": int64(1)}}
		}},
		{"an object made by writes below goes with the last of them", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/a/b", 1), doc.Set("/c", obj{"d": 1}))
			s.at("b", 2, doc.Unset("/a/b"), doc.Unset("/c/d"))
			return obj{"c": obj{}} // /c was set as an object; /a was not
		}},
		// Counters.
		{"concurrent increments all count", func(s *scene) map[string]any {
			s.at("a", 1, doc.Inc("/n", 1))
			s.at("b", 1, doc.Inc("/n", 1))
			s.at("c", 2, doc.Inc("/n", 1))
			return obj{"n": int64(3)}
		}},
		{"decrements count too", func(s *scene) map[string]any {
			s.at("a", 1, doc.Inc("/n", 5), doc.Inc("/n", -2))
			s.at("b", 2, doc.Inc("/n", -4.5))
			return obj{"n": -1.5}
		}},
		{"a set resets the increments it had seen, not the others", func(s *scene) map[string]any {
			s.at("a", 1, doc.Inc("/n", 5))
			s.sees("b", "a")
			s.at("c", 2, doc.Inc("/n", 1)) // concurrent with b's set
			s.at("b", 3, doc.Set("/n", 10))
			s.at("a", 4, doc.Inc("/n", 2))     // a has not seen the set: both its increments...
			return obj{"n": int64(10 + 1 + 2)} // ...but the 5 the set had seen count
		}},
		{"an unset concurrent with increments keeps them (add wins)", func(s *scene) map[string]any {
			s.at("a", 1, doc.Inc("/n", 2))
			s.sees("b", "a")
			s.at("c", 2, doc.Inc("/n", 1))
			s.at("b", 3, doc.Unset("/n"))
			return obj{"n": int64(1)}
		}},
		{"an unset of an ancestor keeps the increments it had not seen", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/user", obj{"name": "x"}))
			s.sees("b", "a")
			s.at("b", 2, doc.Inc("/user/visits", 1)) // concurrent with the unset, earlier
			s.at("a", 3, doc.Unset("/user"))
			return obj{"user": obj{"visits": int64(1)}}
		}},
		{"a later scalar set of an ancestor hides earlier increments below", func(s *scene) map[string]any {
			s.at("b", 1, doc.Inc("/user/visits", 1))
			s.at("a", 2, doc.Set("/user", "gone"))
			return obj{"user": "gone"}
		}},
		{"a string set later than concurrent increments wins", func(s *scene) map[string]any {
			s.at("b", 1, doc.Inc("/n", 1))
			s.at("a", 2, doc.Set("/n", "text"))
			return obj{"n": "text"}
		}},
		{"increments later than a string set count from 0", func(s *scene) map[string]any {
			s.at("c", 1, doc.Inc("/n", 4)) // earlier than the set, not seen by it: counts too
			s.at("a", 2, doc.Set("/n", "text"))
			s.at("b", 3, doc.Inc("/n", 1))
			return obj{"n": int64(5)}
		}},
		{"increments later than an object make a counter; writes below later still win", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/n", obj{"x": 1}))
			s.at("b", 2, doc.Inc("/n", 1))
			s.at("c", 3, doc.Set("/m", obj{"x": 1}))
			s.at("b", 4, doc.Inc("/m", 1))
			s.at("c", 5, doc.Set("/m/y", 2))
			return obj{"n": int64(1), "m": obj{"x": int64(1), "y": int64(2)}}
		}},
		// Arrays.
		{"concurrent pushes all survive in (timestamp, source, index) order", func(s *scene) map[string]any {
			s.at("b", 1, doc.Push("/l", "b1", "b2"))
			s.at("a", 1, doc.Push("/l", "a1", "a2"))
			s.at("c", 0, doc.Push("/l", "c1"))
			return obj{"l": arr{"c1", "a1", "a2", "b1", "b2"}}
		}},
		{"a pull removes the elements it had seen, not concurrent equal ones", func(s *scene) map[string]any {
			s.at("a", 1, doc.Push("/l", "x", "y", "x"))
			s.sees("b", "a")
			s.at("c", 2, doc.Push("/l", "x")) // concurrent with the pull
			s.at("b", 3, doc.Pull("/l", "x"))
			return obj{"l": arr{"y", "x"}}
		}},
		{"a set of the array hides earlier elements, later ones survive", func(s *scene) map[string]any {
			s.at("a", 1, doc.Push("/l", 1))
			s.at("b", 2, doc.Set("/l", arr{9}))
			s.at("c", 3, doc.Push("/l", 2))
			return obj{"l": arr{int64(9), int64(2)}}
		}},
		{"a set of an ancestor hides earlier elements", func(s *scene) map[string]any {
			s.at("a", 1, doc.Push("/o/l", 1))
			s.at("b", 2, doc.Set("/o", obj{"l": arr{9}}))
			return obj{"o": obj{"l": arr{int64(9)}}}
		}},
		{"a pull removes elements a set wrote", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/l", arr{1, 2, 1}))
			s.sees("b", "a")
			s.at("b", 2, doc.Pull("/l", 1))
			return obj{"l": arr{int64(2)}}
		}},
		{"a push later than a scalar makes an array", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/l", "s"))
			s.at("b", 2, doc.Push("/l", "x"))
			return obj{"l": arr{"x"}}
		}},
		{"a scalar later than a push wins", func(s *scene) map[string]any {
			s.at("b", 1, doc.Push("/l", "x"))
			s.at("a", 2, doc.Set("/l", "s"))
			return obj{"l": "s"}
		}},
		{"an emptied array stays", func(s *scene) map[string]any {
			s.at("a", 1, doc.Push("/l", "x"))
			s.sees("b", "a")
			s.at("b", 2, doc.Pull("/l", "x"))
			return obj{"l": arr{}}
		}},
		// Patches see their own earlier ops.
		{"a set after an increment in one patch resets it", func(s *scene) map[string]any {
			s.at("a", 1, doc.Inc("/n", 1), doc.Set("/n", 5), doc.Inc("/m", 1), doc.Unset("/m"))
			return obj{"n": int64(5)}
		}},
		{"an increment after a set in one patch counts on it", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/n", 5), doc.Inc("/n", 1), doc.Inc("/new", 2))
			return obj{"n": int64(6), "new": int64(2)}
		}},
		{"a pull after a push or set in one patch removes from them", func(s *scene) map[string]any {
			s.at("a", 1, doc.Push("/l", 1, 2, 1), doc.Pull("/l", 1),
				doc.Set("/o", obj{"m": arr{3, 4}}), doc.Pull("/o/m", 3))
			return obj{"l": arr{int64(2)}, "o": obj{"m": arr{int64(4)}}}
		}},
		{"the root is set as an object", func(s *scene) map[string]any {
			s.at("a", 1, doc.Set("/old", 1))
			s.at("b", 2, doc.Set("", obj{"new": obj{}}))
			s.at("c", 3, doc.Set("/later", true))
			return obj{"new": obj{}, "later": true}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScene(t, "a", "b", "c")
			want := tc.run(s)
			s.checkOrders(want)
		})
	}
}

// TestLocalPatchSemantics writes a document step by step on one replica:
// what each patch makes of it, and what the reference makes of its
// history.
func TestLocalPatchSemantics(t *testing.T) {
	d, _ := newDoc(t, "a", today)
	steps := []struct {
		ops  []doc.Op
		want map[string]any
	}{
		{[]doc.Op{doc.Set("/a", obj{"b": 1})}, obj{"a": obj{"b": int64(1)}}},
		{[]doc.Op{doc.Inc("/a/n", 2), doc.Inc("/a/n", 3)}, obj{"a": obj{"b": int64(1), "n": int64(5)}}},
		{[]doc.Op{doc.Set("/a/b", 7)}, obj{"a": obj{"b": int64(7), "n": int64(5)}}},
		{[]doc.Op{doc.Set("/a", obj{})}, obj{"a": obj{}}},
		{[]doc.Op{doc.Inc("/a/n", 1)}, obj{"a": obj{"n": int64(1)}}}, // the set reset the 5
		{[]doc.Op{doc.Push("/l", "x", "y")}, obj{"a": obj{"n": int64(1)}, "l": arr{"x", "y"}}},
		{[]doc.Op{doc.Pull("/l", "x"), doc.Push("/l", "z")}, obj{"a": obj{"n": int64(1)}, "l": arr{"y", "z"}}},
		{[]doc.Op{doc.Pull("/missing", "x")}, obj{"a": obj{"n": int64(1)}, "l": arr{"y", "z"}}},
		{[]doc.Op{doc.Set("/a/n", 1.5), doc.Inc("/a/n", 1)}, obj{"a": obj{"n": 2.5}, "l": arr{"y", "z"}}},
		{[]doc.Op{doc.Unset("/a"), doc.Unset("/l"), doc.Set("/s", "x~/y")}, obj{"s": "x~/y"}},
		{[]doc.Op{doc.Set("/a~1b/c~0d", 1)}, obj{"s": "x~/y", "a/b": obj{"c~d": int64(1)}}},
		{[]doc.Op{doc.Set("/", "empty key")}, obj{"s": "x~/y", "a/b": obj{"c~d": int64(1)}, "": "empty key"}},
	}
	for i, st := range steps {
		patch(t, d, st.ops...)
		if diff := cmp.Diff(st.want, d.Snapshot()); diff != "" {
			t.Fatalf("step %d %v (-want +got):\n%s", i, st.ops, diff)
		}
		// The reference reads the history alike.
		ops, err := refDecode(d.History(nil))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.want, refEvaluate(ops)); diff != "" {
			t.Fatalf("step %d: the reference of the history (-want +got):\n%s", i, diff)
		}
	}
}

func TestGet(t *testing.T) {
	d, _ := newDoc(t, "a", today)
	patch(t, d, doc.Set("/a", obj{"l": arr{obj{"name": "x", "tags": arr{"t0"}}, 2}, "s": "str", "a/b": obj{"~": true}}),
		doc.Push("/a/l", "pushed"), doc.Inc("/n", 3))
	for _, tc := range []struct {
		path string
		want any
		ok   bool
	}{
		{"", obj{"a": obj{"l": arr{obj{"name": "x", "tags": arr{"t0"}}, int64(2), "pushed"}, "s": "str", "a/b": obj{"~": true}}, "n": int64(3)}, true},
		{"/a/s", "str", true},
		{"/a/l/0/name", "x", true},
		{"/a/l/0/tags/0", "t0", true},
		{"/a/l/2", "pushed", true},
		{"/a/l/3", nil, false},
		{"/a/l/01", nil, false},
		{"/a/l/-", nil, false},
		{"/a/a~1b/~0", true, true},
		{"/n", int64(3), true},
		{"/n/x", nil, false},
		{"/a/s/x", nil, false},
		{"/missing", nil, false},
		{"a", nil, false},
		{"/a/~2", nil, false},
	} {
		got, ok := d.Get(tc.path)
		if ok != tc.ok || !cmp.Equal(got, tc.want) {
			t.Errorf("Get(%q) = %v, %v; want %v, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
	// Values are copies.
	v, _ := d.Get("/a")
	v.(map[string]any)["s"] = "changed"
	v.(map[string]any)["l"].([]any)[0] = nil
	snap := d.Snapshot()
	snap["n"] = 0
	if got, _ := d.Get("/a/s"); got != "str" {
		t.Errorf("changing a value Get returned changed the document: /a/s = %v", got)
	}
	if got, _ := d.Get("/n"); got != int64(3) {
		t.Errorf("changing a Snapshot changed the document: /n = %v", got)
	}
}

func TestPointer(t *testing.T) {
	for _, tc := range []struct {
		ptr  string
		segs []string
	}{
		{"", nil},
		{"/", []string{""}},
		{"/a/b", []string{"a", "b"}},
		{"/a~1b/~0~1", []string{"a/b", "~/"}},
		{"//x/", []string{"", "x", ""}},
		{"/~01", []string{"~1"}},
	} {
		got, err := doc.ParsePointer(tc.ptr)
		if err != nil || !cmp.Equal(got, tc.segs) {
			t.Errorf("ParsePointer(%q) = %q, %v; want %q", tc.ptr, got, err, tc.segs)
		}
		if back := doc.Pointer(tc.segs...); back != tc.ptr {
			t.Errorf("Pointer(%q) = %q, want %q", tc.segs, back, tc.ptr)
		}
	}
	for _, bad := range []string{"a", "/~", "/~2", "/a~", "/\xff"} {
		if _, err := doc.ParsePointer(bad); err == nil {
			t.Errorf("ParsePointer(%q) succeeded", bad)
		}
	}
}
