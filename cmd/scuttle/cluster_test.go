package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/node"
)

// The tests in this file run clusters of real "scuttle serve" processes on
// loopback, built from the tree.

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// scuttleBinary builds cmd/scuttle once per test binary and returns its
// path.
func scuttleBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "scuttle-bin-")
		if err != nil {
			buildErr = err
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("no go command on PATH to build scuttle: %w", err)
			return
		}
		buildPath = filepath.Join(dir, "scuttle")
		out, err := exec.Command(goTool, "build", "-o", buildPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// runAsMain is set in the environment of the processes this test binary
// starts: the demo starts its replica D with os.Executable, which in a test
// is this binary, and a child that finds runAsMain runs the command line
// as the scuttle program would.
const runAsMain = "SCUTTLE_TEST_RUN_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMain) == "1" {
		if methods := os.Getenv(rpcMethodsEnv); methods != "" {
			rpcServeMain(methods)
		}
		main()
	}
	os.Setenv(runAsMain, "1")
	code := m.Run()
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// proc is one "scuttle serve" process of a test cluster, restartable with
// the same id, ports and data directory.
type proc struct {
	t                     testing.TB
	bin                   string
	id                    string
	addr, gossip, httpURL string // replication, gossip ("host:port"), API base URL
	httpAddr              string
	data                  string  // "" for -memory
	seeds                 []*proc // the members it joins
	logPath               string
	extra                 []string // more serve flags
	env                   []string // more environment, "K=V"

	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	err    error         // what Wait returned, once exited is closed
	starts int
}

// freePorts returns n distinct loopback ports free for TCP and UDP.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports, err := freeLoopbackPorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// newProcs prepares n processes n1..nn; n2.. join n1 and n2.
func newProcs(t testing.TB, n int) []*proc {
	t.Helper()
	bin := scuttleBinary(t)
	ports := freePorts(t, 3*n)
	dir := t.TempDir()
	procs := make([]*proc, n)
	for i := range n {
		p := &proc{
			t: t, bin: bin, id: fmt.Sprintf("n%d", i+1),
			addr:     fmt.Sprintf("127.0.0.1:%d", ports[3*i]),
			gossip:   fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]),
			httpAddr: fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]),
		}
		p.httpURL = "http://" + p.httpAddr
		p.data = filepath.Join(dir, p.id)
		p.logPath = filepath.Join(dir, p.id+".log")
		procs[i] = p
	}
	for _, p := range procs[1:] {
		p.seeds = []*proc{procs[0]}
		if p != procs[1] {
			p.seeds = append(p.seeds, procs[1])
		}
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
		if t.Failed() {
			for _, p := range procs {
				b, _ := os.ReadFile(p.logPath)
				t.Logf("log of %s (last 4 KiB):\n%s", p.id, tail(b, 4<<10))
			}
		}
	})
	return procs
}

// start starts the process (again) and waits until its API answers. If
// a first start finds a port taken (the ports were free when chosen, but
// another process may have taken one since), it starts again on new ports;
// a restart keeps them.
func (p *proc) start() {
	p.t.Helper()
	for attempt := 1; ; attempt++ {
		err := p.tryStart()
		if err == nil {
			return
		}
		b, _ := os.ReadFile(p.logPath)
		if p.starts > 1 || attempt == 3 || !bytes.Contains(b, []byte("address already in use")) {
			p.t.Fatal(err)
		}
		ports := freePorts(p.t, 3)
		p.addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		p.gossip = fmt.Sprintf("127.0.0.1:%d", ports[1])
		p.httpAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
		p.httpURL = "http://" + p.httpAddr
		p.starts = 0
	}
}

func (p *proc) tryStart() error {
	args := []string{"serve", "-id", p.id, "-bind", p.addr, "-gossip", p.gossip,
		"-http", p.httpAddr, "-network", "local", "-log-level", "info"}
	if p.data == "" {
		args = append(args, "-memory")
	} else {
		args = append(args, "-data", p.data)
	}
	for _, s := range p.seeds {
		args = append(args, "-join", s.gossip)
	}
	args = append(args, p.extra...)
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	p.starts++
	fmt.Fprintf(logf, "=== start %d: scuttle %s\n", p.starts, strings.Join(args, " "))
	p.cmd = exec.Command(p.bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = childAttr()
	if len(p.env) > 0 {
		p.cmd.Env = append(os.Environ(), p.env...)
	}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		p.err = cmd.Wait()
		logf.Close()
		close(exited)
	}(p.cmd, p.exited)
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited at start: %v", p.id, p.err)
		default:
		}
		var st node.Status
		err := p.get("/v1/status", &st)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's API does not answer after 30s: %v", p.id, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to end.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.err != nil {
			p.t.Errorf("%s after SIGTERM: %v", p.id, p.err)
		}
	case <-time.After(30 * time.Second):
		p.t.Fatalf("%s still running 30s after SIGTERM", p.id)
	}
}

