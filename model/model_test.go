package model_test

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// today is the fake wall clock's start, in ms.
const today = 1795385884149

// manualWall is a wall clock the test moves by hand.
type manualWall struct {
	mu sync.Mutex
	ms int64
}

func (w *manualWall) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.UnixMilli(w.ms)
}

func (w *manualWall) set(ms int64) {
	w.mu.Lock()
	w.ms = ms
	w.mu.Unlock()
}

// newModel returns a model with id whose wall clock stands at ms until moved.
func newModel(t testing.TB, id string, ms int64) (*model.Model, *manualWall) {
	t.Helper()
	w := &manualWall{ms: ms}
	m, err := model.New(id, &scuttlebutt.Config{Now: w.now})
	if err != nil {
		t.Fatalf("New(%q): %v", id, err)
	}
	return m, w
}

// pull applies to dst everything src has that dst lacks, as a link would.
func pull(t testing.TB, dst, src *model.Model) {
	t.Helper()
	if _, err := dst.Apply(src.History(dst.Clock())...); err != nil {
		t.Fatalf("%s pulling from %s: %v", dst.ID(), src.ID(), err)
	}
}

// exchange makes every pair of models pull from each other until all are
// in step.
func exchange(t testing.TB, ms ...*model.Model) {
	t.Helper()
	for range len(ms) {
		for _, a := range ms {
			for _, b := range ms {
				if a != b {
					pull(t, a, b)
				}
			}
		}
	}
}

func mustSet(t testing.TB, m *model.Model, key string, v any) {
	t.Helper()
	if err := m.Set(key, v); err != nil {
		t.Fatalf("%s: Set(%q, %v): %v", m.ID(), key, v, err)
	}
}

func mustDelete(t testing.TB, m *model.Model, key string) {
	t.Helper()
	if err := m.Delete(key); err != nil {
		t.Fatalf("%s: Delete(%q): %v", m.ID(), key, err)
	}
}

func get(m *model.Model, key string) any {
	v, ok := m.Get(key)
	if !ok {
		return "<unset>"
	}
	return v
}

func TestNewInvalidID(t *testing.T) {
	for _, id := range []string{"", "a\nb", "\xff", strings.Repeat("x", scuttlebutt.MaxIDLen+1)} {
		if _, err := model.New(id, nil); !errors.Is(err, scuttlebutt.ErrInvalidID) {
			t.Errorf("New(%q) = %v, want ErrInvalidID", id, err)
		}
	}
}

func TestLWWTieGoesToGreaterSource(t *testing.T) {
	// Fresh replicas with the same wall clock stamp their first writes with
	// the same timestamp.
	newPair := func(t *testing.T) (a, b *model.Model) {
		a, _ = newModel(t, "a", today)
		b, _ = newModel(t, "b", today)
		mustSet(t, a, "k", "from-a")
		mustSet(t, b, "k", "from-b")
		ha, hb := a.History(nil), b.History(nil)
		if len(ha) != 1 || len(hb) != 1 || ha[0].Timestamp != hb[0].Timestamp {
			t.Fatalf("setup: histories %v and %v, want one update each with equal timestamps", ha, hb)
		}
		return a, b
	}
	t.Run("replicas pull from each other", func(t *testing.T) {
		a, b := newPair(t)
		pull(t, a, b)
		pull(t, b, a)
		for _, m := range []*model.Model{a, b} {
			if got := get(m, "k"); got != "from-b" {
				t.Errorf("%s: k = %v, want from-b (greater source wins a tie)", m.ID(), got)
			}
		}
	})
	for _, order := range [][]string{{"a", "b"}, {"b", "a"}} {
		t.Run("third replica hears "+strings.Join(order, " then "), func(t *testing.T) {
			a, b := newPair(t)
			c, _ := newModel(t, "c", today-1000)
			src := map[string]*model.Model{"a": a, "b": b}
			for _, id := range order {
				pull(t, c, src[id])
			}
			if got := get(c, "k"); got != "from-b" {
				t.Errorf("k = %v, want from-b", got)
			}
		})
	}
}

