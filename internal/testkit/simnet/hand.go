package simnet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// handLink is a hand-stepped link: the two sessions' scuttlebutt.Links,
// and per direction a FIFO of the messages one side's Ready produced that
// the other has not been stepped with yet. Nothing runs on its own: the
// network's Step moves messages, on the test's goroutine.
type handLink struct {
	n     *Network
	name  string
	f     Fault
	ends  [2]*scuttlebutt.Link // ends[k] is the session of replica side k
	docs  [2]int
	queue [2][]scuttlebutt.Message // sent by side k, not yet delivered
	dirty [2]bool                  // side k may have more to send
	mark  [2]vclock.Clock          // what side k advertised: the prefix check
	sent  [2]int                   // messages delivered from side k
	bytes [2]int64                 // approximate wire bytes delivered from side k

	budget int64 // approximate wire bytes left before the cut
	cut    bool
	done   bool
	err    error // the link's unexpected errors
}

// connectHand makes a hand-stepped link: two Links with the mode and
// limits of so (Mode, MaxQueueBytes, MaxBatchBytes; the rest is the
// streams' business).
func (n *Network) connectHand(p pair, name string, f Fault, so [2]*stream.Options) *handLink {
	l := &handLink{n: n, name: name, f: f, docs: [2]int{p.i, p.j}, budget: math.MaxInt64}
	if f.CutAfter > 0 {
		l.budget = f.CutAfter
	}
	for k, i := range l.docs {
		var lo scuttlebutt.LinkOptions
		if o := so[k]; o != nil {
			lo.Mode, lo.MaxQueueBytes, lo.MaxBatchBytes = o.Mode, o.MaxQueueBytes, o.MaxBatchBytes
		}
		l.ends[k] = n.docs[i].Base().NewLink(&lo)
		l.dirty[k] = true
		l.mark[k] = vclock.Clock{}
	}
	return l
}

func (l *handLink) label() string { return l.name }
func (l *handLink) dead() bool    { return l.done }
func (l *handLink) ended() bool   { return l.done }
func (l *handLink) disarm()       { l.budget = math.MaxInt64 }

// stop ends both sessions; what is still queued is lost, as on a cut.
func (l *handLink) stop() { l.end() }

func (l *handLink) wait(time.Duration) error { return l.err }

func (l *handLink) end() {
	if l.done {
		return
	}
	l.done = true
	l.ends[0].Close()
	l.ends[1].Close()
	l.queue = [2][]scuttlebutt.Message{}
}

// unquiet implements netLink.
func (l *handLink) unquiet() string {
	switch {
	case l.done:
		return ""
	case len(l.queue[0])+len(l.queue[1]) > 0 || l.dirty[0] || l.dirty[1]:
		return fmt.Sprintf("link %s has messages in flight", l.name)
	case !l.ends[0].Synced() || !l.ends[1].Synced():
		return fmt.Sprintf("link %s has not synced", l.name)
	}
	return ""
}

// describe implements netLink.
func (l *handLink) describe() string {
	return fmt.Sprintf("%s %v: messages %d/%d delivered, %d/%d queued, ~%d/%d bytes; synced %v/%v",
		l.name, l.f, l.sent[0], l.sent[1], len(l.queue[0]), len(l.queue[1]), l.bytes[0], l.bytes[1],
		l.ends[0].Synced(), l.ends[1].Synced())
}

// pump moves what side k's Link has ready into its queue, and reports
// whether its queue holds anything. A side is asked again while it keeps
// producing (Ready hands out a long history in steps), after it was
// stepped, and when its Wake channel says live updates were queued.
func (l *handLink) pump(k int) bool {
	if l.done {
		return false
	}
	select {
	case <-l.ends[k].Wake():
		l.dirty[k] = true
	default:
	}
	if l.dirty[k] {
		ms := l.ends[k].Ready()
		l.queue[k] = append(l.queue[k], ms...)
		l.dirty[k] = len(ms) > 0
	}
	return len(l.queue[k]) > 0
}

