package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/scuttle-go/scuttle/filelog"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/stream"
	"github.com/scuttle-go/scuttle/vclock"
)

// The demo's crash step: a replica D runs in a child process of the same
// binary (the hidden command demo-replica), with its log on disk; the demo
// kills it with SIGKILL right after its writes are acknowledged, restarts
// it from its log, and watches it catch up.

var demoReplicaCommand = &command{
	name:    "demo-replica",
	hidden:  true,
	summary: "(internal) the demo's replica D: a Model with a log, linked to -peer, driven on stdin",
	setup: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
		var id, logPath, peer string
		fs.StringVar(&id, "id", "D", "replica id")
		fs.StringVar(&logPath, "log", "", "the replica's log file")
		fs.StringVar(&peer, "peer", "", "address to dial and replicate with")
		return func(ctx context.Context, args []string, stdout io.Writer) error {
			return demoReplica(ctx, id, logPath, peer, os.Stdin, stdout)
		}
	},
}

// replicaState is what the child reports of itself, one JSON object after
// a word on each line of its stdout: "ready", "synced", "ok", "state".
type replicaState struct {
	Keys      int          `json:"keys"`
	Digest    string       `json:"digest"`
	Clock     vclock.Clock `json:"clock"`
	Records   int64        `json:"records"`   // in the log
	Truncated int64        `json:"truncated"` // bytes of torn tail cut at open
	UpdatesIn int64        `json:"updates_in"`
	Synced    bool         `json:"synced"`
}

// demoReplica is the child: it opens (replays) its log, dials peer, and
// answers commands on in ("set <key> <json>", "state") until in ends.
func demoReplica(ctx context.Context, id, logPath, peer string, in io.Reader, out io.Writer) error {
	if logPath == "" || peer == "" {
		return errors.New("-log and -peer are required")
	}
	m, err := model.New(id, nil)
	if err != nil {
		return err
	}
	lg, err := filelog.Open(logPath, m, nil)
	if err != nil {
		return err
	}
	defer lg.Close()
	var outMu sync.Mutex
	var conn *stream.Conn
	report := func(word string) {
		// One checkpoint: a batch applied between a snapshot and a clock
		// would pair the old state with the new clock.
		snap, clock := m.Checkpoint()
		s := replicaState{Keys: len(snap), Digest: digest(snap), Clock: clock, Records: lg.Stats().Records, Truncated: lg.Stats().Truncated}
		if conn != nil {
			s.UpdatesIn = conn.Stats().UpdatesIn
			select {
			case <-conn.Synced():
				s.Synced = true
			default:
			}
		}
		b, _ := json.Marshal(s)
		outMu.Lock()
		fmt.Fprintf(out, "%s %s\n", word, b)
		outMu.Unlock()
	}
	report("ready") // what the log held, before any peer sent anything

	nc, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", peer)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	conn = stream.NewConn(m, nc, nil)
	ran := make(chan error, 1)
	go func() { ran <- conn.Run(ctx) }()
	go func() {
		select {
		case <-conn.Synced():
			report("synced")
		case <-ctx.Done():
		}
	}()

	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, rest, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "set":
			key, val, _ := strings.Cut(rest, " ")
			var v any
			if err := json.Unmarshal([]byte(val), &v); err != nil {
				return fmt.Errorf("set %s: %w", key, err)
			}
			if f, ok := v.(float64); ok && f == float64(int64(f)) {
				v = int64(f)
			}
			if err := m.Set(key, v); err != nil { // returns once on disk
				return err
			}
			report("ok")
		case "state":
			report("state")
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
	cancel()
	<-ran
	return sc.Err()
}

// child is the demo's handle on a demo-replica process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string   // the child's stdout, line by line
	exited chan struct{} // closed once the process has been waited for
	stderr strings.Builder
}

// startChild starts demo-replica with the log at logPath, dialling peer.
func startChild(exe, logPath, peer string) (*child, error) {
	c := &child{lines: make(chan string, 16), exited: make(chan struct{})}
	c.cmd = exec.Command(exe, "demo-replica", "-id", "D", "-log", logPath, "-peer", peer)
	c.cmd.Stderr = &c.stderr
	c.cmd.SysProcAttr = childAttr()
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// next returns the child's next report of the given word, skipping others.
func (c *child) next(word string, timeout time.Duration) (replicaState, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				<-c.exited
				return replicaState{}, fmt.Errorf("replica D exited: %v: %s", c.cmd.ProcessState, strings.TrimSpace(c.stderr.String()))
			}
			w, js, _ := strings.Cut(line, " ")
			if w != word {
				continue
			}
			var s replicaState
			err := json.Unmarshal([]byte(js), &s)
			return s, err
		case <-deadline.C:
			return replicaState{}, fmt.Errorf("replica D did not report %q within %s", word, timeout)
		}
	}
}

// ask sends a command and returns the report that answers it.
func (c *child) ask(cmd, word string, timeout time.Duration) (replicaState, error) {
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return replicaState{}, fmt.Errorf("replica D: %w", err)
	}
	return c.next(word, timeout)
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill() {
	c.cmd.Process.Kill()
	for range c.lines {
	}
	<-c.exited
}

