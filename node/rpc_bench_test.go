package node

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkCall calls a function that echoes its argument: on the node
// itself (in process), on a peer over loopback one call at a time, and on
// a peer with calls from many goroutines at once. It reports p50 and p99
// latency.
func BenchmarkCall(b *testing.B) {
	nodes := benchCluster(b)
	n1, n2 := nodes[0], nodes[1]
	echo := func(ctx context.Context, args []any) (any, error) { return args[0], nil }
	n1.Handle("local", echo)
	n2.Handle("echo", echo)
	for _, bc := range []struct {
		name     string
		method   string
		parallel bool
	}{{"local", "local", false}, {"remote", "echo", false}, {"remote-parallel", "echo", true}} {
		b.Run(bc.name, func(b *testing.B) {
			waitBench(b, func() bool { return len(n1.servers(bc.method)) == 1 })
			var mu sync.Mutex
			var lat []time.Duration
			call := func(own *[]time.Duration) {
				start := time.Now()
				if _, err := n1.Call(context.Background(), bc.method, "ping"); err != nil {
					b.Error(err)
				}
				*own = append(*own, time.Since(start))
			}
			b.ReportAllocs()
			if bc.parallel {
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					var own []time.Duration
					for pb.Next() {
						call(&own)
					}
					mu.Lock()
					lat = append(lat, own...)
					mu.Unlock()
				})
			} else {
				for b.Loop() {
					call(&lat)
				}
			}
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}

// benchCluster starts two linked nodes on loopback for a benchmark.
func benchCluster(b *testing.B) []*Node {
	b.Helper()
	var nodes []*Node
	for i, id := range []string{"n1", "n2"} {
		cfg := &Config{ID: id, BindAddr: "127.0.0.1:0", GossipAddr: "127.0.0.1:0", Memberlist: fastMemberlist(),
			ReconnectBase: 10 * time.Millisecond, ReconnectMax: 300 * time.Millisecond}
		if i > 0 {
			cfg.Join = []string{nodes[0].GossipAddr()}
		}
		n, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		nodes = append(nodes, n)
	}
	waitBench(b, func() bool { return len(linkPeers(nodes[0])) == 1 })
	return nodes
}

func waitBench(b *testing.B, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
