package lock

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Defaults of Config's fields.
const (
	DefaultLease  = 10 * time.Second
	DefaultLimit  = 1
	maxLease      = 24 * time.Hour // the longest lease a claim may carry
	minLeaseSlack = time.Millisecond
)

// Config configures a Table. A nil *Config is not valid: Members is
// required. Every zero field means the default; New copies the Config and
// never modifies the caller's.
type Config struct {
	// Now is the wall clock: it stamps claims (through the replica's hybrid
	// logical clock) and decides when leases end. nil means time.Now. The
	// table reads the time no other way; tests inject a clock here.
	Now func() time.Time

	// Members are the replica ids whose acknowledgement every claim needs,
	// this replica's own id among them. Required. Every replica that takes
	// locks must be listed in the Members of every other one: a claimant
	// missing from another's list can hold a lock at the same time as it.
	// Change it at runtime with SetMembers.
	Members []string

	// Lease is how long a claim lives without renewal, from its timestamp:
	// the time a crashed holder keeps others waiting. 0 means DefaultLease
	// (10 s). Shorter frees the locks of crashed replicas sooner, and
	// demands that renewals reach every member sooner (a holder whose
	// renewal is not acknowledged by every member within Lease - Margin of
	// its last confirmed renewal loses the lock). At most 24 h.
	Lease time.Duration

	// Renew is how often a claim, held or waiting, is renewed. 0 means
	// Lease/4. It must be below Lease - Margin, leaving room for the
	// acknowledgements of a renewal to come back: a renewal is confirmed
	// only if every member's acknowledgement arrives before the previous
	// lease, less Margin, runs out. Shorter renews more often (one update
	// from the holder and one acknowledgement from every member each
	// time).
	Renew time.Duration

	// Margin is how much earlier a holder considers its lease over than the
	// other replicas do: the bound on the difference between any two
	// replicas' wall clocks (Now) that the table assumes. 0 means Lease/10.
	// If two clocks differ by more than Margin, two replicas can hold the
	// same lock at once around a lease expiry.
	Margin time.Duration

	// Limit is how many replicas may hold each lock at once: 1 (the
	// default) for a mutex, N for a semaphore. The first Limit live claims,
	// in (timestamp, source) order, hold the lock.
	Limit int

	// Limits overrides Limit for the named locks. Every replica must give a
	// lock the same limit.
	Limits map[string]int

	// MaxUpdateSize is scuttlebutt.Config.MaxUpdateSize. 0 means its
	// default.
	MaxUpdateSize int

	// Replica configures the replicated base: its bounds on peers' clocks
	// and sources, its incarnation and its logger (see scuttlebutt.Config).
	// nil means the defaults. Now and MaxUpdateSize above take precedence
	// over its fields of the same name.
	Replica *scuttlebutt.Config
}

// withDefaults returns a copy of c with the defaults filled in, or an
// error naming a field that is out of range. id must be among Members.
func (c *Config) withDefaults(id string) (Config, error) {
	if c == nil {
		return Config{}, fmt.Errorf("%w: nil config: Members is required", ErrInvalidConfig)
	}
	out := *c
	out.Members = slices.Clone(c.Members)
	out.Limits = maps.Clone(c.Limits)
	if out.Now == nil {
		out.Now = time.Now
	}
	if err := checkMembers(id, out.Members); err != nil {
		return out, err
	}
	if out.Lease == 0 {
		out.Lease = DefaultLease
	}
	if out.Lease < 0 || out.Lease > maxLease {
		return out, fmt.Errorf("%w: Lease %v is not in (0, %v]", ErrInvalidConfig, out.Lease, maxLease)
	}
	if out.Margin == 0 {
		out.Margin = out.Lease / 10
	}
	if out.Margin < 0 || out.Margin >= out.Lease/2 {
		return out, fmt.Errorf("%w: Margin %v is not in [0, Lease/2)", ErrInvalidConfig, out.Margin)
	}
	if out.Renew == 0 {
		out.Renew = out.Lease / 4
	}
	if out.Renew <= 0 || out.Renew > out.Lease-out.Margin-minLeaseSlack {
		return out, fmt.Errorf("%w: Renew %v is not in (0, Lease - Margin)", ErrInvalidConfig, out.Renew)
	}
	if out.Limit == 0 {
		out.Limit = DefaultLimit
	}
	if out.Limit < 0 {
		return out, fmt.Errorf("%w: Limit %d is negative", ErrInvalidConfig, out.Limit)
	}
	for name, n := range out.Limits {
		if n <= 0 {
			return out, fmt.Errorf("%w: Limits[%q] = %d is not positive", ErrInvalidConfig, name, n)
		}
	}
	return out, nil
}

// checkMembers reports why members is not a valid member set for replica
// id: it must hold valid ids, id among them.
func checkMembers(id string, members []string) error {
	self := false
	for _, m := range members {
		if err := scuttlebutt.ValidID(m); err != nil {
			return fmt.Errorf("%w: member: %v", ErrInvalidConfig, err)
		}
		self = self || m == id
	}
	if !self {
		return fmt.Errorf("%w: Members %q does not list this replica, %q", ErrInvalidConfig, members, id)
	}
	return nil
}

// base returns the configuration of the replicated base: Replica, with
// this Config's Now and MaxUpdateSize.
func (c *Config) base() *scuttlebutt.Config {
	return c.Replica.With(c.Now, c.MaxUpdateSize)
}
