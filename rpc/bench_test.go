package rpc_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/rpc"
)

// BenchmarkCall measures calls of an echo handler over one connection:
// calls per second, and the latency of one call at the 50th and 99th
// percentiles, with 1 caller at a time (per payload size) and 64 callers
// at once.
//
//	go test -run '^$' -bench BenchmarkCall -benchtime 2s ./rpc
func BenchmarkCall(b *testing.B) {
	for _, tr := range []struct {
		name string
		pair func(testing.TB) (net.Conn, net.Conn)
	}{
		{"pipe", pipePair},
		{"tcp", tcpPair},
	} {
		for _, bc := range []struct {
			callers int
			size    int
		}{
			{1, 16},
			{1, 1 << 10},
			{1, 64 << 10},
			{64, 16},
		} {
			b.Run(fmt.Sprintf("%s/callers=%d/payload=%s", tr.name, bc.callers, sizeName(bc.size)), func(b *testing.B) {
				benchCall(b, tr.pair, bc.callers, bc.size)
			})
		}
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func benchCall(b *testing.B, pair func(testing.TB) (net.Conn, net.Conn), callers, size int) {
	cc, sc := pair(b)
	srv := rpc.NewServer(nil)
	srv.Handle("echo", func(_ context.Context, args []any) (any, error) { return args[0], nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, sc) }()
	cl := rpc.NewClient(cc, nil)
	defer func() { cl.Close(); cancel(); <-done }()
	payload := strings.Repeat("x", size)
	if _, err := cl.Call(ctx, "echo", payload); err != nil {
		b.Fatal(err)
	}

	lat := make([][]time.Duration, callers)
	var next atomic.Int64
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := cl.Call(ctx, "echo", payload); err != nil {
					b.Error(err)
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Sorted(slices.Values(slices.Concat(lat...)))
	if len(all) == 0 {
		return
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(all[len(all)/2]), "p50-ns")
	b.ReportMetric(float64(all[len(all)*99/100]), "p99-ns")
}
