package model

import "github.com/scuttle-go/scuttle/vclock"

// Checkpoint returns every key that is set with its value, as Snapshot
// does, and the clock of the replica when it held exactly that state: the
// snapshot reflects every update clock covers and none it does not. Use it
// wherever a state and a clock go together: to save a checkpoint that a
// restart resumes from clock, to report a digest beside a clock, to
// compare a state with a peer's once their clocks are equal.
//
// Calling Snapshot and then Clock does not do that: an update applied in
// between (from a peer, or a local write on another goroutine) pairs the
// state before it with the clock after it, which claims an update the
// snapshot lacks.
//
// Both results are fresh copies that share nothing with the Model. It is
// safe for concurrent use. It holds off the application of updates (the
// base's lock) while it copies the key index, a copy of pointers; it
// decodes the values after.
//
// Keys whose time to live has run out by the wall clock are left out, as
// from Snapshot; the clock does not say when that was, since expiry goes
// by each replica's own wall clock, not by updates.
func (m *Model) Checkpoint() (snapshot map[string]any, clock vclock.Clock) {
	var enc map[string][]byte
	m.WithClock(func(c vclock.Clock) {
		m.mu.Lock()
		if m.exp.Len() > 0 {
			m.sweepLocked(m.nowLocked())
		}
		enc, clock = m.encodedLocked(), c
		m.mu.Unlock()
	})
	return decodeSnapshot(enc), clock
}

// encodedLocked returns the encoded value of every key that is set. The
// values alias the Model's payloads, which are immutable.
func (m *Model) encodedLocked() map[string][]byte {
	enc := make(map[string][]byte, m.live)
	for k, e := range m.keys.all() {
		if e.visible() {
			enc[k] = e.value()
		}
	}
	return enc
}

// decodeSnapshot decodes what encoded returned, as Get decodes a value.
func decodeSnapshot(enc map[string][]byte) map[string]any {
	out := make(map[string]any, len(enc))
	for k, b := range enc {
		out[k] = decodeValue(b)
	}
	return out
}
