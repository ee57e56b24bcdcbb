package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/node"
)

// openFDs returns how many descriptors process pid holds (Linux).
func openFDs(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("counting the descriptors of %d: %v", pid, err)
	}
	return len(ents)
}

// documents returns the names of the documents p holds.
func (p *proc) documents() ([]string, error) {
	var st node.Status
	if err := p.get("/v1/status", &st); err != nil {
		return nil, err
	}
	var names []string
	for _, d := range st.Documents {
		names = append(names, d.Name)
	}
	return names, nil
}

// del runs scuttle del -doc name against p's API.
func (p *proc) del(name string) (string, error) {
	out, err := exec.Command(p.bin, "del", "-addr", p.httpURL, "-doc", name).CombinedOutput()
	return string(out), err
}

// waitDropped waits until no proc holds the document called name or a log
// of it called file.
func waitDropped(t testing.TB, procs []*proc, name, file string) {
	t.Helper()
	for _, p := range procs {
		waitUntil(t, p.id+" drops "+name+" and "+file, 30*time.Second, func() (bool, string) {
			names, err := p.documents()
			if err != nil {
				return false, err.Error()
			}
			_, statErr := os.Stat(filepath.Join(p.data, "model", file))
			return !slices.Contains(names, name) && os.IsNotExist(statErr), fmt.Sprintf("held: %v, log: %v", slices.Contains(names, name), statErr)
		})
	}
}

// TestDocumentCapProcesses runs three scuttle serve processes with
// -max-documents 1000 (given as a flag, SCUTTLE_MAX_DOCUMENTS and a
// config file key). First scuttle del -doc deletes a document
// everywhere, its logs with it, and the name created again starts empty
// on every node. Then it asks them, round robin, for 20,000 documents:
// every refusal is a 409 naming the cap, every node holds at most 1,000
// documents and its descriptors stay bounded (not one per document), and
// a deletion still reaches every node.
func TestDocumentCapProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three processes and makes 20,000 requests; skipped with -short")
	}
	if _, err := os.ReadDir("/proc/self/fd"); err != nil {
		t.Skipf("no /proc: %v", err)
	}
	const limit, asked, clients = 1000, 20000, 8
	procs := newProcs(t, 3)
	// The cap by flag, by environment and by config file.
	procs[0].extra = []string{"-max-documents", fmt.Sprint(limit)}
	procs[1].env = []string{fmt.Sprintf("SCUTTLE_MAX_DOCUMENTS=%d", limit)}
	conf := filepath.Join(t.TempDir(), "scuttle.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "max-documents = %d\n", limit), 0o600); err != nil {
		t.Fatal(err)
	}
	procs[2].extra = []string{"-config", conf}
	for _, p := range procs {
		p.start()
	}
	waitMembers(t, procs, ids(procs))

	// A document deleted, and created again: it starts empty everywhere.
	procs[0].mustCall("PUT", "/v1/models/reused/keys/old", `"data"`)
	waitConvergedModel(t, procs, "reused", func(m map[string]any) bool { return m["old"] == "data" })
	if out, err := procs[1].del("reused"); err != nil {
		t.Fatalf("scuttle del -doc reused: %v\n%s", err, out)
	}
	waitDropped(t, procs, "reused", "reused.log")
	if out, err := procs[1].del("reused"); err == nil || !strings.Contains(out, "404") {
		t.Errorf("deleting reused twice: %v\n%s, want a 404", err, out)
	}
	procs[2].mustCall("PUT", "/v1/models/reused/keys/again", `"new"`)
	waitConvergedModel(t, procs, "reused", func(m map[string]any) bool {
		return len(m) == 1 && m["again"] == "new"
	})
	for _, p := range procs {
		if _, err := os.Stat(filepath.Join(p.data, "model", "reused~1.log")); err != nil {
			t.Errorf("%s: the new generation's log: %v", p.id, err)
		}
	}

	fdsBefore := map[string]int{}
	for _, p := range procs {
		fdsBefore[p.id] = openFDs(t, p.cmd.Process.Pid)
	}

	began := time.Now()
	var mu sync.Mutex
	created, refused := 0, 0
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := c; i < asked; i += clients {
				p := procs[i%len(procs)]
				err := p.call("PUT", fmt.Sprintf("/v1/models/d%05d/keys/k", i), "1", nil)
				mu.Lock()
				switch {
				case err == nil:
					created++
				case strings.Contains(err.Error(), "409 Conflict") && strings.Contains(err.Error(), fmt.Sprintf("the cap is %d", limit)):
					refused++
				default:
					t.Errorf("document %d: %v, want 200 or a 409 naming the cap", i, err)
				}
				mu.Unlock()
				if t.Failed() {
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d documents asked for in %v: %d created, %d refused", asked, time.Since(began).Round(time.Millisecond), created, refused)
	if created < limit || created+refused != asked {
		t.Fatalf("%d created and %d refused, want at least %d created and %d in all", created, refused, limit, asked)
	}
	var everywhere []string // held by every node
	waitUntil(t, "every node holds its cap of documents", 60*time.Second, func() (bool, string) {
		var saw []string
		var sets [][]string
		for _, p := range procs {
			names, err := p.documents()
			if err != nil {
				return false, err.Error()
			}
			saw = append(saw, fmt.Sprintf("%s: %d", p.id, len(names)))
			if len(names) > limit {
				t.Fatalf("%s holds %d documents, over its cap of %d", p.id, len(names), limit)
			}
			sets = append(sets, names)
		}
		for _, s := range sets {
			if len(s) != limit {
				return false, strings.Join(saw, ", ")
			}
		}
		everywhere = everywhere[:0]
		for _, name := range sets[0] {
			if slices.Contains(sets[1], name) && slices.Contains(sets[2], name) {
				everywhere = append(everywhere, name)
			}
		}
		return len(everywhere) > 0, strings.Join(saw, ", ")
	})
	for _, p := range procs {
		got := openFDs(t, p.cmd.Process.Pid)
		t.Logf("%s holds %d descriptors (%d before the documents)", p.id, got, fdsBefore[p.id])
		// node.DefaultMaxOpenLogs log files, sockets and the runtime's:
		// far from one per document.
		if got > fdsBefore[p.id]+node.DefaultMaxOpenLogs+64 {
			t.Errorf("%s holds %d descriptors with %d documents, %d before them", p.id, got, limit, fdsBefore[p.id])
		}
	}

	// A deletion reaches every node. (The room it makes goes to a name
	// of the catalog the node refused for the cap.)
	victim := everywhere[0]
	for _, p := range procs {
		if _, err := os.Stat(filepath.Join(p.data, "model", victim+".log")); err != nil {
			t.Fatalf("%s has no log of %s: %v", p.id, victim, err)
		}
	}
	if out, err := procs[1].del(victim); err != nil {
		t.Fatalf("scuttle del -doc %s: %v\n%s", victim, err, out)
	}
	waitDropped(t, procs, victim, victim+".log")
}
