package lock

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// These tests drive tables by hand (links stepped in the test, time moved
// by hand, each table's step called by the test), so every schedule is
// exactly reproducible.

func TestGrantInLineOrder(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	a := c.claim(0, "x", false)
	c.settle()
	b := c.claim(1, "x", false)
	c.settle()
	if got := []state{c.state(0, a), c.state(1, b)}; !slices.Equal(got, []state{held, waiting}) {
		t.Fatalf("after r0 then r1 claim: states %v, want [held waiting]", got)
	}
	if diff := cmp.Diff([]int{0}, c.holders("x")); diff != "" {
		t.Errorf("holders (-want +got):\n%s", diff)
	}
	for i, want := range []string{"r0", "r0", "r0"} {
		if got, _ := c.tabs[i].Holder("x"); got != want {
			t.Errorf("r%d: Holder(x) = %q, want %q", i, got, want)
		}
	}
	if err := c.tabs[0].Unlock("x"); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if got := []state{c.state(0, a), c.state(1, b)}; !slices.Equal(got, []state{released, held}) {
		t.Fatalf("after r0 unlocks: states %v, want [released held]", got)
	}
	if err := c.tabs[0].Unlock("x"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("second Unlock by r0 = %v, want ErrNotOwner", err)
	}
	if err := c.tabs[2].Unlock("x"); !errors.Is(err, ErrNotOwner) {
		t.Errorf("Unlock by r2, which never locked = %v, want ErrNotOwner", err)
	}
}

// TestConcurrentClaims makes claims on every replica before any is
// exchanged: exactly the first in (timestamp, owner) order is granted, and
// the others follow one at a time.
func TestConcurrentClaims(t *testing.T) {
	c := newCluster(t, 4, nil, nil)
	var ocs []*ownClaim
	for i := range 4 {
		ocs = append(ocs, c.claim(3-i, "x", false)) // same clock: ties go by owner
	}
	for want := range 4 {
		c.settle()
		if diff := cmp.Diff([]int{want}, c.holders("x")); diff != "" {
			t.Fatalf("round %d: holders (-want +got):\n%s", want, diff)
		}
		if err := c.tabs[want].Unlock("x"); err != nil {
			t.Fatal(err)
		}
	}
	_ = ocs
}

// TestPartitionWaits cuts one replica off: nobody is granted anything until
// it is back, however long the others wait.
func TestPartitionWaits(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.cut[2] = true
	oc := c.claim(0, "x", false)
	c.advance(50*time.Millisecond, 60) // three leases
	if len(c.holders("x")) != 0 {
		t.Fatalf("granted during a partition: holders %v", c.holders("x"))
	}
	if st := c.state(0, oc); st != expired {
		t.Errorf("r0's claim is %v after three leases, want expired", st)
	}
	errc := c.lock(1, "x")
	c.advance(50*time.Millisecond, 60)
	if len(c.holders("x")) != 0 {
		t.Fatalf("granted during a partition: holders %v", c.holders("x"))
	}
	c.cut[2] = false
	c.settleUntil("r1 granted after the heal", 20*time.Millisecond, testCfg.Lease, func() bool { return len(c.holders("x")) > 0 })
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1}, c.holders("x")); diff != "" {
		t.Errorf("after the heal: holders (-want +got):\n%s", diff)
	}
}

