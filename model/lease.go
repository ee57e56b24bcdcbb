package model

import (
	"fmt"
	"math"
	"time"

	"github.com/scuttle-go/scuttle/vclock"
)

// plan returns the options of a local write of key (a tombstone if del,
// with ttl in ms or 0), or an error wrapping ErrLeased if another replica
// holds the key's lease. It reads the wall clock, and sweeps what is due,
// only where the options depend on them (see planPlain).
//
// The write's timestamp is not known before the base stamps it, so plan
// judges it at t0, the wall clock or the least timestamp after those the
// key holds, whichever is later: the stamp will be no earlier (the hybrid
// logical clock is at least the wall clock and later than every timestamp
// the replica has seen), and a claim at t0 goes after every claim the key
// holds, as the write's will. A lease that has run out at t0 has run out at the
// stamp; one that runs at t0 may run out before the stamp, and the write
// is then refused a moment early. An update that arrives between plan and
// the stamp may void the write: it is then void everywhere, as a write
// made across a partition.
//
// The options:
//
//   - lease: Config.Lease (not for a tombstone, which ends a holding).
//   - since: if this replica (by replica id, so any of its starts) holds
//     the key at t0 (the head of a holding of its own that is not void and
//     whose window holds t0), the claim of that holding: the write renews
//     it. Otherwise the write starts a holding of its own, at its stamp.
//   - tomb: for SetTTL, if the key keeps an update that would outlive the
//     write (a value without ttl, one with a later expiry, or a "tomb"
//     update): once the write runs out, the key then reads as deleted
//     rather than as that update's value.
func (m *Model) plan(key string, del bool, ttl uint64) (options, error) {
	if o, ok := m.planPlain(key, del, ttl); ok {
		return o, nil
	}
	wall := m.now()
	m.sweepDueAt(wall)
	return m.planAt(key, del, ttl, wall)
}

// planPlain is plan for the common writes that need neither the wall
// clock nor the lease rule: no lease to take (Config.Lease is zero, or the
// write is a tombstone), and key keeps at most one update, which belongs
// to no holding and either outlives the write whenever it is stamped (a
// value without ttl, or a "tomb" update: the write takes "tomb") or runs
// out no later than it (a TTL key refreshed with the same ttl, or Set over
// it). ok is false for the others, which planAt decides.
//
// It decides as planAt would after the sweep: what the sweep could drop
// is the key's single update with a ttl that has run out, which then runs
// out before the write and asks for no "tomb" either way.
func (m *Model) planPlain(key string, del bool, ttl uint64) (o options, ok bool) {
	if m.lease != 0 && !del {
		return options{}, false
	}
	o = options{ttl: ttl}
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.keys.get(key)
	if e == nil {
		return o, true
	}
	if len(m.more) > 0 && m.more[key] != nil {
		return o, false
	}
	if e.olen == 0 && ttl == 0 {
		return o, true
	}
	eo := e.opts()
	if eo.lease != 0 || (eo.since != 0 && eo.since < e.ts) {
		return o, false // a holding's: the lease rule decides
	}
	if ttl == 0 {
		return o, true
	}
	switch expD := expiryOf(e.ts, eo); {
	case expD == never:
		o.tomb = true
	case expD > next(e.ts)+vclock.Timestamp(ttl):
		return o, false // it may outlive the write: that depends on its stamp
	}
	return o, true
}

