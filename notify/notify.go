package notify

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Notifier holds callbacks, each under the cancel func Add returned for
// it, and the values queued for them. The zero Notifier is ready to use; a
// Notifier must not be copied after first use.
//
// All methods are safe for concurrent use. Queue never calls a callback and
// so may be called with any lock held; Deliver calls the callbacks on the
// calling goroutine and must be called with no lock held that a callback
// might take. Callbacks are never called concurrently with each other.
type Notifier[T any] struct {
	mu       sync.Mutex
	subs     []*sub[T] // in the order they were added; replaced, never changed in place
	pending  []T
	draining bool // a goroutine is in Deliver's loop
	// subsN is len(subs) and queued whether pending holds values, both
	// written with mu held: Queue and Deliver read them without it, so
	// that a type with no callbacks pays no lock for each change.
	subsN  atomic.Int32
	queued atomic.Bool
}

// sub is one callback. off is set by its cancel, so that a callback
// cancelled in the middle of a batch is not called again.
type sub[T any] struct {
	fn  func(T)
	off atomic.Bool
}

// Add registers fn and returns a func that unregisters it. fn receives the
// values that Deliver hands out from now on (a value queued just before Add
// may be among them), until cancel is called. After cancel returns, fn is
// not called again, unless cancel was called by fn itself or concurrently
// with a call in progress, which completes. cancel may be called any number
// of times, from any goroutine, including from fn.
func (n *Notifier[T]) Add(fn func(T)) (cancel func()) {
	s := &sub[T]{fn: fn}
	n.mu.Lock()
	n.subs = append(n.subs[:len(n.subs):len(n.subs)], s) // a fresh array: Deliver may hold the old one
	n.subsN.Store(int32(len(n.subs)))
	n.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.off.Store(true)
			n.mu.Lock()
			n.subs = slices.DeleteFunc(slices.Clone(n.subs), func(x *sub[T]) bool { return x == s })
			n.subsN.Store(int32(len(n.subs)))
			n.mu.Unlock()
		})
	}
}

// Queue buffers v for the next Deliver, or drops it if no callback is
// registered. It only buffers: it may be called with any lock held,
// including from ApplyUpdate.
func (n *Notifier[T]) Queue(v T) {
	if n.subsN.Load() == 0 {
		return // as if queued just before the first Add
	}
	n.mu.Lock()
	if len(n.subs) > 0 {
		n.pending = append(n.pending, v)
		n.queued.Store(true)
	}
	n.mu.Unlock()
}

// Deliver calls the callbacks with the values queued so far, and with any
// queued while it runs, in queue order; each value goes to every callback
// in the order they were added, skipping those cancelled, one call at a
// time. If another goroutine is delivering, Deliver returns at once and
// that goroutine delivers these values too, after the call in progress: so
// a callback that makes a change (and so calls Deliver) has its change
// delivered after it returns. Call Deliver with no lock held that a
// callback might take; a slow callback delays the goroutine delivering. A
// callback's panic goes up through Deliver; the values of its batch not yet
// delivered are dropped, and later ones are delivered by the next Deliver.
func (n *Notifier[T]) Deliver() {
	if !n.queued.Load() {
		return // nothing queued, or the goroutine delivering has taken it
	}
	n.mu.Lock()
	if n.draining || len(n.pending) == 0 {
		n.mu.Unlock()
		return // nothing to do, or the goroutine delivering takes these too
	}
	n.draining = true
	locked := true
	defer func() {
		if !locked { // a callback panicked
			n.mu.Lock()
		}
		n.draining = false
		n.queued.Store(len(n.pending) > 0) // a panic leaves a batch's rest for the next Deliver
		n.mu.Unlock()
	}()
	for len(n.pending) > 0 {
		batch, subs := n.pending, n.subs
		n.pending = nil
		n.mu.Unlock()
		locked = false
		for _, v := range batch {
			for _, s := range subs {
				if !s.off.Load() {
					s.fn(v)
				}
			}
		}
		n.mu.Lock()
		locked = true
	}
}

// Chan connects a channel to a callback registry: it registers, with add, a
// callback that sends each value to ch, and returns a func that
// unregisters it. add is a Notifier's Add, or any func of that shape, such
// as a type's OnChange built on one.
//
// Sends block: a slow reader holds up the goroutine delivering, and with it
// the writer or stream that made the change, and every other callback. Give
// ch a buffer, or read it promptly. cancel releases a send that is blocked,
// and once cancel returns nothing more is sent to ch, so ch may then be
// closed. cancel may be called any number of times, from any goroutine.
//
// Each value is sent as the callback receives it: if add gives every
// callback a value of its own (as model.Model.Watch does), every channel
// gets one too.
func Chan[T any](add func(fn func(T)) (cancel func()), ch chan<- T) (cancel func()) {
	var (
		mu   sync.Mutex // held during a send; cancel waits for it
		done = make(chan struct{})
	)
	stop := add(func(v T) {
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-done: // cancelled: never send, even if ch has room
			return
		default:
		}
		select {
		case ch <- v:
		case <-done:
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done) // releases a blocked send
			stop()
			// Taking mu waits for a send in progress to finish.
			mu.Lock()
			//lint:ignore SA2001 the empty section is the wait
			mu.Unlock()
		})
	}
}