// TestHolderCutOffLosesLease cuts the holder off: its renewals go
// unacknowledged, it learns it lost the lock before its deadline passes,
// and none of the others can be granted it in between.
func TestHolderCutOffLosesLease(t *testing.T) {
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
	c.cut[0] = true
	errc := c.lock(1, "x")
	for c.clk.now().Before(dl.Add(2 * testCfg.Lease)) {
		c.advance(20*time.Millisecond, 1)
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
	c.cut[0] = false
	c.settleUntil("r1 granted after the heal", 20*time.Millisecond, testCfg.Lease, func() bool { return len(c.holders("x")) > 0 })
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1}, c.holders("x")); diff != "" {
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
	c := newCluster(t, 3, nil, nil)
	c.claim(0, "x", false)
	c.settle()
	errc := c.lock(1, "x")
	waitUntil(t, "r1's claim", func() bool {
		c.tabs[1].mu.Lock()
		defer c.tabs[1].mu.Unlock()
		oc := c.tabs[1].rule.own["x"]
		return oc != nil && oc.c != nil
	})
	c.settle() // r1 has r0's acknowledgement, and waits behind r0's claim
	c.mute[0] = true
	for range 300 {
		c.advance(10*time.Millisecond, 1)
		if h := c.holders("x"); len(h) > 1 {
			t.Fatalf("at %v: holders %v", c.clk.now(), h)
		}
		time.Sleep(100 * time.Microsecond) // let Lock claim again
	}
	if _, ok := c.tabs[0].Deadline("x"); ok {
		t.Error("r0 still holds x after three leases of unacknowledged renewals")
	}
	c.mute[0] = false
	c.settleUntil("r1 granted", 10*time.Millisecond, testCfg.Lease, func() bool { return slices.Equal(c.holders("x"), []int{1}) })
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestRenewalKeepsHold holds a lock for many leases: renewals keep it.
func TestRenewalKeepsHold(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.claim(0, "x", false)
	c.settle()
	first, _ := c.tabs[0].Deadline("x")
	c.advance(50*time.Millisecond, 100) // five leases
	last, ok := c.tabs[0].Deadline("x")
	if !ok || !last.After(first.Add(4*testCfg.Lease)) {
		t.Errorf("after five leases: Deadline = %v, %v; want held, after %v", last, ok, first.Add(4*testCfg.Lease))
	}
}

// TestCrashedHolder crashes the holder: the others wait for its lease to
// end and, once it is removed from Members, are granted the lock, not
// before its lease has ended.
func TestCrashedHolder(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.claim(0, "x", false)
	c.settle()
	dl, _ := c.tabs[0].Deadline("x")
	end := dl.Add(testCfg.Margin) // when the others consider the claim over
	c.down[0] = true
	c.claim(1, "x", false)
	c.advance(20*time.Millisecond, 5)
	for i := 1; i < 3; i++ {
		if err := c.tabs[i].SetMembers([]string{"r1", "r2"}); err != nil {
			t.Fatal(err)
		}
	}
	for len(c.holders("x")) == 0 {
		if c.clk.now().After(end.Add(2 * testCfg.Lease)) {
			t.Fatalf("r1 not granted %v after the crashed holder's lease", 2*testCfg.Lease)
		}
		c.advance(10*time.Millisecond, 1)
	}
	if now := c.clk.now(); now.Before(end) {
		t.Errorf("r1 granted at %v, before the crashed holder's lease ended at %v", now, end)
	}
	if diff := cmp.Diff([]int{1}, c.holders("x")); diff != "" {
		t.Errorf("holders (-want +got):\n%s", diff)
	}
}

// TestRemovedMemberNoLongerBlocks crashes a replica that holds nothing:
// claims wait for its acknowledgement until it is removed.
func TestRemovedMemberNoLongerBlocks(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.down[2] = true
	c.claim(0, "x", false)
	c.advance(50*time.Millisecond, 5)
	if h := c.holders("x"); len(h) != 0 {
		t.Fatalf("granted without r2's acknowledgement: %v", h)
	}
	if err := c.tabs[0].SetMembers([]string{"r0", "r1"}); err != nil {
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

func TestSemaphore(t *testing.T) {
	c := newCluster(t, 4, nil, func(cfg *Config) { cfg.Limits = map[string]int{"sem": 2} })
	for i := range 4 {
		c.claim(i, "sem", false)
		c.settle()
	}
	if diff := cmp.Diff([]int{0, 1}, c.holders("sem")); diff != "" {
		t.Fatalf("holders (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"r0", "r1"}, c.tabs[3].Holders("sem")); diff != "" {
		t.Errorf("Holders seen from r3 (-want +got):\n%s", diff)
	}
	if err := c.tabs[1].Unlock("sem"); err != nil {
		t.Fatal(err)
	}
	c.settle()
	if diff := cmp.Diff([]int{0, 2}, c.holders("sem")); diff != "" {
		t.Fatalf("after r1 unlocks: holders (-want +got):\n%s", diff)
	}
	// "x" is still a mutex.
	c.claim(0, "x", false)
	c.claim(1, "x", false)
	c.settle()
	if diff := cmp.Diff([]int{0}, c.holders("x")); diff != "" {
		t.Errorf("mutex x: holders (-want +got):\n%s", diff)
	}
}

// TestTryLock fails at once when another replica holds the lock, fails
// when an earlier claim comes to light while it waits, and succeeds
// otherwise.
func TestTryLock(t *testing.T) {
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

	// An earlier claim that was not yet known: r2's try claim is behind
	// r1's, which arrives while r2 waits for acknowledgements.
	c.cut[1] = true
	c.claim(1, "y", false)
	c.clk.add(time.Millisecond)
	try := c.claim(2, "y", true)
	c.cut[1] = false
	c.settle()
	if st := c.state(2, try); st != failed {
		t.Errorf("r2's TryLock claim behind r1's: %v, want failed", st)
	}
	if diff := cmp.Diff([]int{1}, c.holders("y")); diff != "" {
		t.Errorf("holders of y (-want +got):\n%s", diff)
	}

	// A free lock: TryLock waits for the acknowledgements, then holds.
	errc := make(chan error, 1)
	go func() { errc <- c.tabs[2].TryLock(context.Background(), "z") }()
	waitUntil(t, "r2's claim on z", func() bool {
		c.tabs[2].mu.Lock()
		defer c.tabs[2].mu.Unlock()
		oc := c.tabs[2].rule.own["z"]
		return oc != nil && oc.c != nil
	})
	c.settle()
	if err := <-errc; err != nil {
		t.Errorf("TryLock of a free lock = %v", err)
	}
	if err := c.tabs[2].Unlock("z"); err != nil {
		t.Errorf("Unlock after TryLock: %v", err)
	}
}

// TestLockCancelled gives up waiting: the claim is withdrawn and the next
// in line is granted.
func TestLockCancelled(t *testing.T) {
	c := newCluster(t, 3, nil, nil)
	c.claim(0, "x", false)
	c.settle()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- c.tabs[1].Lock(ctx, "x") }()
	waitUntil(t, "r1's claim", func() bool {
		c.tabs[1].mu.Lock()
		defer c.tabs[1].mu.Unlock()
		oc := c.tabs[1].rule.own["x"]
		return oc != nil && oc.c != nil
	})
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

// TestClockSkew runs a holder whose clock is behind the others' by just
// under the margin and cuts it off: it stops holding before any other
// replica is granted, in true time.
func TestClockSkew(t *testing.T) {
	skew := testCfg.Margin - 5*time.Millisecond
	tests := []struct {
		name    string
		offsets []time.Duration
	}{
		{"holder slow", []time.Duration{-skew, 0, 0}},
		{"others fast", []time.Duration{0, skew, skew / 2}},
		{"holder fast", []time.Duration{skew, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, 3, tc.offsets, nil)
			c.claim(0, "x", false)
			c.settle()
			errc := c.lock(1, "x")
			c.advance(10*time.Millisecond, 30)
			c.cut[0] = true
			for range 300 {
				c.advance(5*time.Millisecond, 1)
				time.Sleep(100 * time.Microsecond) // let Lock claim again
				if h := c.holders("x"); len(h) > 1 {
					t.Fatalf("at %v: holders %v", c.clk.now(), h)
				}
				// r1 cannot be granted while r0 is cut off (no acks); let
				// it be by removing r0 once r0 has lost the lock.
				if _, ok := c.tabs[0].Deadline("x"); !ok {
					for i := 1; i < 3; i++ {
						c.tabs[i].SetMembers([]string{"r1", "r2"})
					}
				}
			}
			c.settleUntil("r1 granted", 5*time.Millisecond, testCfg.Lease, func() bool { return len(c.holders("x")) > 0 })
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]int{1}, c.holders("x")); diff != "" {
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
	c := newCluster(t, 2, nil, nil)
	c.claim(0, "x", false)
	c.claim(1, "x", false)
	c.settle()
	c.down[0] = true // crashed
	c.clk.add(10 * time.Millisecond)

	cfg := testCfg
	cfg.Members = []string{"r0", "r1"}
	cfg.Now = func() time.Time { return c.clk.now() }
	r0, err := New("r0", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	r0.stopRun()
	t.Cleanup(func() { r0.Close() })
	c.tabs = append(c.tabs, r0)
	c.links[[2]int{1, 2}] = &pairLink{a: c.tabs[1].NewLink(nil), b: r0.NewLink(nil)}
	c.settle() // no time passes: nobody's lease runs out
	if diff := cmp.Diff([]int{1}, c.holders("x")); diff != "" {
		t.Errorf("after r0's restart: holders (-want +got):\n%s", diff)
	}
}

// TestHistory checks what a newcomer is sent: standing claims with their
// latest renewal, releases until their lease is over, the latest ack of
// each replica (here only r1 has acknowledged anything: r0's claims).
func TestHistory(t *testing.T) {
	c := newCluster(t, 2, nil, nil)
	c.claim(0, "x", false)
	c.claim(0, "y", false)
	c.settle()
	c.advance(100*time.Millisecond, 5) // renewals
	if err := c.tabs[0].Unlock("y"); err != nil {
		t.Fatal(err)
	}
	c.settle()
	kinds := func() map[kind]int {
		n := map[kind]int{}
		for _, u := range c.tabs[1].History(nil) {
			o, err := decodeOp(u.Data)
			if err != nil {
				t.Fatal(err)
			}
			n[o.kind]++
		}
		return n
	}
	if diff := cmp.Diff(map[kind]int{kindClaim: 1, kindRenew: 1, kindRelease: 1, kindAck: 1}, kinds()); diff != "" {
		t.Errorf("History (-want +got):\n%s", diff)
	}
	if err := c.tabs[0].Unlock("x"); err != nil {
		t.Fatal(err)
	}
	c.advance(100*time.Millisecond, 25)
	if diff := cmp.Diff(map[kind]int{kindAck: 1}, kinds()); diff != "" {
		t.Errorf("History once the leases are over (-want +got):\n%s", diff)
	}
	h := c.tabs[1].History(nil)
	if !slices.IsSortedFunc(h, scuttlebutt.Compare) {
		t.Errorf("History not in (Timestamp, Source) order: %v", h)
	}
	if got := c.tabs[1].History(c.tabs[1].Clock()); len(got) != 0 {
		t.Errorf("History(own clock) = %v, want nothing", got)
	}
}

func TestValidateUpdate(t *testing.T) {
	enc := func(v any) []byte {
		b, err := opEnc.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"claim", enc([]any{1, "x", 1000.0}), true},
		{"renew", enc([]any{2, "x", 1.7e12, 1000.0}), true},
		{"release", enc([]any{3, "x", 1.7e12}), true},
		{"ack", enc([]any{4, map[string]float64{"a": 1.7e12}}), true},
		{"empty ack", enc([]any{4, map[string]float64{}}), true},
		{"not an array", enc("x"), false},
		{"empty", enc([]any{}), false},
		{"unknown kind", enc([]any{9, "x"}), false},
		{"claim without lease", enc([]any{1, "x"}), false},
		{"claim with zero lease", enc([]any{1, "x", 0.0}), false},
		{"claim with negative lease", enc([]any{1, "x", -5.0}), false},
		{"claim with a year's lease", enc([]any{1, "x", 365 * 24 * 3600e3}), false},
		{"claim with name not a string", enc([]any{1, 5, 1000.0}), false},
		{"renew with zero claim", enc([]any{2, "x", 0.0, 1000.0}), false},
		{"release with extra", enc([]any{3, "x", 1.7e12, 1}), false},
		{"ack with bad id", enc([]any{4, map[string]float64{"": 1}}), false},
		{"ack with negative stamp", enc([]any{4, map[string]float64{"a": -1}}), false},
		{"ack not a map", enc([]any{4, "x"}), false},
		{"kind not a number", enc([]any{"claim", "x", 1000.0}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := replica{}.ValidateUpdate(scuttlebutt.Update{Source: "p", Timestamp: 1, Data: tc.data})
			if (err == nil) != tc.ok {
				t.Errorf("ValidateUpdate(% x) = %v, want ok %v", tc.data, err, tc.ok)
			}
		})
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	tests := []op{
		{kind: kindClaim, name: "x", lease: 1500},
		{kind: kindRenew, name: "ünï", claim: 1.7e12 + 0.25, lease: 10000},
		{kind: kindRelease, name: "", claim: 1.7e12},
		{kind: kindAck, clock: vclock.Clock{"a": 1.7e12, "b": 1.7e12 + 1.0/1024}},
	}
	for _, o := range tests {
		t.Run(fmtKind(o.kind), func(t *testing.T) {
			b, err := o.encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeOp(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(o, got, cmp.AllowUnexported(op{})); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func fmtKind(k kind) string {
	return map[kind]string{kindClaim: "claim", kindRenew: "renew", kindRelease: "release", kindAck: "ack"}[k]
}

func TestConfig(t *testing.T) {
	m := []string{"a", "b"}
	tests := []struct {
		name string
		cfg  *Config
		ok   bool
	}{
		{"members only", &Config{Members: m}, true},
		{"nil", nil, false},
		{"no members", &Config{}, false},
		{"self missing", &Config{Members: []string{"b"}}, false},
		{"bad member id", &Config{Members: []string{"a", ""}}, false},
		{"negative lease", &Config{Members: m, Lease: -1}, false},
		{"lease over a day", &Config{Members: m, Lease: 25 * time.Hour}, false},
		{"margin half the lease", &Config{Members: m, Lease: time.Second, Margin: 500 * time.Millisecond}, false},
		{"renew past lease - margin", &Config{Members: m, Lease: time.Second, Margin: 100 * time.Millisecond, Renew: 950 * time.Millisecond}, false},
		{"negative limit", &Config{Members: m, Limit: -1}, false},
		{"zero in limits", &Config{Members: m, Limits: map[string]int{"x": 0}}, false},
		{"semaphore", &Config{Members: m, Limit: 3, Limits: map[string]int{"x": 1}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := New("a", tc.cfg)
			if tc.ok != (err == nil) {
				t.Fatalf("New(%+v) = %v, want ok %v", tc.cfg, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New(%+v) = %v, want ErrInvalidConfig", tc.cfg, err)
			}
			if tab != nil {
				tab.Close()
			}
		})
	}
	if _, err := New("", &Config{Members: []string{""}}); !errors.Is(err, scuttlebutt.ErrInvalidID) {
		t.Errorf("New(\"\") = %v, want ErrInvalidID", err)
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
