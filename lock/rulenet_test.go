package lock

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// ruleNet is a deterministic network of rules, the values that decide
// everything about the locks, without a Table, a goroutine or a stream.
// The replicated base is replaced by a few lines: each peer stamps its
// updates with a hybrid logical clock on its own wall clock (true time
// plus its skew), applies them to its rule, and keeps every update it
// applied in a log; pump hands each peer, in order, what the peers it is
// linked to have applied and it lacks, and each peer acknowledges foreign
// claims and renewals as a Table does. True time moves only when the test
// moves it, and Lock calls are emulated (lock), so a test is a function of
// its inputs.
type ruleNet struct {
	t     *testing.T
	now   time.Time // true time
	peers []*rulePeer
	read  map[[2]int]int // [to, from]: how much of from's log to has gone through
	cut   map[int]bool   // peers cut off from everyone
	mute  map[int]bool   // peers whose updates reach nobody (a one-way cut)
	down  map[int]bool   // crashed peers: not stepped, not linked
	incs  int            // incarnations started, for fresh sources
}

// rulePeer is one replica of a ruleNet: a rule, and what the base and the
// Table keep around it.
type rulePeer struct {
	id, source string
	cfg        Config // with the defaults; Now unused
	skew       time.Duration
	rule       *rule
	hlc        *vclock.HLC
	clock      vclock.Clock         // per source, the latest update applied
	log        []scuttlebutt.Update // every update applied, in order
	ackDue     bool
	calls      map[*ownClaim]*lockCall // the Lock calls waiting on claims
	lost       []string                // the holds lost: what OnLost is called with
	// quiet is the deadline the rule's last step returned, if that step did
	// nothing and no input reached the rule since; zero otherwise. Until
	// then, the rule must have nothing to do.
	quiet time.Time
}

// lockCall is an emulated Lock or TryLock call: it claims, and claims
// again whenever its claim expires while it waits, until the claim is
// granted (err nil) or fails (ErrLocked), or the test cancels it.
type lockCall struct {
	name   string
	try    bool
	oc     *ownClaim // the latest claim
	claims int       // how many claims it made
	done   bool
	err    error
}

// newRuleNet makes n peers r0..r{n-1}, all members of each other, with
// testCfg, the given clock skews (nil for none) and config overrides, and
// settles them.
func newRuleNet(t *testing.T, n int, skews []time.Duration, tweak func(*Config)) *ruleNet {
	t.Helper()
	net := &ruleNet{
		t:    t,
		now:  time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC),
		read: make(map[[2]int]int),
		cut:  make(map[int]bool),
		mute: make(map[int]bool),
		down: make(map[int]bool),
	}
	var members []string
	for i := range n {
		members = append(members, fmt.Sprintf("r%d", i))
	}
	for i, id := range members {
		cfg := testCfg
		cfg.Members = members
		if tweak != nil {
			tweak(&cfg)
		}
		c, err := cfg.withDefaults(id)
		if err != nil {
			t.Fatal(err)
		}
		var skew time.Duration
		if skews != nil {
			skew = skews[i]
		}
		net.peers = append(net.peers, nil)
		net.start(i, id, c, skew)
	}
	net.settle()
	return net
}

// start makes peer i a fresh start of replica id: an empty rule with a new
// source, linked to every peer, having read nothing.
func (n *ruleNet) start(i int, id string, cfg Config, skew time.Duration) {
	n.incs++
	p := &rulePeer{
		id:     id,
		source: scuttlebutt.SourceID(id, fmt.Sprint(n.incs)),
		cfg:    cfg,
		skew:   skew,
		clock:  vclock.Clock{},
		calls:  make(map[*ownClaim]*lockCall),
	}
	p.hlc = vclock.NewHLC(func() time.Time { return n.wall(p) })
	p.rule = newRule(id, p.source, &cfg)
	n.peers[i] = p
	for k := range n.read {
		if k[0] == i || k[1] == i {
			delete(n.read, k)
		}
	}
}

// restart crashes peer i, if it is up, and starts it again empty under the
// same id, as a replica restarted without a log.
func (n *ruleNet) restart(i int) {
	p := n.peers[i]
	n.start(i, p.id, p.cfg, p.skew)
	n.down[i] = false
}

