package simnet

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

// netLink is one link of the network, hand-stepped (handLink) or over
// real streams (link). Only the test's goroutine calls its methods.
type netLink interface {
	// label names the link in traces: "r0-r1#3".
	label() string
	// dead reports whether the link has ended or is being cut: for the
	// topology it is gone.
	dead() bool
	// ended reports whether nothing of the link runs any more.
	ended() bool
	// stop ends the link (Disconnect); wait waits for it.
	stop()
	wait(timeout time.Duration) error
	// disarm cancels a cut that has not begun (StopCuts).
	disarm()
	// unquiet says why the link is not settled, or "".
	unquiet() string
	// describe names the link and its counters, for Dump.
	describe() string
}

// connectPipes makes a link of two stream.Conn over a net.Pipe with fault
// f, and starts their goroutines.
func (n *Network) connectPipes(p pair, name string, f Fault, so [2]*stream.Options) *link {
	l := &link{
		n:    n,
		name: name,
		f:    f,
		done: make(chan struct{}),
	}
	l.budget.Store(math.MaxInt64)
	if f.CutAfter > 0 {
		l.budget.Store(f.CutAfter)
	}
	a, b := net.Pipe()
	l.pipes = [2]net.Conn{a, b}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for k, d := range []scuttlebutt.Document{n.docs[p.i], n.docs[p.j]} {
		fc := &faultConn{Conn: l.pipes[k], l: l, rng: rand.New(rand.NewPCG(n.rng.Uint64(), n.rng.Uint64()))}
		l.conns[k] = stream.NewConn(d, fc, so[k])
	}
	l.left.Store(2)
	for k := range 2 {
		go l.run(ctx, k)
	}
	return l
}

// link is one connection: two Conns over a net.Pipe, each Run by a
// goroutine of its own.
type link struct {
	n      *Network
	name   string
	f      Fault
	conns  [2]*stream.Conn
	pipes  [2]net.Conn
	cancel context.CancelFunc

	budget   atomic.Int64 // bytes left before the cut; cutting once negative
	cut      atomic.Bool
	cutOnce  sync.Once
	stopping atomic.Bool // Disconnect or Close ended it

	errs [2]error     // each Run's result; read after done
	left atomic.Int32 // Runs still running
	done chan struct{}
	err  error // the link's unexpected errors; read after done
}

func (l *link) run(ctx context.Context, k int) {
	l.errs[k] = l.conns[k].Run(ctx)
	if l.left.Add(-1) == 0 {
		l.finish()
		close(l.done)
	}
}

// finish judges how the link ended, on the last of its goroutines.
func (l *link) finish() {
	var errs []error
	refused := false
	for k, err := range l.errs {
		switch {
		case err != nil && l.n.opts.Refused != nil && l.n.opts.Refused(err):
			refused = true
			l.n.refusals.Add(1)
		case !l.n.opts.Expected(err):
			errs = append(errs, fmt.Errorf("%w: link %s side %d: %w", ErrUnexpected, l.name, k, err))
		}
	}
	if errs == nil && !refused && !l.stopping.Load() && !l.cut.Load() {
		errs = append(errs, fmt.Errorf("%w: link %s ended by itself: %v, %v", ErrUnexpected, l.name, l.errs[0], l.errs[1]))
	}
	l.n.logf("simnet: link %s ended (cut %v, refused %v): %v; %v", l.name, l.cut.Load(), refused, l.errs[0], l.errs[1])
	for _, err := range errs {
		l.n.report(err)
	}
	l.err = errors.Join(errs...)
}

// dead reports whether the link has ended or is being cut: for the
// topology it is gone.
func (l *link) dead() bool { return l.budget.Load() < 0 || l.ended() }

func (l *link) ended() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *link) stop() {
	l.stopping.Store(true)
	l.cancel()
}

