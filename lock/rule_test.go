package lock

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// These tests step rules, the values that decide grants, by hand over a
// ruleNet: no Table, no goroutine, time moved by the test, so every
// schedule is exactly reproducible. The Table's side of the same stories
// (Done, OnLost, the errors of its methods, Lock calls that wait) is in
// table_test.go.

func TestGrantInLineOrder(t *testing.T) {
	n := newRuleNet(t, 3, nil, nil)
	a := n.claim(0, "x", false)
	n.settle()
	b := n.claim(1, "x", false)
	n.settle()
	if got := states(a, b); !slices.Equal(got, []state{held, waiting}) {
		t.Fatalf("after r0 then r1 claim: states %v, want [held waiting]", got)
	}
	if diff := cmp.Diff([]int{0}, n.holders("x")); diff != "" {
		t.Errorf("holders (-want +got):\n%s", diff)
	}
	for i, want := range []string{"r0", "r0", "r0"} {
		if got := n.seen(i, "x"); !slices.Equal(got, []string{want}) {
			t.Errorf("r%d sees holders %q, want [%q]", i, got, want)
		}
	}
	if err := n.unlock(0, "x"); err != nil {
		t.Fatal(err)
	}
	n.settle()
	if got := states(a, b); !slices.Equal(got, []state{released, held}) {
		t.Fatalf("after r0 unlocks: states %v, want [released held]", got)
	}
	if err := n.unlock(0, "x"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("second unlock by r0 = %v, want ErrNotOwner", err)
	}
	if err := n.unlock(2, "x"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("unlock by r2, which never claimed = %v, want ErrNotOwner", err)
	}
}

