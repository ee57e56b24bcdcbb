package filelog

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/scuttle-go/scuttle/model"
)

// openFDs counts the process's open file descriptors (Linux), or skips.
func openFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestFilesBound writes to many logs sharing a Files of 4, under every
// sync policy and concurrently: no more than the bound (plus the logs
// being written at that moment) hold a file, every write is durable, and
// each log, reopened, holds everything written to it, compactions
// included.
func TestFilesBound(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			const logs, writers, limit = 40, 4, 4
			dir := t.TempDir()
			files := NewFiles(limit)
			cfg := &Config{Sync: policy, Files: files, CompactMin: 8, CompactRatio: 2}
			before := openFDs(t)
			models := make([]*modelLog, logs)
			for i := range models {
				path := filepath.Join(dir, fmt.Sprintf("d%02d.log", i))
				m := newModel(t, "r1")
				models[i] = &modelLog{path: path, l: mustOpen(t, path, m, cfg), m: m}
				if got := files.Open(); got > limit {
					t.Fatalf("after opening %d logs, %d files open, want at most %d", i+1, got, limit)
				}
			}
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for round := range 30 {
						for i := w; i < logs; i += writers {
							if err := models[i].m.Set(key(round%10), value(round)); err != nil {
								t.Errorf("log %d: %v", i, err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			// At rest no log is busy: the bound holds exactly.
			if got := files.Open(); got > limit {
				t.Errorf("%d files open at rest, want at most %d", got, limit)
			}
			if got := openFDs(t) - before; got > limit+writers {
				t.Errorf("%d more descriptors open than before, want at most %d", got, limit+writers)
			}
			for i, ml := range models {
				mustClose(t, ml.l)
				m, l := reopen(t, ml.path, "r1", nil)
				sameState(t, m, ml.m)
				if l.Stats().Truncated != 0 {
					t.Errorf("log %d: %d bytes truncated", i, l.Stats().Truncated)
				}
			}
			if got := files.Open(); got != 0 {
				t.Errorf("%d files open after every log closed", got)
			}
		})
	}
}

type modelLog struct {
	path string
	l    *Log
	m    *model.Model
}
