package node

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/leak"
)

func TestReady(t *testing.T) {
	leak.Check(t)
	a := start(t, testConfig(t, "a"))
	// Alone, with no seeds: ready once its documents are open.
	waitFor(t, "a ready alone", func() bool { return a.Ready() == nil })
	mustModel(t, a, "m").Set("k", "v")

	cfg := testConfig(t, "b")
	cfg.Join = []string{"127.0.0.1:1"} // nobody there
	b := start(t, cfg)
	if err := b.Ready(); err == nil {
		t.Fatalf("b is ready before joining anyone")
	}
	if _, err := b.Join(a.GossipAddr()); err != nil {
		t.Fatalf("Join: %v", err)
	}
	waitFor(t, "b ready after a first sync with a", func() bool { return b.Ready() == nil })
	// Ready means the first sync is done: a's document is there.
	if v, ok := mustModel(t, b, "m").Get("k"); !ok || v != "v" {
		t.Errorf("b ready without a's document: m.k = %v, %v", v, ok)
	}
	if err := b.Leave(leaveCtx(t)); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := b.Ready(); !errors.Is(err, ErrLeft) {
		t.Errorf("Ready after Leave = %v, want ErrLeft", err)
	}
}

func TestReapAndForceLeave(t *testing.T) {
	leak.Check(t)
	const reap = 300 * time.Millisecond
	nodes := cluster(t, []string{"a", "b", "c", "d"}, func(c *Config) {
		if c.ID != "a" {
			c.ReapAfter = time.Hour // only a reaps; b and c are told by force-leave
		} else {
			c.ReapAfter = reap
		}
	})
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]
	if err := b.ForceLeave("c"); !errors.Is(err, ErrMemberAlive) {
		t.Errorf("ForceLeave of a live member = %v, want ErrMemberAlive", err)
	}
	if err := b.ForceLeave("zz"); !errors.Is(err, ErrUnknownMember) {
		t.Errorf("ForceLeave of an unknown member = %v, want ErrUnknownMember", err)
	}
	d.Close() // d "dies"
	for _, n := range []*Node{b, c} {
		waitFor(t, n.ID()+" records d as failed", func() bool { return memberState(n, "d") == Failed })
	}
	// a reaps d by itself after ReapAfter.
	waitFor(t, "a reaps d", func() bool { return memberState(a, "d") == "" })
	for _, m := range a.Status().Members {
		if m.ID == "d" {
			t.Errorf("a's status still lists d: %+v", m)
		}
	}
	// b forces d out: b and c forget it at once.
	if err := b.ForceLeave("d"); err != nil {
		t.Fatalf("ForceLeave(d): %v", err)
	}
	if s := memberState(b, "d"); s != "" {
		t.Errorf("b still records d as %s", s)
	}
	waitFor(t, "c forgets d", func() bool { return memberState(c, "d") == "" })
	for _, n := range []*Node{a, b, c} {
		if got := n.Members(); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Errorf("%s's members = %v", n.ID(), got)
		}
	}
}

func TestLeaveWithNoPeerAlive(t *testing.T) {
	leak.Check(t)
	nodes := cluster(t, []string{"a", "b"}, func(c *Config) { c.LeaveWait = time.Minute })
	a, b := nodes[0], nodes[1]
	if err := b.Leave(leaveCtx(t)); err != nil {
		t.Fatalf("b.Leave: %v", err)
	}
	waitFor(t, "a records b as left", func() bool { return memberState(a, "b") == Left })
	b.Close()
	// a is the last one: its Leave does not wait for a broadcast nobody
	// will hear (memberlist's own wait would end only at LeaveWait).
	start := time.Now()
	if err := a.Leave(leaveCtx(t)); err != nil {
		t.Fatalf("a.Leave: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a.Leave took %v with no peer alive", d)
	}
}

func TestMemberlistLogLines(t *testing.T) {
	for _, tc := range []struct {
		in    string
		level slog.Level
		msg   string
	}{
		{"2026/11/30 [DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", slog.LevelInfo, "2026/11/30 [DEBUG] memberlist: Stream connection from=127.0.0.1:1"},
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", slog.LevelDebug, "Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Marking n4 as failed, suspect timeout reached (0 peer confirmations)\n", slog.LevelInfo, "Marking n4 as failed, suspect timeout reached (0 peer confirmations)"},
		{"[WARN] memberlist: Was able to connect to n2 over TCP but UDP probes failed\n", slog.LevelWarn, "Was able to connect to n2 over TCP but UDP probes failed"},
		{"[ERR] memberlist: Failed to join 127.0.0.1:1: 1 error occurred:\n\t* Failed to join 127.0.0.1:1: dial tcp: connection refused\n\n\n", slog.LevelError,
			"Failed to join 127.0.0.1:1: 1 error occurred:; * Failed to join 127.0.0.1:1: dial tcp: connection refused"},
		{"[ERROR] memberlist: bad\r\nthing\n", slog.LevelError, "bad; thing"},
		{"no prefix at all", slog.LevelInfo, "no prefix at all"},
	} {
		t.Run(tc.msg, func(t *testing.T) {
			level, msg := parseMemberlistLine(tc.in)
			if level != tc.level || msg != tc.msg {
				t.Errorf("parseMemberlistLine(%q) = %v, %q; want %v, %q", tc.in, level, msg, tc.level, tc.msg)
			}
		})
	}
}

// observed is an Observer that keeps what it is told.
type observed struct {
	mu     sync.Mutex
	fsyncs int
	lags   map[string][]time.Duration
}

func (r *observed) ObserveFsync(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fsyncs++
}

func (r *observed) ObserveLag(doc string, lag time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lags == nil {
		r.lags = map[string][]time.Duration{}
	}
	r.lags[doc] = append(r.lags[doc], lag)
}

func (r *observed) get(doc string) (fsyncs int, lags []time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fsyncs, slices.Clone(r.lags[doc])
}

func TestObserver(t *testing.T) {
	leak.Check(t)
	recs := map[string]*observed{"a": {}, "b": {}}
	nodes := cluster(t, []string{"a", "b"}, func(c *Config) {
		c.DataDir = t.TempDir()
		c.Observer = recs[c.ID]
	})
	a := nodes[0]
	m := mustModel(t, a, "m")
	for i := range 3 {
		if err := m.Set(fmt.Sprint("k", i), i); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "b observes the lag of m's 3 updates", func() bool {
		_, lags := recs["b"].get("m")
		return len(lags) >= 3
	})
	_, lags := recs["b"].get("m")
	for _, l := range lags {
		if l < 0 || l > waitTimeout {
			t.Errorf("lag %v out of range", l)
		}
	}
	if fs, _ := recs["a"].get("m"); fs < 3 {
		t.Errorf("a observed %d fsyncs for 3 durable writes", fs)
	}
	// a's own writes are no lag of a's.
	if _, own := recs["a"].get("m"); len(own) != 0 {
		t.Errorf("a observed lag for its own writes: %v", own)
	}
}
