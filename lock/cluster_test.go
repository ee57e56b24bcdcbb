package lock

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// trueTime is the simulation's real time, moved by hand; each replica reads
// it through its own offset (clock skew).
type trueTime struct {
	mu sync.Mutex
	t  time.Time
}

func (c *trueTime) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *trueTime) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cluster is a deterministic network of tables, for the tests of the Table
// itself (table_test.go, onlost_test.go, persist_test.go; the rule's
// decisions are tested without a Table, over a ruleNet): links are stepped
// by hand, each table's goroutine is stopped (stopRun) and the test calls
// the Table's step itself.
type cluster struct {
	t     *testing.T
	clk   *trueTime
	tabs  []*Table
	links map[[2]int]*pairLink
	cut   map[int]bool // replicas cut off from everyone
	mute  map[int]bool // replicas whose messages are held back (one-way cut)
	down  map[int]bool // crashed replicas: not stepped, not linked
}

type pairLink struct {
	a, b *scuttlebutt.Link
}

var testCfg = Config{Lease: 1000 * time.Millisecond, Renew: 200 * time.Millisecond, Margin: 100 * time.Millisecond}

// newCluster makes n tables r0..r{n-1}, all members of each other, with the
// given clock offsets (nil for none) and config overrides.
func newCluster(t *testing.T, n int, offsets []time.Duration, tweak func(*Config)) *cluster {
	t.Helper()
	c := &cluster{
		t:     t,
		clk:   &trueTime{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
		links: make(map[[2]int]*pairLink),
		cut:   make(map[int]bool),
		mute:  make(map[int]bool),
		down:  make(map[int]bool),
	}
	var members []string
	for i := range n {
		members = append(members, fmt.Sprintf("r%d", i))
	}
	for i := range n {
		var off time.Duration
		if offsets != nil {
			off = offsets[i]
		}
		cfg := testCfg
		cfg.Members = members
		cfg.Now = func() time.Time { return c.clk.now().Add(off) }
		if tweak != nil {
			tweak(&cfg)
		}
		tab, err := New(members[i], &cfg)
		if err != nil {
			t.Fatal(err)
		}
		tab.stopRun() // the test steps it
		t.Cleanup(func() { tab.Close() })
		c.tabs = append(c.tabs, tab)
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			c.link(i, j)
		}
	}
	c.settle()
	return c
}

func (c *cluster) link(i, j int) {
	c.links[[2]int{i, j}] = &pairLink{a: c.tabs[i].NewLink(nil), b: c.tabs[j].NewLink(nil)}
}

// pump delivers messages over every link whose ends are both up and not
// cut, until none is left.
func (c *cluster) pump() {
	for moved := true; moved; {
		moved = false
		for k, l := range c.links {
			if c.cut[k[0]] || c.cut[k[1]] || c.down[k[0]] || c.down[k[1]] {
				continue
			}
			for d, dir := range [2][2]*scuttlebutt.Link{{l.a, l.b}, {l.b, l.a}} {
				if c.mute[k[d]] {
					continue // its messages wait in its link
				}
				for _, m := range dir[0].Ready() {
					moved = true
					if err := dir[1].Step(m); err != nil {
						c.t.Fatalf("link %v: %v", k, err)
					}
				}
			}
		}
	}
}

// settle alternates pumping and stepping every live table until nothing
// changes: the state reached with the clock standing still.
func (c *cluster) settle() {
	for range 20 {
		c.pump()
		for i, tab := range c.tabs {
			if !c.down[i] {
				tab.step()
			}
		}
	}
	c.pump()
}

// advance moves true time in steps of d, settling after each, n times.
func (c *cluster) advance(d time.Duration, n int) {
	for range n {
		c.clk.add(d)
		c.settle()
	}
}

// claim makes replica i claim name and returns its bookkeeping.
func (c *cluster) claim(i int, name string, try bool) *ownClaim {
	c.t.Helper()
	if _, err := c.tabs[i].enterSlot(c.t.Context(), name, try); err != nil {
		c.t.Fatalf("r%d: slot for %q: %v", i, name, err)
	}
	oc, _, err := c.tabs[i].claim(name, try)
	if err != nil {
		c.t.Fatal(err)
	}
	return oc
}

func (c *cluster) state(i int, oc *ownClaim) state {
	c.tabs[i].mu.Lock()
	defer c.tabs[i].mu.Unlock()
	return oc.state
}

// holders returns which replicas hold name by their own account (state
// held and lease good by their own clock).
func (c *cluster) holders(name string) []int {
	var out []int
	for i, tab := range c.tabs {
		if c.down[i] {
			continue
		}
		if _, ok := tab.Deadline(name); ok {
			out = append(out, i)
		}
	}
	return out
}

// lock calls Lock on replica i in a goroutine, as an application does; the
// result arrives on the returned channel. Lock claims again by itself when
// a waiting claim's lease runs out, so the test waits for outcomes with
// settleUntil rather than counting steps.
func (c *cluster) lock(i int, name string) <-chan error {
	errc := make(chan error, 1)
	ctx := c.t.Context()
	go func() { errc <- c.tabs[i].Lock(ctx, name) }()
	return errc
}

// settleUntil moves true time in steps of d until cond holds, failing the
// test after limit of simulated time.
func (c *cluster) settleUntil(what string, d, limit time.Duration, cond func() bool) {
	c.t.Helper()
	end := c.clk.now().Add(limit)
	for !cond() {
		if c.clk.now().After(end) {
			c.t.Fatalf("%s: not after %v of simulated time", what, limit)
		}
		c.clk.add(d)
		c.settle()
		time.Sleep(time.Millisecond) // let Lock goroutines claim again
	}
}

// waitUntil polls cond until it holds, for a goroutine the test started.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
