package node

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/lock"
)

// lostCounter is a LockObserver that counts lost leases by table.
type lostCounter struct {
	mu   sync.Mutex
	lost map[string]int
}

func (c *lostCounter) ObserveFsync(time.Duration)       {}
func (c *lostCounter) ObserveLag(string, time.Duration) {}
func (c *lostCounter) ObserveLockLost(table string)     { c.mu.Lock(); c.lost[table]++; c.mu.Unlock() }
func (c *lostCounter) count(table string) int           { c.mu.Lock(); defer c.mu.Unlock(); return c.lost[table] }

var _ LockObserver = (*lostCounter)(nil)

// TestLostLeaseLoggedAndCounted has a node lose a lock's lease: its clock
// jumps past the lease before the renewal it was due, as a process paused
// for a long time sees it. The node logs a warning naming the table, the
// lock and the holder, and counts the loss once for that table.
func TestLostLeaseLoggedAndCounted(t *testing.T) {
	var nowNano atomic.Int64
	nowNano.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, nowNano.Load()) }

	var logs logBuffer
	obs := &lostCounter{lost: map[string]int{}}
	cfg := testConfig(t, "solo")
	cfg.Now = now
	cfg.Observer = obs
	cfg.Lock = &lock.Config{Lease: 400 * time.Millisecond}
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n := start(t, cfg)

	tab, err := n.Locks("jobs")
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Lock(t.Context(), "nightly"); err != nil {
		t.Fatal(err)
	}
	done := tab.Done("nightly")
	nowNano.Add(int64(time.Hour)) // past the lease: no renewal can be confirmed in time
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("the hold did not end after the clock passed its lease")
	}
	waitFor(t, "the loss is counted", func() bool { return obs.count("jobs") > 0 })
	if got := obs.count("jobs"); got != 1 {
		t.Errorf("lost leases counted for jobs: %d, want 1", got)
	}
	logs.mu.Lock()
	out := logs.buf.String()
	logs.mu.Unlock()
	var line string
	for l := range strings.Lines(out) {
		if strings.Contains(l, "lost a lock's lease") {
			line = l
		}
	}
	for _, want := range []string{"level=WARN", "table=jobs", "lock=nightly", "holder=solo"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q; log:\n%s", line, want, out)
		}
	}
	if bytes.Count([]byte(out), []byte("lost a lock's lease")) != 1 {
		t.Errorf("want one lost-lease warning, log:\n%s", out)
	}
	if err := tab.Unlock("nightly"); err == nil {
		t.Error("Unlock after the loss succeeded, want ErrNotOwner")
	}
}
