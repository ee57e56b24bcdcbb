package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/scuttle-go/scuttle/node"
)

// BenchmarkClusterWriteVisible measures, on a cluster of five scuttle
// serve processes on loopback, the time from a PUT on one node to the
// change arriving at watchers (Server-Sent Events) on all four others:
// the time for a write to be visible everywhere. "disk" runs the nodes
// with their logs (every update fsynced before it is acknowledged or
// applied, on the writer and on each receiver), "memory" with -memory.
// Metrics: p50-ms and p99-ms of that time, ack-p50-ms of the PUT alone.
//
//	go test -run '^$' -bench ClusterWriteVisible -benchtime 500x ./cmd/scuttle
func BenchmarkClusterWriteVisible(b *testing.B) {
	if testing.Short() {
		b.Skip("starts five processes; skipped with -short")
	}
	for _, mode := range []string{"disk", "memory"} {
		b.Run(mode, func(b *testing.B) {
			procs := newProcs(b, 5)
			for _, p := range procs {
				if mode == "memory" {
					p.data = ""
				}
				p.start()
			}
			waitMembers(b, procs, ids(procs))
			procs[0].mustCall("PUT", "/v1/models/bench/keys/init", "0")
			for _, p := range procs {
				waitUntil(b, p.id+" holds bench", 30*time.Second, func() (bool, string) {
					err := p.get("/v1/models/bench", nil)
					return err == nil, fmt.Sprint(err)
				})
			}

			// One watcher on each other node; each reports (watcher, key).
			type seen struct {
				watcher int
				key     string
				at      time.Time
			}
			ch := make(chan seen, 4096)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for i, p := range procs[1:] {
				c := &client{base: p.httpURL, hc: &http.Client{}}
				go c.watch(ctx, "/v1/models/bench/watch", func(data []byte) error {
					at := time.Now()
					var ch1 struct{ Key string }
					json.Unmarshal(data, &ch1)
					select {
					case ch <- seen{i, ch1.Key, at}:
					case <-ctx.Done():
					}
					return nil
				})
			}
			// Write until every watcher has reported one write: they are
			// subscribed.
			for j, ready := 0, map[int]bool{}; len(ready) < len(procs)-1; j++ {
				procs[0].mustCall("PUT", fmt.Sprintf("/v1/models/bench/keys/warm-%d", j), "0")
				timeout := time.After(100 * time.Millisecond)
			drain:
				for {
					select {
					case s := <-ch:
						ready[s.watcher] = true
					case <-timeout:
						break drain
					}
				}
			}

			var visible, acked []time.Duration
			i := 0
			for b.Loop() {
				key := fmt.Sprintf("k%d", i)
				i++
				start := time.Now()
				procs[0].mustCall("PUT", "/v1/models/bench/keys/"+key, fmt.Sprint(i))
				acked = append(acked, time.Since(start))
				var last time.Time
				for got := 0; got < len(procs)-1; {
					select {
					case s := <-ch:
						if s.key == key {
							got++
							last = s.at
						}
					case <-time.After(30 * time.Second):
						b.Fatalf("write %s not seen by every watcher within 30s", key)
					}
				}
				visible = append(visible, last.Sub(start))
			}
			b.ReportMetric(percentile(visible, 50), "p50-ms")
			b.ReportMetric(percentile(visible, 99), "p99-ms")
			b.ReportMetric(percentile(acked, 50), "ack-p50-ms")
			b.ReportMetric(0, "ns/op") // the wall time per write is p50-ms
		})
	}
}

// percentile returns the p-th percentile of ds, in milliseconds.
func percentile(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)*p+99)/100-1)
	return float64(s[max(i, 0)]) / float64(time.Millisecond)
}

// countingTransport is memberlist's UDP and TCP transport, counting what
// it carries: every datagram sent, and both directions of every stream
// dialled. Every stream is dialled by some member, so over a cluster the
// sum is all the gossip traffic.
type countingTransport struct {
	memberlist.Transport
	bytes *atomic.Int64
}