// stop ends the child cleanly (its stdin closes), or kills it.
func (c *child) stop() {
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		c.kill()
	}
	for range c.lines {
	}
	<-c.exited
}

// peerEnd accepts D's connections for C and serves C over each, one at a
// time, until closed.
type peerEnd struct {
	ln     net.Listener
	m      *model.Model
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newPeerEnd(m *model.Model) (*peerEnd, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &peerEnd{ln: ln, m: m, ctx: ctx, cancel: cancel}
	p.wg.Go(p.acceptLoop)
	return p, nil
}

func (p *peerEnd) acceptLoop() {
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		sc := stream.NewConn(p.m, nc, nil)
		// A killed child ends the session with an error: expected.
		p.wg.Go(func() { sc.Run(p.ctx) })
	}
}

func (p *peerEnd) close() {
	p.ln.Close()
	p.cancel()
	p.wg.Wait()
}

// crashStep runs the crash story: D joins through C, writes, is killed,
// is restarted from its log and catches up. It returns nil only if D came
// back with every acknowledged write and converged with A, B and C.
func crashStep(ctx context.Context, p *printer, c *cluster, o demoOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to start D: %w", err)
	}
	dir, err := os.MkdirTemp("", "scuttle-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logPath := filepath.Join(dir, "D.log")
	a, cn := c.nodes[0], c.nodes[len(c.nodes)-1]
	end, err := newPeerEnd(cn.m)
	if err != nil {
		return err
	}
	defer end.close()

	p.step("Crash and restart: D, a replica in a child process, keeps a log on disk")
	d, err := startChild(exe, logPath, end.ln.Addr().String())
	if err != nil {
		return fmt.Errorf("starting D: %w", err)
	}
	defer func() { d.stop() }()
	p.event("D  started (pid %d), log %s, linked to C", d.cmd.Process.Pid, filepath.Base(logPath))
	st, err := c.waitChild(ctx, d)
	if err != nil {
		return err
	}
	p.event("D  synced with C: %d keys, digest %s", st.Keys, st.Digest)

	const writes = 3
	var acked replicaState
	for i := range writes {
		key := fmt.Sprintf("d/%d", i)
		if acked, err = d.ask(fmt.Sprintf("set %s %d", key, i), "ok", o.timeout); err != nil {
			return err
		}
	}
	p.event("D  set d/0..d/%d; each Set returned after its update was fsynced", writes-1)
	if _, err := c.waitChild(ctx, d); err != nil {
		return err
	}
	p.event("A  has %s (through C)", a.describe("d/0", "d/2"))

	d.kill()
	p.event("D  killed with SIGKILL (pid %d) right after its last write was acknowledged: log not closed", d.cmd.Process.Pid)
	const missed = 10
	for i := range missed {
		if err := a.m.Set(fmt.Sprintf("crash/%d", i), int64(i)); err != nil {
			return err
		}
	}
	p.event("A  set crash/0..crash/%d while D is down", missed-1)

	start := time.Now()
	d2, err := startChild(exe, logPath, end.ln.Addr().String())
	if err != nil {
		return fmt.Errorf("restarting D: %w", err)
	}
	d = d2
	ready, err := d.next("ready", o.timeout)
	if err != nil {
		return err
	}
	p.event("D  restarted (pid %d) from its log (%d records): %d keys, torn tail cut %d bytes",
		d.cmd.Process.Pid, ready.Records, ready.Keys, ready.Truncated)
	if ready.Keys != acked.Keys || ready.Digest != acked.Digest || ready.Clock.Compare(acked.Clock) != vclock.Equal {
		return fmt.Errorf("%w: D lost writes in the crash: acknowledged %d keys %s clock %s, restarted with %d keys %s clock %s",
			errNotConverged, acked.Keys, acked.Digest, acked.Clock, ready.Keys, ready.Digest, ready.Clock)
	}
	p.event("D  nothing lost: same %d keys, digest %s and clock as when it was killed", ready.Keys, ready.Digest)
	st, err = c.waitChild(ctx, d)
	if err != nil {
		return err
	}
	p.event("D  caught up %s after the restart: received %d updates, only what it missed; digest %s, as A, B and C",
		ms(time.Since(start)), st.UpdatesIn, st.Digest)
	return nil
}

// waitChild waits until D is synced and its clock equals every in-process
// replica's, and returns D's state then.
func (c *cluster) waitChild(ctx context.Context, d *child) (replicaState, error) {
	deadline := time.Now().Add(c.timeout)
	for {
		st, err := d.ask("state", "state", c.timeout)
		if err != nil {
			return st, err
		}
		snapA, clockA := c.nodes[0].m.Checkpoint()
		equal := st.Synced && clockA.Compare(st.Clock) == vclock.Equal
		for _, n := range c.nodes[1:] {
			equal = equal && n.m.Clock().Compare(st.Clock) == vclock.Equal
		}
		if equal {
			if want := digest(snapA); st.Digest != want {
				return st, fmt.Errorf("%w: D has digest %s, A %s, with equal clocks %s", errNotConverged, st.Digest, want, st.Clock)
			}
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("%w within %s: D's clock %s, A's %s", errNotConverged, c.timeout, st.Clock, clockA)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
