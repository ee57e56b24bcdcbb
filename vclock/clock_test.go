package vclock_test

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"testing/quick"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/vclock"
)

func TestClockGet(t *testing.T) {
	c := vclock.Clock{"a": 5, "z": 0}
	tests := []struct {
		name   string
		clock  vclock.Clock
		source string
		want   vclock.Timestamp
	}{
		{"present", c, "a", 5},
		{"zero entry", c, "z", 0},
		{"missing", c, "b", 0},
		{"nil clock", nil, "a", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.clock.Get(tt.source); got != tt.want {
				t.Errorf("%v.Get(%q) = %v, want %v", tt.clock, tt.source, got, tt.want)
			}
		})
	}
}

func TestClockCovers(t *testing.T) {
	c := vclock.Clock{"a": 5}
	tests := []struct {
		name   string
		clock  vclock.Clock
		source string
		ts     vclock.Timestamp
		want   bool
	}{
		{"below", c, "a", 4, true},
		{"equal", c, "a", 5, true},
		{"above", c, "a", 5.001, false},
		{"missing source", c, "b", 1, false},
		{"missing source zero", c, "b", 0, true},
		{"nil clock", nil, "a", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.clock.Covers(tt.source, tt.ts); got != tt.want {
				t.Errorf("%v.Covers(%q, %v) = %v, want %v", tt.clock, tt.source, tt.ts, got, tt.want)
			}
		})
	}
}

func TestClockAdvance(t *testing.T) {
	tests := []struct {
		name      string
		start     vclock.Clock
		source    string
		ts        vclock.Timestamp
		wantMoved bool
		want      vclock.Clock
	}{
		{"new source", vclock.Clock{}, "a", 3, true, vclock.Clock{"a": 3}},
		{"raise", vclock.Clock{"a": 3}, "a", 4, true, vclock.Clock{"a": 4}},
		{"same", vclock.Clock{"a": 3}, "a", 3, false, vclock.Clock{"a": 3}},
		{"never lowers", vclock.Clock{"a": 3}, "a", 2, false, vclock.Clock{"a": 3}},
		{"zero on missing", vclock.Clock{}, "a", 0, false, vclock.Clock{}},
		{"other source untouched", vclock.Clock{"a": 3}, "b", 1, true, vclock.Clock{"a": 3, "b": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.start.Clone()
			if moved := c.Advance(tt.source, tt.ts); moved != tt.wantMoved {
				t.Errorf("%v.Advance(%q, %v) = %v, want %v", tt.start, tt.source, tt.ts, moved, tt.wantMoved)
			}
			if diff := cmp.Diff(tt.want, c); diff != "" {
				t.Errorf("%v.Advance(%q, %v) clock (-want +got):\n%s", tt.start, tt.source, tt.ts, diff)
			}
		})
	}
}

func TestClockMerge(t *testing.T) {
	tests := []struct {
		name string
		a, b vclock.Clock
		want vclock.Clock
	}{
		{"empty both", vclock.Clock{}, vclock.Clock{}, vclock.Clock{}},
		{"nil other", vclock.Clock{"a": 1}, nil, vclock.Clock{"a": 1}},
		{"disjoint", vclock.Clock{"a": 1}, vclock.Clock{"b": 2}, vclock.Clock{"a": 1, "b": 2}},
		{"max per source", vclock.Clock{"a": 1, "b": 5}, vclock.Clock{"a": 3, "b": 2}, vclock.Clock{"a": 3, "b": 5}},
		{"zero entry not added", vclock.Clock{"a": 1}, vclock.Clock{"b": 0}, vclock.Clock{"a": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.a.Clone()
			before := tt.b.Clone()
			c.Merge(tt.b)
			if diff := cmp.Diff(tt.want, c); diff != "" {
				t.Errorf("%v.Merge(%v) (-want +got):\n%s", tt.a, tt.b, diff)
			}
			if tt.b != nil {
				if diff := cmp.Diff(before, tt.b); diff != "" {
					t.Errorf("Merge modified its argument (-before +after):\n%s", diff)
				}
			}
		})
	}
}

