package node

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
)

func TestClusterConverges(t *testing.T) {
	leak.Check(t)
	nodes := cluster(t, []string{"a", "b", "c"}, nil)
	want := map[string]any{}
	for i, n := range nodes {
		m := mustModel(t, n, "shared")
		if err := m.Set(n.ID(), int64(i)); err != nil {
			t.Fatal(err)
		}
		want[n.ID()] = int64(i)
	}
	waitConverged(t, "shared", want, nodes...)

	// Full mesh: every node links to both others, once per pair.
	for _, n := range nodes {
		var others []string
		for _, o := range nodes {
			if o != n {
				others = append(others, o.ID())
			}
		}
		waitFor(t, n.ID()+" links to "+fmt.Sprint(others), func() bool { return slices.Equal(linkPeers(n), others) })
	}
	for _, l := range nodes[0].Status().Links {
		if !l.Dialed {
			t.Errorf("a's link to %s was not dialled by a (the smaller id dials)", l.Peer)
		}
	}

	// A document created on one node appears on all, and replicates, on
	// the links that are up.
	dials := nodes[0].Status().Counters.Dials + nodes[1].Status().Counters.Dials
	m := mustModel(t, nodes[2], "late")
	m.Set("from", "c")
	for _, n := range nodes {
		waitFor(t, n.ID()+" holds late", func() bool {
			return slices.ContainsFunc(n.Documents(), func(d DocumentInfo) bool { return d.Name == "late" })
		})
	}
	waitConverged(t, "late", map[string]any{"from": "c"}, nodes...)
	if d := nodes[0].Status().Counters.Dials + nodes[1].Status().Counters.Dials; d != dials {
		t.Errorf("a and b dialled %d times more for a new document; want no reconnect", d-dials)
	}

	st := nodes[0].Status()
	if st.ID != "a" || len(st.Members) != 3 || len(st.Documents) != 2 {
		t.Errorf("status of a: id %q, %d members, %d documents; want a, 3, 2", st.ID, len(st.Members), len(st.Documents))
	}
	for _, l := range st.Links {
		if l.BytesIn == 0 || l.BytesOut == 0 || l.Documents["shared"].BytesIn == 0 {
			t.Errorf("link a-%s counted no bytes: %+v", l.Peer, l)
		}
	}
}

