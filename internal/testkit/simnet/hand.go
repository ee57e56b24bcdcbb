package simnet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
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

// connectHand makes a hand-stepped link: two Links with options lo[k]
// for side k (nil: the defaults).
func (n *Network) connectHand(p pair, name string, f Fault, lo [2]*scuttlebutt.LinkOptions) *handLink {
	l := &handLink{n: n, name: name, f: f, docs: [2]int{p.i, p.j}, budget: math.MaxInt64}
	if f.CutAfter > 0 {
		l.budget = f.CutAfter
	}
	for k, i := range l.docs {
		l.ends[k] = n.docs[i].Base().NewLink(lo[k])
		l.dirty[k] = true
		l.mark[k] = vclock.Clock{}
	}
	return l
}

// side returns the side of replica i on l: 0 or 1.
func (l *handLink) side(i int) int {
	if l.docs[0] == i {
		return 0
	}
	return 1
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

// pump moves what side k's Link has ready into its queue, and returns how
// many messages it moved. A side is asked again while it keeps producing
// (Ready hands out a long history in steps), after it was stepped, and
// when its Wake channel says live updates were queued.
func (l *handLink) pump(k int) int {
	if l.done {
		return 0
	}
	select {
	case <-l.ends[k].Wake():
		l.dirty[k] = true
	default:
	}
	if !l.dirty[k] {
		return 0
	}
	ms := l.ends[k].Ready()
	l.queue[k] = append(l.queue[k], ms...)
	l.dirty[k] = len(ms) > 0
	return len(ms)
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
	l.n.sent[[2]int{from, to}] = append(l.n.sent[[2]int{from, to}], m)
	l.n.delivered++
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
			if l.pump(k); len(l.queue[k]) > 0 {
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
// deliver or cond (if not nil) holds, or ctx ends, or Options.MaxSteps
// Steps have been made; it returns how many messages it delivered. It asks
// every session for what it has ready first, so that a test that drained
// a Link's Wake channel itself loses nothing.
func (n *Network) settle(ctx context.Context, cond func() bool) (delivered int, err error) {
	for _, l := range n.links {
		l := l.(*handLink)
		l.dirty = [2]bool{true, true}
	}
	start := n.delivered
	for i := 0; ; i++ {
		if cond != nil && cond() {
			break
		}
		if !n.Step() {
			break
		}
		if i >= n.opts.MaxSteps {
			return n.delivered - start, fmt.Errorf("%w: still delivering after %d steps\n%s", ErrNotQuiet, i, n.Dump())
		}
		if i%1024 == 0 && ctx.Err() != nil {
			return n.delivered - start, fmt.Errorf("%w: %v\n%s", ErrNotQuiet, context.Cause(ctx), n.Dump())
		}
	}
	return n.delivered - start, nil
}

// mustHand panics unless the links are hand-stepped.
func (n *Network) mustHand(what string) {
	if n.opts.Pipes {
		panic("simnet: " + what + " needs hand-stepped links, and Options.Pipes is set")
	}
}

// hand returns the live hand-stepped link between i and j and the side of
// i on it, or nil.
func (n *Network) hand(i, j int) (*handLink, int) {
	l, _ := n.links[mkpair(i, j)].(*handLink)
	if l == nil || l.done {
		return nil, 0
	}
	return l, l.side(i)
}

// ConnectLinks joins replicas i and j with a hand-stepped link whose two
// sessions are made with the given options (nil: the defaults; neither
// Options.Stream nor Options.Fault is drawn, so the link is never cut),
// and returns them: li is replica i's session, lj is j's. The test may
// call their methods too (Ready, Step, Synced, Wake...), but not while the
// network is delivering on them. A link that joined i and j already ends
// first, as Disconnect ends it. ConnectLinks panics with Pipes, and when
// Connect would return an error (ErrPartitioned, ErrCrashed, an index out
// of range): a test that means to try those calls Connect.
func (n *Network) ConnectLinks(i, j int, oi, oj *scuttlebutt.LinkOptions) (li, lj *scuttlebutt.Link) {
	n.mustHand("ConnectLinks")
	if err := n.linkable(i, j); err != nil {
		panic(err)
	}
	n.Disconnect(i, j)
	p := mkpair(i, j)
	lo := [2]*scuttlebutt.LinkOptions{oi, oj}
	if i > j {
		lo = [2]*scuttlebutt.LinkOptions{oj, oi}
	}
	l := n.connectHand(p, n.linkName(p), Fault{}, lo)
	n.links[p] = l
	n.logf("simnet: connect %s by hand", l.name)
	return l.ends[l.side(i)], l.ends[l.side(j)]
}

// Pump asks replica i's session of its hand-stepped link to j for what it
// has ready (Ready) and queues it for j without delivering any, and
// returns how many messages it queued: the messages are in flight while
// the test moves others. It returns 0 if no live link joins i and j. It
// panics with Pipes.
func (n *Network) Pump(i, j int) int {
	n.mustHand("Pump")
	l, k := n.hand(i, j)
	if l == nil {
		return 0
	}
	l.dirty[k] = true
	return l.pump(k)
}

// Deliver pumps replica i's side of its hand-stepped link to j (see Pump),
// then steps j's session with the first message queued from i to j, after
// checking the prefix property and recording it for Sent. It reports
// whether j was stepped with a message that it took: false if nothing was
// queued, if no live link joins i and j, or if the message ended the link
// (lost in a cut, or refused; or its Step failed or broke the prefix
// property, which is reported: see Err and Options.OnError). It panics
// with Pipes.
func (n *Network) Deliver(i, j int) bool {
	n.mustHand("Deliver")
	l, k := n.hand(i, j)
	if l == nil {
		return false
	}
	l.dirty[k] = true
	if l.pump(k); len(l.queue[k]) == 0 {
		return false
	}
	return l.deliver(k)
}

// Settle delivers on every hand-stepped link, as Quiesce does, until
// nothing is left to deliver, and returns how many messages it delivered.
// It first asks every session for what it has ready, so that a test that
// drained a Link's Wake channel itself loses nothing. After
// Options.MaxSteps Steps it gives up and reports an error wrapping
// ErrUnexpected and ErrNotQuiet (see Err and Options.OnError). Unlike
// Quiesce, it does not check that the replicas converged. It panics with
// Pipes.
func (n *Network) Settle() (delivered int) {
	n.mustHand("Settle")
	delivered, err := n.settle(context.Background(), nil)
	if err != nil {
		n.report(fmt.Errorf("%w: Settle: %w", ErrUnexpected, err))
	}
	return delivered
}

// Sent returns the messages replica i's sessions handed to replica j's
// Step, in order, on every hand-stepped link that has joined the two since
// New or ResetSent (a message lost in a cut is not among them). Replicas
// are named by index, so Replace keeps what was sent. The slice is a copy.
func (n *Network) Sent(i, j int) []scuttlebutt.Message {
	return slices.Clone(n.sent[[2]int{i, j}])
}

// ResetSent forgets the messages Sent returns, so that it shows only what
// follows.
func (n *Network) ResetSent() { clear(n.sent) }