// wall is p's wall clock: true time plus its skew.
func (n *ruleNet) wall(p *rulePeer) time.Time { return n.now.Add(p.skew) }

// write stamps o as peer i's update and applies it, as LocalUpdate does.
func (n *ruleNet) write(i int, o op) scuttlebutt.Update {
	n.t.Helper()
	p := n.peers[i]
	data, err := o.encode()
	if err != nil {
		n.t.Fatalf("r%d: encode %+v: %v", i, o, err)
	}
	u := scuttlebutt.Update{Source: p.source, Timestamp: p.hlc.Now(), Data: data}
	n.apply(i, u)
	return u
}

// apply applies u to peer i, as the base does with a local update or one
// from a peer.
func (n *ruleNet) apply(i int, u scuttlebutt.Update) {
	n.t.Helper()
	p := n.peers[i]
	o, err := decodeOp(u.Data)
	if err != nil {
		n.t.Fatalf("r%d: %v: %v", i, u, err)
	}
	p.hlc.Observe(u.Timestamp)
	_, ack := p.rule.apply(u, o, n.wall(p))
	p.ackDue = p.ackDue || ack
	p.clock[u.Source] = u.Timestamp
	p.log = append(p.log, u)
	p.quiet = time.Time{}
}

// linked reports whether peer from's updates reach peer to.
func (n *ruleNet) linked(from, to int) bool {
	return from != to && !n.cut[from] && !n.cut[to] && !n.down[from] && !n.down[to] && !n.mute[from]
}

// pump hands every peer what its linked peers have applied and it lacks,
// acknowledging as it goes, until nothing moves. It reports whether
// anything did.
func (n *ruleNet) pump() (moved bool) {
	for again := true; again; {
		again = false
		for to := range n.peers {
			for from := range n.peers {
				if !n.linked(from, to) {
					continue
				}
				k := [2]int{to, from}
				for _, u := range n.peers[from].log[n.read[k]:] {
					if u.Timestamp > n.peers[to].clock[u.Source] {
						n.apply(to, u)
						again, moved = true, true
					}
				}
				n.read[k] = len(n.peers[from].log)
				if p := n.peers[to]; p.ackDue {
					p.ackDue = false
					n.write(to, op{kind: kindAck, clock: p.clock.Clone()})
				}
			}
		}
	}
	return moved
}

// step steps peer i's rule to its wall clock and carries out the actions,
// as the Table's goroutine does. It reports whether there were any.
func (n *ruleNet) step(i int) bool {
	n.t.Helper()
	p := n.peers[i]
	wall := n.wall(p)
	acts, next := p.rule.step(p.clock.Clone(), wall)
	// next is computed in float milliseconds: allow it a microsecond.
	if len(acts) > 0 && !p.quiet.IsZero() && wall.Before(p.quiet.Add(-time.Microsecond)) {
		n.t.Errorf("r%d at %v: %v, before the deadline %v its last step returned", i, wall, acts, p.quiet)
	}
	if next.Before(wall.Add(-time.Microsecond)) {
		n.t.Errorf("r%d at %v: step returned a deadline in the past, %v", i, wall, next)
	}
	n.do(i, acts)
	if len(acts) == 0 {
		p.quiet = next
	}
	return len(acts) > 0
}

// do carries out peer i's actions as the Table does, with the Lock calls
// emulated.
func (n *ruleNet) do(i int, acts []action) {
	p := n.peers[i]
	p.quiet = time.Time{}
	var again []*lockCall
	for _, a := range acts {
		switch a.kind {
		case actLose:
			p.lost = append(p.lost, a.oc.name)
		case actRenew:
			u := n.write(i, a.op)
			p.rule.renewed(a.oc, u.Timestamp)
		case actRelease, actWithdraw:
			n.write(i, a.op)
		}
		call := p.calls[a.oc]
		if call == nil {
			continue
		}
		switch a.kind {
		case actGrant:
			call.done = true
		case actFail:
			call.done, call.err = true, ErrLocked
		case actExpire:
			again = append(again, call)
		default:
			continue // a write, or a hold ending after the call returned
		}
		delete(p.calls, a.oc)
	}
	for _, call := range again {
		n.claimFor(i, call)
	}
}

