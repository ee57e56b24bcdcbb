package scuttlebutt

import (
	"fmt"
	"time"
)

// Config configures a Scuttlebutt. The zero value and a nil *Config mean
// DefaultConfig; New copies the Config and never modifies the caller's.
type Config struct {
	// Now is the wall clock behind the replica's hybrid logical clock. nil
	// means time.Now. Tests inject a fake clock here; the core never reads the
	// time any other way.
	Now func() time.Time

	// MaxUpdateSize is the largest Data plus Signature of one update, in
	// bytes, for local and remote updates alike. 0 means the default, 1 MiB.
	// It must stay below the frame limit of every stream the replica is
	// served on, or large updates cannot be sent.
	MaxUpdateSize int
}

// DefaultMaxUpdateSize is the default of Config.MaxUpdateSize.
const DefaultMaxUpdateSize = 1 << 20

// DefaultConfig returns the default configuration: the system clock and
// 1 MiB updates.
func DefaultConfig() *Config {
	return &Config{Now: time.Now, MaxUpdateSize: DefaultMaxUpdateSize}
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
	switch {
	case out.MaxUpdateSize == 0:
		out.MaxUpdateSize = d.MaxUpdateSize
	case out.MaxUpdateSize < 0:
		return out, fmt.Errorf("%w: MaxUpdateSize %d is negative", ErrInvalidConfig, out.MaxUpdateSize)
	}
	return out, nil
}
