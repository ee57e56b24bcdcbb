package model

import (
	"math"
	"time"

	"github.com/scuttle-go/scuttle/vclock"
)

// This file holds the two rules every replica computes from the updates of
// a key alone, without I/O, locks or clocks: which updates of a key are
// kept at all (dominates), and, among those, which are void under the
// lease rule and which one decides the key's value (decide). The package
// doc states both in plain words; here they are exact.
//
// # Terms
//
// Every update u of a key has a timestamp ts and a source; r(u) is its
// replica, scuttlebutt.ReplicaID(source), so that every start of a replica
// counts as the same owner. From its options (see options):
//
//   - claim c(u): "since" if given and earlier than ts, else ts. A write
//     that continues a holding names the claim of the holding; a write
//     that starts one claims its own timestamp.
//   - window W(u) = [c(u), until(u)), until(u) = ts + lease, the lease
//     being the smaller of "lease" and "ttl" (a value cannot be owned
//     longer than it lives), 0 if neither.
//   - u is a streak member (it belongs to a holding) if its lease is
//     positive or c(u) < ts. A write with neither is plain: it owns
//     nothing, W(u) is empty. Members with the same replica and claim form
//     one holding (a streak); its head is its latest member in (ts,
//     source) order, the LWW order.
//   - claim order: (c, replica) ascending, where replicas compare as
//     id+"~" (which is how their sources compare, for ids without "~"): an
//     earlier claim goes first; at equal claims the smaller id does, as the
//     update earlier in (timestamp, source) order; at equal claims of one
//     replica (two of its starts writing at one timestamp), a streak
//     member goes before a plain write.
//   - expD(u): when u stops counting for good: ts + ttl for an update with
//     a ttl that vanishes when it runs out (no "tomb"), +Inf otherwise.
//
// # Which updates a key keeps
//
// An update x is dominated by an update y of the same key (y dominates
// x) when x < y in LWW order, expD(x) <= expD(y), and one of:
//
//	(b) x is plain;
//	(s) x and y are members of the same streak and until(y) >= until(x);
//	(p) ts(y) >= until(x) + MaxLease.
//
// A key keeps exactly its updates that no other update of it dominates
// (those that are alive: an update with a vanishing ttl leaves at its
// expiry). History returns what every key keeps.
//
// Why this converges. "Dominates" is decided by x and y alone, it is
// irreflexive, and it is transitive (every pair of cases composes: (b)
// with anything is (b); (s) with (s) is (s); (s) or (p) followed by (p), or
// (p) followed by (s) or (b), is (p), since until(y) >= ts(y) and ts only
// grows along the LWW order; a plain y cannot be in a streak, so (s)
// followed by (b) does not arise). So the kept updates are the maximal
// elements of a strict partial order, and for finite sets max(A ∪ B) =
// max(max(A) ∪ max(B)): a replica that drops a dominated update, and sends
// only what it keeps, reaches the same kept set as one that saw every
// update, whatever the order and whatever History left out. Expiry keeps
// this: if y dominates x, expD(x) <= expD(y), so x is gone whenever y is.
// The base never applies an update twice (its clock covers it), so a
// dropped update does not come back. Every replica then computes the value
// from the same kept set with decide, and agrees. This is the sense in
// which History leaves out only updates that a retained one makes
// irrelevant on every replica (see scuttlebutt.Replica).
//
// Why it is also exact. Convergence needs only the above; that dropping
// an update under (b) or (s) never changes the value, compared with
// deciding over every update ever made, follows from two lemmas
// (TestRetentionIsExact checks them on random update sets):
//
//   - Lemma 1 (s): if y is void, so is x. A head v that voids y has
//     claim(v) < claim(y) = claim(x) and c(v) <= c(x) <= ts(x) <= ts(y) <
//     until(v), so ts(x) is in W(v) and v voids x. Hence x is never the
//     latest non-void update while y is kept, x is not a head (y is, or a
//     later member), and only heads void anything.
//   - Lemma 2 (b): if x is not void, some update later than x is not
//     void. If y is void, let v be a non-void head that voids it; if v is
//     later than x we are done. Otherwise ts(v) <= ts(x), and W(v)
//     contains ts(x) (c(v) <= ts(v) <= ts(x) <= ts(y) < until(v)); c(x) =
//     ts(x), so claim(v) < claim(x) unless c(v) = ts(x) = ts(v), where v
//     before x in LWW order means the smaller source: the smaller replica
//     (for ids without "~"), or the same replica, whose streak member v
//     goes before the plain x; again claim(v) < claim(x), and v voids x. A
//     plain x is no head, voids nothing, and is not the latest non-void
//     update. (With ids that contain "~", claim order and source order may
//     disagree at equal timestamps, and this case may decide otherwise
//     than over every update; replicas still agree.)
//
// Dropping under (p) is where exactness gives way to bounded memory:
// every holding would otherwise be kept forever, because a write made
// during it by a replica that did not know of it (across a partition)
// must stay void, and may arrive at any time. A record is dropped once a
// write of the key at least MaxLease after its window exists. A racing
// write that then counts again has a window that ends before that later
// write (its lease is at most MaxLease), and a head that voids the later
// write lies after the racing write, so a single racing write changes
// nothing visible; only a chain of several racing writes, each inside the
// previous one's lease, spanning more than MaxLease, can be decided
// otherwise than over every update. Replicas still agree on it.
//
// # The lease rule
//
// Among the kept updates of a key, a head h is void if a non-void head g
// earlier in claim order has ts(h) in W(g); an update that is not a head
// is void if a non-void head g earlier in claim order than it has its ts
// in W(g). (This is well founded: whether an update is void depends only
// on heads earlier in claim order.) The key's value is that of its latest
// non-void update in LWW order: absent if that is a tombstone, or an
// update with "tomb" whose ttl has run out.
//
// This is the rule of the package doc, "in (timestamp, source) order, a
// write of another replica is void while an earlier valid write's lease
// covers its timestamp", with one refinement that makes a holding's
// latest write stand for all of it: the windows of a holding are one
// window from its claim, so that its earlier writes can be dropped (Lemma
// 1). A replica's writes with different claims are different holdings:
// a restarted replica that continues its holding names its claim (see
// plan); one that does not know of it (no log) starts another, which waits
// for the first to run out like anyone else's.

