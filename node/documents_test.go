package node

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMaxDocuments checks the cap: the document past it is
// ErrTooManyDocuments naming the cap, the ones held stay usable, and a
// deletion makes room.
func TestMaxDocuments(t *testing.T) {
	cfg := testConfig(t, "n1")
	cfg.MaxDocuments = 3
	n := start(t, cfg)
	for i := range 3 {
		mustModel(t, n, fmt.Sprintf("m%d", i))
	}
	_, err := n.Emitter("one-more")
	if !errors.Is(err, ErrTooManyDocuments) || !strings.Contains(err.Error(), "MaxDocuments") {
		t.Fatalf("a 4th document: %v, want ErrTooManyDocuments naming the cap", err)
	}
	if _, ok := n.DocumentType("one-more"); ok {
		t.Fatal("the refused document is held")
	}
	if err := mustModel(t, n, "m0").Set("k", 1); err != nil {
		t.Fatalf("a held document past the cap: %v", err)
	}
	if err := n.Delete("m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Emitter("one-more"); err != nil {
		t.Fatalf("after a deletion: %v", err)
	}
}

// TestDeleteErrors checks what Delete refuses.
func TestDeleteErrors(t *testing.T) {
	n := start(t, testConfig(t, "n1"))
	if _, err := n.Locks("jobs"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		want error
	}{
		{"never-made", ErrNoDocument},
		{"jobs", ErrDocumentType},
		{"_catalog", ErrInvalidName},
		{"_rpc", ErrInvalidName},
		{"a/b", ErrInvalidName},
	} {
		if err := n.Delete(c.name); !errors.Is(err, c.want) {
			t.Errorf("Delete(%q): %v, want %v", c.name, err, c.want)
		}
	}
	mustModel(t, n, "once")
	if err := n.Delete("once"); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete("once"); !errors.Is(err, ErrNoDocument) {
		t.Errorf("deleting twice: %v, want ErrNoDocument", err)
	}
}

// TestCatalogCapFromPeer checks that names a peer's catalog brings past
// the cap are refused, each logged once however often the catalog
// changes, that they do not keep the node from being ready, and that
// they are opened as deletions make room.
func TestCatalogCapFromPeer(t *testing.T) {
	var logs logBuffer
	nodes := cluster(t, []string{"n1", "n2"}, func(c *Config) {
		if c.ID == "n1" {
			c.MaxDocuments = 5
			c.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(testLogWriter(t), &logs), nil))
		}
	})
	n1, n2 := nodes[0], nodes[1]
	for i := range 8 {
		if err := mustModel(t, n2, fmt.Sprintf("d%d", i)).Set("k", i); err != nil {
			t.Fatal(err)
		}
	}
	held := func() int { return len(n1.Documents()) }
	refusals := func() int {
		logs.mu.Lock()
		defer logs.mu.Unlock()
		return strings.Count(logs.buf.String(), "too many documents")
	}
	waitFor(t, "n1 refused 3 names", func() bool { return refusals() == 3 })
	if got := held(); got != 5 {
		t.Fatalf("n1 holds %d documents, want its cap, 5", got)
	}
	// More catalog changes: no new warnings for the same names.
	mustModel(t, n2, "d0").Set("k", "again")
	if err := n2.Delete("d7"); err != nil && !errors.Is(err, ErrNoDocument) {
		t.Fatal(err)
	}
	waitFor(t, "n1 ready", func() bool { return n1.Ready() == nil })
	// Deleting makes room: n1 ends up with every remaining document.
	for _, name := range []string{"d0", "d1", "d2"} {
		if err := n2.Delete(name); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "n1 holds what n2 holds", func() bool {
		return cmp.Equal(docNames(n1), docNames(n2))
	})
	if got := len(docNames(n2)); got != 4 {
		t.Errorf("n2 holds %d documents, want 4", got)
	}
	if got := refusals(); got != 3 {
		t.Errorf("%d refusals logged, want 3 (each name once)", got)
	}
}

// docNames returns the names of the documents n holds.
func docNames(n *Node) []string {
	var names []string
	for _, d := range n.Documents() {
		names = append(names, d.Name)
	}
	return names
}

// logFiles returns the document log files under dir, relative to it.
func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, kind := range []string{kindModel, kindEmitter, kindDoc} {
		ents, err := os.ReadDir(filepath.Join(dir, kind))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, kind+"/"+e.Name())
		}
	}
	return out
}

