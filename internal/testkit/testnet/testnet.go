// Package testnet connects in-process replicas for tests of replicated
// types: stream.Conn over net.Pipe, with links a test can cut, partitions,
// heals, crashed and replaced replicas, and seeded write delays.
package testnet

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

// Net connects in-process replicas with stream.Conn over net.Pipe, and
// lets a test cut and restore the links between them. Only the test's
// goroutine calls its methods; each link runs two Conn goroutines, which
// end when the link is cut or the network closed.
type Net struct {
	t     *testing.T
	ctx   context.Context
	docs  []scuttlebutt.Document
	links map[[2]int]*testLink
	rng   *rand.Rand // seeded: which delays links add
	mu    sync.Mutex // guards rng, used by link writers
	delay time.Duration
	side  map[int]int  // the current partition; nil when healed
	dead  map[int]bool // crashed replicas: never connected again
}

type testLink struct {
	ca, cb net.Conn
	cancel context.CancelFunc
	done   chan struct{} // closed when both Conns have returned
	cut    bool          // set before the test closes the link on purpose
	errs   [2]error
}

// New returns an empty network whose links delay each write by a random
// time up to maxDelay (0: none), drawn from seed. It closes every link when
// the test ends.
func New(t *testing.T, seed uint64, maxDelay time.Duration) *Net {
	n := &Net{
		t:     t,
		ctx:   t.Context(),
		links: make(map[[2]int]*testLink),
		rng:   rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		delay: maxDelay,
		dead:  make(map[int]bool),
	}
	t.Cleanup(n.CloseAll)
	return n
}

// Add adds a replica and returns its index.
func (n *Net) Add(d scuttlebutt.Document) int {
	n.docs = append(n.docs, d)
	return len(n.docs) - 1
}

// Replace puts d in place of replica i (a restarted replica), cutting its
// links first.
func (n *Net) Replace(i int, d scuttlebutt.Document) {
	n.Isolate(i)
	n.docs[i] = d
}

// Crash cuts every link of i for good.
func (n *Net) Crash(i int) {
	n.Isolate(i)
	n.dead[i] = true
}

func key(i, j int) [2]int {
	if i > j {
		i, j = j, i
	}
	return [2]int{i, j}
}

// Connected reports whether i and j have a live link.
func (n *Net) Connected(i, j int) bool {
	l := n.links[key(i, j)]
	if l == nil {
		return false
	}
	select {
	case <-l.done:
		n.reap(key(i, j), l)
		return false
	default:
		return true
	}
}

// Connect starts a link between i and j unless one is live.
func (n *Net) Connect(i, j int) {
	if i == j || n.dead[i] || n.dead[j] || n.Connected(i, j) || (n.side != nil && n.side[i] != n.side[j]) {
		return
	}
	ca, cb := net.Pipe()
	ctx, cancel := context.WithCancel(n.ctx)
	l := &testLink{ca: ca, cb: cb, cancel: cancel, done: make(chan struct{})}
	n.links[key(i, j)] = l
	x := stream.NewConn(n.docs[i], n.slow(ca), nil)
	y := stream.NewConn(n.docs[j], n.slow(cb), nil)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.errs[0] = x.Run(ctx); ca.Close(); cb.Close() }()
	go func() { defer wg.Done(); l.errs[1] = y.Run(ctx); ca.Close(); cb.Close() }()
	go func() { wg.Wait(); close(l.done) }()
}

// Disconnect cuts the link between i and j, if any, and waits for it.
func (n *Net) Disconnect(i, j int) {
	k := key(i, j)
	l := n.links[k]
	if l == nil {
		return
	}
	l.cut = true
	l.cancel()
	l.ca.Close()
	l.cb.Close()
	<-l.done
	n.reap(k, l)
}

// reap forgets an ended link and fails the test if it ended with an error
// that no cut explains.
func (n *Net) reap(k [2]int, l *testLink) {
	delete(n.links, k)
	for _, err := range l.errs {
		if err != nil && !expected(err) {
			n.t.Errorf("link %v ended with %v", k, err)
		}
	}
	if !l.cut {
		n.t.Errorf("link %v ended by itself", k)
	}
}

func expected(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, stream.ErrTruncated) ||
		errors.Is(err, context.Canceled)
}

// Isolate cuts every link of i.
func (n *Net) Isolate(i int) {
	for k := range n.links {
		if k[0] == i || k[1] == i {
			n.Disconnect(k[0], k[1])
		}
	}
}

// Partition cuts every link between different groups, and keeps connect
// from joining them until heal.
func (n *Net) Partition(groups ...[]int) {
	n.side = map[int]int{}
	for g, members := range groups {
		for _, i := range members {
			n.side[i] = g
		}
	}
	for k := range n.links {
		if n.side[k[0]] != n.side[k[1]] {
			n.Disconnect(k[0], k[1])
		}
	}
}

// Heal ends the partition; links come back with connect or mesh.
func (n *Net) Heal() { n.side = nil }

// Mesh connects every pair that the partition, if any, allows.
func (n *Net) Mesh() {
	for i := range n.docs {
		for j := i + 1; j < len(n.docs); j++ {
			n.Connect(i, j)
		}
	}
}

// CloseAll cuts every link and waits for each; New registers it with
// t.Cleanup.
func (n *Net) CloseAll() {
	for k := range n.links {
		n.Disconnect(k[0], k[1])
	}
}

// slow wraps c so that each write waits a random time up to the network's
// maximum delay, if it has one.
func (n *Net) slow(c net.Conn) net.Conn {
	if n.delay <= 0 {
		return c
	}
	return &slowConn{Conn: c, n: n}
}

type slowConn struct {
	net.Conn
	n *Net
}

func (c *slowConn) Write(p []byte) (int, error) {
	c.n.mu.Lock()
	d := time.Duration(c.n.rng.Int64N(int64(c.n.delay) + 1))
	c.n.mu.Unlock()
	time.Sleep(d) // a slow network, not synchronization
	return c.Conn.Write(p)
}

// WaitFor polls cond until it holds or the deadline passes.
func WaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