// maxLeaseMs is MaxLease in milliseconds.
const maxLeaseMs = vclock.Timestamp(MaxLease / time.Millisecond)

// never is the expiry of an update that does not vanish.
var never = vclock.Timestamp(math.Inf(1))

// fact is what the rules need of one update of a key.
type fact struct {
	ts     vclock.Timestamp
	source string
	rid    string           // scuttlebutt.ReplicaID(source)
	claim  vclock.Timestamp // c
	until  vclock.Timestamp // end of the window
	streak bool             // a member of a holding
	expD   vclock.Timestamp // when it stops counting for good, or never
}

// newFact returns the fact of an update stamped ts by source (of replica
// rid) with options o.
func newFact(ts vclock.Timestamp, source, rid string, o options) fact {
	f := fact{ts: ts, source: source, rid: rid, claim: ts, until: ts, expD: never}
	if o.since != 0 && o.since < ts {
		f.claim = o.since
	}
	lease := o.lease
	if o.ttl != 0 && o.ttl < lease {
		lease = o.ttl
	}
	f.until = ts + vclock.Timestamp(lease)
	f.streak = lease > 0 || f.claim < ts
	f.expD = expiryOf(ts, o)
	return f
}

// expiryOf returns expD of an update stamped ts with options o.
func expiryOf(ts vclock.Timestamp, o options) vclock.Timestamp {
	if o.ttl != 0 && !o.tomb {
		return ts + vclock.Timestamp(o.ttl)
	}
	return never
}

// lwwLess orders updates by (Timestamp, Source), as scuttlebutt.Update.Less
// does.
func lwwLess(a, b *fact) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	return a.source < b.source
}

// claimLess reports whether a's claim goes before b's: the earlier claim,
// or at equal claims the smaller replica, compared as id+"~", or at equal
// claims of one replica a member of a holding before a plain write.
func claimLess(a, b *fact) bool {
	if a.claim != b.claim {
		return a.claim < b.claim
	}
	if a.rid != b.rid {
		return ridLess(a.rid, b.rid)
	}
	return a.streak && !b.streak
}

// ridLess compares replica ids as id+"~" would compare, without building
// the strings: for ids without "~", this is the order of their sources.
func ridLess(a, b string) bool {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	switch {
	case len(a) == len(b):
		return false
	case len(a) < len(b):
		return '~' < b[n]
	default:
		return a[n] < '~'
	}
}

// sameStreak reports whether a and b belong to one holding.
func sameStreak(a, b *fact) bool {
	return a.streak && b.streak && a.rid == b.rid && a.claim == b.claim
}

// covers reports whether g's window holds ts.
func (g *fact) covers(ts vclock.Timestamp) bool { return g.claim <= ts && ts < g.until }

// dominates reports whether y dominates x: x need not be kept while y is.
func dominates(y, x *fact) bool {
	if !lwwLess(x, y) || x.expD > y.expD {
		return false
	}
	return !x.streak || (sameStreak(x, y) && y.until >= x.until) || y.ts >= x.until+maxLeaseMs
}

// decide applies the lease rule to the kept updates of one key (at least
// one) and returns the index of the one that decides its value. void and
// head, if not nil, must have len(fs) elements and receive the details.
func decide(fs []fact, void, head []bool) (winner int) {
	n := len(fs)
	if n == 1 {
		if void != nil {
			void[0] = false
			head[0] = fs[0].streak
		}
		return 0
	}
	var vb, hb [8]bool
	if void == nil {
		if n <= len(vb) {
			void, head = vb[:n], hb[:n]
		} else {
			void, head = make([]bool, n), make([]bool, n)
		}
	}
	var ob [8]int
	order := ob[:0] // the heads, in claim order
	for i := range fs {
		void[i] = false
		head[i] = fs[i].streak
		if !head[i] {
			continue
		}
		for j := range fs {
			if j != i && sameStreak(&fs[i], &fs[j]) && lwwLess(&fs[i], &fs[j]) {
				head[i] = false
				break
			}
		}
		if head[i] {
			k := len(order)
			order = append(order, i)
			for k > 0 && claimLess(&fs[i], &fs[order[k-1]]) {
				order[k] = order[k-1]
				k--
			}
			order[k] = i
		}
	}
	for k, h := range order {
		for _, g := range order[:k] {
			if !void[g] && fs[g].covers(fs[h].ts) { // g is earlier in claim order
				void[h] = true
				break
			}
		}
	}
	for i := range fs {
		if head[i] {
			continue
		}
		for _, g := range order {
			if !void[g] && claimLess(&fs[g], &fs[i]) && fs[g].covers(fs[i].ts) {
				void[i] = true
				break
			}
		}
	}
	winner = -1
	for i := range fs {
		if !void[i] && (winner < 0 || lwwLess(&fs[winner], &fs[i])) {
			winner = i
		}
	}
	return winner
}
