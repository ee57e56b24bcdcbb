package model

import (
	"fmt"
	"time"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Config configures a Model. The zero value and a nil *Config mean
// DefaultConfig; NewWithConfig copies what it needs and never modifies the
// caller's Config. New(id, cfg) is NewWithConfig(id, &Config{Replica: cfg}).
type Config struct {
	// Replica configures the replicated base: the wall clock (Now), which
	// stamps writes through the hybrid logical clock and also decides when
	// a key written with SetTTL runs out on this replica; the bounds on
	// peers' clocks, sources and update sizes; the incarnation; the logger
	// (see scuttlebutt.Config). nil means scuttlebutt.DefaultConfig.
	Replica *scuttlebutt.Config

	// Lease is how long a key this replica writes (Set, SetTTL) stays its
	// own after each write, measured from the write's timestamp: until
	// then, the other replicas' Set and Delete of the key fail with
	// ErrLeased, and their writes made meanwhile without knowing of it
	// (across a partition) are void everywhere. Writing the key again
	// renews the lease; Delete ends it at once. 0 (the default) means no
	// lease: this replica's writes take none, although it still respects
	// the leases of others. It is rounded up to a whole millisecond and may
	// be at most MaxLease (1 h). A SetTTL write holds the key no longer
	// than its ttl.
	//
	// The lease travels in each write, so replicas need not agree on it.
	// Longer keeps a key from others longer after its owner stopped (or
	// crashed); shorter makes the owner write more often to keep it. A key
	// written less often than every Lease starts a new holding at each
	// write, whose record costs memory until a write at least MaxLease
	// later (see Leases in the package doc).
	Lease time.Duration
}

// DefaultConfig returns the default configuration: scuttlebutt's defaults
// for the base, no lease.
func DefaultConfig() *Config { return &Config{} }

// withDefaults returns a copy of c (nil allowed) with the Lease rounded to
// milliseconds, or an error naming a field that is out of range.
func (c *Config) withDefaults() (Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	switch {
	case out.Lease < 0:
		return out, fmt.Errorf("%w: Lease %v is negative", ErrInvalidConfig, out.Lease)
	case out.Lease > MaxLease:
		return out, fmt.Errorf("%w: Lease %v is longer than MaxLease (%v)", ErrInvalidConfig, out.Lease, MaxLease)
	}
	out.Lease = (out.Lease + time.Millisecond - 1) / time.Millisecond * time.Millisecond
	return out, nil
}

// now returns the wall clock the base will read.
func (c *Config) now() func() time.Time {
	if c.Replica != nil && c.Replica.Now != nil {
		return c.Replica.Now
	}
	return time.Now
}