// deliver steps the other side with side k's next message, and reports
// whether the link is still up. A message that would cross the cut budget
// is lost and ends the link, as a stream cut in the middle of a frame. A
// Step error ends it too: a refusal Options.Refused claims is counted, any
// other is reported.
func (l *handLink) deliver(k int) bool {
	m := l.queue[k][0]
	l.queue[k] = l.queue[k][1:]
	size := messageSize(m)
	if size > l.budget {
		l.cut = true
		l.n.logf("simnet: cut %s after %d bytes", l.name, l.f.CutAfter)
		l.end()
		return false
	}
	l.budget -= size
	l.sent[k]++
	l.bytes[k] += size
	from, to := l.docs[k], l.docs[1-k]
	if l.n.opts.LogMessages {
		l.n.logf("simnet: %s %s→%s %v", l.name, l.n.name(from), l.n.name(to), m)
	}
	if err := l.checkPrefix(k, m); err != nil {
		l.fail(err)
		return false
	}
	if err := l.ends[1-k].Step(m); err != nil {
		switch {
		case l.n.opts.Refused != nil && l.n.opts.Refused(err):
			l.n.refusals.Add(1)
			l.n.logf("simnet: link %s ended: %s refused %v: %v", l.name, l.n.name(to), m, err)
			l.end()
		default:
			l.fail(fmt.Errorf("%w: link %s: %s stepped with %v: %w", ErrUnexpected, l.name, l.n.name(to), m, err))
		}
		return false
	}
	l.dirty[1-k] = true // a Step may make the other side answer
	return true
}

// checkPrefix checks the prefix property of side k's direction for m:
// per source, updates strictly increase in timestamp and never fall at or
// below a clock the side has already sent.
func (l *handLink) checkPrefix(k int, m scuttlebutt.Message) error {
	mk := l.mark[k]
	switch m.Kind {
	case scuttlebutt.MsgUpdates:
		for _, u := range m.Updates {
			if !mk.Advance(u.Source, u.Timestamp) {
				return fmt.Errorf("%w: link %s: prefix property broken: %s sent after %s had been advertised up to %v",
					ErrUnexpected, l.name, u, u.Source, mk.Get(u.Source))
			}
		}
	case scuttlebutt.MsgSync, scuttlebutt.MsgClock:
		mk.Merge(m.Clock)
	}
	return nil
}

func (l *handLink) fail(err error) {
	l.err = errors.Join(l.err, err)
	l.n.report(err)
	l.end()
}

// messageSize approximates m's CBOR frame in bytes, for Fault.CutAfter.
func messageSize(m scuttlebutt.Message) int64 {
	n := int64(6) // frame header and the body's head
	clock := func(c vclock.Clock) {
		for src := range c {
			n += int64(len(src)) + 10
		}
	}
	switch m.Kind {
	case scuttlebutt.MsgHello:
		if m.Hello != nil {
			n += int64(len(m.Hello.ID)) + 6
			clock(m.Hello.Clock)
		}
	case scuttlebutt.MsgUpdates:
		for _, u := range m.Updates {
			n += int64(len(u.Source)+len(u.Data)+len(u.Signature)) + 12
		}
	default:
		clock(m.Clock)
	}
	return n
}

// Step delivers, with hand-stepped links, a few messages of one direction
// chosen from the seed among those with messages waiting (asking every
// link for what it has ready first), and reports whether there was any.
// With Pipes it does nothing and returns false.
func (n *Network) Step() bool {
	if n.opts.Pipes {
		return false
	}
	type dir struct {
		l *handLink
		k int
	}
	var dirs []dir
	for _, p := range n.sortedPairs() {
		l := n.links[p].(*handLink)
		for k := range 2 {
			if l.pump(k) {
				dirs = append(dirs, dir{l, k})
			}
		}
	}
	if len(dirs) == 0 {
		return false
	}
	d := dirs[n.sched.IntN(len(dirs))]
	for burst := 1 + n.sched.IntN(3); burst > 0 && len(d.l.queue[d.k]) > 0; burst-- {
		if !d.l.deliver(d.k) {
			break
		}
	}
	return true
}

// Run makes up to steps Steps, stopping early when nothing is left to
// deliver, and returns how many it made: between a test's writes, it lets
// the network move on by a number of steps the test draws, as the streams
// would meanwhile.
func (n *Network) Run(steps int) int {
	for i := range steps {
		if !n.Step() {
			return i
		}
	}
	return steps
}

// settle delivers, with hand-stepped links, until nothing is left to
// deliver, or ctx ends, or Options.MaxSteps messages have gone.
func (n *Network) settle(ctx context.Context) error {
	for i := 0; n.Step(); i++ {
		if i >= n.opts.MaxSteps {
			return fmt.Errorf("%w: still delivering after %d steps\n%s", ErrNotQuiet, i, n.Dump())
		}
		if i%1024 == 0 && ctx.Err() != nil {
			return fmt.Errorf("%w: %v\n%s", ErrNotQuiet, context.Cause(ctx), n.Dump())
		}
	}
	return nil
}
