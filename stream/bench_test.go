package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/bench"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// The workload benchmarks run internal/testkit/bench's W1 to W4 (see its package
// doc) once per iteration over each transport. ns/op is the timed part of
// the workload; the custom metrics are averaged over the iterations:
//
//	go test -run '^$' -bench 'W[1-4]' -benchtime 3x ./stream/ | benchstat -

// BenchmarkW1 sets 100,000 keys on a live-connected replica until the peer
// has them: updates/s, wire bytes per update, and the CPU time (user and
// system, the whole process: both replicas) per update.
func BenchmarkW1(b *testing.B) {
	benchWorkload(b, bench.W1, func(b *testing.B, t total) {
		b.ReportMetric(t.rate(), "updates/s")
		b.ReportMetric(t.perUpdate(), "B/update")
		b.ReportMetric(t.cpuPerUpdate(), "cpu-ns/update")
	})
}

// BenchmarkW1Base is W1 over a replicated type that keeps nothing: the
// CPU per update that the base and the stream cost, under W1's.
func BenchmarkW1Base(b *testing.B) {
	benchWorkload(b, bench.W1Base, func(b *testing.B, t total) {
		b.ReportMetric(t.rate(), "updates/s")
		b.ReportMetric(t.cpuPerUpdate(), "cpu-ns/update")
	})
}

// BenchmarkW2 overwrites 1,000 keys 100 times each, live: updates/s, the
// length of the receiver's full History, and the heap both replicas hold
// per key.
func BenchmarkW2(b *testing.B) {
	benchWorkload(b, bench.W2, func(b *testing.B, t total) {
		b.ReportMetric(t.rate(), "updates/s")
		b.ReportMetric(t.perUpdate(), "B/update")
		b.ReportMetric(float64(t.last.HistoryLen), "history")
		b.ReportMetric(t.last.HeapPerKey, "heapB/key")
	})
}

// BenchmarkW3 reconnects two replicas of 100,000 keys after 100 changes on
// each side: bytes both ways and milliseconds until synced.
func BenchmarkW3(b *testing.B) {
	benchWorkload(b, bench.W3, func(b *testing.B, t total) {
		b.ReportMetric(float64(t.bytes)/float64(t.runs), "bytes")
		b.ReportMetric(t.ms(), "ms")
	})
}

// BenchmarkW4 syncs 100,000 keys into an empty replica: milliseconds until
// synced, updates/s and wire bytes per update.
func BenchmarkW4(b *testing.B) {
	benchWorkload(b, bench.W4, func(b *testing.B, t total) {
		b.ReportMetric(t.ms(), "ms")
		b.ReportMetric(t.rate(), "updates/s")
		b.ReportMetric(t.perUpdate(), "B/update")
	})
}

// total sums a workload's results over a benchmark's iterations.
type total struct {
	runs, n int
	d, cpu  time.Duration
	bytes   int64
	last    bench.Result
}

func (t total) rate() float64         { return float64(t.n) / t.d.Seconds() }
func (t total) perUpdate() float64    { return float64(t.bytes) / float64(t.n) }
func (t total) cpuPerUpdate() float64 { return float64(t.cpu) / float64(t.n) }
func (t total) ms() float64           { return float64(t.d) / float64(time.Millisecond) / float64(t.runs) }

func benchWorkload(b *testing.B, w func(context.Context, *bench.Options) (bench.Result, error), report func(*testing.B, total)) {
	for _, tr := range bench.Transports {
		b.Run(string(tr), func(b *testing.B) {
			var t total
			for b.Loop() {
				r, err := w(b.Context(), &bench.Options{Transport: tr, Timer: b})
				if err != nil {
					b.Fatal(err)
				}
				t.runs++
				t.n += r.N
				t.d += r.Duration
				t.cpu += r.CPU
				t.bytes += r.Bytes
				t.last = r
			}
			report(b, t)
		})
	}
}

// codecCases are the encodings the codec benchmarks compare: version 1,
// version 2's compact updates, and version 2 compressed.
var codecCases = []struct {
	name     string
	version  int
	compress bool
}{
	{"v1", stream.Version1, false},
	{"v2", stream.Version2, false},
	{"v2+zstd", stream.Version2, true},
}

// BenchmarkEncode frames batches of Model updates (k0 = bench.Value("a",
// 0), ... as in W1) with the CBOR codec, each batch the next of a session.
func BenchmarkEncode(b *testing.B) {
	for _, cc := range codecCases {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/updates=%d", cc.name, n), func(b *testing.B) {
				d, m := updatesMessage(b, n)
				enc := stream.NewEncoderForBench(stream.CBOR, d, cc.version, cc.compress)
				buf, err := enc(nil, m)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(buf)))
				b.ReportAllocs()
				for b.Loop() {
					if buf, err = enc(buf[:0], m); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(buf))/float64(n), "B/update")
			})
		}
	}
}

// BenchmarkDecode reads and decodes the frames BenchmarkEncode makes: the
// session's first frame, then its second over and over (a compact frame
// after the first refers to sources by the table).
func BenchmarkDecode(b *testing.B) {
	for _, cc := range codecCases {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("%s/updates=%d", cc.name, n), func(b *testing.B) {
				d, m := updatesMessage(b, n)
				enc := stream.NewEncoderForBench(stream.CBOR, d, cc.version, cc.compress)
				first, err := enc(nil, m)
				if err != nil {
					b.Fatal(err)
				}
				frame, err := enc(nil, m)
				if err != nil {
					b.Fatal(err)
				}
				read := stream.NewReaderForBench(stream.CBOR, d, io.MultiReader(bytes.NewReader(first), &repeatReader{b: frame}), cc.version, cc.compress)
				for range 2 {
					got, err := read()
					if err != nil || len(got.Updates) != n {
						b.Fatalf("decoded %d updates (%v), want %d", len(got.Updates), err, n)
					}
				}
				b.SetBytes(int64(len(frame)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := read(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// updatesMessage returns a model holding n keys and the MsgUpdates of all
// of them.
func updatesMessage(b *testing.B, n int) (*model.Model, scuttlebutt.Message) {
	b.Helper()
	m, err := model.New(bench.ReplicaA, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := bench.Fill(m, "a", bench.Keys(n)); err != nil {
		b.Fatal(err)
	}
	us := m.History(vclock.Clock{})
	if len(us) != n {
		b.Fatalf("history of %d updates, want %d", len(us), n)
	}
	return m, scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: us}
}

// repeatReader reads b over and over.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.b[r.off:])
		n += c
		r.off = (r.off + c) % len(r.b)
	}
	return n, nil
}
