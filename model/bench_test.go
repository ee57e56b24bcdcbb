package model_test

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/bench"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// BenchmarkW5 measures the live heap per key of a Model holding 1,000,000
// keys with 32-byte values, Set locally and received by a sync over
// net.Pipe (internal/testkit/bench's W5). ns/op is the Sets, or the sync.
//
//	go test -run '^$' -bench W5 -benchtime 1x ./model/
func BenchmarkW5(b *testing.B) {
	for _, tc := range []struct {
		name string
		run  func(b *testing.B) (bench.Result, error)
	}{
		{"local", func(b *testing.B) (bench.Result, error) {
			return bench.W5Local(b.Context(), &bench.Options{Timer: b})
		}},
		{"sync-pipe", func(b *testing.B) (bench.Result, error) {
			return bench.W5Sync(b.Context(), &bench.Options{Transport: bench.Pipe, Timer: b})
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var perKey float64
			runs := 0
			for b.Loop() {
				r, err := tc.run(b)
				if err != nil {
					b.Fatal(err)
				}
				perKey += r.HeapPerKey
				runs++
			}
			b.ReportMetric(perKey/float64(runs), "B/key")
		})
	}
}

// benchKeys is the size of the model the micro benchmarks work on.
const benchKeys = 100_000

// filled returns a Model holding benchKeys keys (k0 = Value("a", 0), ...) and
// the keys.
func filled(b *testing.B) (*model.Model, []string) {
	b.Helper()
	m, err := model.New(bench.ReplicaA, nil)
	if err != nil {
		b.Fatal(err)
	}
	keys := bench.Keys(benchKeys)
	if err := bench.Fill(m, "a", keys); err != nil {
		b.Fatal(err)
	}
	return m, keys
}

// BenchmarkSet overwrites the keys of a 100,000-key Model in turn, with
// nothing connected.
func BenchmarkSet(b *testing.B) {
	m, keys := filled(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.Set(keys[i%len(keys)], i); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGet reads the keys of a 100,000-key Model in turn.
func BenchmarkGet(b *testing.B) {
	m, keys := filled(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := m.Get(keys[i%len(keys)]); !ok {
			b.Fatalf("%s is not set", keys[i%len(keys)])
		}
		i++
	}
}

// BenchmarkHistory computes a small delta, the last 100 updates, of a
// 100,000-key Model: what a peer that was briefly away asks for.
func BenchmarkHistory(b *testing.B) {
	const delta = 100
	m, _ := filled(b)
	all := m.History(vclock.Clock{})
	last := all[len(all)-delta-1] // the clock is keyed by source: id~incarnation
	peer := vclock.Clock{last.Source: last.Timestamp}
	if n := len(m.History(peer)); n != delta {
		b.Fatalf("History returned %d updates, want %d", n, delta)
	}
	b.ReportAllocs()
	for b.Loop() {
		m.History(peer)
	}
}

// BenchmarkSetTTLRefresh is BenchmarkSet for presence keys: 100,000 keys
// written with SetTTL (3 s), each refreshed once a second of a fake clock,
// in turn, as replicas announcing themselves do. Compare ns/op and B/op
// with BenchmarkSet:
//
//	go test -run '^$' -bench 'Set$|SetTTLRefresh' -benchmem ./model/
func BenchmarkSetTTLRefresh(b *testing.B) {
	var ms atomic.Int64
	ms.Store(today)
	m, err := model.New(bench.ReplicaA, &scuttlebutt.Config{Now: func() time.Time { return time.UnixMilli(ms.Load()) }})
	if err != nil {
		b.Fatal(err)
	}
	keys := bench.Keys(benchKeys)
	for i, k := range keys {
		if err := m.SetTTL(k, i, 3*time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.SetTTL(keys[i%len(keys)], i, 3*time.Second); err != nil {
			b.Fatal(err)
		}
		i++
		if i%len(keys) == 0 {
			ms.Add(1000) // every key refreshed: a second passes
		}
	}
	b.StopTimer()
	if n := m.Len(); n != len(keys) {
		b.Fatalf("Len() = %d after refreshing, want %d", n, len(keys))
	}
}

// BenchmarkSetTTLRefreshOne is a replica's own presence key: one key
// refreshed with SetTTL (3 s) once a second of a fake clock, in a Model
// holding 100,000 other keys written with Set.
func BenchmarkSetTTLRefreshOne(b *testing.B) {
	var ms atomic.Int64
	ms.Store(today)
	m, err := model.New(bench.ReplicaA, &scuttlebutt.Config{Now: func() time.Time { return time.UnixMilli(ms.Load()) }})
	if err != nil {
		b.Fatal(err)
	}
	if err := bench.Fill(m, "a", bench.Keys(benchKeys)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.SetTTL("presence", i, 3*time.Second); err != nil {
			b.Fatal(err)
		}
		i++
		ms.Add(1000)
	}
	b.StopTimer()
	if v, ok := m.Get("presence"); !ok || v != int64(i-1) {
		b.Fatalf("Get(presence) = %v, %v after refreshing; want %d", v, ok, i-1)
	}
}

// BenchmarkSetLeased is BenchmarkSet with Config.Lease: the owner renewing
// its own keys.
func BenchmarkSetLeased(b *testing.B) {
	m, err := model.NewWithConfig(bench.ReplicaA, &model.Config{Lease: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	keys := bench.Keys(benchKeys)
	for i, k := range keys {
		if err := m.Set(k, i); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.Set(keys[i%len(keys)], i); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkFill sets 100,000 new keys with 32-byte values on an empty
// Model with nothing connected: the sender's half of W1 without the
// stream. cpu-ns/update is the process's CPU time per Set, GC included.
func BenchmarkFill(b *testing.B) {
	keys := bench.Keys(benchKeys)
	b.ReportAllocs()
	cpu := bench.ProcessCPU()
	for b.Loop() {
		m, err := model.New(bench.ReplicaA, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := bench.Fill(m, "a", keys); err != nil {
			b.Fatal(err)
		}
	}
	reportPerUpdate(b, cpu)
}

// BenchmarkApplyNew applies the 100,000 updates of BenchmarkFill's Model
// to an empty one, in batches of 256 as a link does: the receiver's half
// of W1 without the stream. cpu-ns/update is the process's CPU time per
// update, GC included.
func BenchmarkApplyNew(b *testing.B) {
	a, _ := filled(b)
	us := a.History(vclock.Clock{})
	b.ReportAllocs()
	cpu := bench.ProcessCPU()
	for b.Loop() {
		m, err := model.New(bench.ReplicaB, nil)
		if err != nil {
			b.Fatal(err)
		}
		for batch := range slices.Chunk(us, 256) {
			if _, err := m.Apply(batch...); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportPerUpdate(b, cpu)
}

// reportPerUpdate reports the process's CPU time since cpu per update of
// the b.N rounds of benchKeys updates.
func reportPerUpdate(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64((bench.ProcessCPU()-cpu).Nanoseconds())/float64(b.N*benchKeys), "cpu-ns/update")
}

// BenchmarkValidateUpdate checks W1's updates as a receiver does, before
// it applies them.
func BenchmarkValidateUpdate(b *testing.B) {
	a, _ := filled(b)
	us := a.History(vclock.Clock{})
	v := a.Validator()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := v.ValidateUpdate(us[i%len(us)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
