package lock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// These tests check the Table's side of the rule's stories (rule_test.go)
// on a cluster of Tables: that it makes the rule's decisions known through
// its methods' results, Done, OnLost and the Lock calls that wait.

// ownClaimOf returns tab's current claim on name, nil if none.
func ownClaimOf(tab *Table, name string) *ownClaim {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return tab.rule.own[name]
}

// claimed reports whether tab's current claim on name has been applied.
func claimed(tab *Table, name string) bool {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	oc := tab.rule.own[name]
	return oc != nil && oc.c != nil
}

// TestTableHoldersAndUnlock: Holder and Holders report the rule's view on
// every replica, and Unlock is ErrNotOwner but for the holder.
func TestTableHoldersAndUnlock(t *testing.T) {
	c := newCluster(t, 3, nil, func(cfg *Config) { cfg.Limits = map[string]int{"sem": 2} })
	a := c.claim(0, "x", false)
	c.settle()
	b := c.claim(1, "x", false)
	c.settle()
	for i, want := range []string{"r0", "r0", "r0"} {
		if got, _ := c.tabs[i].Holder("x"); got != want {
			t.Errorf("r%d: Holder(x) = %q, want %q", i, got, want)
		}
	}
	c.claim(0, "sem", false)
	c.claim(1, "sem", false)
	c.settle()
	if diff := cmp.Diff([]string{"r0", "r1"}, c.tabs[2].Holders("sem")); diff != "" {
		t.Errorf("Holders(sem) seen from r2 (-want +got):\n%s", diff)
	}
	if err := c.tabs[0].Unlock("x"); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if got := []state{c.state(0, a), c.state(1, b)}; !cmp.Equal(got, []state{released, held}) {
		t.Fatalf("after r0 unlocks: states %v, want [released held]", got)
	}
	if err := c.tabs[0].Unlock("x"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("second Unlock by r0 = %v, want ErrNotOwner", err)
	}
	if err := c.tabs[2].Unlock("x"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Unlock by r2, which never locked = %v, want ErrNotOwner", err)
	}
}

// TestTableLeaseLost cuts the holder off: OnLost is called, Done is
// closed and Unlock is ErrNotOwner once its lease is lost, and another
// replica's Lock call, whose claims run out while it waits, claims again
// and returns nil after the heal.
func TestTableLeaseLost(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.claim(0, "x", false)
	c.settle()
	var lost []string
	c.tabs[0].OnLost(func(name string) { lost = append(lost, name) })
	done := c.tabs[0].Done("x")
	dl, ok := c.tabs[0].Deadline("x")
	if !ok {
		t.Fatal("r0 does not hold x")
	}
	c.isolate(0)
	errc := c.lock(1, "x")
	waitUntil(t, "r1's claim", func() bool { return claimed(c.tabs[1], "x") })
	first := ownClaimOf(c.tabs[1], "x")
	for c.clk.now().Before(dl.Add(2 * testCfg.Lease)) {
		c.advance(20*time.Millisecond, 1)
		time.Sleep(100 * time.Microsecond) // let Lock claim again
		if h := c.holders("x"); len(h) > 1 {
			t.Fatalf("at %v: holders %v", c.clk.now(), h)
		}
	}
	if diff := cmp.Diff([]string{"x"}, lost); diff != "" {
		t.Errorf("OnLost calls (-want +got):\n%s", diff)
	}
	select {
	case <-done:
	default:
		t.Error("Done(x) not closed after the lease was lost")
	}
	if err := c.tabs[0].Unlock("x"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Unlock after the loss = %v, want ErrNotOwner", err)
	}
	c.heal()
	c.settleUntil("r1 granted after the heal", 20*time.Millisecond, testCfg.Lease, func() bool { return len(c.holders("x")) > 0 })
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1}, c.holders("x")); diff != "" {
		t.Errorf("after the heal: holders (-want +got):\n%s", diff)
	}
	if ownClaimOf(c.tabs[1], "x") == first {
		t.Error("r1 holds x with its first claim, made three leases ago: want a claim made again after it ran out")
	}
}