var httpClient = &http.Client{Timeout: 15 * time.Second}

// call sends a request to p's API and decodes a 200 answer into out.
func (p *proc) call(method, path string, body string, out any) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.httpURL+path, rd)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s on %s: %s: %s", method, path, p.id, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (p *proc) get(path string, out any) error { return p.call("GET", path, "", out) }

// mustCall is call that fails the test on error.
func (p *proc) mustCall(method, path, body string) {
	p.t.Helper()
	if err := p.call(method, path, body, nil); err != nil {
		p.t.Fatal(err)
	}
}

// waitUntil polls cond every 50 ms until it holds, or fails t after
// timeout with cond's last description of what it saw.
func waitUntil(t testing.TB, what string, timeout time.Duration, cond func() (ok bool, saw string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %s: %s; last saw: %s", timeout, what, saw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// liveMembers returns the ids p sees alive.
func (p *proc) liveMembers() ([]string, error) {
	var st node.Status
	if err := p.get("/v1/status", &st); err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range st.Members {
		if m.State == node.Alive {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

func ids(procs []*proc) []string {
	var out []string
	for _, p := range procs {
		out = append(out, p.id)
	}
	slices.Sort(out)
	return out
}

// waitMembers waits until every proc sees exactly want alive.
func waitMembers(t testing.TB, procs []*proc, want []string) {
	t.Helper()
	for _, p := range procs {
		waitUntil(t, p.id+" sees members "+fmt.Sprint(want), 30*time.Second, func() (bool, string) {
			got, err := p.liveMembers()
			return err == nil && slices.Equal(got, want), fmt.Sprint(got, err)
		})
	}
}

// waitConvergedModel waits until every proc holds the same model name,
// and returns it.
func waitConvergedModel(t testing.TB, procs []*proc, name string, check func(map[string]any) bool) map[string]any {
	t.Helper()
	var first map[string]any
	waitUntil(t, "every node holds the same "+name, 30*time.Second, func() (bool, string) {
		var snaps []map[string]any
		for _, p := range procs {
			var m map[string]any
			if err := p.get("/v1/models/"+name, &m); err != nil {
				return false, err.Error()
			}
			snaps = append(snaps, m)
		}
		for i, s := range snaps[1:] {
			if diff := cmp.Diff(snaps[0], s); diff != "" {
				return false, fmt.Sprintf("%s and %s differ (-%s +%s):\n%s", procs[0].id, procs[i+1].id, procs[0].id, procs[i+1].id, diff)
			}
		}
		if !check(snaps[0]) {
			return false, fmt.Sprintf("equal but incomplete: %d keys", len(snaps[0]))
		}
		first = snaps[0]
		return true, ""
	})
	return first
}

// TestClusterProcesses runs five scuttle serve processes joined on
// loopback: writes on different nodes converge; a node killed with
// SIGKILL and restarted from its data directory catches up with only what
// it missed; a node stopped with SIGTERM leaves membership and the lock
// tables, and locks are granted without it.
func TestClusterProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts five processes; skipped with -short")
	}
	procs := newProcs(t, 5)
	began := time.Now()
	phase := func(what string) { t.Logf("%6.2fs  %s", time.Since(began).Seconds(), what) }
	for _, p := range procs {
		p.start()
		phase("started " + p.id)
	}
	waitMembers(t, procs, ids(procs))
	phase("5 processes up and joined")

	// Writes through the API on different nodes converge everywhere.
	const base = 100 // keys n1 writes before the kill
	for i := range base {
		procs[0].mustCall("PUT", fmt.Sprintf("/v1/models/shared/keys/base-%03d", i), fmt.Sprint(i))
	}
	for i, p := range procs {
		p.mustCall("PUT", "/v1/models/shared/keys/from-"+p.id, fmt.Sprint(i))
		p.mustCall("PUT", "/v1/models/shared/keys/contended", fmt.Sprintf("%q", p.id))
		p.mustCall("POST", "/v1/events/chat", fmt.Sprintf(`{"event": "hello", "args": [%q]}`, p.id))
	}
	snap := waitConvergedModel(t, procs, "shared", func(m map[string]any) bool { return len(m) == base+len(procs)+1 })
	phase(fmt.Sprintf("converged: %d keys on 5 nodes, contended = %v", len(snap), snap["contended"]))
	for _, p := range procs {
		waitUntil(t, p.id+" has every event", 30*time.Second, func() (bool, string) {
			var evs []map[string]any
			err := p.get("/v1/events/chat", &evs)
			return err == nil && len(evs) == len(procs), fmt.Sprint(len(evs), err)
		})
	}

	// SIGKILL n3; write while it is down; restart it from its data
	// directory: it catches up.
	victim := procs[2]
	victim.kill()
	others := slices.Concat(procs[:2], procs[3:])
	const missed = 5
	for i := range missed {
		others[i%len(others)].mustCall("PUT", fmt.Sprintf("/v1/models/shared/keys/missed-%d", i), "true")
	}
	phase("killed " + victim.id + ", wrote while it was down")
	victim.start()
	phase("restarted " + victim.id)
	// Its log holds everything acknowledged before the kill, before any
	// peer could have sent it anything: the API starts after the logs are
	// replayed.
	var early map[string]any
	if err := victim.get("/v1/models/shared", &early); err != nil {
		t.Fatal(err)
	}
	if len(early) < base+len(procs)+1 {
		t.Errorf("restarted %s holds %d keys at start, want at least the %d from before the kill", victim.id, len(early), base+len(procs)+1)
	}
	waitConvergedModel(t, procs, "shared", func(m map[string]any) bool { return len(m) == base+len(procs)+1+missed })
	// It was sent what it missed, not the whole history again.
	var st node.Status
	if err := victim.get("/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	var got int64
	for _, l := range st.Links {
		got += l.Documents["shared"].UpdatesIn
	}
	if got >= base {
		t.Errorf("restarted %s received %d updates of shared; with its log it lacked only %d", victim.id, got, missed)
	}
	phase(fmt.Sprintf("restarted %s caught up", victim.id))
	t.Logf("restarted %s received %d updates of shared over %d links (%d missed)", victim.id, got, len(st.Links), missed)

	// A lock table, with every node a member.
	procs[0].mustCall("POST", "/v1/locks/jobs/setup", "")
	procs[0].mustCall("DELETE", "/v1/locks/jobs/setup", "")
	for _, p := range procs {
		waitUntil(t, p.id+"'s lock table lists every node", 30*time.Second, func() (bool, string) {
			var lt struct{ Members []string }
			err := p.get("/v1/locks/jobs", &lt)
			return err == nil && slices.Equal(lt.Members, ids(procs)), fmt.Sprint(lt.Members, err)
		})
	}

	// SIGTERM n5: it leaves gracefully.
	leaver, rest := procs[4], procs[:4]
	phase("lock table on every node")
	leaver.stop()
	phase("stopped " + leaver.id + " with SIGTERM")
	for _, p := range rest {
		// Leaving (the leaver's notice) or left (memberlist's leave
		// message, which gossip may take seconds to bring): a departure,
		// not a failure.
		waitUntil(t, p.id+" records "+leaver.id+" as leaving or left", 30*time.Second, func() (bool, string) {
			var st node.Status
			if err := p.get("/v1/status", &st); err != nil {
				return false, err.Error()
			}
			for _, m := range st.Members {
				if m.ID == leaver.id {
					if m.State == node.Failed {
						t.Fatalf("%s records %s, which left gracefully, as failed", p.id, leaver.id)
					}
					return m.State == node.Leaving || m.State == node.Left, string(m.State)
				}
			}
			return false, "not listed"
		})
		waitUntil(t, p.id+"'s lock table drops "+leaver.id, 30*time.Second, func() (bool, string) {
			var lt struct{ Members []string }
			err := p.get("/v1/locks/jobs", &lt)
			return err == nil && slices.Equal(lt.Members, ids(rest)), fmt.Sprint(lt.Members, err)
		})
	}
	waitMembers(t, rest, ids(rest))
	phase(leaver.id + " gone from membership and lock tables")
	// A claim needs every member's acknowledgement: it is granted only
	// because the leaver is no longer a member.
	var lk struct{ Holders []string }
	if err := rest[1].call("POST", "/v1/locks/jobs/after-leave?timeout=20s", "", &lk); err != nil {
		t.Fatalf("lock after the leave: %v", err)
	}
	phase("lock granted without " + leaver.id)
	if !slices.Equal(lk.Holders, []string{rest[1].id}) {
		t.Errorf("lock after the leave held by %v, want [%s]", lk.Holders, rest[1].id)
	}
	if err := rest[0].call("POST", "/v1/locks/jobs/after-leave", "", nil); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("%s took a lock %s holds: %v", rest[0].id, rest[1].id, err)
	}
}