func TestLWWHigherTimestampWins(t *testing.T) {
	for _, order := range [][]string{{"early", "late"}, {"late", "early"}} {
		t.Run(strings.Join(order, " then "), func(t *testing.T) {
			// "a" < "z", so the win must come from the timestamp alone.
			late, _ := newModel(t, "a", today+10)
			early, _ := newModel(t, "z", today)
			ms := map[string]*model.Model{"early": early, "late": late}
			for _, id := range order {
				mustSet(t, ms[id], "k", id)
			}
			exchange(t, early, late)
			for _, m := range []*model.Model{early, late} {
				if got := get(m, "k"); got != "late" {
					t.Errorf("%s: k = %v, want late", m.ID(), got)
				}
			}
		})
	}
}

func TestDeleteTombstone(t *testing.T) {
	a, wa := newModel(t, "a", today)
	b, wb := newModel(t, "b", today)
	mustSet(t, a, "k", 1)
	mustSet(t, a, "other", 2)
	exchange(t, a, b)

	wb.set(today + 10)
	mustDelete(t, b, "k")
	// A write of a that is earlier than the delete loses to it.
	wa.set(today + 5)
	c, _ := newModel(t, "c", today)
	pull(t, c, b) // c hears the delete before the earlier write
	mustSet(t, a, "k", "early")
	exchange(t, a, b, c)
	for _, m := range []*model.Model{a, b, c} {
		if v, ok := m.Get("k"); ok {
			t.Errorf("%s: k = %v after a later delete, want unset", m.ID(), v)
		}
		if diff := cmp.Diff([]string{"other"}, m.Keys()); diff != "" {
			t.Errorf("%s: Keys (-want +got):\n%s", m.ID(), diff)
		}
		if m.Len() != 1 {
			t.Errorf("%s: Len = %d, want 1", m.ID(), m.Len())
		}
	}

	// A later write beats the tombstone.
	wa.set(today + 20)
	mustSet(t, a, "k", "late")
	exchange(t, a, b, c)
	for _, m := range []*model.Model{a, b, c} {
		if got := get(m, "k"); got != "late" {
			t.Errorf("%s: k = %v, want late", m.ID(), got)
		}
	}

	// Deleting a missing key still replicates a tombstone.
	mustDelete(t, b, "never-set")
	h := b.History(a.Clock())
	if len(h) != 1 || describe(h[0]) != "never-set deleted" {
		t.Errorf("History after deleting a missing key = %v", h)
	}
}

// describe renders a Model update's payload: "key=value" or "key deleted".
func describe(u scuttlebutt.Update) string {
	var p []any
	if err := cbor.Unmarshal(u.Data, &p); err != nil {
		return fmt.Sprintf("undecodable %x", u.Data)
	}
	if len(p) == 1 {
		return fmt.Sprintf("%v deleted", p[0])
	}
	return fmt.Sprintf("%v=%v", p[0], p[1])
}

type histEntry struct {
	Source string
	TS     vclock.Timestamp
	Desc   string
}

func history(m *model.Model, c vclock.Clock) []histEntry {
	var out []histEntry
	for _, u := range m.History(c) {
		out = append(out, histEntry{u.Source, u.Timestamp, describe(u)})
	}
	return out
}

