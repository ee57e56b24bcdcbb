package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/doc"
	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/lock"
)

func TestEmitterReplicates(t *testing.T) {
	leak.Check(t)
	nodes := cluster(t, []string{"a", "b"}, nil)
	e, err := nodes[0].Emitter("events")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Emit("hello", "world", int64(1)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b holds a's event", func() bool {
		eb, err := nodes[1].Emitter("events")
		return err == nil && eb.Len() == 1
	})
	eb, _ := nodes[1].Emitter("events")
	got := eb.Events(nil)
	if len(got) != 1 || got[0].Name != "hello" || got[0].Source != e.Source() {
		t.Fatalf("b's events: %+v", got)
	}
	if diff := cmp.Diff([]any{"world", int64(1)}, got[0].Args); diff != "" {
		t.Errorf("event args (-want +got):\n%s", diff)
	}
	if _, err := nodes[1].Model("events"); !errors.Is(err, ErrDocumentType) {
		t.Errorf("Model of an emitter: %v, want ErrDocumentType", err)
	}
}

// lockCfg gives lock tables short leases, so that a test that kills a
// member does not wait long.
func lockCfg(c *Config) {
	c.Lock = &lock.Config{Lease: 2 * time.Second}
}

func TestLocksFollowMembership(t *testing.T) {
	leak.Check(t)
	nodes := cluster(t, []string{"a", "b", "c", "d"}, lockCfg)
	c, d := nodes[2], nodes[3]
	tables := make([]*lock.Table, len(nodes))
	for i, n := range nodes {
		var err error
		if tables[i], err = n.Locks("jobs"); err != nil {
			t.Fatal(err)
		}
	}
	all := []string{"a", "b", "c", "d"}
	for i, tb := range tables {
		waitFor(t, nodes[i].ID()+"'s table lists every member", func() bool { return slices.Equal(tb.Members(), all) })
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	if err := tables[0].Lock(ctx, "job1"); err != nil {
		t.Fatalf("a: Lock: %v", err)
	}
	waitFor(t, "b sees a hold job1", func() bool { h, ok := tables[1].Holder("job1"); return ok && h == "a" })
	if err := tables[1].TryLock(ctx, "job1"); !errors.Is(err, lock.ErrLocked) {
		t.Fatalf("b: TryLock of a lock a holds: %v, want ErrLocked", err)
	}
	if err := tables[0].Unlock("job1"); err != nil {
		t.Fatal(err)
	}

	// d leaves gracefully, c dies: both drop out of the lock members, and
	// locks are granted again among a and b.
	if err := d.Leave(leaveCtx(t)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	for i, tb := range tables[:2] {
		waitFor(t, nodes[i].ID()+"'s table drops c and d", func() bool { return slices.Equal(tb.Members(), []string{"a", "b"}) })
	}
	if err := tables[1].Lock(ctx, "job1"); err != nil {
		t.Fatalf("b: Lock after c and d are gone: %v", err)
	}
	waitFor(t, "a sees b hold job1", func() bool { h, ok := tables[0].Holder("job1"); return ok && h == "b" })
	if err := tables[1].Unlock("job1"); err != nil {
		t.Fatal(err)
	}
}

// TestDocReplicates checks documents of type "doc": created on one node,
// they appear on the other through the catalog; concurrent patches merge
// (increments all count); they are logged like models, so a node
// restarted with its data directory has its document back before any
// link, and then catches up with only what it missed.
func TestDocReplicates(t *testing.T) {
	leak.Check(t)
	cfgA, cfgB := testConfig(t, "a"), testConfig(t, "b")
	cfgA.DataDir, cfgB.DataDir = t.TempDir(), t.TempDir()
	a := start(t, cfgA)
	cfgB.Join = []string{a.GossipAddr()}
	b := start(t, cfgB)
	waitFor(t, "a and b see each other", func() bool {
		return slices.Equal(a.Members(), []string{"a", "b"}) && slices.Equal(b.Members(), []string{"a", "b"})
	})

	da := mustDoc(t, a, "store")
	if err := da.Patch(doc.Set("/users/ada", map[string]any{"admin": true, "logins": int64(0)}), doc.Push("/log", "ada joined")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b holds store, typed doc", func() bool {
		return slices.ContainsFunc(b.Documents(), func(d DocumentInfo) bool { return d.Name == "store" && d.Type == "doc" })
	})
	db := mustDoc(t, b, "store")
	// Both count at once: every increment counts.
	for range 3 {
		if err := da.Patch(doc.Inc("/users/ada/logins", 1)); err != nil {
			t.Fatal(err)
		}
		if err := db.Patch(doc.Inc("/users/ada/logins", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Patch(doc.Set("/users/ada/admin", false), doc.Push("/log", "ada demoted")); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"users": map[string]any{"ada": map[string]any{"admin": false, "logins": int64(6)}},
		"log":   []any{"ada joined", "ada demoted"},
	}
	waitDoc(t, "store", want, a, b)
	if _, err := a.Model("store"); !errors.Is(err, ErrDocumentType) {
		t.Errorf("Model of a doc: %v, want ErrDocumentType", err)
	}
	if _, err := b.Doc("_catalog"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Doc(_catalog): %v, want ErrInvalidName", err)
	}

	// b stops; a writes meanwhile; b comes back with its log.
	cfgB.BindAddr, cfgB.GossipAddr = b.Addr(), b.GossipAddr()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := da.Patch(doc.Inc("/users/ada/logins", 1)); err != nil {
		t.Fatal(err)
	}
	b, err := New(cfgB)
	if err != nil {
		t.Fatalf("restarting b: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if diff := cmp.Diff(want, mustDoc(t, b, "store").Snapshot()); diff != "" {
		t.Errorf("b's store after the restart, before catching up (-want +got):\n%s", diff)
	}
	want["users"].(map[string]any)["ada"].(map[string]any)["logins"] = int64(7)
	waitDoc(t, "store", want, a, b)
	if err := mustDoc(t, b, "store").Patch(doc.Inc("/users/ada/logins", 1)); err != nil {
		t.Fatal(err)
	}
	want["users"].(map[string]any)["ada"].(map[string]any)["logins"] = int64(8)
	waitDoc(t, "store", want, a, b)
}

func mustDoc(t *testing.T, n *Node, name string) *doc.Doc {
	t.Helper()
	d, err := n.Doc(name)
	if err != nil {
		t.Fatalf("%s.Doc(%q): %v", n.ID(), name, err)
	}
	return d
}

// waitDoc waits until the JSON document called name holds want on every
// node.
func waitDoc(t *testing.T, name string, want map[string]any, nodes ...*Node) {
	t.Helper()
	for _, n := range nodes {
		var last map[string]any
		deadline := time.Now().Add(waitTimeout)
		for {
			if d, err := n.Doc(name); err == nil {
				if last = d.Snapshot(); cmp.Equal(want, last) {
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

// TestDocLog checks a JSON document's log: a node restarted with its data
// directory replays it (filelog checks each record with the document's
// Validator), and compaction rewrites it as the document's History, which
// a million increments would not grow: a few hundred patches leave a log
// of a few records that replays to the same document.
func TestDocLog(t *testing.T) {
	leak.Check(t)
	cfg := testConfig(t, "a")
	cfg.DataDir = t.TempDir()
	cfg.FileLog = &filelog.Config{CompactMin: 16}
	n := start(t, cfg)
	d := mustDoc(t, n, "store")
	for i := range 300 {
		ops := []doc.Op{doc.Inc("/hits", 1), doc.Set("/last", int64(i))}
		if i%3 == 0 {
			ops = append(ops, doc.Push("/seen", int64(i%5)))
		}
		if i%7 == 0 {
			ops = append(ops, doc.Pull("/seen", int64(i%5)))
		}
		if err := d.Patch(ops...); err != nil {
			t.Fatal(err)
		}
	}
	want := d.Snapshot()
	if want["hits"] != int64(300) {
		t.Fatalf("hits = %v, want 300", want["hits"])
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "doc", "store.log")); err != nil {
		t.Errorf("the log of a doc: %v", err)
	}
	n.mu.Lock()
	log := n.docs["store"].log
	n.mu.Unlock()
	waitFor(t, "the log is compacted", func() bool { return log.Stats().Compactions > 0 })
	if err := log.Compact(); err != nil {
		t.Fatal(err)
	}
	st, h := log.Stats(), len(d.History(nil))
	if st.Records > int64(h)+4 {
		t.Errorf("a log of %d records compacted to %d, for a history of %d updates", st.Appended, st.Records, h)
	}
	t.Logf("300 patches: a history of %d updates, a log of %d records after %d compactions", h, st.Records, st.Compactions)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.BindAddr, cfg.GossipAddr = "127.0.0.1:0", "127.0.0.1:0"
	n = start(t, cfg)
	if diff := cmp.Diff(want, mustDoc(t, n, "store").Snapshot()); diff != "" {
		t.Errorf("the document after a restart from its log (-want +got):\n%s", diff)
	}
	if docs := n.Documents(); len(docs) != 1 || docs[0].Type != "doc" {
		t.Errorf("Documents after the restart: %+v, want store of type doc", docs)
	}
}
