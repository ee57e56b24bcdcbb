package model

import (
	"container/heap"
	"math"
	"time"

	"github.com/scuttle-go/scuttle/vclock"
)

// Expiry is driven by the replica's wall clock, Config.Replica.Now, read
// only where something may be due: the Model starts no goroutine and sets
// no timer. An update whose ttl has run out is left out of every read as
// soon as the clock says so; the Model drops it, and tells watchers, at
// the first of:
//
//   - a read (Get, Keys, Len, Snapshot, Checkpoint, Holder): it drops what
//     is due, and the watchers hear of it at the next write, update or
//     Expire (reads never call watchers);
//   - a local write or an update from a peer: it drops what is due, and
//     the watchers hear of it when the write returns or the update's batch
//     is applied;
//   - a call of Expire, which drops what is due and calls the watchers.
//
// A program that watches TTL keys calls Expire from a timer, at the time
// it returns or sooner; tests call it after moving a fake clock.

// expiry is an update with a ttl and the timestamp at which it runs out.
type expiry struct {
	at vclock.Timestamp
	e  *entry
}

// expiries holds the updates with a ttl, earliest expiry first. Updates
// that are no longer kept stay until their time comes, then are skipped (a
// refreshed key leaves one behind per refresh, for one ttl), or until they
// are three quarters of what is queued, when they are taken out: so the
// queue holds at most four times the updates kept with a ttl, however long
// the ttls, and a key refreshed every second with a ttl of 3 s is never
// compacted (it leaves two behind). Most
// expiries come in order (a key refreshed with the same ttl expires after
// the keys refreshed before it), so they queue in a FIFO at O(1); the
// others go to a heap.
type expiries struct {
	fifo []expiry // in order of at, from head
	head int
	heap expiryHeap
	dead int // entries queued that are no longer kept
}

// Len returns how many expiries are held.
func (q *expiries) Len() int { return len(q.fifo) - q.head + len(q.heap) }

func (q *expiries) push(e *entry, at vclock.Timestamp) {
	e.queued = true
	if n := len(q.fifo); n == q.head || q.fifo[n-1].at <= at {
		q.fifo = append(q.fifo, expiry{at, e})
		return
	}
	heap.Push(&q.heap, expiry{at, e})
}

// replaceLast puts e, expiring at at, in place of old if old is the last
// expiry of the FIFO and at is no earlier: so that a key refreshed when it
// was the last one queued (a replica's own presence key, refreshed on its
// own) leaves no dropped entry queued behind it, to be skipped later and
// to keep its payload alive until then. It reports whether it did; if not,
// old stays queued and e is not.
func (q *expiries) replaceLast(old, e *entry, at vclock.Timestamp) bool {
	n := len(q.fifo)
	if n == q.head || q.fifo[n-1].e != old || q.fifo[n-1].at > at {
		return false
	}
	old.queued, e.queued = false, true
	q.fifo[n-1] = expiry{at, e}
	return true
}

// top returns the earliest expiry; Len must be positive.
func (q *expiries) top() expiry {
	if q.head == len(q.fifo) || (len(q.heap) > 0 && q.heap[0].at < q.fifo[q.head].at) {
		return q.heap[0]
	}
	return q.fifo[q.head]
}

// pop removes the earliest expiry and returns it; Len must be positive.
func (q *expiries) pop() expiry {
	x := q.take()
	x.e.queued = false
	if x.e.dead {
		q.dead--
	}
	return x
}

// dropped counts one more queued entry that is no longer kept, and takes
// them out once they are three quarters of the queue.
func (q *expiries) dropped() {
	q.dead++
	if q.dead < 1024 || q.dead*4 < q.Len()*3 {
		return
	}
	live := q.fifo[:0]
	for _, x := range q.fifo[q.head:] {
		if x.e.dead {
			x.e.queued = false
		} else {
			live = append(live, x)
		}
	}
	clear(q.fifo[len(live):])
	q.fifo, q.head = live, 0
	h := q.heap[:0]
	for _, x := range q.heap {
		if x.e.dead {
			x.e.queued = false
		} else {
			h = append(h, x)
		}
	}
	clear(q.heap[len(h):])
	q.heap = h
	heap.Init(&q.heap)
	q.dead = 0
}