func TestHistory(t *testing.T) {
	a, wa := newModel(t, "a", today)
	b, _ := newModel(t, "b", today)
	mustSet(t, a, "k1", "v1")        // today, superseded below
	mustSet(t, a, "k2", "v2")        // today+1/1024
	mustSet(t, b, "kb", "vb")        // today, from b
	wa.set(today + 10)               //
	mustSet(t, a, "k1", "v1-second") // today+10
	mustDelete(t, a, "k2")           // today+10+1/1024
	pull(t, a, b)
	const step = 1.0 / 1024

	want := []histEntry{
		{b.Source(), today, "kb=vb"},
		{a.Source(), today + 10, "k1=v1-second"},
		{a.Source(), today + 10 + step, "k2 deleted"},
	}
	if diff := cmp.Diff(want, history(a, nil)); diff != "" {
		t.Errorf("History(nil) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, history(a, vclock.Clock{})); diff != "" {
		t.Errorf("History({}) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[1:], history(a, vclock.Clock{b.Source(): today})); diff != "" {
		t.Errorf("History({b:today}) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[2:], history(a, vclock.Clock{a.Source(): today + 10, b.Source(): today})); diff != "" {
		t.Errorf("History(past k1's write) (-want +got):\n%s", diff)
	}
	if got := history(a, a.Clock()); len(got) != 0 {
		t.Errorf("History(own clock) = %v, want nothing", got)
	}

	// Equal timestamps sort by source.
	x, _ := newModel(t, "x", today)
	y, _ := newModel(t, "y", today)
	mustSet(t, y, "ky", 1)
	mustSet(t, x, "kx", 1)
	pull(t, x, y)
	want = []histEntry{{x.Source(), today, "kx=1"}, {y.Source(), today, "ky=1"}}
	if diff := cmp.Diff(want, history(x, nil)); diff != "" {
		t.Errorf("History with equal timestamps (-want +got):\n%s", diff)
	}
}

func TestHistoryManyOverwrites(t *testing.T) {
	// Enough overwrites to compact the per-source logs: History still holds
	// exactly the latest update per key, and replicates to a fresh model.
	a, wa := newModel(t, "a", today)
	for i := range 200 {
		wa.set(today + int64(i))
		mustSet(t, a, fmt.Sprintf("k%d", i%7), i)
	}
	h := a.History(nil)
	if len(h) != 7 {
		t.Fatalf("History holds %d updates for 7 keys", len(h))
	}
	for i := 1; i < len(h); i++ {
		if !h[i-1].Less(h[i]) {
			t.Errorf("History not sorted: %v before %v", h[i-1], h[i])
		}
	}
	b, _ := newModel(t, "b", today)
	pull(t, b, a)
	if diff := cmp.Diff(a.Snapshot(), b.Snapshot()); diff != "" {
		t.Errorf("snapshots differ (-a +b):\n%s", diff)
	}
	if diff := cmp.Diff(a.Clock(), b.Clock()); diff != "" {
		t.Errorf("clocks differ (-a +b):\n%s", diff)
	}
}

func TestKeysLenSnapshot(t *testing.T) {
	m, _ := newModel(t, "a", today)
	if m.Len() != 0 || len(m.Keys()) != 0 || len(m.Snapshot()) != 0 {
		t.Fatalf("empty model: Len %d, Keys %v, Snapshot %v", m.Len(), m.Keys(), m.Snapshot())
	}
	mustSet(t, m, "c", 3)
	mustSet(t, m, "a", "one")
	mustSet(t, m, "b", nil)
	mustSet(t, m, "d", 4)
	mustSet(t, m, "a", "uno")
	mustDelete(t, m, "d")
	mustDelete(t, m, "zz")

	if diff := cmp.Diff([]string{"a", "b", "c"}, m.Keys()); diff != "" {
		t.Errorf("Keys (-want +got):\n%s", diff)
	}
	if m.Len() != 3 {
		t.Errorf("Len = %d, want 3", m.Len())
	}
	want := map[string]any{"a": "uno", "b": nil, "c": int64(3)}
	if diff := cmp.Diff(want, m.Snapshot()); diff != "" {
		t.Errorf("Snapshot (-want +got):\n%s", diff)
	}
	if v, ok := m.Get("b"); !ok || v != nil {
		t.Errorf("Get of a key set to nil = %v, %v; want nil, true", v, ok)
	}
	if v, ok := m.Get("d"); ok {
		t.Errorf("Get of a deleted key = %v, true", v)
	}
	// The snapshot is a copy.
	s := m.Snapshot()
	s["a"] = "changed"
	delete(s, "c")
	if diff := cmp.Diff(want, m.Snapshot()); diff != "" {
		t.Errorf("modifying a snapshot changed the model (-want +got):\n%s", diff)
	}
}

func TestGetNormalizes(t *testing.T) {
	i := 7
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"int", 5, int64(5)},
		{"negative int8", int8(-3), int64(-3)},
		{"int16", int16(300), int64(300)},
		{"int32", int32(-70000), int64(-70000)},
		{"int64 min", int64(math.MinInt64), int64(math.MinInt64)},
		{"uint8", uint8(200), int64(200)},
		{"uint32", uint32(math.MaxUint32), int64(math.MaxUint32)},
		{"uint64 max int64", uint64(math.MaxInt64), int64(math.MaxInt64)},
		{"uint", uint(9), int64(9)},
		{"float32", float32(1.5), float64(1.5)},
		{"float64", 0.1, 0.1},
		{"integral float", 3.0, 3.0},
		{"negative zero", math.Copysign(0, -1), math.Copysign(0, -1)},
		{"max float", math.MaxFloat64, math.MaxFloat64},
		{"string", "héllo", "héllo"},
		{"empty string", "", ""},
		{"bool", true, true},
		{"nil", nil, nil},
		{"bytes", []byte{0, 1, 255}, []byte{0, 1, 255}},
		{"empty bytes", []byte{}, []byte{}},
		{"string slice", []string{"x", "y"}, []any{"x", "y"}},
		{"int slice", []int{1, -2}, []any{int64(1), int64(-2)}},
		{"array", [2]uint16{1, 2}, []any{int64(1), int64(2)}},
		{"empty slice", []any{}, []any{}},
		{"map of ints", map[string]int{"a": 1}, map[string]any{"a": int64(1)}},
		{"empty map", map[string]bool{}, map[string]any{}},
		{"pointer", &i, int64(7)},
		{"nested", map[string]any{"l": []any{1, "x", nil, []byte("b"), map[string]float32{"f": 0.25}}},
			map[string]any{"l": []any{int64(1), "x", nil, []byte("b"), map[string]any{"f": 0.25}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := newModel(t, "a", today)
			b, _ := newModel(t, "b", today)
			mustSet(t, a, "k", tt.in)
			pull(t, b, a)
			for _, m := range []*model.Model{a, b} {
				got, ok := m.Get("k")
				if !ok {
					t.Fatalf("%s: Get(k) not set", m.ID())
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("%s: Get after Set(%#v) (-want +got):\n%s", m.ID(), tt.in, diff)
				}
				if f, ok := tt.want.(float64); ok && math.Signbit(f) != math.Signbit(got.(float64)) {
					t.Errorf("%s: sign of %v lost: got %v", m.ID(), f, got)
				}
			}
		})
	}
}

func TestGetReturnsCopies(t *testing.T) {
	m, _ := newModel(t, "a", today)
	in := map[string]any{"l": []any{1, 2}, "b": []byte("xy")}
	mustSet(t, m, "k", in)
	want := map[string]any{"l": []any{int64(1), int64(2)}, "b": []byte("xy")}

	// Changing what was passed to Set changes nothing.
	in["l"].([]any)[0] = 99
	in["b"].([]byte)[0] = 'z'
	in["new"] = true
	if diff := cmp.Diff(want, get(m, "k")); diff != "" {
		t.Errorf("modifying Set's argument changed the model (-want +got):\n%s", diff)
	}

	// Changing what Get returned changes nothing.
	v := get(m, "k").(map[string]any)
	v["l"].([]any)[0] = "changed"
	v["b"].([]byte)[0] = 'z'
	v["new"] = true
	if diff := cmp.Diff(want, get(m, "k")); diff != "" {
		t.Errorf("modifying Get's result changed the model (-want +got):\n%s", diff)
	}
	s := m.Snapshot()["k"].(map[string]any)
	s["l"].([]any)[1] = "changed"
	if diff := cmp.Diff(want, get(m, "k")); diff != "" {
		t.Errorf("modifying Snapshot's value changed the model (-want +got):\n%s", diff)
	}
}

// nest returns a value n arrays deep around 1.
func nest(n int) any {
	var v any = 1
	for range n {
		v = []any{v}
	}
	return v
}

// nestMap returns a value n maps deep around 1.
func nestMap(n int) any {
	var v any = 1
	for range n {
		v = map[string]any{"x": v}
	}
	return v
}

func TestSetInvalidValue(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		value any
	}{
		{"chan", "k", make(chan int)},
		{"func", "k", func() {}},
		{"struct", "k", struct{ A int }{1}},
		{"complex", "k", complex(1, 2)},
		{"map with int keys", "k", map[int]string{1: "x"}},
		{"NaN", "k", math.NaN()},
		{"float32 NaN", "k", float32(math.NaN())},
		{"+Inf", "k", math.Inf(1)},
		{"-Inf", "k", math.Inf(-1)},
		{"uint64 over MaxInt64", "k", uint64(math.MaxInt64) + 1},
		{"uint max", "k", uint(math.MaxUint)},
		{"nested 32 arrays", "k", nest(32)},
		{"nested 32 maps", "k", nestMap(32)},
		{"chan inside slice", "k", []any{1, make(chan int)}},
		{"NaN inside map", "k", map[string]any{"a": math.NaN()}},
		{"string not UTF-8", "k", "\xff"},
		{"map key not UTF-8", "k", map[string]int{"\xff": 1}},
		{"key not UTF-8", "\xff", 1},
		{"pointer to struct", "k", &struct{}{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newModel(t, "a", today)
			mustSet(t, m, "k", "before")
			clock, snap := m.Clock(), m.Snapshot()
			err := m.Set(tt.key, tt.value)
			if !errors.Is(err, model.ErrInvalidValue) {
				t.Fatalf("Set(%q, %T) = %v, want ErrInvalidValue", tt.key, tt.value, err)
			}
			if diff := cmp.Diff(clock, m.Clock()); diff != "" {
				t.Errorf("clock changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(snap, m.Snapshot()); diff != "" {
				t.Errorf("state changed (-before +after):\n%s", diff)
			}
		})
	}
}

func TestNestingLimitReplicates(t *testing.T) {
	for name, v := range map[string]any{"arrays": nest(31), "maps": nestMap(31)} {
		t.Run(name, func(t *testing.T) {
			a, _ := newModel(t, "a", today)
			b, _ := newModel(t, "b", today)
			mustSet(t, a, "deep", v)
			pull(t, b, a)
			got, ok := b.Get("deep")
			if !ok {
				t.Fatal("a value nested 31 deep did not replicate")
			}
			// reflect.DeepEqual: cmp.Diff is exponential in this depth.
			if want := get(a, "deep"); !reflect.DeepEqual(want, got) {
				t.Errorf("b has %v, a has %v", got, want)
			}
		})
	}
}

func TestValidateUpdate(t *testing.T) {
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%v): %v", v, err)
		}
		return b
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	key := enc("k") // 0x61 'k'
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"set", enc([]any{"k", 1}), true},
		{"tombstone", enc([]any{"k"}), true},
		{"nested value", enc([]any{"k", map[string]any{"a": []any{1, "b"}}}), true},
		{"not an array", enc("k"), false},
		{"map", enc(map[string]any{"k": 1}), false},
		{"empty array", enc([]any{}), false},
		{"three elements", enc([]any{"k", 1, 2}), false},
		{"integer key", enc([]any{1, 2}), false},
		{"byte string key", enc([]any{[]byte("k"), 2}), false},
		{"null key", enc([]any{nil, 2}), false},
		{"key not UTF-8", []byte{0x82, 0x61, 0xff, 0x01}, false},
		{"map with int keys", enc([]any{"k", map[int]int{1: 2}}), false},
		{"duplicate map keys", cat([]byte{0x82}, key, []byte{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02}), false},
		{"tag", enc([]any{"k", cbor.Tag{Number: 1, Content: 5}}), false},
		{"NaN half", enc([]any{"k", math.NaN()}), false},
		{"NaN double", cat([]byte{0x82}, key, []byte{0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1}), false},
		{"Inf", enc([]any{"k", math.Inf(1)}), false},
		{"integer over int64", cat([]byte{0x82}, key, []byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), false},
		{"undefined", cat([]byte{0x82}, key, []byte{0xf7}), false},
		{"indefinite array", cat([]byte{0x82}, key, []byte{0x9f, 0x01, 0xff}), false},
		{"truncated value", cat([]byte{0x82}, key, []byte{0x62, 'x'}), false},
		{"bytes after tombstone key", cat([]byte{0x81}, key, []byte{0x01}), false},
		{"two values", cat([]byte{0x82}, key, []byte{0x01, 0x02}), false},
		{"nested too deep", enc([]any{"k", nest(32)}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newModel(t, "a", today)
			mustSet(t, m, "k", "before")
			u := scuttlebutt.Update{Source: "peer", Timestamp: today + 1, Data: tt.data}
			err := m.Validator().ValidateUpdate(u)
			if tt.ok {
				if err != nil {
					t.Fatalf("ValidateUpdate(%x) = %v, want nil", tt.data, err)
				}
				return
			}
			if !errors.Is(err, model.ErrInvalidValue) {
				t.Fatalf("ValidateUpdate(%x) = %v, want ErrInvalidValue", tt.data, err)
			}
			// Through the base, the whole batch is refused and nothing changes.
			clock, snap := m.Clock(), m.Snapshot()
			good := scuttlebutt.Update{Source: "peer", Timestamp: today, Data: enc([]any{"g", 1})}
			n, err := m.Apply(good, u)
			if !errors.Is(err, scuttlebutt.ErrInvalidUpdate) || n != 0 {
				t.Errorf("Apply(good, %x) = %d, %v; want 0, ErrInvalidUpdate", tt.data, n, err)
			}
			if diff := cmp.Diff(clock, m.Clock()); diff != "" {
				t.Errorf("clock changed (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(snap, m.Snapshot()); diff != "" {
				t.Errorf("state changed (-before +after):\n%s", diff)
			}
		})
	}
}

