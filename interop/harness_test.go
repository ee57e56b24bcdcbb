package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

// timeout bounds every wait; it only fires when something hangs, so it is
// generous for a loaded machine under -race.
const timeout = 30 * time.Second

// scuttlebuttVersion is the npm package the tests run against, as pinned
// in package-lock.json.
const scuttlebuttVersion = "5.6.15"

// requireNode returns the path of node, or skips the test, saying why,
// when node or the npm packages are missing. With CI=true, node present
// and the packages missing is a failure: CI must run these tests.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: skipping the JavaScript interop tests (install Node, then `cd interop && npm ci`)")
	}
	b, err := os.ReadFile("node_modules/scuttlebutt/package.json")
	if err != nil {
		msg := "interop/node_modules is missing: run `cd interop && npm ci` to run the JavaScript interop tests"
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and node is present, but %s", msg)
		}
		t.Skip(msg)
	}
	var pkg struct{ Version string }
	if err := json.Unmarshal(b, &pkg); err != nil || pkg.Version != scuttlebuttVersion {
		t.Fatalf("interop/node_modules has scuttlebutt %q, want %s: run `cd interop && npm ci`", pkg.Version, scuttlebuttVersion)
	}
	return node
}

// nodeLine is one line peer.js writes: a reply (Seq set) or an event.
type nodeLine struct {
	Seq     int             `json:"seq"`
	Event   string          `json:"event"`
	Name    string          `json:"name"`
	Error   string          `json:"error"`
	Port    int             `json:"port"`
	TS      float64         `json:"ts"`
	State   json.RawMessage `json:"state"`
	Clock   json.RawMessage `json:"clock"`
	History json.RawMessage `json:"history"`
	Errors  []string        `json:"errors"`
	OldData int             `json:"oldData"` // updates JavaScript dropped as already seen
	OldOwn  int             `json:"oldOwn"`  // of those, its own updates sent back to it`
	raw     string
}

// nodePeer is one peer.js process.
type nodePeer struct {
	t     *testing.T
	id    string
	cmd   *exec.Cmd
	stdin interface {
		Write([]byte) (int, error)
		Close() error
	}
	exited chan struct{}

	mu     sync.Mutex
	lines  []nodeLine
	notify chan struct{}
	stderr bytes.Buffer
	seq    int
}

// startNode starts peer.js with the given replica id; typ is "model" or
// "events". The process is killed when the test ends.
func startNode(t *testing.T, typ, id string) *nodePeer {
	t.Helper()
	node := requireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*timeout)
	cmd := exec.CommandContext(ctx, node, "peer.js", "--type", typ, id)
	cmd.WaitDelay = 5 * time.Second
	p := &nodePeer{t: t, id: id, cmd: cmd, notify: make(chan struct{}, 1), exited: make(chan struct{})}
	cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start node: %v", err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var l nodeLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				l = nodeLine{Event: "garbage", Error: err.Error()}
			}
			l.raw = sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, l)
			p.mu.Unlock()
			p.poke()
		}
		cmd.Wait()
		close(p.exited)
		p.poke()
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(timeout):
			cmd.Process.Kill()
			<-p.exited
		}
		cancel()
		if t.Failed() {
			p.dump()
		}
	})
	return p
}

func (p *nodePeer) poke() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// dump logs what the process wrote, for a failed test.
func (p *nodePeer) dump() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, l := range p.lines {
		fmt.Fprintf(&b, "  %s\n", clip(l.raw, 300))
	}
	p.t.Logf("node %s stdout:\n%s  stderr:\n%s", p.id, b.String(), p.stderr.String())
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// wait polls the lines until match finds one, or fails the test.
func (p *nodePeer) wait(what string, match func(nodeLine) bool) nodeLine {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if match(l) {
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-p.exited:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			select {
			case <-p.notify:
				continue // lines arrived with the exit
			default:
			}
			p.t.Fatalf("node %s exited while waiting for %s (%d lines)", p.id, what, n)
		case <-deadline:
			p.t.Fatalf("node %s: no %s within %v", p.id, what, timeout)
		}
	}
}

// call sends a command and returns its reply.
func (p *nodePeer) call(op string, args map[string]any) nodeLine {
	p.t.Helper()
	p.mu.Lock()
	p.seq++
	seq := p.seq
	p.mu.Unlock()
	c := map[string]any{"op": op, "seq": seq}
	for k, v := range args {
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		p.t.Fatalf("command %s: %v", op, err)
	}
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.t.Fatalf("node %s: command %s: %v", p.id, op, err)
	}
	r := p.wait(fmt.Sprintf("reply to %s #%d", op, seq), func(l nodeLine) bool { return l.Seq == seq })
	if r.Error != "" {
		p.t.Fatalf("node %s: %s: %s", p.id, op, r.Error)
	}
	return r
}

// waitEvent waits for event on the stream called name.
func (p *nodePeer) waitEvent(event, name string) nodeLine {
	p.t.Helper()
	return p.wait(event+" on "+name, func(l nodeLine) bool { return l.Event == event && l.Name == name })
}

func (p *nodePeer) listen(opts map[string]any) int {
	p.t.Helper()
	return p.call("listen", map[string]any{"opts": opts}).Port
}

func (p *nodePeer) connect(port int, name string, opts map[string]any) {
	p.t.Helper()
	p.call("connect", map[string]any{"port": port, "name": name, "opts": opts})
}

