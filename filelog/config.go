package filelog

import (
	"fmt"
	"log/slog"
	"time"
)

// SyncPolicy says when appended updates reach the disk, and so what a crash
// can lose. Every policy writes an update to the operating system before
// the write that made it returns, so a crash of the process alone (kill -9,
// a panic) loses nothing acknowledged under any policy; the policies differ
// in what a crash of the machine (power cut, kernel panic) can lose.
type SyncPolicy int

// The sync policies. ONLY APPEND: the values are part of configurations.
const (
	// SyncAlways, the default, makes every update durable (written and
	// fsynced) before the write that made it returns and before any peer
	// hears of it. Concurrent writers share one fsync (group commit). A
	// machine crash loses nothing that was acknowledged.
	SyncAlways SyncPolicy = iota
	// SyncInterval fsyncs at most Config.Interval after a write. Writes
	// return once the operating system has the update, and peers hear of
	// it then. A machine crash loses the acknowledged updates of the last
	// Interval (plus the fsync in progress), and peers may have heard of
	// them: after the restart the replica asks its peers for them again.
	SyncInterval
	// SyncNever leaves flushing to the operating system (and to Close and
	// Compact, which fsync). A machine crash loses whatever the kernel had
	// not written back, typically up to 30 s of updates on Linux.
	SyncNever
)

// String returns the policy's name, as in Config documentation.
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// Defaults of Config's fields.
const (
	DefaultInterval      = 100 * time.Millisecond
	DefaultCompactRatio  = 2
	DefaultCompactMin    = 4096
	DefaultMaxRecordSize = 4 << 20
)

// Config configures a Log. A nil *Config and every zero field mean the
// default; Open copies the Config and never modifies the caller's.
type Config struct {
	// Sync is the sync policy, SyncAlways by default. See SyncPolicy for
	// what each policy can lose.
	Sync SyncPolicy

	// Interval is how long an update may wait for its fsync under
	// SyncInterval. 0 means DefaultInterval (100 ms). Shorter loses less
	// in a machine crash and fsyncs more often. Ignored by other policies.
	Interval time.Duration

	// CompactRatio triggers automatic compaction: once the log holds more
	// than CompactRatio times as many records as the document's history
	// (History of the empty clock, one update per live key for a Model),
	// and at least CompactMin records, a background goroutine rewrites the
	// log as that history. 0 means DefaultCompactRatio (2): the log stays
	// below about twice the size of the history. It must be greater than 1;
	// a negative value turns automatic compaction off (Compact still
	// works). Checking costs one History call, made at most each time the
	// log has grown by half since the last check.
	CompactRatio float64

	// CompactMin is the fewest records a log must hold before it is
	// compacted automatically. 0 means DefaultCompactMin (4096); it keeps
	// small logs from being rewritten over and over.
	CompactMin int

	// MaxRecordSize bounds one record's payload (one encoded update) in
	// bytes, when writing and when reading: a length field beyond it is
	// damage, never an allocation. 0 means DefaultMaxRecordSize (4 MiB,
	// stream's default frame limit). It must exceed the document's
	// scuttlebutt.Config.MaxUpdateSize by the update's envelope (source id
	// and timestamp, under 150 bytes), or large updates fail with
	// ErrTooLarge.
	MaxRecordSize int

	// Repair lets Open truncate the log at a record that fails its
	// checksum in the middle of the file, dropping it and everything after
	// it, instead of refusing the log with ErrCorrupt. The dropped bytes
	// are reported in Stats.Truncated and logged. The replica then gets
	// the lost updates back from its peers, provided some peer has them.
	Repair bool

	// Logger receives warnings (torn tails, repairs, failed background
	// compactions) and debug messages (compactions). nil means no logging.
	Logger *slog.Logger

	// Files, if set, bounds the open files of the Logs that share it: this
	// Log's file is closed while it is among the least recently used, and
	// opened again when it is written to (see Files for the lock this
	// gives up meanwhile). nil means the file stays open until Close.
	Files *Files

	// OnSync, if set, is called after each fsync of the log's appends
	// with how long it took, from the goroutine that synced (a writer or
	// the flusher), with no lock held: a metrics hook. It must not block
	// or call the Log. nil means none.
	OnSync func(d time.Duration)
}

// DefaultConfig returns the default configuration: SyncAlways, automatic
// compaction at ratio 2 past 4096 records, 4 MiB records, no repair.
func DefaultConfig() *Config {
	return &Config{
		Sync:          SyncAlways,
		Interval:      DefaultInterval,
		CompactRatio:  DefaultCompactRatio,
		CompactMin:    DefaultCompactMin,
		MaxRecordSize: DefaultMaxRecordSize,
		Logger:        slog.New(slog.DiscardHandler),
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
	switch out.Sync {
	case SyncAlways, SyncInterval, SyncNever:
	default:
		return out, fmt.Errorf("%w: Sync %v", ErrInvalidConfig, out.Sync)
	}
	switch {
	case out.Interval == 0:
		out.Interval = d.Interval
	case out.Interval < 0:
		return out, fmt.Errorf("%w: Interval %v is negative", ErrInvalidConfig, out.Interval)
	}
	switch {
	case out.CompactRatio == 0:
		out.CompactRatio = d.CompactRatio
	case out.CompactRatio > 0 && out.CompactRatio <= 1, out.CompactRatio != out.CompactRatio:
		return out, fmt.Errorf("%w: CompactRatio %v must be greater than 1 (or negative for off)", ErrInvalidConfig, out.CompactRatio)
	}
	switch {
	case out.CompactMin == 0:
		out.CompactMin = d.CompactMin
	case out.CompactMin < 0:
		return out, fmt.Errorf("%w: CompactMin %d is negative", ErrInvalidConfig, out.CompactMin)
	}
	switch {
	case out.MaxRecordSize == 0:
		out.MaxRecordSize = d.MaxRecordSize
	case out.MaxRecordSize < 64 || out.MaxRecordSize > maxRecordLimit:
		return out, fmt.Errorf("%w: MaxRecordSize %d is outside [64, %d]", ErrInvalidConfig, out.MaxRecordSize, maxRecordLimit)
	}
	if out.Logger == nil {
		out.Logger = d.Logger
	}
	return out, nil
}
