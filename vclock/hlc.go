package vclock

import (
	"math"
	"strconv"
	"sync/atomic"
	"time"
)

// Timestamp is a point in time in milliseconds since the Unix epoch. Valid
// timestamps are positive and finite; fractions order updates made within the
// same millisecond.
type Timestamp float64

// Valid reports whether t is positive and finite, the only timestamps an
// update may carry.
func (t Timestamp) Valid() bool {
	f := float64(t)
	return f > 0 && !math.IsInf(f, 0) // NaN fails f > 0
}

// String formats t as the shortest decimal that parses back to t, the way
// JavaScript prints numbers.
func (t Timestamp) String() string {
	return strconv.FormatFloat(float64(t), 'f', -1, 64)
}

// Time converts t to a time.Time, dropping fractions below a nanosecond.
func (t Timestamp) Time() time.Time {
	ms := math.Floor(float64(t))
	ns := (float64(t) - ms) * 1e6
	return time.UnixMilli(int64(ms)).Add(time.Duration(ns))
}

// FromTime returns the timestamp of the millisecond that contains tm.
func FromTime(tm time.Time) Timestamp {
	return Timestamp(tm.UnixMilli())
}

// logicalStep is how far an HLC moves past its last timestamp when the wall
// clock has not: 1/1024 ms, a binary fraction that survives a decimal
// round-trip and prints as .001, .002, ... near today's timestamps.
const logicalStep = 1.0 / 1024

// HLC is a hybrid logical clock that hands out strictly increasing
// timestamps. It is safe for concurrent use, and takes no lock: the last
// timestamp is one word that Now and Observe move forward with
// compare-and-swap, so that a replica's local writes, which each call Now,
// pay for one atomic operation rather than a lock and an unlock.
type HLC struct {
	now  func() time.Time
	last atomic.Uint64 // math.Float64bits of the last timestamp; 0 for none
}

// NewHLC returns a clock that reads wall time from now; nil means time.Now.
// now may be called concurrently, by concurrent calls of Now.
func NewHLC(now func() time.Time) *HLC {
	if now == nil {
		now = time.Now
	}
	return &HLC{now: now}
}

// Now returns a timestamp later than every timestamp this clock has returned
// or observed: the wall clock's millisecond if that is later, otherwise the
// last timestamp plus a small logical step. It never returns an invalid
// timestamp: if no valid one is later than the last (the clock observed the
// largest float64), it returns zero and leaves the clock as it was.
func (h *HLC) Now() Timestamp {
	wall := FromTime(h.now())
	for {
		old := h.last.Load()
		n := wall
		if last := fromBits(old); !(wall > last && wall.Valid()) {
			if n = after(last); !n.Valid() {
				return 0
			}
		}
		if h.last.CompareAndSwap(old, math.Float64bits(float64(n))) {
			return n
		}
		// Another call moved the clock meanwhile: step past what it took.
	}
}

// Observe records a timestamp seen elsewhere (a remote update, or one read
// back from a log), so that the next Now is later than t. Invalid timestamps
// are ignored.
func (h *HLC) Observe(t Timestamp) {
	if !t.Valid() {
		return
	}
	for {
		old := h.last.Load()
		if t <= fromBits(old) || h.last.CompareAndSwap(old, math.Float64bits(float64(t))) {
			return
		}
	}
}

// Last returns the latest timestamp this clock has returned or observed, or
// zero if none.
func (h *HLC) Last() Timestamp { return fromBits(h.last.Load()) }

// fromBits is the timestamp whose float64 bits are b.
func fromBits(b uint64) Timestamp { return Timestamp(math.Float64frombits(b)) }

// after returns the next timestamp after t: t plus the logical step, or the
// next representable float where t is so large that the step is lost.
func after(t Timestamp) Timestamp {
	n := t + logicalStep
	if n <= t {
		n = Timestamp(math.Nextafter(float64(t), math.Inf(1)))
	}
	return n
}