func TestLeave(t *testing.T) {
	leak.Check(t)
	nodes := cluster(t, []string{"a", "b", "c"}, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	waitFor(t, "c linked", func() bool { return len(linkPeers(c)) == 2 })
	if err := c.Leave(leaveCtx(t)); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	for _, n := range []*Node{a, b} {
		waitFor(t, n.ID()+" records c as left", func() bool { return memberState(n, "c") == Left })
		waitFor(t, n.ID()+" drops its link to c", func() bool { return !slices.Contains(linkPeers(n), "c") })
		if diff := cmp.Diff([]string{"a", "b"}, n.Members()); diff != "" {
			t.Errorf("%s's live members (-want +got):\n%s", n.ID(), diff)
		}
		if dialing(n, "c") {
			t.Errorf("%s still dials c", n.ID())
		}
	}
	if got := linkPeers(c); len(got) != 0 {
		t.Errorf("c kept links to %v after leaving", got)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after Leave: %v", err)
	}
	// The others still replicate with each other.
	mustModel(t, a, "after").Set("k", "v")
	waitConverged(t, "after", map[string]any{"k": "v"}, a, b)
}

func TestFailureDetected(t *testing.T) {
	leak.Check(t)
	nodes := cluster(t, []string{"a", "b", "c"}, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	waitFor(t, "c linked", func() bool { return len(linkPeers(c)) == 2 })
	c.Close() // no Leave: the process "dies"
	for _, n := range []*Node{a, b} {
		waitFor(t, n.ID()+" records c as failed", func() bool { return memberState(n, "c") == Failed })
		waitFor(t, n.ID()+" drops its link to c", func() bool { return !slices.Contains(linkPeers(n), "c") })
		waitFor(t, n.ID()+" stops dialling c", func() bool { return !dialing(n, "c") })
	}
	mustModel(t, b, "after").Set("k", "v")
	waitConverged(t, "after", map[string]any{"k": "v"}, a, b)
}

func TestRestartCatchesUp(t *testing.T) {
	leak.Check(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	cfgA := testConfig(t, "a")
	cfgA.DataDir = dirA
	a := start(t, cfgA)
	cfgB := testConfig(t, "b")
	cfgB.DataDir = dirB
	cfgB.Join = []string{a.GossipAddr()}
	b := start(t, cfgB)
	mustModel(t, b, "doc").Set("b1", int64(1))
	mustModel(t, a, "doc").Set("a1", int64(1))
	waitConverged(t, "doc", map[string]any{"a1": int64(1), "b1": int64(1)}, a, b)

	// b "dies" and comes back on the same addresses with its data.
	cfgB.BindAddr, cfgB.GossipAddr = b.Addr(), b.GossipAddr()
	if err := b.Close(); err != nil {
		t.Fatalf("closing b: %v", err)
	}
	mustModel(t, a, "doc").Set("a2", int64(2))
	b, err := New(cfgB)
	if err != nil {
		t.Fatalf("restarting b: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	// Before any link: b's log gave its documents back.
	if diff := cmp.Diff(map[string]any{"a1": int64(1), "b1": int64(1)}, mustModel(t, b, "doc").Snapshot()); diff != "" {
		t.Errorf("b's document after the restart, before catching up (-want +got):\n%s", diff)
	}
	want := map[string]any{"a1": int64(1), "b1": int64(1), "a2": int64(2)}
	waitConverged(t, "doc", want, a, b)
	mustModel(t, b, "doc").Set("b2", int64(2))
	want["b2"] = int64(2)
	waitConverged(t, "doc", want, a, b)
	if st := a.Status(); st.Counters.Dials < 2 {
		t.Errorf("a dialled b %d times; want a reconnect", st.Counters.Dials)
	}
}

func TestManyDocuments(t *testing.T) {
	leak.Check(t)
	const docs = 100
	nodes := cluster(t, []string{"a", "b"}, nil)
	want := make(map[string]map[string]any)
	for i := range docs {
		name := fmt.Sprintf("doc-%03d", i)
		n := nodes[i%2]
		mustModel(t, n, name).Set("owner", n.ID())
		mustModel(t, n, name).Set("i", int64(i))
		want[name] = map[string]any{"owner": n.ID(), "i": int64(i)}
	}
	for name, w := range want {
		waitConverged(t, name, w, nodes...)
	}
	for _, n := range nodes {
		if got := len(n.Documents()); got != docs {
			t.Errorf("%s holds %d documents, want %d", n.ID(), got, docs)
		}
		if st := n.Status(); len(st.Links) != 1 {
			t.Errorf("%s has %d links, want 1 carrying every document", n.ID(), len(st.Links))
		}
	}
}

func TestDocumentNames(t *testing.T) {
	leak.Check(t)
	n := start(t, testConfig(t, "a"))
	for _, name := range []string{"", "_catalog", ".hidden", "a/b", "sp ace", "x\x00", string(make([]byte, MaxNameSize+1))} {
		if _, err := n.Model(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Model(%q): %v, want ErrInvalidName", name, err)
		}
	}
	for _, name := range []string{"a", "A-1", "users.v2", "x_y"} {
		if _, err := n.Model(name); err != nil {
			t.Errorf("Model(%q): %v", name, err)
		}
	}
	// The catalog says "ev" is another type: Model refuses it.
	if err := n.catalog.doc.(interface{ Set(string, any) error }).Set("ev", "emitter"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Model("ev"); !errors.Is(err, ErrDocumentType) {
		t.Errorf("Model of a document the catalog types otherwise: %v, want ErrDocumentType", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Model("late"); !errors.Is(err, ErrClosed) {
		t.Errorf("Model after Close: %v, want ErrClosed", err)
	}
	if err := n.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

// TestPartialMesh runs a cluster above FullMeshSize with ring links only:
// each node links to its two ring neighbours, and writes reach every node
// over several hops.
func TestPartialMesh(t *testing.T) {
	leak.Check(t)
	ids := []string{"n0", "n1", "n2", "n3", "n4", "n5"}
	nodes := cluster(t, ids, func(c *Config) { c.FullMeshSize, c.RingLinks, c.RandomLinks = 3, 1, -1 })
	for i, n := range nodes {
		prev, next := ids[(i+len(ids)-1)%len(ids)], ids[(i+1)%len(ids)]
		want := []string{prev, next}
		slices.Sort(want)
		waitFor(t, fmt.Sprintf("%s links to its ring neighbours %v", n.ID(), want), func() bool {
			return slices.Equal(linkPeers(n), want)
		})
	}
	want := map[string]any{}
	for _, n := range nodes {
		mustModel(t, n, "ring").Set(n.ID(), true)
		want[n.ID()] = true
	}
	waitConverged(t, "ring", want, nodes...)
}

func TestNewFailsCleanly(t *testing.T) {
	leak.Check(t)
	a := start(t, testConfig(t, "a"))
	dir := t.TempDir()
	for name, tweak := range map[string]func(*Config){
		"gossip port taken":      func(c *Config) { c.GossipAddr = a.GossipAddr() },
		"replication port taken": func(c *Config) { c.BindAddr = a.Addr() },
		"missing TLS files":      func(c *Config) { c.CertFile, c.KeyFile, c.CAFile = "no.pem", "no.pem", "no.pem" },
	} {
		cfg := testConfig(t, "b")
		cfg.DataDir = dir
		tweak(cfg)
		if n, err := New(cfg); err == nil {
			n.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
	// The failed attempts released the data directory's logs.
	cfg := testConfig(t, "b")
	cfg.DataDir = dir
	start(t, cfg)
}
