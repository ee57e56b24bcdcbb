// Package notify delivers a replicated type's changes to callbacks and
// channels. Package model (Watch), package emitter (On, Chan) and package
// lock (OnLost) use it, and so can a custom type: see examples/counter.
//
// # The problem it solves
//
// A replicated type learns of a change in ApplyUpdate, which the base
// (package scuttlebutt) calls with its lock held, and often with the type's
// own lock held too. A callback run there could not read or write the
// replica without deadlocking, and a slow callback would stall every other
// writer. So a Notifier splits notification in two:
//
//  1. Queue, called where the change is decided (under the type's locks),
//     only buffers the value; it is dropped at once if no callback is
//     registered, so a type nobody watches pays one mutex.
//  2. Deliver, called after the locks are released (from AfterApply, see
//     scuttlebutt.AfterApplier), hands the buffered values to the callbacks.
//
// # Ordering
//
// Values are delivered in the order they were queued, each to every
// callback in the order the callbacks were added, one call at a time across
// all callbacks. Only one goroutine delivers at a time: a Deliver that finds
// another delivering returns at once, and the one already delivering takes
// its values too. So a callback may write to the replica: the write queues
// its own change, whose Deliver returns, and the change is delivered after
// the callback that made it returns, before any later change.
//
// # Use in a replicated type
//
//	type Counter struct {
//		*scuttlebutt.Scuttlebutt
//		changes notify.Notifier[Change]
//		...
//	}
//
//	func (c *Counter) ApplyUpdate(u scuttlebutt.Update) bool {
//		... // under the base's lock and c's own
//		c.changes.Queue(Change{...})
//		return true
//	}
//
//	func (c *Counter) AfterApply() { c.changes.Deliver() }
//
//	func (c *Counter) OnChange(fn func(Change)) (cancel func()) { return c.changes.Add(fn) }
//
//	func (c *Counter) ChangeChan(ch chan<- Change) (cancel func()) { return notify.Chan(c.OnChange, ch) }
//
// Every callback receives the same T. A type whose values hold maps or
// slices queues a private form instead and converts it for each callback,
// so that no two share anything (package model queues entries and decodes
// a fresh Change per watcher):
//
//	cancel := n.Add(func(p pending) { fn(p.change()) })
package notify
