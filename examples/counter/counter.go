package main

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/notify"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Counter is a grow-only counter: every replica counts its own increments,
// and the value is the sum of every replica's count. It is written only
// against scuttlebutt.Replica, the way any replicated type is.
//
// Each replica's count is an update of its own whose Data is the CBOR array
// [count]. Counts only grow, so an update carries the whole count, not the
// increment: a replica that missed some updates is repaired by the latest
// one alone, and History holds one update per source, however many
// increments were made.
//
// Counts are kept per source, and every start of a replica is a source of
// its own (Source(), its id and incarnation): a restarted replica counts
// from zero under its new source, and its earlier starts' counts, which it
// replays from its log or gets back from a peer, add to it. So a replica
// that lost its state (it kept it only in memory) loses no increments by
// incrementing before it has synced.
//
// Changes are delivered to callbacks (OnChange) and channels (ChangeChan)
// with package notify: queued in ApplyUpdate, under the base's lock and the
// counter's, and delivered in AfterApply, after both are released.
//
// All methods are safe for concurrent use.
type Counter struct {
	*scuttlebutt.Scuttlebutt

	incr  sync.Mutex   // serializes Incr, so that no increment is lost
	incrs atomic.Int32 // Incr calls in progress; see AfterApply

	mu     sync.Mutex
	latest map[string]scuttlebutt.Update // each source's update of the highest count
	counts map[string]uint64             // each source's count, decoded from latest
	total  uint64                        // the sum of counts

	changes notify.Notifier[Change]
}

// Change is one raise of one source's count, as delivered to OnChange
// callbacks and ChangeChan channels.
type Change struct {
	// Source is the source whose count rose: a replica id and incarnation.
	Source string
	// Count is Source's new count, and Value the counter's value with it.
	Count, Value uint64
	// Local reports that this replica made the increment, in this start or
	// an earlier one.
	Local bool
}

// payload is an update's Data: the source's count, as [count].
type payload struct {
	_     struct{} `cbor:",toarray"`
	Count uint64
}

// decMode decodes payloads strictly: exactly [count], no trailing data, no
// fields beyond the one.
var decMode, _ = cbor.DecOptions{ExtraReturnErrors: cbor.ExtraDecErrorUnknownField}.DecMode()

// NewCounter returns a counter at zero with the given replica id.
func NewCounter(id string) (*Counter, error) {
	c := &Counter{latest: map[string]scuttlebutt.Update{}, counts: map[string]uint64{}}
	sb, err := scuttlebutt.New(id, c, nil)
	if err != nil {
		return nil, err
	}
	c.Scuttlebutt = sb
	return c, nil
}

// Incr adds n to this replica's count and replicates the new count.
func (c *Counter) Incr(n uint64) error {
	c.incrs.Add(1)
	err := c.incrLocked(n)
	c.incrs.Add(-1)
	c.changes.Deliver() // with c.incr released: a callback may call Incr
	return err
}

// incrLocked is Incr's write, under c.incr.
func (c *Counter) incrLocked(n uint64) error {
	c.incr.Lock()
	defer c.incr.Unlock()
	c.mu.Lock()
	count := c.counts[c.Source()] + n
	c.mu.Unlock()
	data, err := cbor.Marshal(payload{Count: count})
	if err != nil {
		return err
	}
	_, _, err = c.LocalUpdate(data)
	return err
}

// Value returns the sum of every replica's count.
func (c *Counter) Value() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// decode returns the count in an update's Data.
func decode(data []byte) (uint64, error) {
	var p payload
	if err := decMode.Unmarshal(data, &p); err != nil {
		return 0, err
	}
	return p.Count, nil
}

// ValidateUpdate implements scuttlebutt.Validator: Data must be [count], so
// a malformed update ends the stream instead of being recorded in the clock.
func (c *Counter) ValidateUpdate(u scuttlebutt.Update) error {
	if _, err := decode(u.Data); err != nil {
		return errors.Join(errors.New("counter: want [count]"), err)
	}
	return nil
}

// ApplyUpdate implements scuttlebutt.Replica: it keeps the higher count of
// each source and reports whether u raised it.
func (c *Counter) ApplyUpdate(u scuttlebutt.Update) bool {
	n, err := decode(u.Data)
	if err != nil {
		return false // the base validated it; a local update is ours
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cur, ok := c.counts[u.Source]
	if ok && n < cur {
		return false // a count can only grow: keep the higher one
	}
	// Per source, u is later than the update held: on an equal count keep u,
	// so that the update History offers is the one the clock records.
	c.latest[u.Source] = u
	if ok && n == cur {
		return false
	}
	c.counts[u.Source] = n
	c.total += n - cur
	c.changes.Queue(Change{
		Source: u.Source,
		Count:  n,
		Value:  c.total,
		Local:  scuttlebutt.ReplicaID(u.Source) == c.ID(),
	})
	return true
}

// AfterApply implements scuttlebutt.AfterApplier: it delivers the changes
// ApplyUpdate queued, now that the base's lock and c.mu are released. While
// an Incr is in progress it leaves them to that Incr, which delivers once
// it has released c.incr: delivering here, under c.incr, a callback that
// calls Incr would deadlock. (A type whose writes hold no lock of their
// own across LocalUpdate, as package model's, just delivers.)
func (c *Counter) AfterApply() {
	if c.incrs.Load() == 0 {
		c.changes.Deliver()
	}
}

// OnChange calls fn for every raise of a count that this replica applies
// from now on, local or remote, in the order they are applied, until
// cancel is called. After cancel returns, fn is not called again, unless
// cancel was called by fn itself or concurrently with a call in progress.
// fn runs on a goroutine that applies changes (an Incr, or a stream that
// brought some), after the counter's locks are released, one call at a time
// across all callbacks; it may call Incr, whose change it hears after it
// returns. A slow fn delays the writers and streams.
func (c *Counter) OnChange(fn func(Change)) (cancel func()) {
	return c.changes.Add(fn)
}

// ChangeChan sends every change from now on to ch, as OnChange calls a
// callback, until cancel is called. Sends block: give ch a buffer, or read
// it promptly, or writers and streams wait. cancel also releases a send
// that is blocked; once it returns nothing more is sent to ch.
func (c *Counter) ChangeChan(ch chan<- Change) (cancel func()) {
	return notify.Chan(c.OnChange, ch)
}

// History implements scuttlebutt.Replica: each source's latest update, if
// it is newer than sources has seen, sorted by (Timestamp, Source).
func (c *Counter) History(sources vclock.Clock) []scuttlebutt.Update {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []scuttlebutt.Update
	for src, u := range c.latest {
		if u.Timestamp > sources.Get(src) {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, scuttlebutt.Compare)
	return out
}

var (
	_ scuttlebutt.Replica      = (*Counter)(nil)
	_ scuttlebutt.Validator    = (*Counter)(nil)
	_ scuttlebutt.AfterApplier = (*Counter)(nil)
	_ scuttlebutt.Document     = (*Counter)(nil)
)