// TestConcurrentClaims makes claims on every replica before any is
// exchanged: exactly the first in (timestamp, owner) order is granted, and
// the others follow one at a time.
func TestConcurrentClaims(t *testing.T) {
	n := newRuleNet(t, 4, nil, nil)
	for i := range 4 {
		n.claim(3-i, "x", false) // same clock: ties go by owner
	}
	for want := range 4 {
		n.settle()
		if diff := cmp.Diff([]int{want}, n.holders("x")); diff != "" {
			t.Fatalf("round %d: holders (-want +got):\n%s", want, diff)
		}
		if err := n.unlock(want, "x"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPartitionWaits cuts one replica off: nobody is granted anything until
// it is back, however long the others wait; a Lock call's claim runs out
// meanwhile and is made again.
func TestPartitionWaits(t *testing.T) {
	n := newRuleNet(t, 3, nil, nil)
	n.cut[2] = true
	oc := n.claim(0, "x", false)
	n.advance(50*time.Millisecond, 60) // three leases
	if h := n.holders("x"); len(h) != 0 {
		t.Fatalf("granted during a partition: holders %v", h)
	}
	if oc.state != expired {
		t.Errorf("r0's claim is %v after three leases, want expired", oc.state)
	}
	call := n.lock(1, "x", false)
	n.advance(50*time.Millisecond, 60)
	if h := n.holders("x"); len(h) != 0 {
		t.Fatalf("granted during a partition: holders %v", h)
	}
	if call.claims < 2 {
		t.Errorf("r1's Lock made %d claims in three leases, want its expired claims made again", call.claims)
	}
	n.cut[2] = false
	n.settleUntil("r1 granted after the heal", 20*time.Millisecond, testCfg.Lease, func() bool { return len(n.holders("x")) > 0 })
	if !call.done || call.err != nil {
		t.Fatalf("r1's Lock: done %v, err %v; want granted", call.done, call.err)
	}
	if diff := cmp.Diff([]int{1}, n.holders("x")); diff != "" {
		t.Errorf("after the heal: holders (-want +got):\n%s", diff)
	}
}

// TestHolderCutOffLosesLease cuts the holder off: its renewals go
// unacknowledged, it learns it lost the lock before its deadline passes,
// and none of the others can be granted it in between.
func TestHolderCutOffLosesLease(t *testing.T) {
	n := newRuleNet(t, 3, nil, nil)
	oc := n.claim(0, "x", false)
	n.settle()
	dl, ok := n.deadline(0, "x")
	if !ok {
		t.Fatal("r0 does not hold x")
	}
	n.cut[0] = true
	call := n.lock(1, "x", false)
	for n.now.Before(dl.Add(2 * testCfg.Lease)) {
		n.advance(20*time.Millisecond, 1)
		if h := n.holders("x"); len(h) > 1 {
			t.Fatalf("at %v: holders %v", n.now, h)
		}
	}
	if diff := cmp.Diff([]string{"x"}, n.peers[0].lost); diff != "" {
		t.Errorf("holds lost (-want +got):\n%s", diff)
	}
	if oc.state != expired {
		t.Errorf("r0's hold is %v after its lease ran out, want expired", oc.state)
	}
	if err := n.unlock(0, "x"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("unlock after the loss = %v, want ErrNotOwner", err)
	}
	n.cut[0] = false
	n.settleUntil("r1 granted after the heal", 20*time.Millisecond, testCfg.Lease, func() bool { return len(n.holders("x")) > 0 })
	if !call.done || call.err != nil {
		t.Fatalf("r1's Lock: done %v, err %v; want granted", call.done, call.err)
	}
	if diff := cmp.Diff([]int{1}, n.holders("x")); diff != "" {
		t.Errorf("after the heal: holders (-want +got):\n%s", diff)
	}
}

// TestRenewalsMustBeAcknowledged holds back everything the holder sends
// once the next claimant has its acknowledgement: the holder's renewals
// reach nobody, so the others see its lease run out. The holder still
// hears everyone; it must notice that its renewals go unacknowledged and
// stop holding before anyone else can be granted the lock. (Adopting
// renewals without acknowledgements makes this test fail with two
// holders.) Once its messages flow again, the next in line is granted.
func TestRenewalsMustBeAcknowledged(t *testing.T) {
	n := newRuleNet(t, 3, nil, nil)
	n.claim(0, "x", false)
	n.settle()
	call := n.lock(1, "x", false)
	n.settle() // r1 has r0's acknowledgement, and waits behind r0's claim
	if call.oc.state != waiting {
		t.Fatalf("r1's claim behind r0's hold is %v, want waiting", call.oc.state)
	}
	n.mute[0] = true
	for range 300 {
		n.advance(10*time.Millisecond, 1)
		if h := n.holders("x"); len(h) > 1 {
			t.Fatalf("at %v: holders %v", n.now, h)
		}
	}
	if _, ok := n.deadline(0, "x"); ok {
		t.Error("r0 still holds x after three leases of unacknowledged renewals")
	}
	n.mute[0] = false
	n.settleUntil("r1 granted", 10*time.Millisecond, testCfg.Lease, func() bool { return slices.Equal(n.holders("x"), []int{1}) })
	if !call.done || call.err != nil {
		t.Fatalf("r1's Lock: done %v, err %v; want granted", call.done, call.err)
	}
}

// TestRenewalKeepsHold holds a lock for many leases: renewals keep it.
func TestRenewalKeepsHold(t *testing.T) {
	n := newRuleNet(t, 3, nil, nil)
	n.claim(0, "x", false)
	n.settle()
	first, _ := n.deadline(0, "x")
	n.advance(50*time.Millisecond, 100) // five leases
	last, ok := n.deadline(0, "x")
	if !ok || !last.After(first.Add(4*testCfg.Lease)) {
		t.Errorf("after five leases: deadline = %v, %v; want held, after %v", last, ok, first.Add(4*testCfg.Lease))
	}
}

// TestCrashedHolder crashes the holder: the others wait for its lease to
// end and, once it is removed from the members, are granted the lock, not
// before its lease has ended.
func TestCrashedHolder(t *testing.T) {
	n := newRuleNet(t, 3, nil, nil)
	n.claim(0, "x", false)
	n.settle()
	dl, _ := n.deadline(0, "x")
	end := dl.Add(testCfg.Margin) // when the others consider the claim over
	n.down[0] = true
	n.claim(1, "x", false)
	n.advance(20*time.Millisecond, 5)
	for i := 1; i < 3; i++ {
		n.setMembers(i, "r1", "r2")
	}
	for len(n.holders("x")) == 0 {
		if n.now.After(end.Add(2 * testCfg.Lease)) {
			t.Fatalf("r1 not granted %v after the crashed holder's lease", 2*testCfg.Lease)
		}
		n.advance(10*time.Millisecond, 1)
	}
	if n.now.Before(end) {
		t.Errorf("r1 granted at %v, before the crashed holder's lease ended at %v", n.now, end)
	}
	if diff := cmp.Diff([]int{1}, n.holders("x")); diff != "" {
		t.Errorf("holders (-want +got):\n%s", diff)
	}
}

// TestRemovedMemberNoLongerBlocks crashes a replica that holds nothing:
// claims wait for its acknowledgement until it is removed.
func TestRemovedMemberNoLongerBlocks(t *testing.T) {
	n := newRuleNet(t, 3, nil, nil)
	n.down[2] = true
	n.claim(0, "x", false)
	n.advance(50*time.Millisecond, 5)
	if h := n.holders("x"); len(h) != 0 {
		t.Fatalf("granted without r2's acknowledgement: %v", h)
	}
	n.setMembers(0, "r1", "r0", "r1")
	n.advance(50*time.Millisecond, 1)
	if diff := cmp.Diff([]int{0}, n.holders("x")); diff != "" {
		t.Errorf("after removing r2: holders (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"r0", "r1"}, n.peers[0].rule.members); diff != "" {
		t.Errorf("members, sorted and without duplicates (-want +got):\n%s", diff)
	}
}

func TestSemaphore(t *testing.T) {
	n := newRuleNet(t, 4, nil, func(cfg *Config) { cfg.Limits = map[string]int{"sem": 2} })
	for i := range 4 {
		n.claim(i, "sem", false)
		n.settle()
	}
	if diff := cmp.Diff([]int{0, 1}, n.holders("sem")); diff != "" {
		t.Fatalf("holders (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"r0", "r1"}, n.seen(3, "sem")); diff != "" {
		t.Errorf("holders seen from r3 (-want +got):\n%s", diff)
	}
	if err := n.unlock(1, "sem"); err != nil {
		t.Fatal(err)
	}
	n.settle()
	if diff := cmp.Diff([]int{0, 2}, n.holders("sem")); diff != "" {
		t.Fatalf("after r1 unlocks: holders (-want +got):\n%s", diff)
	}
	// "x" is still a mutex.
	n.claim(0, "x", false)
	n.claim(1, "x", false)
	n.settle()
	if diff := cmp.Diff([]int{0}, n.holders("x")); diff != "" {
		t.Errorf("mutex x: holders (-want +got):\n%s", diff)
	}
}

// TestTryLock fails at once when another replica holds the lock, fails
// when an earlier claim comes to light while it waits, and succeeds
// otherwise.
func TestTryLock(t *testing.T) {
	n := newRuleNet(t, 3, nil, nil)
	n.claim(0, "x", false)
	n.settle()
	if !n.peers[1].rule.full("x", n.wall(n.peers[1])) {
		t.Error("r1 does not find x full while r0 holds it: TryLock would claim")
	}
	if n.peers[0].rule.full("x", n.wall(n.peers[0])) {
		t.Error("r0 finds x full with its own claim alone")
	}
	behind := n.lock(1, "x", true)
	n.step(1)
	if !behind.done || !errors.Is(behind.err, ErrLocked) {
		t.Errorf("a TryLock claim behind r0's hold, at its first step: done %v, err %v; want ErrLocked", behind.done, behind.err)
	}
	if h := n.seen(1, "x"); !slices.Equal(h, []string{"r0"}) {
		t.Errorf("r1 sees holders %q, want [r0]", h)
	}

	// An earlier claim that was not yet known: r2's try claim is behind
	// r1's, which arrives while r2 waits for acknowledgements.
	n.cut[1] = true
	n.claim(1, "y", false)
	n.now = n.now.Add(time.Millisecond)
	try := n.claim(2, "y", true)
	n.cut[1] = false
	n.settle()
	if try.state != failed {
		t.Errorf("r2's TryLock claim behind r1's: %v, want failed", try.state)
	}
	if diff := cmp.Diff([]int{1}, n.holders("y")); diff != "" {
		t.Errorf("holders of y (-want +got):\n%s", diff)
	}

	// A free lock: TryLock waits for the acknowledgements, then holds.
	call := n.lock(2, "z", true)
	n.step(2)
	if call.done || call.oc.state != waiting {
		t.Errorf("TryLock of a free lock before any acknowledgement: done %v, state %v; want waiting", call.done, call.oc.state)
	}
	n.settle()
	if !call.done || call.err != nil {
		t.Errorf("TryLock of a free lock: done %v, err %v; want granted", call.done, call.err)
	}
	if err := n.unlock(2, "z"); err != nil {
		t.Errorf("unlock after TryLock: %v", err)
	}
}

// TestLockCancelled gives up waiting: the claim is withdrawn and the next
// in line is granted.
func TestLockCancelled(t *testing.T) {
	n := newRuleNet(t, 3, nil, nil)
	n.claim(0, "x", false)
	n.settle()
	call := n.lock(1, "x", false)
	n.settle()
	n.claim(2, "x", false)
	n.settle()
	n.cancel(1, call)
	if call.oc.state != released {
		t.Fatalf("r1's cancelled claim is %v, want released", call.oc.state)
	}
	if err := n.unlock(0, "x"); err != nil {
		t.Fatal(err)
	}
	n.settle()
	if diff := cmp.Diff([]int{2}, n.holders("x")); diff != "" {
		t.Errorf("after r1 gave up and r0 unlocked: holders (-want +got):\n%s", diff)
	}
}

// TestClockSkew runs a holder whose clock is off the others' by just
// under the margin and cuts it off: it stops holding before any other
// replica is granted, in true time.
func TestClockSkew(t *testing.T) {
	skew := testCfg.Margin - 5*time.Millisecond
	tests := []struct {
		name  string
		skews []time.Duration
	}{
		{"holder slow", []time.Duration{-skew, 0, 0}},
		{"others fast", []time.Duration{0, skew, skew / 2}},
		{"holder fast", []time.Duration{skew, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newRuleNet(t, 3, tc.skews, nil)
			n.claim(0, "x", false)
			n.settle()
			call := n.lock(1, "x", false)
			n.advance(10*time.Millisecond, 30)
			n.cut[0] = true
			for range 300 {
				n.advance(5*time.Millisecond, 1)
				if h := n.holders("x"); len(h) > 1 {
					t.Fatalf("at %v: holders %v", n.now, h)
				}
				// r1 cannot be granted while r0 is cut off (no acks); let
				// it be by removing r0 once r0 has lost the lock.
				if _, ok := n.deadline(0, "x"); !ok {
					for i := 1; i < 3; i++ {
						n.setMembers(i, "r1", "r2")
					}
				}
			}
			n.settleUntil("r1 granted", 5*time.Millisecond, testCfg.Lease, func() bool { return len(n.holders("x")) > 0 })
			if !call.done || call.err != nil {
				t.Fatalf("r1's Lock: done %v, err %v; want granted", call.done, call.err)
			}
			if diff := cmp.Diff([]int{1}, n.holders("x")); diff != "" {
				t.Errorf("holders at the end (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRestartWithdrawsOldClaims restarts a replica that held a lock: the
// new run starts with an empty table under the same id, hears of its old
// claim from the others, and withdraws it, so the next in line need not
// wait for the old lease to run out.
func TestRestartWithdrawsOldClaims(t *testing.T) {
	n := newRuleNet(t, 2, nil, nil)
	n.claim(0, "x", false)
	n.claim(1, "x", false)
	n.settle()
	n.down[0] = true // crashed
	n.now = n.now.Add(10 * time.Millisecond)
	n.restart(0)
	n.settle() // no time passes: nobody's lease runs out
	if diff := cmp.Diff([]int{1}, n.holders("x")); diff != "" {
		t.Errorf("after r0's restart: holders (-want +got):\n%s", diff)
	}
}

// TestHistory checks what a newcomer is sent: standing claims with their
// latest renewal, releases until their lease is over, the latest ack of
// each replica (here only r1 has acknowledged anything: r0's claims).
func TestHistory(t *testing.T) {
	n := newRuleNet(t, 2, nil, nil)
	n.claim(0, "x", false)
	n.claim(0, "y", false)
	n.settle()
	n.advance(100*time.Millisecond, 5) // renewals
	if err := n.unlock(0, "y"); err != nil {
		t.Fatal(err)
	}
	n.settle()
	r1 := n.peers[1]
	if diff := cmp.Diff(map[kind]int{kindClaim: 1, kindRenew: 1, kindRelease: 1, kindAck: 1}, kinds(t, r1.rule.history(nil))); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
	if err := n.unlock(0, "x"); err != nil {
		t.Fatal(err)
	}
	n.advance(100*time.Millisecond, 25)
	if diff := cmp.Diff(map[kind]int{kindAck: 1}, kinds(t, r1.rule.history(nil))); diff != "" {
		t.Errorf("history once the leases are over (-want +got):\n%s", diff)
	}
	h := r1.rule.history(nil)
	if !slices.IsSortedFunc(h, scuttlebutt.Compare) {
		t.Errorf("history not in (Timestamp, Source) order: %v", h)
	}
	if got := r1.rule.history(r1.clock); len(got) != 0 {
		t.Errorf("history(own clock) = %v, want nothing", got)
	}
}