// settle pumps and steps every peer that is up until nothing changes: the
// state reached with the clock standing still.
func (n *ruleNet) settle() {
	n.t.Helper()
	for range 100 {
		moved := n.pump()
		for i := range n.peers {
			if !n.down[i] && n.step(i) {
				moved = true
			}
		}
		if !moved {
			return
		}
	}
	n.t.Fatalf("at %v: not settled after 100 rounds", n.now)
}

// advance moves true time in steps of d, settling after each, k times.
func (n *ruleNet) advance(d time.Duration, k int) {
	n.t.Helper()
	for range k {
		n.now = n.now.Add(d)
		n.settle()
	}
}

// settleUntil moves true time in steps of d until cond holds, failing the
// test after limit of simulated time.
func (n *ruleNet) settleUntil(what string, d, limit time.Duration, cond func() bool) {
	n.t.Helper()
	end := n.now.Add(limit)
	for !cond() {
		if n.now.After(end) {
			n.t.Fatalf("%s: not after %v of simulated time", what, limit)
		}
		n.advance(d, 1)
	}
}

// claim makes peer i claim name, as Lock or TryLock (try) does, once: no
// claim again if it expires.
func (n *ruleNet) claim(i int, name string, try bool) *ownClaim {
	n.t.Helper()
	p := n.peers[i]
	oc, o := p.rule.claim(name, try)
	p.quiet = time.Time{}
	n.write(i, o)
	return oc
}

// lock starts an emulated Lock (or TryLock: try) call on peer i.
func (n *ruleNet) lock(i int, name string, try bool) *lockCall {
	n.t.Helper()
	call := &lockCall{name: name, try: try}
	n.claimFor(i, call)
	return call
}

// claimFor makes call's next claim.
func (n *ruleNet) claimFor(i int, call *lockCall) {
	n.t.Helper()
	call.oc = n.claim(i, call.name, call.try)
	call.claims++
	n.peers[i].calls[call.oc] = call
}

// cancel gives up call, as a Lock call whose context ends does.
func (n *ruleNet) cancel(i int, call *lockCall) {
	n.t.Helper()
	p := n.peers[i]
	call.done, call.err = true, context.Canceled
	delete(p.calls, call.oc)
	n.do(i, p.rule.cancel(call.oc))
}

// unlock makes peer i unlock name, as Table.Unlock does.
func (n *ruleNet) unlock(i int, name string) error {
	n.t.Helper()
	p := n.peers[i]
	acts, ok := p.rule.unlock(name, n.wall(p))
	if !ok {
		return fmt.Errorf("%w: %q", ErrNotOwner, name)
	}
	n.do(i, acts)
	return nil
}

// setMembers sets peer i's members.
func (n *ruleNet) setMembers(i int, ids ...string) {
	n.peers[i].rule.setMembers(ids)
	n.peers[i].quiet = time.Time{}
}

// deadline returns peer i's deadline on name, as Table.Deadline does.
func (n *ruleNet) deadline(i int, name string) (time.Time, bool) {
	p := n.peers[i]
	return p.rule.deadline(name, n.wall(p))
}

// holders returns which peers hold name by their own account: held, and
// the lease good by their own clock.
func (n *ruleNet) holders(name string) []int {
	var out []int
	for i := range n.peers {
		if _, ok := n.deadline(i, name); ok && !n.down[i] {
			out = append(out, i)
		}
	}
	return out
}

// seen returns who peer i sees holding name, as Table.Holders does.
func (n *ruleNet) seen(i int, name string) []string {
	p := n.peers[i]
	return p.rule.holders(name, n.wall(p))
}

// states returns the states of claims, in order.
func states(ocs ...*ownClaim) []state {
	var out []state
	for _, oc := range ocs {
		out = append(out, oc.state)
	}
	return out
}

// kinds counts the updates of each kind in us.
func kinds(t *testing.T, us []scuttlebutt.Update) map[kind]int {
	t.Helper()
	n := map[kind]int{}
	for _, u := range us {
		o, err := decodeOp(u.Data)
		if err != nil {
			t.Fatal(err)
		}
		n[o.kind]++
	}
	return n
}
