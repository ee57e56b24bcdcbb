package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/model"
)

// The persistence workloads, on a package filelog log in a fresh temporary
// directory (os.TempDir):
//
//   - P1(policy, writers): writers goroutines Set Keys updates in all, over
//     DefaultP1Keys keys, on a Model with a log under policy: appends per
//     second (UpdatesPerSec), and log bytes per update (no compaction).
//   - P2: a log of Keys updates (default 1,000,000, one per key) is opened
//     into an empty Model: Duration is the time Open takes to check and
//     replay it.

// Sizes of the persistence workloads.
const (
	DefaultP1Keys        = 1_024     // P1: keys overwritten
	DefaultP1DurableSets = 4_000     // P1 under SyncAlways: Sets in all
	DefaultP1Sets        = 200_000   // P1 under the other policies
	DefaultP2Keys        = 1_000_000 // P2: updates in the log
)

// P1 returns the workload that measures appends per second under policy
// with writers concurrent writers. Keys (default DefaultP1DurableSets under
// SyncAlways, DefaultP1Sets otherwise) is the number of Sets, spread over
// DefaultP1Keys keys. Bytes is how much the log grew.
func P1(policy filelog.SyncPolicy, writers int) func(context.Context, *Options) (Result, error) {
	return func(ctx context.Context, opts *Options) (r Result, err error) {
		n := DefaultP1Sets
		if policy == filelog.SyncAlways {
			n = DefaultP1DurableSets
		}
		o := opts.withDefaults(n)
		o.Timer.StopTimer()
		defer o.Timer.StartTimer()
		r = Result{Workload: "P1", N: o.Keys}

		dir, err := os.MkdirTemp("", "scuttle-bench-")
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(dir)
		m, err := model.New(ReplicaA, nil)
		if err != nil {
			return r, err
		}
		l, err := filelog.Open(filepath.Join(dir, "p1.log"), m, &filelog.Config{Sync: policy, CompactRatio: -1})
		if err != nil {
			return r, err
		}
		defer l.Close()
		keys := paddedKeys(DefaultP1Keys)
		before := l.Stats().Bytes

		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		o.Timer.StartTimer()
		start := time.Now()
		for range writers {
			wg.Go(func() {
				for ctx.Err() == nil {
					i := next.Add(1) - 1
					if i >= int64(o.Keys) {
						return
					}
					if err := m.Set(keys[i%DefaultP1Keys], i); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		r.Duration = time.Since(start)
		o.Timer.StopTimer()
		close(errs)
		if err := <-errs; err != nil {
			return r, err
		}
		if err := ctx.Err(); err != nil {
			return r, err
		}
		s := l.Stats()
		if s.Appended != uint64(o.Keys) {
			return r, fmt.Errorf("bench: P1: %d appends for %d Sets", s.Appended, o.Keys)
		}
		r.Bytes = s.Bytes - before
		if err := l.Close(); err != nil {
			return r, err
		}
		r.finish()
		return r, nil
	}
}

// P2 writes a log of Keys updates (DefaultP2Keys by default), one per key,
// then measures how long Open takes to check it and replay it into an empty
// Model. Bytes is the log's size.
func P2(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultP2Keys)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	r = Result{Workload: "P2", N: o.Keys}

	dir, err := os.MkdirTemp("", "scuttle-bench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "p2.log")
	if err := writeLog(ctx, path, o.Keys); err != nil {
		return r, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return r, err
	}
	r.Bytes = fi.Size()

	m, err := model.New(ReplicaA, nil)
	if err != nil {
		return r, err
	}
	o.Timer.StartTimer()
	start := time.Now()
	l, err := filelog.Open(path, m, &filelog.Config{CompactRatio: -1})
	r.Duration = time.Since(start)
	o.Timer.StopTimer()
	if err != nil {
		return r, err
	}
	defer l.Close()
	if m.Len() != o.Keys {
		return r, fmt.Errorf("bench: P2: %d keys after reopening, want %d", m.Len(), o.Keys)
	}
	r.finish()
	return r, nil
}

// writeLog writes a log of n keys, key i set to i, at path.
func writeLog(ctx context.Context, path string, n int) error {
	m, err := model.New(ReplicaA, nil)
	if err != nil {
		return err
	}
	l, err := filelog.Open(path, m, &filelog.Config{Sync: filelog.SyncNever, CompactRatio: -1})
	if err != nil {
		return err
	}
	var b []byte
	for i := range n {
		if i%4096 == 0 && ctx.Err() != nil {
			l.Close()
			return ctx.Err()
		}
		b = appendKey(b[:0], i)
		if err := m.Set(string(b), i); err != nil {
			l.Close()
			return err
		}
	}
	return l.Close()
}
