package scuttlebutt

import (
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Scuttlebutt. The zero value and a nil *Config mean
// DefaultConfig; New copies the Config and never modifies the caller's.
type Config struct {
	// Now is the wall clock behind the replica's hybrid logical clock and
	// its bound on peers' timestamps. nil means time.Now. Tests inject a
	// fake clock here; the core never reads the time any other way. It
	// is called concurrently, by concurrent writers and links.
	Now func() time.Time

	// MaxUpdateSize is the largest Data plus Signature of one update, in
	// bytes, for local and remote updates alike. 0 means the default, 1 MiB.
	// It must stay below the frame limit of every stream the replica is
	// served on, or large updates cannot be sent.
	MaxUpdateSize int

	// MaxClockOffset bounds how far ahead of this replica's wall clock a
	// timestamp may be: an update, or a clock entry in a peer's hello,
	// sync or clock message, stamped later than Now()+MaxClockOffset is
	// refused with ErrClockOffset, and the hybrid logical clock never
	// observes it. 0 means the default, 30 s; negative is an error.
	//
	// Every timestamp is at most the wall clock of the replica that made
	// it (plus the few logical steps of a burst of writes), so if every
	// replica's clock is within MaxClockOffset/2 of true time, no honest
	// update is ever refused. The bound is also how far into the future a
	// skewed or hostile writer can push the cluster's clocks, and so how
	// long such a writer can win last-writer-wins conflicts it should
	// lose. 30 s is a hundred times what NTP keeps servers within, and
	// tolerates phones and browsers whose clocks are off by seconds, while
	// no write can be stamped more than half a minute ahead. (CockroachDB,
	// which needs tighter clocks for serializability, defaults to 500 ms.)
	MaxClockOffset time.Duration

	// MaxSources bounds the number of sources in the replica's clock: an
	// update or clock entry of a new source past the bound is refused with
	// ErrTooManySources, and so is a peer's hello whose clock names more.
	// This replica's own source is always accepted. 0 means the default,
	// 16,384; negative is an error.
	//
	// A source costs about 100 bytes plus the length of its id in every
	// clock that names it: the replica's own, and two per link (what the
	// peer is known to hold, and its hello). It costs its id plus about 10
	// bytes in every hello, sync and clock message. At the default, a full
	// clock of 128-byte ids is 2.3 MB, within one 4 MiB frame; package
	// stream splits larger clocks over several frames. Sources add up:
	// every writer ever, and every start of a replica (see Incarnations in
	// the package doc).
	MaxSources int

	// Incarnation is the suffix that makes this start of the replica a
	// source of its own: updates are stamped with Source() = id + "~" +
	// Incarnation. "" means a fresh random one (8 characters of base32),
	// which is what a program wants: set it only to make a test
	// deterministic. It must be 1 to 16 characters of [0-9a-z].
	Incarnation string

	// Logger receives the warnings of the base: a second live replica
	// using this replica's id. nil means slog.Default().
	Logger *slog.Logger

	// Applied, if set, is called with the updates from peers (or Apply)
	// that advanced the clock, once they are applied and the lock is
	// released, on the goroutine that applied them: its metrics hook (a
	// node measures replication lag from each update's Timestamp). It is
	// called concurrently, must not block, and must neither modify nor
	// keep the slice. Replay (a log read at start) does not call it.
	Applied func(updates []Update)
}

// Defaults of Config.
const (
	DefaultMaxUpdateSize  = 1 << 20
	DefaultMaxClockOffset = 30 * time.Second
	DefaultMaxSources     = 16384
)

// DefaultConfig returns the default configuration: the system clock, 1 MiB
// updates, a 30 s bound on clock offsets, 16,384 sources, a random
// incarnation and slog's default logger.
func DefaultConfig() *Config {
	return &Config{
		Now:            time.Now,
		MaxUpdateSize:  DefaultMaxUpdateSize,
		MaxClockOffset: DefaultMaxClockOffset,
		MaxSources:     DefaultMaxSources,
	}
}

// withDefaults returns a copy of c (nil allowed) with zero fields set to
// their defaults, or an error naming the field that is out of range.
func (c *Config) withDefaults() (Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	d := DefaultConfig()
	if out.Now == nil {
		out.Now = d.Now
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	switch {
	case out.MaxUpdateSize == 0:
		out.MaxUpdateSize = d.MaxUpdateSize
	case out.MaxUpdateSize < 0:
		return out, fmt.Errorf("%w: MaxUpdateSize %d is negative", ErrInvalidConfig, out.MaxUpdateSize)
	}
	switch {
	case out.MaxClockOffset == 0:
		out.MaxClockOffset = d.MaxClockOffset
	case out.MaxClockOffset < 0:
		return out, fmt.Errorf("%w: MaxClockOffset %v is negative", ErrInvalidConfig, out.MaxClockOffset)
	}
	switch {
	case out.MaxSources == 0:
		out.MaxSources = d.MaxSources
	case out.MaxSources < 0:
		return out, fmt.Errorf("%w: MaxSources %d is negative", ErrInvalidConfig, out.MaxSources)
	}
	if out.Incarnation == "" {
		out.Incarnation = NewIncarnation()
	} else if err := validIncarnation(out.Incarnation); err != nil {
		return out, err
	}
	return out, nil
}

// With returns a copy of c (nil means the zero Config, the defaults) with
// Now set to now and, if it is not zero, MaxUpdateSize to maxUpdateSize:
// for a replicated type whose own Config has those two fields and a
// *Config for the rest.
func (c *Config) With(now func() time.Time, maxUpdateSize int) *Config {
	var out Config
	if c != nil {
		out = *c
	}
	out.Now = now
	if maxUpdateSize != 0 {
		out.MaxUpdateSize = maxUpdateSize
	}
	return &out
}
