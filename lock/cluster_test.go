package lock

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/simnet"
	"github.com/scuttle-go/scuttle/vclock"
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
// decisions are tested without a Table, over a ruleNet). The tables are
// linked through the project's test network, simnet, with hand-stepped
// links: messages move only when the test settles, in an order drawn from
// a fixed seed, and every delivery is checked for the prefix property.
// Each table's goroutine is stopped (stopRun) and the test calls the
// Table's step itself, with true time moved by hand.
type cluster struct {
	t    *testing.T
	clk  *trueTime
	net  *simnet.Network
	tabs []*Table     // tabs[i] is replica i of net
	down map[int]bool // crashed replicas: not stepped (net keeps them unlinked)
}

// clusterSeed draws the order in which a cluster's messages are delivered.
const clusterSeed = 1

var testCfg = Config{Lease: 1000 * time.Millisecond, Renew: 200 * time.Millisecond, Margin: 100 * time.Millisecond}

// newCluster makes n tables r0..r{n-1}, all members of each other and
// linked to each other, with the given clock offsets (nil for none) and
// config overrides.
func newCluster(t *testing.T, n int, offsets []time.Duration, tweak func(*Config)) *cluster {
	t.Helper()
	c := &cluster{
		t:    t,
		clk:  &trueTime{t: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
		down: make(map[int]bool),
	}
	c.net = simnet.New(clusterSeed, &simnet.Options{
		Logf:    t.Logf,
		OnError: func(err error) { t.Fatal(err) }, // delivered on the test's goroutine
	})
	t.Cleanup(func() { c.net.Close() })
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
		c.net.Add(tab)
	}
	c.net.FullMesh()
	c.settle()
	return c
}

// isolate cuts replica i off from every other: a partition with i alone
// on its side. Its links end, and what they had in flight is lost; the
// table keeps being stepped and writing. heal joins it again. A second
// isolate replaces the first: one replica is cut off at a time.
func (c *cluster) isolate(i int) {
	var rest []int
	for j := range c.tabs {
		if j != i {
			rest = append(rest, j)
		}
	}
	c.net.Partition(rest)
}

// heal ends any partition and links every pair of live replicas again:
// new sessions, whose history exchange makes up for what the cut lost.
func (c *cluster) heal() { c.net.FullMesh() }

// crash takes replica i down: its links end, and it is neither linked nor
// stepped until restart.
func (c *cluster) crash(i int) {
	c.net.Crash(i)
	c.down[i] = true
}

// restart puts tab in place of the crashed replica i, and links it to
// every live replica.
func (c *cluster) restart(i int, tab *Table) {
	c.net.Replace(i, tab)
	c.tabs[i] = tab
	delete(c.down, i)
	c.heal()
}

// settle alternates delivering every message in flight and stepping every
// live table until a round of both changes nothing (no message delivered,
// no table's clock moved: nothing written, by a step or by a Lock call
// meanwhile), or for at most 20 rounds: the state reached with the clock
// standing still.
func (c *cluster) settle() {
	for range 20 {
		before := c.clocks()
		moved := c.net.Settle()
		for i, tab := range c.tabs {
			if !c.down[i] {
				tab.step()
			}
		}
		if moved == 0 && slices.EqualFunc(before, c.clocks(), sameClock) {
			return
		}
	}
	c.net.Settle()
}

// clocks returns every table's clock.
func (c *cluster) clocks() []vclock.Clock {
	out := make([]vclock.Clock, len(c.tabs))
	for i, tab := range c.tabs {
		out[i] = tab.Clock()
	}
	return out
}

func sameClock(a, b vclock.Clock) bool { return a.Compare(b) == vclock.Equal }

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