// take removes the earliest expiry and returns it.
func (q *expiries) take() expiry {
	if q.head == len(q.fifo) || (len(q.heap) > 0 && q.heap[0].at < q.fifo[q.head].at) {
		return heap.Pop(&q.heap).(expiry)
	}
	x := q.fifo[q.head]
	q.fifo[q.head] = expiry{}
	q.head++
	if q.head == len(q.fifo) {
		q.fifo, q.head = q.fifo[:0], 0
	} else if q.head >= 1024 && q.head*2 >= len(q.fifo) {
		n := copy(q.fifo, q.fifo[q.head:])
		clear(q.fifo[n:])
		q.fifo, q.head = q.fifo[:n], 0
	}
	return x
}

// expiryHeap is a min-heap of expiry by at.
type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = expiry{}
	*h = old[:len(old)-1]
	return x
}

// wallTS reads the wall clock as a timestamp, to the microsecond.
func (m *Model) wallTS() vclock.Timestamp { return toTS(m.now()) }

// toTS returns t as a timestamp, to the microsecond.
func toTS(t time.Time) vclock.Timestamp { return vclock.Timestamp(float64(t.UnixMicro()) / 1000) }

// nowLocked returns the time expiry goes by: the wall clock, or the latest
// reading if the clock went back, so that what has expired stays expired.
func (m *Model) nowLocked() vclock.Timestamp {
	if t := m.wallTS(); t > m.lastNow {
		m.lastNow = t
	}
	return m.lastNow
}

// vanished reports whether e has a ttl without "tomb" that has run out by
// now: it counts no more, anywhere.
func (e *entry) vanished(now vclock.Timestamp) bool {
	if e.olen == 0 {
		return false
	}
	o := e.opts()
	return o.ttl != 0 && !o.tomb && e.ts+vclock.Timestamp(o.ttl) <= now
}

// setNextExp publishes the earliest expiry for sweepDue.
func (m *Model) setNextExp() {
	var bits uint64
	if m.exp.Len() > 0 {
		bits = math.Float64bits(float64(m.exp.top().at))
	}
	if m.nextExp.Load() != bits { // m.mu is held: no other writer
		m.nextExp.Store(bits)
	}
}

// sweepDue drops what has expired, if anything is due, without calling
// watchers.
func (m *Model) sweepDue() {
	if m.nextExp.Load() != 0 {
		m.sweepDueAt(m.now())
	}
}

// sweepDueAt is sweepDue with the wall clock read.
func (m *Model) sweepDueAt(wall time.Time) {
	bits := m.nextExp.Load()
	if bits == 0 || toTS(wall) < vclock.Timestamp(math.Float64frombits(bits)) {
		return
	}
	m.mu.Lock()
	m.sweepLocked(m.nowLocked())
	m.mu.Unlock()
}

// sweepLocked drops the updates whose ttl has run out by now, marks the
// "tomb" ones gone, decides their keys again and queues the changes.
func (m *Model) sweepLocked(now vclock.Timestamp) {
	for m.exp.Len() > 0 && m.exp.top().at <= now {
		e := m.exp.pop().e
		if e.dead {
			continue
		}
		key := keyOf(e.payload())
		old := m.keys.get(key)
		oldVis := old.visible()
		var one [1]*entry
		members := m.membersLocked(key, old, &one)
		if e.opts().tomb {
			e.gone = true
			m.settle(key, members, old, oldVis, e)
			continue
		}
		var buf [4]*entry
		kept := buf[:0]
		for _, k := range members {
			if k != e {
				kept = append(kept, k)
			}
		}
		m.drop(e)
		if len(kept) > 0 {
			m.settle(key, kept, old, oldVis, e)
			continue
		}
		m.keys.delete(key)
		delete(m.more, key)
		m.note(key, nil, old, oldVis, e)
	}
	for m.exp.Len() > 0 && m.exp.top().e.dead {
		m.exp.pop() // replaced before its time: Expire reports the next live one
	}
	m.setNextExp()
}

// Expire drops the keys whose time to live has run out by the wall clock
// (Config.Replica.Now), calls the watchers with the changes (Expired set),
// and returns when the next update known now runs out, or the zero Time if
// none has a ttl. Updates that arrive later may run out sooner. Reads and
// writes drop what has run out too, and never show it (see Expiry in the
// package doc); Expire is what makes watchers hear of an expiry when
// nothing else happens. Call it from a timer, or from a test after moving
// a fake clock.
func (m *Model) Expire() (next time.Time) {
	m.mu.Lock()
	m.sweepLocked(m.nowLocked())
	if m.exp.Len() > 0 {
		next = m.exp.top().at.Time()
	}
	m.mu.Unlock()
	m.watch.deliver()
	return next
}