// wait waits for both Runs to return; past timeout it closes the pipes,
// which unblocks any Read or Write, and reports the link as stuck.
func (l *link) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-l.done:
		return l.err
	case <-t.C:
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	err := fmt.Errorf("%w: link %s did not stop within %v\n%s", ErrUnexpected, l.name, timeout, buf)
	l.n.report(err)
	l.stopping.Store(true)
	l.cancel()
	l.pipes[0].Close()
	l.pipes[1].Close()
	t.Reset(timeout)
	select {
	case <-l.done:
	case <-t.C:
		l.n.report(fmt.Errorf("%w: link %s still running after its pipes were closed", ErrUnexpected, l.name))
	}
	return err
}

// take reserves up to k bytes of the cut budget and returns how many it got.
// Getting fewer than k dooms the link: the budget goes negative, so that
// StopCuts cannot revive it and the topology counts it as gone at once.
func (l *link) take(k int) int {
	for {
		rem := l.budget.Load()
		switch {
		case rem < 0:
			return 0
		case rem >= int64(k):
			if l.budget.CompareAndSwap(rem, rem-int64(k)) {
				return k
			}
		default:
			if l.budget.CompareAndSwap(rem, -1) {
				return int(rem)
			}
		}
	}
}

// disarm cancels a cut that has not begun.
func (l *link) disarm() {
	for {
		rem := l.budget.Load()
		if rem < 0 || l.budget.CompareAndSwap(rem, math.MaxInt64) {
			return
		}
	}
}

// cutNow closes both ends of the pipe.
func (l *link) cutNow() {
	l.cutOnce.Do(func() {
		l.cut.Store(true)
		l.n.logf("simnet: cut %s after %d bytes", l.name, l.f.CutAfter)
		l.pipes[0].Close()
		l.pipes[1].Close()
	})
}

// faultConn is one end of a link's pipe with the link's faults applied to
// its writes. Write is called by one goroutine only (the Conn's writer), so
// rng needs no lock.
type faultConn struct {
	net.Conn
	l   *link
	rng *rand.Rand
}

func (c *faultConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		k := len(p)
		if c.l.f.MaxChunk > 0 {
			k = 1 + c.rng.IntN(min(c.l.f.MaxChunk, len(p)))
		}
		if c.l.f.MaxDelay > 0 {
			time.Sleep(time.Duration(c.rng.Int64N(int64(c.l.f.MaxDelay) + 1)))
		}
		got := c.l.take(k)
		if got > 0 {
			m, err := c.Conn.Write(p[:got])
			written += m
			if err != nil {
				return written, err
			}
		}
		if got < k {
			c.l.cutNow()
			return written, ErrCut
		}
		p = p[k:]
	}
	return written, nil
}

// unquiet implements netLink: a link settles once both sides have synced
// and every frame written has been read and stepped; a cut one once its
// streams have ended, since they may still be applying what they read
// before the cut.
func (l *link) unquiet() string {
	switch {
	case l.ended():
		return ""
	case l.dead():
		return fmt.Sprintf("link %s is being cut", l.name)
	case !isClosed(l.conns[0].Synced()) || !isClosed(l.conns[1].Synced()):
		return fmt.Sprintf("link %s has not synced", l.name)
	}
	a, b := l.conns[0].Stats(), l.conns[1].Stats()
	if a.FramesOut != b.FramesIn || b.FramesOut != a.FramesIn {
		return fmt.Sprintf("link %s has frames in flight", l.name)
	}
	return ""
}

func (l *link) label() string { return l.name }

// describe implements netLink.
func (l *link) describe() string {
	a, c := l.conns[0].Stats(), l.conns[1].Stats()
	return fmt.Sprintf("%s %v: frames %d/%d out/in, %d/%d in/out; updates %d/%d out/in, %d/%d in/out; synced %v/%v",
		l.name, l.f, a.FramesOut, c.FramesIn, a.FramesIn, c.FramesOut,
		a.UpdatesOut, c.UpdatesIn, a.UpdatesIn, c.UpdatesOut,
		isClosed(l.conns[0].Synced()), isClosed(l.conns[1].Synced()))
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