func TestConcurrentSetGet(t *testing.T) {
	m, _ := newModel(t, "a", today)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				key := fmt.Sprintf("k%d", i%10)
				if err := m.Set(key, g*1000+i); err != nil {
					t.Error(err)
					return
				}
				m.Get(key)
				m.Keys()
				m.History(nil)
			}
		})
	}
	wg.Wait()
	if m.Len() != 10 {
		t.Errorf("Len = %d, want 10", m.Len())
	}
	b, _ := newModel(t, "b", today)
	pull(t, b, m)
	if diff := cmp.Diff(m.Snapshot(), b.Snapshot()); diff != "" {
		t.Errorf("replica differs (-a +b):\n%s", diff)
	}
}

func TestGrowKeepsKeys(t *testing.T) {
	m, err := model.New("a", nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Set("x", 1)
	m.Delete("gone")
	m.Grow(1000)
	m.Grow(0)
	m.Set("y", 2)
	if diff := cmp.Diff(map[string]any{"x": int64(1), "y": int64(2)}, m.Snapshot()); diff != "" {
		t.Errorf("snapshot after Grow (-want +got):\n%s", diff)
	}
	if got := len(m.History(nil)); got != 3 {
		t.Errorf("History holds %d updates after Grow, want 3 (x, y and the tombstone)", got)
	}
}

func TestWritten(t *testing.T) {
	a, wa := newModel(t, "a", today)
	b, wb := newModel(t, "b", today)
	mustSet(t, a, "k", 1)
	wb.set(today + 10)
	mustSet(t, b, "k", 2)
	mustSet(t, b, "gone", 3)
	mustDelete(t, b, "gone")
	wa.set(today + 20)
	exchange(t, a, b)
	for _, m := range []*model.Model{a, b} {
		src, ts, ok := m.Written("k")
		// b wrote k first in its millisecond, then gone twice.
		if want := math.Floor(float64(b.Clock()[src])); !ok || scuttlebutt.ReplicaID(src) != "b" || float64(ts) != want {
			t.Errorf("%s: Written(k) = %q, %v, %v; want b's write at %v", m.ID(), src, ts, ok, want)
		}
		if src, ts, ok := m.Written("gone"); ok {
			t.Errorf("%s: Written(gone) = %q, %v, true for a deleted key", m.ID(), src, ts)
		}
		if _, _, ok := m.Written("never"); ok {
			t.Errorf("%s: Written(never) ok", m.ID())
		}
	}
}