func TestClockCompare(t *testing.T) {
	tests := []struct {
		name string
		a, b vclock.Clock
		want vclock.Ordering
	}{
		{"both empty", vclock.Clock{}, vclock.Clock{}, vclock.Equal},
		{"both nil", nil, nil, vclock.Equal},
		{"nil and empty", nil, vclock.Clock{}, vclock.Equal},
		{"same entries", vclock.Clock{"a": 1, "b": 2}, vclock.Clock{"a": 1, "b": 2}, vclock.Equal},
		{"zero entry vs missing", vclock.Clock{"a": 1, "z": 0}, vclock.Clock{"a": 1}, vclock.Equal},
		{"missing vs zero entry", vclock.Clock{"a": 1}, vclock.Clock{"a": 1, "z": 0}, vclock.Equal},
		{"lower entry", vclock.Clock{"a": 1}, vclock.Clock{"a": 2}, vclock.Before},
		{"missing source", vclock.Clock{"a": 1}, vclock.Clock{"a": 1, "b": 1}, vclock.Before},
		{"nil before non-empty", nil, vclock.Clock{"a": 1}, vclock.Before},
		{"zero entry before", vclock.Clock{"b": 0}, vclock.Clock{"b": 1}, vclock.Before},
		{"higher entry", vclock.Clock{"a": 2}, vclock.Clock{"a": 1}, vclock.After},
		{"extra source", vclock.Clock{"a": 1, "b": 1}, vclock.Clock{"a": 1}, vclock.After},
		{"non-empty after nil", vclock.Clock{"a": 1}, nil, vclock.After},
		{"crossed entries", vclock.Clock{"a": 2, "b": 1}, vclock.Clock{"a": 1, "b": 2}, vclock.Concurrent},
		{"disjoint sources", vclock.Clock{"a": 1}, vclock.Clock{"b": 1}, vclock.Concurrent},
		{"fraction crossed", vclock.Clock{"a": 1.001, "b": 1}, vclock.Clock{"a": 1, "b": 1.001}, vclock.Concurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Errorf("%v.Compare(%v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

func TestOrderingString(t *testing.T) {
	tests := []struct {
		o    vclock.Ordering
		want string
	}{
		{vclock.Equal, "equal"},
		{vclock.Before, "before"},
		{vclock.After, "after"},
		{vclock.Concurrent, "concurrent"},
		{vclock.Ordering(42), "Ordering(?)"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Ordering(%d).String() = %q, want %q", int(tt.o), got, tt.want)
		}
	}
}

func TestClockClone(t *testing.T) {
	t.Run("independent", func(t *testing.T) {
		c := vclock.Clock{"a": 1}
		d := c.Clone()
		d["a"] = 2
		d["b"] = 3
		if diff := cmp.Diff(vclock.Clock{"a": 1}, c); diff != "" {
			t.Errorf("writing the clone changed the original (-want +got):\n%s", diff)
		}
		c["c"] = 4
		if _, ok := d["c"]; ok {
			t.Errorf("writing the original changed the clone: %v", d)
		}
	})
	t.Run("nil", func(t *testing.T) {
		var c vclock.Clock
		d := c.Clone()
		if d == nil {
			t.Fatal("Clone of nil clock = nil, want an empty writable clock")
		}
		d.Advance("a", 1) // must not panic
		if c != nil {
			t.Errorf("original nil clock became %v", c)
		}
	})
}

func TestClockSourcesAndString(t *testing.T) {
	c := vclock.Clock{"b": 1795385884149.001, "a": 1795385884149, "c": 0}
	if diff := cmp.Diff([]string{"a", "b", "c"}, c.Sources()); diff != "" {
		t.Errorf("Sources (-want +got):\n%s", diff)
	}
	if got, want := c.String(), "{a:1795385884149 b:1795385884149.001 c:0}"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
	if got, want := vclock.Clock(nil).String(), "{}"; got != want {
		t.Errorf("nil String = %q, want %q", got, want)
	}
}

func TestTimestampValid(t *testing.T) {
	tests := []struct {
		name string
		ts   vclock.Timestamp
		want bool
	}{
		{"NaN", vclock.Timestamp(math.NaN()), false},
		{"+Inf", vclock.Timestamp(math.Inf(1)), false},
		{"-Inf", vclock.Timestamp(math.Inf(-1)), false},
		{"zero", 0, false},
		{"negative zero", vclock.Timestamp(math.Copysign(0, -1)), false},
		{"negative", -1, false},
		{"tiny positive", vclock.Timestamp(math.SmallestNonzeroFloat64), true},
		{"one", 1, true},
		{"today", 1795385884149.001, true},
		{"max float", vclock.Timestamp(math.MaxFloat64), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ts.Valid(); got != tt.want {
				t.Errorf("Timestamp(%v).Valid() = %v, want %v", float64(tt.ts), got, tt.want)
			}
		})
	}
}

func TestTimestampStringRoundTrip(t *testing.T) {
	tests := []struct {
		ts   vclock.Timestamp
		want string // "" to check only the round trip
	}{
		{1795385884149, "1795385884149"},
		{1795385884149.001, "1795385884149.001"},
		{1795385884149 + 1.0/1024, "1795385884149.001"},
		{1795385884149 + 2.0/1024, "1795385884149.002"},
		{1, "1"},
		{0.5, "0.5"},
		{vclock.Timestamp(math.SmallestNonzeroFloat64), ""},
		{vclock.Timestamp(math.MaxFloat64), ""},
		{vclock.Timestamp(math.Nextafter(1795385884149, 2e12)), ""},
	}
	for _, tt := range tests {
		s := tt.ts.String()
		if tt.want != "" && s != tt.want {
			t.Errorf("Timestamp(%b).String() = %q, want %q", float64(tt.ts), s, tt.want)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Errorf("ParseFloat(%q): %v", s, err)
			continue
		}
		if math.Float64bits(f) != math.Float64bits(float64(tt.ts)) {
			t.Errorf("ParseFloat(Timestamp(%b).String() = %q) = %b, not the same bits", float64(tt.ts), s, f)
		}
	}

	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 0))
	for range 1000 {
		ts := vclock.Timestamp(1e12 + r.Float64()*1e12)
		s := ts.String()
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.Float64bits(f) != math.Float64bits(float64(ts)) {
			t.Fatalf("seed %d: Timestamp(%b).String() = %q parses back to %b, %v", seed, float64(ts), s, f, err)
		}
	}
}

func TestTimestampTime(t *testing.T) {
	ts := vclock.Timestamp(1795385884149.5)
	got := ts.Time()
	if got.UnixMilli() != 1795385884149 || got.Nanosecond()%1e6 != 500000 {
		t.Errorf("Timestamp(%v).Time() = %v (%d ms, %d ns), want 1795385884149 ms + 500000 ns",
			ts, got, got.UnixMilli(), got.Nanosecond()%1e6)
	}
	if back := vclock.FromTime(got); back != 1795385884149 {
		t.Errorf("FromTime(%v) = %v, want the containing millisecond 1795385884149", got, back)
	}
}

// genClock makes a random clock from r over sources a..e, with timestamps
// drawn from a few values so that ties are common.
func genClock(r *rand.Rand) vclock.Clock {
	c := vclock.Clock{}
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		switch r.IntN(4) {
		case 0: // missing
		case 1:
			c[s] = 0
		default:
			c[s] = vclock.Timestamp(1 + r.IntN(4))
		}
	}
	return c
}

