package lock

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestPersistedRestart gives r0 a filelog, lets it and r1 hold locks
// through enough renewals that the log takes two replay batches (and
// one compaction), crashes r0 and restarts it from its log. The replay
// loses none of r0's own updates (a table acknowledges claims from
// AfterApply, which the replay defers to Attach, so no acknowledgement is
// stamped between batches), whatever the restarted table writes is
// logged, and once relinked, r0 converges with its peers, withdraws the
// claims of its earlier run, and grants go on in line order.
func TestPersistedRestart(t *testing.T) {
	const names = 5
	c := newCluster(t, 3, nil, nil)
	path := filepath.Join(t.TempDir(), "r0.log")
	logCfg := &filelog.Config{Sync: filelog.SyncNever, CompactRatio: -1}
	open := func(tab *Table) *filelog.Log {
		t.Helper()
		l, err := filelog.Open(path, tab, logCfg)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := open(c.tabs[0])
	for i := range names {
		c.claim(0, fmt.Sprintf("y%d", i), false)
		c.claim(1, fmt.Sprintf("x%d", i), false)
	}
	c.settle()
	for i := range names {
		if diff := cmp.Diff([]int{0}, c.holders(fmt.Sprintf("y%d", i))); diff != "" {
			t.Fatalf("y%d holders (-want +got):\n%s", i, diff)
		}
	}
	// Renewals and their acknowledgements fill the log.
	for round := 0; l.Stats().Records < 4096+1024; round++ {
		if round == 50 {
			if err := l.Compact(); err != nil {
				t.Fatal(err)
			}
		}
		if round > 2000 {
			t.Fatalf("only %d records after %d rounds", l.Stats().Records, round)
		}
		c.advance(testCfg.Renew, 1)
	}
	if diff := cmp.Diff([]int{0}, c.holders("y0")); diff != "" {
		t.Fatalf("y0 holders after the renewals (-want +got):\n%s", diff)
	}

	// Crash r0: no Close of the table, no release.
	c.crash(0)
	want := c.tabs[0].History(nil)
	wantClock := c.tabs[0].Clock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	restart := func() (*Table, *filelog.Log) {
		t.Helper()
		cfg := testCfg
		cfg.Members = []string{"r0", "r1", "r2"}
		cfg.Now = func() time.Time { return c.clk.now() }
		tab, err := New("r0", &cfg)
		if err != nil {
			t.Fatal(err)
		}
		tab.stopRun() // the test steps it
		t.Cleanup(func() { tab.Close() })
		return tab, open(tab)
	}
	r0, l0 := restart()

	// The replay lost nothing: everything r0 had is back, but for its own
	// acknowledgement (of any of its starts), which the one written at
	// Attach may supersede.
	got := r0.History(nil)
	for _, u := range want {
		if scuttlebutt.ReplicaID(u.Source) == "r0" && isAck(u) {
			continue
		}
		if !slices.ContainsFunc(got, func(v scuttlebutt.Update) bool { return v.Source == u.Source && v.Timestamp == u.Timestamp }) {
			t.Errorf("after the replay, %v is missing", u)
		}
	}
	if o := r0.Clock().Compare(wantClock); o != vclock.After && o != vclock.Equal {
		t.Errorf("clock after the replay %v does not cover %v", r0.Clock(), wantClock)
	}
	if s := l0.Stats(); s.Appended == 0 {
		t.Errorf("the restarted table acknowledged nothing through its log: %+v", s)
	}

	// What the restarted table wrote is in its log: a second restart
	// comes back with all of it.
	advertised := r0.Clock()
	if err := l0.Close(); err != nil {
		t.Fatal(err)
	}
	r0, l0 = restart()
	defer l0.Close()
	if o := r0.Clock().Compare(advertised); o != vclock.After && o != vclock.Equal {
		t.Errorf("clock after the second restart %v does not cover %v, which the first run had", r0.Clock(), advertised)
	}

	// Relink it: it converges with its peers and withdraws its old claims.
	c.restart(0, r0)
	c.settle()
	for i := 1; i < 3; i++ {
		if diff := cmp.Diff(c.tabs[0].Clock(), c.tabs[i].Clock()); diff != "" {
			t.Errorf("clocks of r0 and r%d (-r0 +r%d):\n%s", i, i, diff)
		}
		if diff := cmp.Diff(c.tabs[0].History(nil), c.tabs[i].History(nil)); diff != "" {
			t.Errorf("histories of r0 and r%d (-r0 +r%d):\n%s", i, i, diff)
		}
	}
	for i := range names {
		if h := c.holders(fmt.Sprintf("y%d", i)); len(h) != 0 {
			t.Errorf("y%d held by %v after r0's restart, want nobody", i, h)
		}
		if h := c.tabs[1].Holders(fmt.Sprintf("y%d", i)); len(h) != 0 {
			t.Errorf("y%d: r1 sees holders %v, want none: r0 withdrew its old claim", i, h)
		}
	}

	// Grants go on: r2 takes a lock the old run held, r0 waits for one r1
	// holds and gets it when r1 unlocks, without any lease running out.
	c.claim(2, "y0", false)
	oc := c.claim(0, "x0", false)
	c.settle()
	if diff := cmp.Diff([]int{2}, c.holders("y0")); diff != "" {
		t.Errorf("y0 holders (-want +got):\n%s", diff)
	}
	if st := c.state(0, oc); st != waiting {
		t.Errorf("r0's claim on x0, held by r1: %v, want waiting", st)
	}
	if err := c.tabs[1].Unlock("x0"); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if diff := cmp.Diff([]int{0}, c.holders("x0")); diff != "" {
		t.Errorf("x0 holders after r1's Unlock (-want +got):\n%s", diff)
	}
}

// isAck reports whether u is an acknowledgement.
func isAck(u scuttlebutt.Update) bool {
	o, err := decodeOp(u.Data)
	return err == nil && o.kind == kindAck
}
