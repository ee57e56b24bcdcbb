package scuttlebutt

import (
	"slices"
	"sync"

	"github.com/scuttle-go/scuttle/vclock"
)

// item is one entry of a live queue: an update, or a clock advance.
//
// The updates of one batch applied at once (a peer's history, one
// message) are queued as one unit, every one but the last marked more, so
// that the link sends them to its peer as one unit too (Message.More): a
// batch may leave out updates superseded on the replica it came from, and
// only the whole of it is sure not to advance a clock past an update that
// the receiver holds neither itself nor in what superseded it.
type item struct {
	update Update
	clock  vclock.Clock // non-nil for a clock advance
	seq    uint64       // storage sequence that must be durable before sending
	more   bool         // the next item belongs to the same unit
}

// size approximates what an item costs on the wire, for queue and batch
// limits.
func (it item) size() int {
	if it.clock != nil {
		return 16 * len(it.clock)
	}
	return len(it.update.Data) + len(it.update.Source) + len(it.update.Signature) + 16
}

// subscription is a link's live queue. The base pushes to it under its own
// lock, which guards the queue too: a push, once per update and link,
// takes no lock of its own, and the link takes the base's lock once per
// drain. When the queue outgrows its limit it is dropped whole and marked
// overflowed, and the link recomputes the peer's delta from History
// instead: a slow peer costs bounded memory and loses nothing.
type subscription struct {
	mu       *sync.Mutex // the base's lock, held by push, pushAll, add and reset
	q        []item
	bytes    int
	maxBytes int
	overflow bool
	wake     chan struct{} // capacity 1: coalesced wakeups
}

// newSubscription returns an empty queue guarded by mu, the base's lock.
func newSubscription(mu *sync.Mutex, maxBytes int) *subscription {
	return &subscription{mu: mu, maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

// push queues it, with s.mu held, and wakes the link if the queue was
// empty: a wakeup is pending for anything queued since the link last took
// the queue.
func (s *subscription) push(it item) {
	if s.add(it) {
		s.poke()
	}
}

// pushAll queues updates as one unit (see item.more), to be sent once the
// storage has synced seq, with s.mu held.
func (s *subscription) pushAll(updates []Update, seq uint64) {
	wake := false
	for i, u := range updates {
		if s.add(item{update: u, seq: seq, more: i < len(updates)-1}) {
			wake = true
		}
	}
	if wake {
		s.poke()
	}
}

// add queues it, with s.mu held, and reports whether the link needs a
// wakeup: the queue was empty, or it has just overflowed.
func (s *subscription) add(it item) (wake bool) {
	if s.overflow {
		return false
	}
	if len(s.q) == cap(s.q) {
		// Double, not append's quarter past 256 items: a queue grows
		// by one item an update, and each growth copies it all.
		s.q = slices.Grow(s.q, max(len(s.q), 64))
	}
	wake = len(s.q) == 0
	s.q = append(s.q, it)
	s.bytes += it.size()
	if s.bytes > s.maxBytes {
		s.q, s.bytes, s.overflow = nil, 0, true
		return true
	}
	return wake
}

// poke wakes the link's driver.
func (s *subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns the queued items and whether the queue overflowed, and
// empties it, giving it buf's array to fill next; it takes s.mu.
func (s *subscription) take(buf []item) ([]item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, over := s.q, s.overflow
	s.q, s.bytes = buf[:0], 0
	return q, over
}

// reset empties the queue and clears the overflow mark, with s.mu held,
// when a fresh history replaces the queue.
func (s *subscription) reset() {
	s.q, s.bytes, s.overflow = s.q[:0], 0, false
}
