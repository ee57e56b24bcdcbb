package vclock

import (
	"maps"
	"slices"
	"strings"
)

// Ordering is the result of comparing two clocks.
type Ordering int

// The orderings of two clocks a and b, as returned by a.Compare(b).
const (
	// Equal: a and b have seen exactly the same updates.
	Equal Ordering = iota
	// Before: b has seen everything a has, and more.
	Before
	// After: a has seen everything b has, and more.
	After
	// Concurrent: each has seen something the other has not.
	Concurrent
)

// String returns the ordering's name.
func (o Ordering) String() string {
	switch o {
	case Equal:
		return "equal"
	case Before:
		return "before"
	case After:
		return "after"
	case Concurrent:
		return "concurrent"
	}
	return "Ordering(?)"
}

// Clock maps a source id to the highest timestamp seen from that source. A
// missing source and a zero entry both mean "nothing seen". The zero value
// (nil) is an empty clock that can be read but not written.
type Clock map[string]Timestamp

// Get returns the highest timestamp seen from source, or zero.
func (c Clock) Get(source string) Timestamp { return c[source] }

// Covers reports whether c has seen the update of source at t, that is,
// whether t is at or below c's entry for source.
func (c Clock) Covers(source string, t Timestamp) bool { return t <= c[source] }

// Advance raises the entry of source to t and reports whether it moved; it
// never lowers an entry.
func (c Clock) Advance(source string, t Timestamp) bool {
	if t <= c[source] {
		return false
	}
	c[source] = t
	return true
}

// Merge raises every entry of c to at least the matching entry of o, so that
// c covers everything either clock has seen.
func (c Clock) Merge(o Clock) {
	for s, t := range o {
		if t > c[s] {
			c[s] = t
		}
	}
}

// Compare returns how c relates to o: Equal, Before (o has seen more), After
// (c has seen more) or Concurrent.
func (c Clock) Compare(o Clock) Ordering {
	less, greater := false, false
	for s, t := range c {
		switch u := o[s]; {
		case t < u:
			less = true
		case t > u:
			greater = true
		}
	}
	for s, u := range o {
		if _, ok := c[s]; !ok && u > 0 {
			less = true
		}
	}
	switch {
	case less && greater:
		return Concurrent
	case less:
		return Before
	case greater:
		return After
	}
	return Equal
}

// Clone returns a copy of c that shares nothing with it; the copy of a nil
// clock is an empty, writable one.
func (c Clock) Clone() Clock {
	if c == nil {
		return Clock{}
	}
	return maps.Clone(c)
}

// Sources returns the sources in c, sorted.
func (c Clock) Sources() []string {
	return slices.Sorted(maps.Keys(c))
}

// String formats c as {a:1795385884149 b:1795385884149.001}, sources sorted.
func (c Clock) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, s := range c.Sources() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
		b.WriteByte(':')
		b.WriteString(c[s].String())
	}
	b.WriteByte('}')
	return b.String()
}