// planAt is plan at wall clock wall, with what was due by then swept.
func (m *Model) planAt(key string, del bool, ttl uint64, wall time.Time) (options, error) {
	o := options{ttl: ttl}
	if !del {
		o.lease = m.lease
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.keys.get(key)
	var members []*entry
	if len(m.more) > 0 {
		members = m.more[key]
	}
	if e == nil || (members == nil && e.olen == 0 && ttl == 0) {
		return o, nil // nothing kept, or one plain update: no holding, nothing to outlive
	}
	if members == nil && o.lease == 0 {
		// The common case of a presence key: one update, that holds
		// nothing. Nothing to refuse, and a refresh outlives it.
		if eo := e.opts(); eo.lease == 0 && (eo.since == 0 || eo.since >= e.ts) {
			if ttl != 0 && expiryOf(e.ts, eo) > max(vclock.FromTime(wall), next(e.ts))+vclock.Timestamp(ttl) {
				o.tomb = true
			}
			return o, nil
		}
	}
	var fb [4]fact
	var vb, hb [4]bool
	fs, void, head := judgeBuffers(max(len(members), 1), &fb, &vb, &hb)
	t0 := m.judge(e, members, fs, void, head, wall)
	own := -1
	for i := range fs {
		if head[i] && !void[i] && fs[i].rid == m.ID() && fs[i].covers(t0) && (own < 0 || claimLess(&fs[i], &fs[own])) {
			own = i
		}
	}
	if own >= 0 {
		o.since = fs[own].claim
	}
	w := newFact(t0, m.Source(), m.ID(), o)
	for i := range fs {
		if i != own && head[i] && !void[i] && !sameStreak(&fs[i], &w) && claimLess(&fs[i], &w) && fs[i].covers(t0) {
			return options{}, fmt.Errorf("%w by %s until %s", ErrLeased, fs[i].rid, fs[i].until.Time().UTC().Format(time.RFC3339Nano))
		}
	}
	if ttl != 0 {
		for i := range fs {
			if fs[i].expD > w.expD {
				o.tomb = true
				break
			}
		}
	}
	return o, nil
}

// Holder returns the replica that holds key's lease now (its replica id,
// not a source), and when the lease runs out unless renewed; ok is false
// if nobody holds it. It is the holder by this replica's knowledge: a
// write that races across a partition can still void the holder's writes
// (see Leases in the package doc).
func (m *Model) Holder(key string) (id string, until time.Time, ok bool) {
	m.sweepDue()
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.keys.get(key)
	if e == nil {
		return "", time.Time{}, false
	}
	members := m.more[key]
	if members == nil && e.olen == 0 {
		return "", time.Time{}, false
	}
	var fb [4]fact
	var vb, hb [4]bool
	fs, void, head := judgeBuffers(max(len(members), 1), &fb, &vb, &hb)
	t0 := m.judge(e, members, fs, void, head, m.now())
	h := -1
	for i := range fs {
		if head[i] && !void[i] && fs[i].covers(t0) && (h < 0 || claimLess(&fs[i], &fs[h])) {
			h = i
		}
	}
	if h < 0 {
		return "", time.Time{}, false
	}
	return fs[h].rid, fs[h].until.Time(), true
}

// judge applies the lease rule to the updates a key keeps, members, or e
// alone if members is nil: it fills fs with their facts, and void and head
// (each with room for them) with which are void and which are heads. It
// returns t0: the wall clock (wall) or the least timestamp after theirs,
// whichever is later.
func (m *Model) judge(e *entry, members []*entry, fs []fact, void, head []bool, wall time.Time) (t0 vclock.Timestamp) {
	t0 = vclock.FromTime(wall)
	if members == nil {
		fs[0] = m.fact(e)
	}
	for i, k := range members {
		fs[i] = m.fact(k)
	}
	for i := range fs {
		t0 = max(t0, next(fs[i].ts))
	}
	decide(fs, void, head)
	return t0
}

// next returns the least timestamp after ts: a local write is stamped
// after every timestamp the replica has seen, so it claims no earlier.
func next(ts vclock.Timestamp) vclock.Timestamp {
	return vclock.Timestamp(math.Nextafter(float64(ts), math.Inf(1)))
}

// judgeBuffers returns room for the facts of n updates: the arrays given,
// for the common case of a few.
func judgeBuffers(n int, fb *[4]fact, vb, hb *[4]bool) (fs []fact, void, head []bool) {
	if n <= len(fb) {
		return fb[:n], vb[:n], hb[:n]
	}
	return make([]fact, n), make([]bool, n), make([]bool, n)
}