// TestDeleteReplicated deletes a document on one of three nodes with data
// directories, one of them down meanwhile: every node drops it and its
// log, and the name created again starts empty everywhere, on the node
// that was down and still held the old data too, whose old log goes.
func TestDeleteReplicated(t *testing.T) {
	dirs := map[string]string{}
	nodes := cluster(t, []string{"n1", "n2", "n3"}, func(c *Config) {
		dirs[c.ID] = t.TempDir()
		c.DataDir = dirs[c.ID]
	})
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	old := map[string]any{"old": "data", "n": 1.0}
	for k, v := range old {
		if err := mustModel(t, n1, "x").Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	mustModel(t, n1, "other").Set("keep", true)
	waitConverged(t, "x", old, nodes...)
	waitConverged(t, "other", map[string]any{"keep": true}, nodes...)

	if err := n1.Delete("x"); err != nil {
		t.Fatal(err)
	}
	if _, ok := n1.DocumentType("x"); ok {
		t.Fatal("n1 still holds x after Delete returned")
	}
	for _, n := range nodes {
		waitFor(t, n.ID()+" drops x and its log", func() bool {
			_, ok := n.DocumentType("x")
			return !ok && !slices.Contains(logFiles(t, dirs[n.ID()]), "model/x.log")
		})
	}

	// Created again, as another type: empty everywhere.
	e, err := n2.Emitter("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Emit("hello", "again"); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitFor(t, n.ID()+" holds the new x", func() bool {
			em, err := n.Emitter("x")
			return err == nil && em.Len() == 1
		})
	}
	waitConverged(t, "other", map[string]any{"keep": true}, nodes...)

	// n3 goes down holding generation 1 of x, as a model again; x is
	// deleted and created again while it is down.
	if err := n2.Delete("x"); err != nil {
		t.Fatal(err)
	}
	m, err := n2.Model("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set("gen", 2.0); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, "x", map[string]any{"gen": 2.0}, n1, n2, n3)
	// n3 "dies" and comes back on the same addresses with its data.
	cfg := testConfig(t, "n3")
	cfg.DataDir = dirs["n3"]
	cfg.BindAddr, cfg.GossipAddr = n3.Addr(), n3.GossipAddr()
	cfg.Join = []string{n1.GossipAddr()}
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n1.Delete("x"); err != nil {
		t.Fatal(err)
	}
	if err := mustModel(t, n1, "x").Set("new", "only"); err != nil {
		t.Fatal(err)
	}
	// n3's old generation is on disk: it must not come back.
	if !slices.Contains(logFiles(t, dirs["n3"]), "model/x~2.log") {
		t.Fatalf("n3's data directory lacks the old generation's log: %v", logFiles(t, dirs["n3"]))
	}
	n3 = start(t, cfg)
	want := map[string]any{"new": "only"}
	waitConverged(t, "x", want, n1, n2, n3)
	for _, n := range []*Node{n1, n2, n3} {
		waitFor(t, n.ID()+" holds only the newest log of x", func() bool {
			var xs []string
			for _, f := range logFiles(t, dirs[n.ID()]) {
				if strings.Contains(f, "/x") {
					xs = append(xs, f)
				}
			}
			return cmp.Equal(xs, []string{"model/x~3.log"})
		})
	}
	// Nothing of the old generations reaches the new one later.
	if err := mustModel(t, n3, "x").Set("from", "n3"); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, "x", map[string]any{"new": "only", "from": "n3"}, n1, n2, n3)

	// Logs of old generations that a crash left behind (here planted:
	// copies of the live one) go at the next start; the live one stays.
	if err := n3.Close(); err != nil {
		t.Fatal(err)
	}
	live, err := os.ReadFile(filepath.Join(dirs["n3"], "model", "x~3.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"model/x.log", "model/x~2.log", "emitter/x~1.log", "model/x~2.log.compact"} {
		if err := os.WriteFile(filepath.Join(dirs["n3"], f), live, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n3 = start(t, cfg)
	want = map[string]any{"new": "only", "from": "n3"}
	if got := mustModel(t, n3, "x").Snapshot(); !cmp.Equal(got, want) {
		t.Errorf("n3's x after the restart: %v, want %v", got, want)
	}
	var left []string
	for _, f := range logFiles(t, dirs["n3"]) {
		if strings.Contains(f, "/x") {
			left = append(left, f)
		}
	}
	if want := []string{"model/x~3.log"}; !cmp.Equal(left, want) {
		t.Errorf("n3's logs of x after the restart: %v, want %v", left, want)
	}
}

// TestOpenFilesBounded creates thousands of documents on a node with a
// data directory, concurrently, and counts the process's descriptors:
// they stay near MaxOpenLogs, however many documents there are.
func TestOpenFilesBounded(t *testing.T) {
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	const docs, writers, maxOpen = 2000, 4, 16
	cfg := testConfig(t, "n1")
	cfg.DataDir = t.TempDir()
	cfg.MaxOpenLogs = maxOpen
	n := start(t, cfg)
	before := fds()
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := 0
	for w := range writers {
		wg.Go(func() {
			for i := w; i < docs; i += writers {
				m, err := n.Model(fmt.Sprintf("doc-%04d", i))
				if err == nil {
					err = m.Set("i", i)
				}
				if err != nil {
					t.Errorf("doc %d: %v", i, err)
					return
				}
				if i%100 == 0 {
					mu.Lock()
					peak = max(peak, fds()-before)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	peak = max(peak, fds()-before)
	// The bound, plus a log being written by each writer, plus the
	// temporary descriptors of the runtime and of a compaction.
	if limit := maxOpen + writers + 8; peak > limit {
		t.Errorf("%d more descriptors open at the peak, want at most %d", peak, limit)
	}
	if got := len(n.Documents()); got != docs {
		t.Errorf("%d documents, want %d", got, docs)
	}
	// Every document is still writable and readable: a closed file is
	// opened again.
	for _, i := range []int{0, docs / 2, docs - 1} {
		m := mustModel(t, n, fmt.Sprintf("doc-%04d", i))
		if err := m.Set("again", true); err != nil {
			t.Fatal(err)
		}
		if v, _ := m.Get("i"); fmt.Sprint(v) != fmt.Sprint(i) {
			t.Errorf("doc %d holds i = %v (%T)", i, v, v)
		}
	}
}
