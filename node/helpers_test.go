package node

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/memberlist"
	"github.com/scuttle-go/scuttle/model"
)

// waitTimeout bounds every wait for the cluster to do something. It is
// generous for a loaded machine under -race; waits poll and end as soon
// as the condition holds.
const waitTimeout = 30 * time.Second

// logBuffer collects a test's log lines and prints them if the test
// fails. Lines written after the test (by goroutines still ending) are
// dropped silently.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	level := slog.LevelInfo
	if os.Getenv("NODE_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testLogWriter(t), &slog.HandlerOptions{Level: level}))
}

// testLogWriter returns a writer whose lines are printed if the test
// fails.
func testLogWriter(t *testing.T) io.Writer {
	t.Helper()
	lb := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			lb.mu.Lock()
			t.Logf("node logs:\n%s", lb.buf.String())
			lb.mu.Unlock()
		}
	})
	return lb
}

// fastMemberlist is memberlist tuned for loopback tests: failures are
// noticed in about a second, and gossip converges in tens of milliseconds.
func fastMemberlist() *memberlist.Config {
	mc := memberlist.DefaultLocalConfig()
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 150 * time.Millisecond
	mc.SuspicionMult = 2
	mc.IndirectChecks = 1
	mc.GossipInterval = 20 * time.Millisecond
	mc.GossipToTheDeadTime = 2 * time.Second
	mc.PushPullInterval = 2 * time.Second
	mc.TCPTimeout = 2 * time.Second
	mc.DeadNodeReclaimTime = time.Millisecond
	return mc
}

// testConfig returns a loopback configuration for node id with fast
// timers and the test's logger.
func testConfig(t *testing.T, id string) *Config {
	return &Config{
		ID:                id,
		BindAddr:          "127.0.0.1:0",
		GossipAddr:        "127.0.0.1:0",
		ReconnectBase:     10 * time.Millisecond,
		ReconnectMax:      300 * time.Millisecond,
		HandshakeTimeout:  5 * time.Second,
		KeepAliveInterval: time.Second,
		Memberlist:        fastMemberlist(),
		Logger:            testLogger(t).With("test", t.Name()),
	}
}

// start starts a node and closes it when the test ends, unless the test
// closed it itself.
func start(t *testing.T, cfg *Config) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.ID, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// cluster starts nodes with the given ids, each joining the first, and
// waits until every node sees all of them alive.
func cluster(t *testing.T, ids []string, tweak func(*Config)) []*Node {
	t.Helper()
	var nodes []*Node
	for i, id := range ids {
		cfg := testConfig(t, id)
		if i > 0 {
			cfg.Join = []string{nodes[0].GossipAddr()}
		}
		if tweak != nil {
			tweak(cfg)
		}
		nodes = append(nodes, start(t, cfg))
	}
	want := slices.Sorted(slices.Values(ids))
	for _, n := range nodes {
		waitFor(t, fmt.Sprintf("%s sees members %v", n.ID(), want), func() bool {
			return slices.Equal(n.Members(), want)
		})
	}
	return nodes
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting until %s", waitTimeout, what)
		}
		time.Sleep(wait)
	}
}

func mustModel(t *testing.T, n *Node, name string) *model.Model {
	t.Helper()
	m, err := n.Model(name)
	if err != nil {
		t.Fatalf("%s.Model(%q): %v", n.ID(), name, err)
	}
	return m
}

// waitConverged waits until the document called name holds want on every
// node.
func waitConverged(t *testing.T, name string, want map[string]any, nodes ...*Node) {
	t.Helper()
	for _, n := range nodes {
		var last map[string]any
		deadline := time.Now().Add(waitTimeout)
		for {
			if m, err := n.Model(name); err == nil {
				last = m.Snapshot()
				if cmp.Equal(want, last) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %q did not converge (-want +got):\n%s", n.ID(), name, cmp.Diff(want, last))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// linkPeers returns the peers n has links to, sorted.
func linkPeers(n *Node) []string {
	var peers []string
	for _, l := range n.Status().Links {
		peers = append(peers, l.Peer)
	}
	return peers
}

// memberState returns the state n records for member id, or "".
func memberState(n *Node, id string) MemberState {
	for _, m := range n.Status().Members {
		if m.ID == id {
			return m.State
		}
	}
	return ""
}

// dialing reports whether n runs a dialer for peer.
func dialing(n *Node, peer string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dialers[peer] != nil
}

func leaveCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