func (p *nodePeer) set(key string, value any) {
	p.t.Helper()
	p.call("set", map[string]any{"key": key, "value": value})
}

// setMany sets all entries in one tick, so that their timestamps share a
// millisecond and get monotonic-timestamp's fractions.
func (p *nodePeer) setMany(entries [][2]any) {
	p.t.Helper()
	p.call("setMany", map[string]any{"entries": entries})
}

func (p *nodePeer) state() nodeLine {
	p.t.Helper()
	return p.call("state", nil)
}

// kill ends the process at once, as a crash would.
func (p *nodePeer) kill() {
	p.t.Helper()
	p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(timeout):
		p.t.Fatalf("node %s did not exit after kill", p.id)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// jsonOpts selects the JavaScript codec.
func jsonOpts(o stream.Options) *stream.Options {
	o.Codec = stream.JSONLines
	return &o
}

// goConn is one Go session and its result.
type goConn struct {
	c    *stream.Conn
	done chan struct{}
	err  error
}

func runConn(ctx context.Context, c *stream.Conn) *goConn {
	g := &goConn{c: c, done: make(chan struct{})}
	go func() {
		defer close(g.done)
		g.err = c.Run(ctx)
	}()
	return g
}

func (g *goConn) waitSynced(t *testing.T) {
	t.Helper()
	select {
	case <-g.c.Synced():
	case <-g.done:
		t.Fatalf("Go session ended before the sync: %v", g.err)
	case <-time.After(timeout):
		t.Fatalf("Go session not synced within %v", timeout)
	}
}

// goServer serves a Go document to every connection on a TCP listener.
type goServer struct {
	port  int
	mu    sync.Mutex
	conns []*goConn
	added chan struct{}
}

func serveGo(t *testing.T, d scuttlebutt.Document, opts stream.Options) *goServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &goServer{port: ln.Addr().(*net.TCPAddr).Port, added: make(chan struct{}, 1)}
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			g := runConn(ctx, stream.NewConn(d, nc, jsonOpts(opts)))
			s.mu.Lock()
			s.conns = append(s.conns, g)
			s.mu.Unlock()
			select {
			case s.added <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-accepted
		cancel()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, g := range s.conns {
			<-g.done
		}
	})
	return s
}

// conn waits for the i-th accepted connection (from 0).
func (s *goServer) conn(t *testing.T, i int) *goConn {
	t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		if i < len(s.conns) {
			g := s.conns[i]
			s.mu.Unlock()
			return g
		}
		s.mu.Unlock()
		select {
		case <-s.added:
		case <-deadline:
			t.Fatalf("no connection #%d within %v", i, timeout)
		}
	}
}

// checkErrors fails the test for every session that has ended with an
// error so far.
func (s *goServer) checkErrors(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, g := range s.conns {
		select {
		case <-g.done:
			if g.err != nil {
				t.Errorf("Go session #%d: %v", i, g.err)
			}
		default:
		}
	}
}

// dialGo connects d to a listener on port and runs the session until the
// test ends.
func dialGo(t *testing.T, d scuttlebutt.Document, port int, opts stream.Options) *goConn {
	t.Helper()
	nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := runConn(ctx, stream.NewConn(d, nc, jsonOpts(opts)))
	t.Cleanup(func() {
		cancel()
		<-g.done
	})
	return g
}

func (g *goConn) checkError(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.done:
		if g.err != nil {
			t.Errorf("%s: %v", what, g.err)
		}
	default:
	}
}

func newModel(t *testing.T, id string) *model.Model {
	t.Helper()
	m, err := model.New(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// asJSON turns v into the generic value encoding/json makes of its JSON
// text, so that a Go snapshot and a Node state compare as JSON objects.
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return fromJSON(t, b)
}

func fromJSON(t *testing.T, b []byte) any {
	t.Helper()
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return out
}

// converge waits until every Node peer's state equals m's, compared as
// JSON objects, and fails with the difference if they do not converge.
func converge(t *testing.T, m *model.Model, peers ...*nodePeer) {
	t.Helper()
	convergeHiding(t, m, nil, peers...)
}

// convergeHiding is converge with the keys in hide left out of the Node
// states: keys a one-way slave holds for itself.
func convergeHiding(t *testing.T, m *model.Model, hide []string, peers ...*nodePeer) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		want := asJSON(t, m.Snapshot())
		diffs := ""
		for _, p := range peers {
			got := fromJSON(t, p.state().State)
			if obj, ok := got.(map[string]any); ok {
				for _, k := range hide {
					delete(obj, k)
				}
			}
			if d := cmp.Diff(want, got); d != "" {
				diffs += fmt.Sprintf("node %s vs Go %s (-go +node):\n%s", p.id, m.ID(), d)
			}
		}
		if diffs == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no convergence within %v:\n%s", timeout, diffs)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not synchronization
	}
}

// convergeGo waits until the Go models hold the same state.
func convergeGo(t *testing.T, a, b *model.Model) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		d := cmp.Diff(asJSON(t, a.Snapshot()), asJSON(t, b.Snapshot()))
		if d == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Go %s and %s do not converge (-%s +%s):\n%s", a.ID(), b.ID(), a.ID(), b.ID(), d)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}