func merged(a, b vclock.Clock) vclock.Clock {
	c := a.Clone()
	c.Merge(b)
	return c
}

// sameClock compares clocks treating zero entries as missing.
func sameClock(a, b vclock.Clock) bool { return a.Compare(b) == vclock.Equal }

func TestClockProperties(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range 2000 {
		a, b, c := genClock(r), genClock(r), genClock(r)
		fail := func(prop string) {
			t.Fatalf("seed %d, round %d: %s fails for a=%v b=%v c=%v", seed, i, prop, a, b, c)
		}
		if !sameClock(merged(a, b), merged(b, a)) {
			fail("Merge commutative")
		}
		if !sameClock(merged(merged(a, b), c), merged(a, merged(b, c))) {
			fail("Merge associative")
		}
		if !sameClock(merged(a, a), a) {
			fail("Merge idempotent")
		}
		if diff := cmp.Diff(a, merged(a, a)); diff != "" {
			fail("Merge idempotent (exact entries)")
		}
		ab, ba := a.Compare(b), b.Compare(a)
		if (ab == vclock.Before) != (ba == vclock.After) || (ab == vclock.After) != (ba == vclock.Before) ||
			(ab == vclock.Equal) != (ba == vclock.Equal) || (ab == vclock.Concurrent) != (ba == vclock.Concurrent) {
			fail("Compare antisymmetric (" + ab.String() + " vs " + ba.String() + ")")
		}
		m := merged(a, b)
		if o := m.Compare(b); o != vclock.After && o != vclock.Equal {
			fail("merge covers the other clock (" + o.String() + ")")
		}
		if o := m.Compare(a); o != vclock.After && o != vclock.Equal {
			fail("merge covers itself (" + o.String() + ")")
		}
		for s, ts := range b {
			if !m.Covers(s, ts) {
				fail("merge covers every entry of the other clock")
			}
		}
		if o := a.Compare(m); o != vclock.Before && o != vclock.Equal {
			fail("a is before or equal to a∪b (" + o.String() + ")")
		}
	}
}

// TestClockQuick checks the merge laws with testing/quick over arbitrary
// clocks, including arbitrary source names and timestamps.
func TestClockQuick(t *testing.T) {
	norm := func(m map[string]float64) vclock.Clock {
		c := vclock.Clock{}
		for k, v := range m {
			// Zero entries mean "missing"; Merge need not copy them, so
			// exact comparison below leaves them out (genClock covers them).
			if v = math.Abs(v); v > 0 && !math.IsInf(v, 0) {
				c[k] = vclock.Timestamp(v)
			}
		}
		return c
	}
	commutative := func(x, y map[string]float64) bool {
		a, b := norm(x), norm(y)
		return cmp.Equal(merged(a, b), merged(b, a))
	}
	associative := func(x, y, z map[string]float64) bool {
		a, b, c := norm(x), norm(y), norm(z)
		return cmp.Equal(merged(merged(a, b), c), merged(a, merged(b, c)))
	}
	idempotent := func(x map[string]float64) bool {
		a := norm(x)
		return cmp.Equal(merged(a, a), a)
	}
	covers := func(x, y map[string]float64) bool {
		a, b := norm(x), norm(y)
		o := merged(a, b).Compare(b)
		return o == vclock.After || o == vclock.Equal
	}
	for name, f := range map[string]any{
		"commutative": commutative, "associative": associative,
		"idempotent": idempotent, "covers": covers,
	} {
		t.Run(name, func(t *testing.T) {
			if err := quick.Check(f, nil); err != nil {
				t.Error(err)
			}
		})
	}
}
