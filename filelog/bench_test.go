//go:build unix

package filelog

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// benchKeys is the key space of the append benchmarks: overwrites keep
// the Model small while the log grows.
const benchKeys = 1024

// BenchmarkAppend measures Model.Set throughput with a log attached, under
// each sync policy, with 1 and 16 concurrent writers. ns/op is per Set;
// appends/s is the same as a rate; updates/fsync shows the group commit;
// B/update is log bytes per update (no compaction).
func BenchmarkAppend(b *testing.B) {
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("sync=%s/writers=%d", p, writers), func(b *testing.B) {
				benchAppend(b, p, writers)
			})
		}
	}
}

// cpuTime returns the CPU time the process has used, user and system: on a
// loaded machine, a steadier measure than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchAppend(b *testing.B, p SyncPolicy, writers int) {
	path := filepath.Join(b.TempDir(), "bench.log")
	m, err := model.New("replica1", nil)
	if err != nil {
		b.Fatal(err)
	}
	l, err := Open(path, m, &Config{Sync: p, CompactRatio: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	keys := make([]string, benchKeys)
	for i := range keys {
		keys[i] = "key-" + strconv.Itoa(i)
	}
	start := l.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := m.Set(keys[i%benchKeys], i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	s := l.Stats()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
	if n := s.Syncs - start.Syncs; n > 0 {
		b.ReportMetric(float64(s.Appended-start.Appended)/float64(n), "updates/fsync")
	}
	b.ReportMetric(float64(s.Bytes-start.Bytes)/float64(s.Appended-start.Appended), "B/update")
}

// BenchmarkReopen measures Open of a log of 1,000,000 updates, one per
// key, into an empty replica: reading, checking and applying them all.
// replica=model replays into a model.Model (what a user sees); replica=nop
// into a replica that keeps nothing, so that the figure is the log's own
// cost and the base's. cpu-s/op counts every goroutine, the GC included.
func BenchmarkReopen(b *testing.B) {
	const n = 1_000_000
	path := filepath.Join(b.TempDir(), "bench.log")
	m, err := model.New("replica1", nil)
	if err != nil {
		b.Fatal(err)
	}
	l, err := Open(path, m, &Config{Sync: SyncNever, CompactRatio: -1})
	if err != nil {
		b.Fatal(err)
	}
	var buf []byte
	for i := range n {
		buf = append(buf[:0], "key-"...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		if err := m.Set(string(buf), i); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	m, l = nil, nil
	runtime.GC()
	for _, tt := range []struct {
		name string
		new  func() (scuttlebutt.Document, func() int)
	}{
		{"model", func() (scuttlebutt.Document, func() int) {
			m, err := model.New("replica1", nil)
			if err != nil {
				b.Fatal(err)
			}
			return m, m.Len
		}},
		{"nop", func() (scuttlebutt.Document, func() int) {
			r := &nopReplica{}
			sb, err := scuttlebutt.New("replica1", r, nil)
			if err != nil {
				b.Fatal(err)
			}
			return sb, func() int { return r.n }
		}},
	} {
		b.Run("replica="+tt.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				doc, count := tt.new()
				l, err := Open(path, doc, &Config{CompactRatio: -1})
				if err != nil {
					b.Fatal(err)
				}
				if got := count(); got != n {
					b.Fatalf("%d updates applied, want %d", got, n)
				}
				l.Close()
			}
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(fi.Size())/n, "B/update")
		})
	}
}

// nopReplica counts the updates applied to it and keeps nothing.
type nopReplica struct{ n int }

func (r *nopReplica) History(vclock.Clock) []scuttlebutt.Update { return nil }
func (r *nopReplica) ApplyUpdate(scuttlebutt.Update) bool       { r.n++; return true }
