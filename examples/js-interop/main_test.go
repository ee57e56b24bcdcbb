package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// requireNode skips unless node and the pinned npm package are there.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: skipping the JavaScript example")
	}
	if _, err := os.Stat("../../interop/node_modules/scuttlebutt/package.json"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and node is present, but interop/node_modules is missing: run `cd interop && npm ci`")
		}
		t.Skip("interop/node_modules is missing: run `cd interop && npm ci` to run the JavaScript example")
	}
	return node
}

// startNodeJS runs node.js with args and returns a channel of its output
// lines; the process is killed when the test ends.
func startNodeJS(t *testing.T, args ...string) <-chan string {
	t.Helper()
	node := requireNode(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, node, append([]string{"node.js"}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
		if t.Failed() {
			t.Logf("node stderr:\n%s", stderr.String())
		}
	})
	return lines
}

// waitLine waits for a line of node.js's output that starts with prefix
// and contains every one of parts.
func waitLine(t *testing.T, lines <-chan string, prefix string, parts ...string) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("node exited before printing %q", prefix)
			}
			if !strings.HasPrefix(l, prefix) {
				continue
			}
			all := true
			for _, p := range parts {
				all = all && strings.Contains(l, p)
			}
			if all {
				return l
			}
		case <-deadline:
			t.Fatalf("node did not print %q with %q within %v", prefix, parts, timeout)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestGoConnectsToNode(t *testing.T) {
	port := freePort(t)
	lines := startNodeJS(t, "--listen", fmt.Sprint(port), "node-X")
	waitLine(t, lines, "listening")
	var out bytes.Buffer
	if err := run(t.Context(), "", fmt.Sprintf("127.0.0.1:%d", port), "go-X", true, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if got := out.String(); !strings.Contains(got, "synced with node-X") || !strings.Contains(got, `"from-node":{"lang":"js"`) || !strings.Contains(got, `"from-go":{"lang":"go"`) {
		t.Errorf("the Go side printed:\n%s", got)
	}
	waitLine(t, lines, "", `"lang":"go"`, `"from-node"`)
}

func TestNodeConnectsToGo(t *testing.T) {
	requireNode(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	m, err := newReplica("go-Y", true, &out)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- accept(t.Context(), ln, m, true, &out) }()
	lines := startNodeJS(t, "--connect", fmt.Sprint(ln.Addr().(*net.TCPAddr).Port), "node-Y")
	waitLine(t, lines, "synced", `"lang":"go"`, `"lang":"js"`)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("accept: %v\n%s", err, out.String())
		}
	case <-time.After(timeout):
		t.Fatal("the Go side did not sync")
	}
	if _, ok := m.Get("from-node"); !ok || !strings.Contains(out.String(), "synced with node-Y") {
		t.Errorf("the Go side printed:\n%s", out.String())
	}
}