func (t *countingTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	t.bytes.Add(int64(len(b)))
	return t.Transport.WriteTo(b, addr)
}

func (t *countingTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	c, err := t.Transport.DialTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, bytes: t.bytes}, nil
}

type countingConn struct {
	net.Conn
	bytes *atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.bytes.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.bytes.Add(int64(n))
	return n, err
}

// BenchmarkClusterIdle measures an idle cluster of five nodes (in this
// process, memberlist's LAN timers and the node defaults, as scuttle
// serve runs them) holding a model, an emitter and a lock table: CPU per
// node, and bytes per second per node on replication links (yamux
// keepalives) and in gossip (memberlist's probes and push-pull). Each
// iteration is one second of idling; give it a minute to cover the
// 30-second push-pull and the 10-second keepalives:
//
//	go test -run '^$' -bench ClusterIdle -benchtime 60x ./cmd/scuttle
func BenchmarkClusterIdle(b *testing.B) {
	if testing.Short() {
		b.Skip("runs a cluster for a while; skipped with -short")
	}
	const size = 5
	ports := freePorts(b, size)
	var gossip atomic.Int64
	nodes := make([]*node.Node, size)
	for i := range size {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"}, BindPort: ports[i], Logger: log.New(io.Discard, "", 0),
		})
		if err != nil {
			b.Fatal(err)
		}
		mc := memberlist.DefaultLANConfig()
		mc.Transport = &countingTransport{Transport: nt, bytes: &gossip}
		cfg := &node.Config{
			ID: fmt.Sprintf("n%d", i+1), DataDir: b.TempDir(), BindAddr: "127.0.0.1:0",
			GossipAddr: fmt.Sprintf("127.0.0.1:%d", ports[i]), Memberlist: mc,
		}
		if i > 0 {
			cfg.Join = []string{fmt.Sprintf("127.0.0.1:%d", ports[0])}
		}
		n, err := node.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		nodes[i] = n
	}
	m, _ := nodes[0].Model("idle-model")
	for k := range 100 {
		m.Set(fmt.Sprint("key-", k), k)
	}
	e, _ := nodes[1].Emitter("idle-events")
	e.Emit("started")
	if _, err := nodes[2].Locks("idle-locks"); err != nil {
		b.Fatal(err)
	}
	linkBytes := func() (total int64, links int) {
		for _, n := range nodes {
			st := n.Status()
			for _, l := range st.Links {
				total += l.BytesOut // every byte out of one end is in at the other
			}
			links += len(st.Links)
		}
		return total, links
	}
	// Settled: every node linked to the four others and holding the three
	// documents.
	waitUntil(b, "the cluster settles", 30*time.Second, func() (bool, string) {
		_, links := linkBytes()
		docs := 0
		for _, n := range nodes {
			docs += len(n.Documents())
		}
		return links == size*(size-1) && docs == 3*size, fmt.Sprintf("%d link ends, %d documents", links, docs)
	})
	time.Sleep(2 * time.Second) // the join's gossip dies down

	cpu0, link0, gossip0, start := cpuTime(), first(linkBytes()), gossip.Load(), time.Now()
	for b.Loop() {
		time.Sleep(time.Second)
	}
	elapsed := time.Since(start).Seconds()
	cpu, link, gsp := cpuTime()-cpu0, first(linkBytes())-link0, gossip.Load()-gossip0
	if _, links := linkBytes(); links != size*(size-1) {
		b.Errorf("%d link ends at the end, want %d: links flapped while idle", links, size*(size-1))
	}
	b.ReportMetric(100*cpu.Seconds()/elapsed/size, "cpu-%/node")
	b.ReportMetric(float64(link)/elapsed/size, "link-B/s/node")
	b.ReportMetric(float64(gsp)/elapsed/size, "gossip-B/s/node")
	b.ReportMetric(0, "ns/op")
}

func first[T, U any](t T, _ U) T { return t }

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
