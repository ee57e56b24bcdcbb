package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/node"
)

// waitExit waits until p exits and returns its exit code, failing t if it
// still runs after timeout.
func (p *proc) waitExit(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("%s still runs after %v", p.id, timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("%s: %v", p.id, p.err)
	}
	return 0
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// linkSince returns when p's link to peer came up, or "" without one.
func (p *proc) linkSince(peer string) (string, error) {
	var st node.Status
	if err := p.get("/v1/status", &st); err != nil {
		return "", err
	}
	for _, l := range st.Links {
		if l.Peer == peer {
			return l.Since.String(), nil
		}
	}
	return "", nil
}

// TestRefuseMistakes starts two serve processes, n1 holding a lock, then
// processes with n1's id (joining n2, then n1 itself) and one with n1's
// HTTP port: all exit non-zero, the first two with an error naming the id
// and the address that holds it, the last before any member has seen it;
// n1 keeps running, with its lock, its link and the membership.
func TestRefuseMistakes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes; skipped with -short")
	}
	procs := newProcs(t, 5)
	n1, n2 := procs[0], procs[1]
	n1.start()
	n2.start()
	waitMembers(t, procs[:2], []string{"n1", "n2"})
	n1.mustCall("POST", "/v1/locks/jobs/nightly?timeout=20s", "")
	var link string
	waitUntil(t, "n1 links to n2", 30*time.Second, func() (bool, string) {
		s, err := n1.linkSince("n2")
		link = s
		return err == nil && s != "", fmt.Sprint(s, err)
	})

	// A process with n1's id, joining through n2.
	dup := procs[2]
	dup.id, dup.seeds = "n1", []*proc{n2}
	dup.data = filepath.Join(t.TempDir(), "dup")
	dup.tryStart() // its API may answer before the refusal, or not
	if code := dup.waitExit(30 * time.Second); code == 0 {
		t.Fatalf("a process with a duplicate id exited 0")
	}
	logs := dup.log()
	if !strings.Contains(logs, "node id already in the cluster: n1 is held by the member at "+n1.gossip) {
		t.Errorf("the duplicate's log does not name the id and %s:\n%s", n1.gossip, tail([]byte(logs), 2<<10))
	}

	// A process with n1's id, joining n1 itself: it exits, n1 does not.
	dup2 := procs[4]
	dup2.id, dup2.seeds = "n1", []*proc{n1}
	dup2.data = filepath.Join(t.TempDir(), "dup2")
	dup2.tryStart()
	if code := dup2.waitExit(30 * time.Second); code == 0 {
		t.Fatalf("a process with a duplicate id, joining the holder, exited 0")
	}
	if logs := dup2.log(); !strings.Contains(logs, "node id already in the cluster: n1 is held by the member at "+n1.gossip) {
		t.Errorf("the second duplicate's log does not name the id and %s:\n%s", n1.gossip, tail([]byte(logs), 2<<10))
	}
	select {
	case <-n1.exited:
		t.Fatalf("n1 exited when a duplicate joined it: %v", n1.err)
	default:
	}

	// A process whose -http is n1's.
	taken := procs[3]
	taken.seeds = []*proc{n1}
	taken.httpAddr = n1.httpAddr
	taken.tryStart()
	if code := taken.waitExit(30 * time.Second); code == 0 {
		t.Fatalf("a process on a taken HTTP port exited 0")
	}
	if logs := taken.log(); !strings.Contains(logs, "address already in use") || strings.Contains(logs, "node started") {
		t.Errorf("the process on a taken port started a node or gave no clear error:\n%s", tail([]byte(logs), 2<<10))
	}

	// n1 and n2 saw neither; n1 holds its lock and its link.
	for _, p := range procs[:2] {
		var st node.Status
		if err := p.get("/v1/status", &st); err != nil {
			t.Fatal(err)
		}
		for _, m := range st.Members {
			if m.ID != "n1" && m.ID != "n2" || m.State != node.Alive {
				t.Errorf("%s records member %s %s at %s", p.id, m.ID, m.State, m.GossipAddr)
			}
			if m.ID == "n1" && m.GossipAddr != n1.gossip {
				t.Errorf("%s records n1 at %s, want %s", p.id, m.GossipAddr, n1.gossip)
			}
		}
		var lk struct{ Holders []string }
		if err := p.get("/v1/locks/jobs/nightly", &lk); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(lk.Holders, []string{"n1"}) {
			t.Errorf("%s: lock jobs/nightly held by %v, want [n1]", p.id, lk.Holders)
		}
	}
	if s, err := n1.linkSince("n2"); err != nil || s != link {
		t.Errorf("n1's link to n2: since %q (%v), was %q: it went down", s, err, link)
	}
}

// TestServeInvalidHTTP checks that an -http address that cannot be
// listened on ends serve with an error before the node starts.
func TestServeInvalidHTTP(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:99999", "not an address", "192.0.2.1:7948"} {
		t.Run(addr, func(t *testing.T) {
			var logs syncBuffer
			o := serveOptions{
				id: "solo", memory: true, bind: "127.0.0.1:0", gossip: "127.0.0.1:0", httpAddr: addr,
				leave: true, network: "local", logLevel: "info",
				ready: func(*node.Node, string) { t.Errorf("serve got ready on -http %q", addr) },
			}
			err := serve(t.Context(), &logs, o)
			if err == nil || !strings.Contains(err.Error(), "HTTP API") {
				t.Errorf("serve with -http %q: %v, want an HTTP API error", addr, err)
			}
			if strings.Contains(logs.String(), "node started") {
				t.Errorf("the node started before -http %q failed:\n%s", addr, logs.String())
			}
		})
	}
}
