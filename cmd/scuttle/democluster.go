package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/scuttle-go/scuttle/node"
)

// demo -cluster: three "scuttle serve" processes of this binary on
// loopback, driven through their HTTP APIs: writes on every node, a lock,
// a node killed with SIGKILL and restarted from its data directory, a node
// that leaves gracefully.

// freeLoopbackPorts returns n distinct loopback ports that were free for
// both TCP and UDP a moment ago (memberlist needs both on one port).
func freeLoopbackPorts(n int) ([]int, error) {
	var ports []int
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries > 100*n {
			return nil, errors.New("no free loopback ports")
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		held = append(held, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // UDP taken: try another
		}
		held = append(held, pc)
		ports = append(ports, port)
	}
	return ports, nil
}

// demoNode is one serve process of the cluster demo.
type demoNode struct {
	id, gossip, httpAddr, bind, data string
	join                             []string
	logPath                          string
	cmd                              *exec.Cmd
	exited                           chan struct{}
	api                              *client
}

func (n *demoNode) start(exe string) error {
	args := []string{"serve", "-id", n.id, "-data", n.data, "-bind", n.bind, "-gossip", n.gossip,
		"-http", n.httpAddr, "-network", "local", "-log-level", "info"}
	for _, j := range n.join {
		args = append(args, "-join", j)
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	n.cmd = exec.Command(exe, args...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = childAttr()
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	n.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(exited)
	}(n.cmd, n.exited)
	return nil
}

// startFresh starts the node for the first time and waits until its API
// answers. The ports were free when chosen, but another process may have
// taken one since: then it starts again on new ones.
func (n *demoNode) startFresh(ctx context.Context, exe string) error {
	for attempt := 1; ; attempt++ {
		if err := n.start(exe); err != nil {
			return err
		}
		err := poll(ctx, 30*time.Second, n.id+"'s API answers", func(ctx context.Context) (bool, error) {
			select {
			case <-n.exited:
				return false, fmt.Errorf("%s exited at start", n.id)
			default:
			}
			_, err := n.status(ctx)
			return err == nil, nil
		})
		if err == nil {
			return nil
		}
		b, _ := os.ReadFile(n.logPath)
		if attempt == 3 || !strings.Contains(string(b), "address already in use") {
			return err
		}
		n.signal(syscall.SIGKILL, 5*time.Second)
		ports, err := freeLoopbackPorts(3)
		if err != nil {
			return err
		}
		n.bind = fmt.Sprintf("127.0.0.1:%d", ports[0])
		n.gossip = fmt.Sprintf("127.0.0.1:%d", ports[1])
		n.httpAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
		n.api.base = "http://" + n.httpAddr
	}
}

// signal sends sig and waits up to timeout for the process to end.
func (n *demoNode) signal(sig os.Signal, timeout time.Duration) error {
	if n.cmd == nil {
		return nil
	}
	select {
	case <-n.exited:
		return nil
	default:
	}
	n.cmd.Process.Signal(sig)
	select {
	case <-n.exited:
		return nil
	case <-time.After(timeout):
		n.cmd.Process.Kill()
		<-n.exited
		return fmt.Errorf("%s did not stop within %s of %v", n.id, timeout, sig)
	}
}

// poll calls cond every 20 ms until it returns true, an error, or the
// timeout passes.
func poll(ctx context.Context, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: not within %s: %w", what, timeout, last)
			}
			return fmt.Errorf("%s: not within %s", what, timeout)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (n *demoNode) status(ctx context.Context) (node.Status, error) {
	var st node.Status
	err := n.api.do(ctx, "GET", "/v1/status", nil, &st)
	return st, err
}

// memberStates returns how n sees every member: "n1=alive n2=left ...".
func (n *demoNode) memberStates(ctx context.Context) (string, error) {
	st, err := n.status(ctx)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, m := range st.Members {
		parts = append(parts, m.ID+"="+string(m.State))
	}
	return strings.Join(parts, " "), nil
}

func (n *demoNode) model(ctx context.Context, name string) (map[string]any, error) {
	var m map[string]any
	err := n.api.do(ctx, "GET", "/v1/models/"+name, nil, &m)
	return m, err
}

// demoCluster runs the cluster story and prints it to w.
func demoCluster(ctx context.Context, w io.Writer, o demoOptions) (err error) {
	p := &printer{w: w, quiet: o.quiet}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "scuttle-cluster-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ports, err := freeLoopbackPorts(9)
	if err != nil {
		return err
	}
	nodes := make([]*demoNode, 3)
	for i := range nodes {
		id := fmt.Sprintf("n%d", i+1)
		n := &demoNode{
			id:       id,
			bind:     fmt.Sprintf("127.0.0.1:%d", ports[3*i]),
			gossip:   fmt.Sprintf("127.0.0.1:%d", ports[3*i+1]),
			httpAddr: fmt.Sprintf("127.0.0.1:%d", ports[3*i+2]),
			data:     filepath.Join(dir, id),
			logPath:  filepath.Join(dir, id+".log"),
		}
		n.api = &client{base: "http://" + n.httpAddr, hc: &http.Client{Timeout: 30 * time.Second}}
		nodes[i] = n
	}
	defer func() {
		for _, n := range nodes {
			n.signal(syscall.SIGKILL, 5*time.Second)
		}
		if err != nil {
			for _, n := range nodes {
				b, _ := os.ReadFile(n.logPath)
				fmt.Fprintf(w, "\n--- log of %s ---\n%s", n.id, tail(b, 2<<10))
			}
		}
	}()
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	ids := []string{"n1", "n2", "n3"}
	wait := func(what string, cond func(ctx context.Context) (bool, error)) error {
		return poll(ctx, o.timeout, what, cond)
	}
	allAlive := func(nodes []*demoNode, want []string) error {
		for _, n := range nodes {
			err := wait(n.id+" sees "+strings.Join(want, ", "), func(ctx context.Context) (bool, error) {
				st, err := n.status(ctx)
				if err != nil {
					return false, err
				}
				var alive []string
				for _, m := range st.Members {
					if m.State == node.Alive {
						alive = append(alive, m.ID)
					}
				}
				return slices.Equal(alive, want), nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	// converged waits until every node holds the same model, with keys
	// keys, and returns it.
	converged := func(nodes []*demoNode, name string, keys int) (map[string]any, error) {
		var snap map[string]any
		err := wait("every node holds the same "+name, func(ctx context.Context) (bool, error) {
			var first map[string]any
			for i, n := range nodes {
				m, err := n.model(ctx, name)
				if err != nil {
					return false, err
				}
				if i == 0 {
					first = m
				} else if digest(m) != digest(first) {
					return false, nil
				}
			}
			snap = first
			return len(first) == keys, nil
		})
		return snap, err
	}

	p.printf("scuttle demo -cluster: three scuttle serve processes on 127.0.0.1, each with its own data directory\n")

	p.step("Start n1, then n2 and n3 joining it")
	for i, n := range nodes {
		if i > 0 {
			n.join = []string{n1.gossip} // n1's ports may have changed
		}
		if err := n.startFresh(ctx, exe); err != nil {
			return err
		}
		p.event("%s  pid %-7d http %s  gossip %s  replication %s", n.id, n.cmd.Process.Pid, n.httpAddr, n.gossip, n.bind)
	}
	start := time.Now()
	if err := allAlive(nodes, ids); err != nil {
		return err
	}
	p.event("every node sees n1, n2 and n3 alive after %s (memberlist)", ms(time.Since(start)))

	p.step("Write through a different node's HTTP API each")
	set := func(n *demoNode, key, value string) error {
		if err := n.api.do(ctx, "PUT", "/v1/models/users/keys/"+key, []byte(value), nil); err != nil {
			return err
		}
		p.event("%s  PUT /v1/models/users/keys/%s  %s", n.id, key, value)
		return nil
	}
	if err := set(n1, "ada", `{"admin":true}`); err != nil {
		return err
	}
	if err := set(n2, "grace", `"navy"`); err != nil {
		return err
	}
	if err := set(n3, "linus", `"kernel"`); err != nil {
		return err
	}
	start = time.Now()
	snap, err := converged(nodes, "users", 3)
	if err != nil {
		return err
	}
	p.event("every node holds the same 3 users after %s: %s", ms(time.Since(start)), describeSnap(snap))

	p.step("A lock: n2 takes jobs/nightly; n1 cannot")
	var lk struct{ Holders []string }
	if err := n2.api.do(ctx, "POST", "/v1/locks/jobs/nightly", nil, &lk); err != nil {
		return err
	}
	p.event("n2  POST /v1/locks/jobs/nightly: held by %s", strings.Join(lk.Holders, ", "))
	var ae *apiError
	if err := n1.api.do(ctx, "POST", "/v1/locks/jobs/nightly", nil, nil); !errors.As(err, &ae) || ae.code != 409 {
		return fmt.Errorf("n1 taking the lock n2 holds: %v, want 409", err)
	}
	p.event("n1  POST /v1/locks/jobs/nightly: %d %s", ae.code, ae.msg)
	if err := n2.api.do(ctx, "DELETE", "/v1/locks/jobs/nightly", nil, nil); err != nil {
		return err
	}
	p.event("n2  DELETE /v1/locks/jobs/nightly: released")

	p.step("Kill n3 with SIGKILL; write while it is down")
	n3.signal(syscall.SIGKILL, 5*time.Second)
	p.event("n3  killed (pid %d)", n3.cmd.Process.Pid)
	if err := set(n1, "margaret", `"apollo"`); err != nil {
		return err
	}
	start = time.Now()
	err = wait("n1 notices n3 failed", func(ctx context.Context) (bool, error) {
		s, err := n1.memberStates(ctx)
		return strings.Contains(s, "n3=failed"), err
	})
	if err != nil {
		return err
	}
	s, _ := n1.memberStates(ctx)
	p.event("n1  after %s its failure detector says: %s", ms(time.Since(start)), s)

	p.step("Restart n3 from its data directory")
	if err := n3.start(exe); err != nil {
		return err
	}
	var early map[string]any
	err = wait("n3's API answers", func(ctx context.Context) (bool, error) {
		m, err := n3.model(ctx, "users")
		early = m
		return err == nil, err
	})
	if err != nil {
		return err
	}
	p.event("n3  pid %d; its log is replayed before its API starts: first answer %d users: %s", n3.cmd.Process.Pid, len(early), describeSnap(early))
	start = time.Now()
	if snap, err = converged(nodes, "users", 4); err != nil {
		return err
	}
	p.event("n3  caught up %s later: %s", ms(time.Since(start)), describeSnap(snap))
	if err := allAlive(nodes, ids); err != nil {
		return err
	}
	s, _ = n1.memberStates(ctx)
	p.event("n1  %s", s)

	p.step("Stop n2 with SIGTERM: it leaves gracefully")
	if err := n2.signal(syscall.SIGTERM, 20*time.Second); err != nil {
		return err
	}
	p.event("n2  exited")
	rest := []*demoNode{n1, n3}
	for _, n := range rest {
		// Leaving (n2's notice) or left (memberlist's leave message,
		// which gossip may take a moment to bring): a departure, not a
		// failure.
		err := wait(n.id+" records n2 as leaving or left and drops it from the lock table", func(ctx context.Context) (bool, error) {
			s, err := n.memberStates(ctx)
			if err != nil {
				return false, err
			}
			if strings.Contains(s, "n2=failed") {
				return false, fmt.Errorf("%s records n2, which left gracefully, as failed", n.id)
			}
			if !strings.Contains(s, "n2=left") && !strings.Contains(s, "n2=leaving") {
				return false, nil
			}
			var lt struct{ Members []string }
			if err := n.api.do(ctx, "GET", "/v1/locks/jobs", nil, &lt); err != nil {
				return false, err
			}
			return slices.Equal(lt.Members, []string{"n1", "n3"}), nil
		})
		if err != nil {
			return err
		}
		s, _ := n.memberStates(ctx)
		p.event("%s  %s; lock table jobs: members n1, n3", n.id, s)
	}
	if err := n3.api.do(ctx, "POST", "/v1/locks/jobs/nightly?timeout=10s", nil, &lk); err != nil {
		return err
	}
	p.event("n3  POST /v1/locks/jobs/nightly: held by %s (granted without n2)", strings.Join(lk.Holders, ", "))

	p.result("cluster converged: 3 nodes, n3 restarted from its log after SIGKILL, n2 left gracefully\n")
	return nil
}

// describeSnap formats a model's keys and values, sorted.
func describeSnap(m map[string]any) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, _ := json.Marshal(m[k])
		parts[i] = k + "=" + string(v)
	}
	return strings.Join(parts, " ")
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
