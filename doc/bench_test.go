package doc_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// The benchmarks report, benchstat-friendly:
//
//	go test -run '^$' -bench . -benchtime 1x ./doc         # the large ones once
//	go test -run '^$' -bench 'Patch' -count 6 ./doc | benchstat -
//
// BenchmarkPatchLocal and BenchmarkPatchPipe: ns per patch, applied
// locally or replicated to a peer over net.Pipe (B/patch on the wire);
// BenchmarkHeap: the live heap per leaf of a document of 1,000,000
// leaves; BenchmarkReconnect: the bytes and time to sync again after 100
// edits (50 on each side) to a 100,000-leaf document.

// value32 is a 32-byte string value, as model's W5 writes.
var value32 = strings.Repeat("v", 32)

// benchOps returns the patch number i of a workload.
var benchOps = map[string]func(i int) []doc.Op{
	"set":    func(i int) []doc.Op { return []doc.Op{doc.Set(fmt.Sprintf("/k%d", i%1000), i)} },
	"set-10": func(i int) []doc.Op { return []doc.Op{doc.Set(fmt.Sprintf("/o%d", i%1000), tenMembers(i))} },
	"inc":    func(i int) []doc.Op { return []doc.Op{doc.Inc(fmt.Sprintf("/c%d", i%10), 1)} },
	"push":   func(i int) []doc.Op { return []doc.Op{doc.Push(fmt.Sprintf("/l%d", i%10), i)} },
	"mixed": func(i int) []doc.Op {
		k := i % 100
		return []doc.Op{doc.Set(fmt.Sprintf("/u%d/name", k), value32), doc.Inc(fmt.Sprintf("/u%d/n", k), 1), doc.Push("/log", k)}
	},
}

var benchWorkloads = []string{"set", "set-10", "inc", "push", "mixed"}

func tenMembers(i int) map[string]any {
	m := make(map[string]any, 10)
	for j := range 10 {
		m[fmt.Sprintf("f%d", j)] = i + j
	}
	return m
}

// BenchmarkPatchLocal measures patches applied on one replica with
// nothing connected.
func BenchmarkPatchLocal(b *testing.B) {
	for _, w := range benchWorkloads {
		b.Run(w, func(b *testing.B) {
			d, err := doc.New("bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			ops := benchOps[w]
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := d.Patch(ops(i)...); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "patches/s")
		})
	}
}

// BenchmarkPatchPipe measures patches made on A while it is live-connected
// to B over net.Pipe, until B holds them all, and the bytes A sends per
// patch.
func BenchmarkPatchPipe(b *testing.B) {
	for _, w := range benchWorkloads {
		b.Run(w, func(b *testing.B) {
			x, _ := doc.New("replica1", nil)
			y, _ := doc.New("replica2", nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ca, cb := net.Pipe()
			conn := stream.NewConn(x, ca, nil)
			go conn.Run(ctx)
			go stream.NewConn(y, cb, nil).Run(ctx)
			<-conn.Synced()
			ops := benchOps[w]
			start := conn.Stats().BytesOut
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := x.Patch(ops(i)...); err != nil {
					b.Fatal(err)
				}
				i++
			}
			last := x.Clock()[x.Source()]
			for y.Clock()[x.Source()] < last {
				time.Sleep(50 * time.Microsecond)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "patches/s")
			b.ReportMetric(float64(conn.Stats().BytesOut-start)/float64(b.N), "B/patch")
		})
	}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// fill writes leaves leaves of 32-byte strings: one patch per leaf, or one
// patch per object of perPatch leaves.
func fill(tb testing.TB, d *doc.Doc, leaves, perPatch int) {
	if perPatch == 1 {
		for i := range leaves {
			if err := d.Patch(doc.Set(fmt.Sprintf("/key-%07d", i), value32)); err != nil {
				tb.Fatal(err)
			}
		}
		return
	}
	for g := range leaves / perPatch {
		m := make(map[string]any, perPatch)
		for j := range perPatch {
			m[fmt.Sprintf("key-%04d", j)] = value32
		}
		if err := d.Patch(doc.Set(fmt.Sprintf("/group-%04d", g), m)); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkHeap measures the live heap per leaf of a document holding
// 1,000,000 leaves of 32-byte strings, written one patch per leaf (each
// update kept, as model's W5) or one object of 1,000 leaves per patch.
// ns/op is the writing. Run it with -benchtime 1x.
func BenchmarkHeap(b *testing.B) {
	const leaves = 1_000_000
	for _, tc := range []struct {
		name     string
		perPatch int
	}{{"patch-per-leaf", 1}, {"object-per-patch", 1000}} {
		b.Run(tc.name, func(b *testing.B) {
			var perLeaf float64
			for b.Loop() {
				b.StopTimer()
				before := heapInUse()
				d, err := doc.New("bench", nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				fill(b, d, leaves, tc.perPatch)
				b.StopTimer()
				perLeaf += float64(heapInUse()-before) / leaves
				if v, ok := d.Get("/key-0000000"); tc.perPatch == 1 && (!ok || v != value32) {
					b.Fatalf("/key-0000000 = %v", v)
				}
				runtime.KeepAlive(d)
				b.StartTimer()
			}
			b.ReportMetric(perLeaf/float64(b.N), "B/leaf")
		})
	}
}

// BenchmarkReconnect syncs A's 100,000-leaf document to B, disconnects
// them, makes 50 edits on each side, and measures the reconnection:
// connect until both are synced with equal clocks, and the bytes both
// ways (B/reconnect). Run it with -benchtime 1x.
func BenchmarkReconnect(b *testing.B) {
	const leaves, edits = 100_000, 50
	var bytes float64
	for b.Loop() {
		b.StopTimer()
		x, _ := doc.New("replica1", nil)
		y, _ := doc.New("replica2", nil)
		fill(b, x, leaves, 1)
		if n := connect(b, x, y); n == 0 {
			b.Fatal("no bytes")
		}
		for i := range edits {
			if err := x.Patch(doc.Set(fmt.Sprintf("/key-%07d", i), "changed on A"), doc.Inc("/edits", 1)); err != nil {
				b.Fatal(err)
			}
			if err := y.Patch(doc.Set(fmt.Sprintf("/key-%07d", edits+i), "changed on B"), doc.Inc("/edits", 1)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		bytes += float64(connect(b, x, y))
		b.StopTimer()
		if v, _ := x.Get("/edits"); v != int64(2*edits) {
			b.Fatalf("/edits = %v", v)
		}
		b.StartTimer()
	}
	b.ReportMetric(bytes/float64(b.N), "B/reconnect")
}

// connect links x and y over net.Pipe until both are synced with equal
// clocks, disconnects them, and returns the bytes exchanged.
func connect(tb testing.TB, x, y *doc.Doc) int64 {
	ctx, cancel := context.WithCancel(context.Background())
	ca, cb := net.Pipe()
	cx, cy := stream.NewConn(x, ca, nil), stream.NewConn(y, cb, nil)
	done := make(chan error, 2)
	go func() { done <- cx.Run(ctx) }()
	go func() { done <- cy.Run(ctx) }()
	<-cx.Synced()
	<-cy.Synced()
	for x.Clock().Compare(y.Clock()) != vclock.Equal {
		time.Sleep(50 * time.Microsecond)
	}
	n := cx.Stats().BytesOut + cy.Stats().BytesOut
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			tb.Fatal(err)
		}
	}
	return n
}