// TestTableTryLock fails at once when another replica holds the lock or
// this one does, and on a free lock waits for the acknowledgements and
// holds.
func TestTableTryLock(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.claim(0, "x", false)
	c.settle()
	if err := c.tabs[1].TryLock(t.Context(), "x"); !errors.Is(err, ErrLocked) {
		t.Errorf("TryLock of a held lock = %v, want ErrLocked", err)
	}
	if err := c.tabs[0].TryLock(t.Context(), "x"); !errors.Is(err, ErrLocked) {
		t.Errorf("TryLock of a lock this replica holds = %v, want ErrLocked", err)
	}
	if h, _ := c.tabs[1].Holder("x"); h != "r0" {
		t.Errorf("Holder = %q, want r0", h)
	}

	// An earlier claim that was not yet known: r2's TryLock is behind r1's
	// claim, which arrives while r2 waits for acknowledgements.
	c.isolate(1)
	c.claim(1, "y", false)
	c.clk.add(time.Millisecond)
	errc := make(chan error, 1)
	go func() { errc <- c.tabs[2].TryLock(context.Background(), "y") }()
	waitUntil(t, "r2's claim on y", func() bool { return claimed(c.tabs[2], "y") })
	c.heal()
	c.settle()
	if err := <-errc; !errors.Is(err, ErrLocked) {
		t.Errorf("TryLock behind an earlier claim that came to light = %v, want ErrLocked", err)
	}

	// A free lock: TryLock waits for the acknowledgements, then holds.
	go func() { errc <- c.tabs[2].TryLock(context.Background(), "z") }()
	waitUntil(t, "r2's claim on z", func() bool { return claimed(c.tabs[2], "z") })
	c.settle()
	if err := <-errc; err != nil {
		t.Errorf("TryLock of a free lock = %v", err)
	}
	if err := c.tabs[2].Unlock("z"); err != nil {
		t.Errorf("Unlock after TryLock: %v", err)
	}
}

// TestTableLockCancelled gives up waiting: Lock returns the context's
// error, the claim is withdrawn and the next in line is granted.
func TestTableLockCancelled(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.claim(0, "x", false)
	c.settle()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- c.tabs[1].Lock(ctx, "x") }()
	waitUntil(t, "r1's claim", func() bool { return claimed(c.tabs[1], "x") })
	c.settle()
	c.claim(2, "x", false)
	c.settle()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Lock = %v, want context.Canceled", err)
	}
	if err := c.tabs[0].Unlock("x"); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if diff := cmp.Diff([]int{2}, c.holders("x")); diff != "" {
		t.Errorf("after r1 gave up and r0 unlocked: holders (-want +got):\n%s", diff)
	}
}

// TestTableSetMembers removes a crashed member: the claim waiting for its
// acknowledgement is granted; Members reports the new set, and a set
// without the replica itself is refused.
func TestTableSetMembers(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.crash(2)
	c.claim(0, "x", false)
	c.advance(50*time.Millisecond, 5)
	if h := c.holders("x"); len(h) != 0 {
		t.Fatalf("granted without r2's acknowledgement: %v", h)
	}
	if err := c.tabs[0].SetMembers([]string{"r1", "r0"}); err != nil {
		t.Fatal(err)
	}
	c.advance(50*time.Millisecond, 1)
	if diff := cmp.Diff([]int{0}, c.holders("x")); diff != "" {
		t.Errorf("after removing r2: holders (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"r0", "r1"}, c.tabs[0].Members()); diff != "" {
		t.Errorf("Members (-want +got):\n%s", diff)
	}
	if err := c.tabs[0].SetMembers([]string{"r1"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("SetMembers without itself = %v, want ErrInvalidConfig", err)
	}
}
