package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/node"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader on other
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveInProcess runs "scuttle serve" on loopback with free ports and no
// data directory, and returns its HTTP address once it is up. The server
// stops at the end of the test.
func serveInProcess(t *testing.T) (addr string) {
	t.Helper()
	return serveInProcessWith(t, nil)
}

// serveInProcessWith is serveInProcess with the options changed by tweak
// (if not nil). A serve that ends before it is ready fails the test at
// once.
func serveInProcessWith(t *testing.T, tweak func(*serveOptions)) (addr string) {
	t.Helper()
	o := serveOptions{
		id: "solo", memory: true, bind: "127.0.0.1:0", gossip: "127.0.0.1:0", httpAddr: "127.0.0.1:0",
		leave: true, network: "local", logLevel: "warn",
		ready: func(*node.Node, string) {}, // startInProcess adds its signal; a tweak may wrap it
	}
	if tweak != nil {
		tweak(&o)
	}
	p, addr, err := startInProcess(o)
	if err != nil {
		p.stop()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("serve: %v\nlogs:\n%s", err, p.logs.String())
		}
	})
	return addr
}

// inProcess is a serve running in the test's process.
type inProcess struct {
	cancel context.CancelFunc
	ended  chan struct{} // closed when serve has returned
	err    error         // serve's error, set before ended is closed
	logs   syncBuffer
}

// startInProcess starts serve with o (after its ready hook) and waits
// until it is ready: addr is its HTTP address. err is set, with serve's
// logs, if serve ended first or was not ready within 30 s. Call stop
// however it ended.
func startInProcess(o serveOptions) (p *inProcess, addr string, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	p = &inProcess{cancel: cancel, ended: make(chan struct{})}
	ready := make(chan string, 1)
	hook := o.ready
	o.ready = func(n *node.Node, a string) {
		if hook != nil {
			hook(n, a)
		}
		ready <- a
	}
	go func() {
		p.err = serve(ctx, &p.logs, o)
		close(p.ended)
	}()
	select {
	case addr = <-ready:
		return p, addr, nil
	case <-p.ended:
		return p, "", fmt.Errorf("serve ended before it was ready: %v\nlogs:\n%s", p.err, p.logs.String())
	case <-time.After(30 * time.Second):
		return p, "", fmt.Errorf("serve not ready after 30s\nlogs:\n%s", p.logs.String())
	}
}

// stop ends serve and returns its error. It can be called more than once.
func (p *inProcess) stop() error {
	p.cancel()
	<-p.ended
	return p.err
}

// TestServeInProcessEarlyFailure: a serve that fails before it is ready
// (its HTTP address taken) is reported by startInProcess, and stop
// returns its error rather than wait for it a second time.
func TestServeInProcessEarlyFailure(t *testing.T) {
	taken := serveInProcess(t)
	p, _, err := startInProcess(serveOptions{
		id: "second", memory: true, bind: "127.0.0.1:0", gossip: "127.0.0.1:0", httpAddr: taken,
		leave: true, network: "local", logLevel: "warn",
	})
	if err == nil || !strings.Contains(err.Error(), "ended before it was ready") {
		t.Errorf("start on a taken HTTP address: %v, want serve's early error", err)
	}
	if err := p.stop(); err == nil {
		t.Error("stop after an early failure: nil, want serve's error")
	}
	if err := p.stop(); err == nil {
		t.Error("stop a second time: nil, want serve's error")
	}
}

// TestClientCommands runs every client command against one node served in
// the test's process.
func TestClientCommands(t *testing.T) {
	addr := serveInProcess(t)
	steps := []struct {
		name   string
		args   []string
		code   int
		stdout string // a regexp stdout must match whole (empty: no output)
		stderr string // a substring of stderr
	}{
		{"set an object", []string{"set", "users", "ada", `{"admin": true}`}, exitOK, ``, ""},
		{"set a bare word", []string{"set", "users", "grace", "navy"}, exitOK, ``, ""},
		{"set a number as a string", []string{"set", "-string", "users", "zip", "01234"}, exitOK, ``, ""},
		{"set a key with a slash", []string{"set", "users", "team/x", "1"}, exitOK, ``, ""},
		{"get a key", []string{"get", "users", "ada"}, exitOK, `\{"admin":true\}\n`, ""},
		{"get a string", []string{"get", "users", "zip"}, exitOK, `"01234"\n`, ""},
		{"get a key with a slash", []string{"get", "users", "team/x"}, exitOK, `1\n`, ""},
		{"get a model", []string{"get", "users"}, exitOK, `\{\n  "ada": \{\n    "admin": true\n  \},\n  "grace": "navy",\n  "team/x": 1,\n  "zip": "01234"\n\}\n`, ""},
		{"del", []string{"del", "users", "grace"}, exitOK, ``, ""},
		{"get a deleted key", []string{"get", "users", "grace"}, exitFail, ``, `404 Not Found: no key "grace" in "users"`},
		{"del again", []string{"del", "users", "grace"}, exitFail, ``, "404 Not Found"},
		{"get an unknown model", []string{"get", "nope"}, exitFail, ``, `404 Not Found: no document "nope"`},
		{"set into a bad name", []string{"set", "_x", "k", "1"}, exitFail, ``, "400 Bad Request: document name"},
		{"emit", []string{"emit", "chat", "joined", "ada", "3"}, exitOK, ``, ""},
		{"emit no args", []string{"emit", "chat", "left"}, exitOK, ``, ""},
		{"get events", []string{"get", "-events", "chat"}, exitOK,
			`\{"event":"joined","args":\["ada",3\],"source":"solo~[0-9a-v]{8}","timestamp":[0-9.e+]+,"local":true\}\n\{"event":"left","args":\[\],.*\}\n`, ""},
		{"get last event", []string{"get", "-events", "-limit", "1", "chat"}, exitOK, `\{"event":"left",.*\}\n`, ""},
		{"get events of a model", []string{"get", "-events", "users"}, exitFail, ``, "409 Conflict"},
		{"lock while a command runs", []string{"lock", "jobs", "nightly", "--", "true"}, exitOK, ``, ""},
		{"lock, a command that fails", []string{"lock", "jobs", "nightly", "--", "sh", "-c", "exit 7"}, 7, ``, ""},
		{"lock, a command's output", []string{"lock", "jobs", "nightly", "--", "echo", "under the lock"}, exitOK, `under the lock\n`, ""},
		{"lock, no such command", []string{"lock", "jobs", "nightly", "--", "/nonexistent/cmd"}, exitFail, ``, "/nonexistent/cmd"},
		{"lock show free", []string{"lock", "-show", "jobs", "nightly"}, exitOK, `nightly is free\n`, ""},
		{"lock release free", []string{"lock", "-release", "jobs", "nightly"}, exitFail, ``, "403 Forbidden"},
		{"lock -release -show", []string{"lock", "-release", "-show", "jobs", "x"}, exitFail, ``, "exclude each other"},
		{"lock -show with a command", []string{"lock", "-show", "jobs", "x", "--", "true"}, exitFail, ``, "take no command"},
		{"lock flag after the arguments", []string{"lock", "jobs", "x", "-timeout", "5s"}, exitFail, ``, "flags go before <table> <lock>"},
		{"lock command without --", []string{"lock", "jobs", "x", "make"}, exitFail, ``, `put -- before the command "make"`},
		{"lock nothing after --", []string{"lock", "jobs", "x", "--"}, exitFail, ``, "no command after --"},
		{"lock TTL too short", []string{"lock", "-ttl", "10ms", "jobs", "x", "--", "true"}, exitFail, ``, "400 Bad Request: ttl 10ms is not in [1s, 1h0m0s]"},
		{"status", []string{"status"}, exitOK, `(?s)node solo  replication 127\.0\.0\.1:\d+  gossip 127\.0\.0\.1:\d+\n\nmembers \(1\):\n  solo +alive .*documents \(3\):\n  chat +emitter +1 source: solo\n  jobs +lock .*\n  users +model +1 source: solo\n.*`, ""},
		{"status -json", []string{"status", "-json"}, exitOK, `(?s)\{\n  "id": "solo",.*`, ""},
		{"get too many args", []string{"get", "a", "b", "c"}, exitFail, ``, "want arguments <model> [key], got 3"},
		{"set too few args", []string{"set", "a", "b"}, exitFail, ``, "want arguments <model> <key> <value>"},
		{"bad addr", []string{"get", "-addr", "ftp://x", "users"}, exitFail, ``, "-addr"},
		{"set -h", []string{"set", "-h"}, exitOK, ``, "usage: scuttle set [flags] <model> <key> <value>"},
		{"watch --help", []string{"watch", "--help"}, exitOK, ``, "-events"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			args := s.args
			if !slices.ContainsFunc(args, func(a string) bool { return a == "-addr" || a == "-h" || a == "--help" }) {
				args = append([]string{args[0], "-addr", addr}, args[1:]...)
			}
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), args, &stdout, &stderr)
			if code != s.code {
				t.Errorf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, s.code, stdout.String(), stderr.String())
			}
			if !regexp.MustCompile(`\A` + s.stdout + `\z`).MatchString(stdout.String()) {
				t.Errorf("%q: stdout %q does not match %q", args, stdout.String(), s.stdout)
			}
			if !strings.Contains(stderr.String(), s.stderr) {
				t.Errorf("%q: stderr %q lacks %q", args, stderr.String(), s.stderr)
			}
		})
	}
}

// TestDocCommands runs the commands of JSON documents (patch, get -doc)
// against one node served in the test's process.
func TestDocCommands(t *testing.T) {
	addr := serveInProcess(t)
	steps := []struct {
		name   string
		args   []string
		code   int
		stdout string // a regexp stdout must match whole (empty: no output)
		stderr string // a substring of stderr
	}{
		{"patch a new doc", []string{"patch", "store", `{"$set": {"users.ada.admin": true}, "$inc": {"users.ada.logins": 1}, "$push": {"log": "ada joined"}}`},
			exitOK, `\{"log":\["ada joined"\],"users\.ada\.admin":true,"users\.ada\.logins":1\}\n`, ""},
		{"patch an increment", []string{"patch", "store", `{"$inc": {"users.ada.logins": 2}}`}, exitOK, `\{"users\.ada\.logins":3\}\n`, ""},
		{"patch an unset", []string{"patch", "store", `{"$unset": {"/users/ada/admin": 1}, "$push": {"log": {"$each": [1, 2]}}}`},
			exitOK, `\{"log":\["ada joined",1,2\]\}\n`, ""},
		{"get a doc", []string{"get", "-doc", "store"}, exitOK,
			`\{\n  "log": \[\n    "ada joined",\n    1,\n    2\n  \],\n  "users": \{\n    "ada": \{\n      "logins": 3\n    \}\n  \}\n\}\n`, ""},
		{"get a dotted path", []string{"get", "-doc", "store", "users.ada"}, exitOK, `\{"logins":3\}\n`, ""},
		{"get a pointer into an array", []string{"get", "-doc", "store", "/log/0"}, exitOK, `"ada joined"\n`, ""},
		{"get an absent path", []string{"get", "-doc", "store", "users.bob"}, exitFail, ``, `404 Not Found: no value at "users.bob" in "store"`},
		{"get an unknown doc", []string{"get", "-doc", "nope"}, exitFail, ``, `404 Not Found: no document "nope"`},
		{"get a doc as a model", []string{"get", "store"}, exitFail, ``, `409 Conflict: document "store" is a doc, not a model`},
		{"patch not JSON", []string{"patch", "store", `{"$inc": {"n": 1}`}, exitFail, ``, "the patch is not JSON"},
		{"patch conflicting paths", []string{"patch", "store", `{"$set": {"users": {}}, "$inc": {"users.ada.logins": 1}}`}, exitFail, ``,
			`400 Bad Request: "users" ($set) and "users.ada.logins" ($inc) conflict`},
		{"patch an increment of an array", []string{"patch", "store", `{"$inc": {"log": 1}}`}, exitFail, ``, "409 Conflict"},
		{"patch a model", []string{"patch", "m", `{"$set": {"a": 1}}`}, exitOK, `\{"a":1\}\n`, ""},
		{"status", []string{"status"}, exitOK, `(?s).*documents \(2\):\n  m +doc +1 source: solo\n  store +doc +1 source: solo\n.*`, ""},
		{"-doc and -events", []string{"get", "-doc", "-events", "store"}, exitFail, ``, "-doc and -events exclude each other"},
		{"get -doc too many args", []string{"get", "-doc", "store", "a", "b"}, exitFail, ``, "want arguments <doc> [path], got 3"},
		{"patch too few args", []string{"patch", "store"}, exitFail, ``, "want arguments <doc> <json>, got 1"},
		{"patch -h", []string{"patch", "-h"}, exitOK, ``, `{"a.l": {"$each": [v, w]}}`},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			args := s.args
			if !slices.Contains(args, "-h") {
				args = append([]string{args[0], "-addr", addr}, args[1:]...)
			}
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), args, &stdout, &stderr)
			if code != s.code {
				t.Errorf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, s.code, stdout.String(), stderr.String())
			}
			if !regexp.MustCompile(`\A` + s.stdout + `\z`).MatchString(stdout.String()) {
				t.Errorf("%q: stdout %q does not match %q", args, stdout.String(), s.stdout)
			}
			if !strings.Contains(stderr.String(), s.stderr) {
				t.Errorf("%q: stderr %q lacks %q", args, stderr.String(), s.stderr)
			}
		})
	}
}

// TestWatchCommand checks that watch prints changes as they happen and
// ends cleanly when interrupted.
func TestWatchCommand(t *testing.T) {
	addr := serveInProcess(t)
	for _, args := range [][]string{{"set", "-addr", addr, "m", "k", "0"}, {"emit", "-addr", addr, "e", "x"}, {"patch", "-addr", addr, "d", `{"$set": {"a.b": 0}}`}} {
		if code := run(t.Context(), args, new(bytes.Buffer), new(bytes.Buffer)); code != exitOK {
			t.Fatalf("%q: exit %d", args, code)
		}
	}
	for _, tt := range []struct {
		name  string
		watch []string
		write []string
		want  string // a regexp for the first line
	}{
		{"model", []string{"watch", "-addr", addr, "m"}, []string{"set", "-addr", addr, "m", "k", "1"},
			`^\{"key":"k","value":1,"source":"solo~[0-9a-v]{8}","timestamp":[0-9.e+]+,"local":true\}$`},
		{"events", []string{"watch", "-addr", addr, "-events", "e"}, []string{"emit", "-addr", addr, "e", "y", "true"},
			`^\{"event":"y","args":\[true\],"source":"solo~[0-9a-v]{8}","timestamp":[0-9.e+]+,"local":true\}$`},
		{"doc", []string{"watch", "-addr", addr, "-doc", "d", "a.b"}, []string{"patch", "-addr", addr, "d", `{"$inc": {"a.b": 1}, "$set": {"c": 1}}`},
			`^\{"path":"/a/b","value":[0-9]+,"old":[0-9]+,"source":"solo~[0-9a-v]{8}","timestamp":[0-9.e+]+,"local":true\}$`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			var out syncBuffer
			var errOut bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- run(ctx, tt.watch, &out, &errOut) }()
			// Write until the watch has seen a write: it may start
			// after the first.
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(out.String(), "\n") {
				if time.Now().After(deadline) {
					t.Fatalf("watch printed nothing within 20s")
				}
				if code := run(t.Context(), tt.write, new(bytes.Buffer), new(bytes.Buffer)); code != exitOK {
					t.Fatalf("%q: exit %d", tt.write, code)
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			if code := <-done; code != exitOK {
				t.Errorf("interrupted watch: exit %d, stderr %s", code, errOut.String())
			}
			first, _, _ := strings.Cut(out.String(), "\n")
			if !regexp.MustCompile(tt.want).MatchString(first) {
				t.Errorf("watch printed %q, want %q", first, tt.want)
			}
		})
	}
}

// TestWatchCommandDeleted: a watch whose document is deleted stops,
// exit 1, saying so, rather than reconnect.
func TestWatchCommandDeleted(t *testing.T) {
	addr := serveInProcess(t)
	if code := run(t.Context(), []string{"set", "-addr", addr, "gone", "k", "0"}, new(bytes.Buffer), new(bytes.Buffer)); code != exitOK {
		t.Fatalf("set: exit %d", code)
	}
	var out syncBuffer
	var errOut syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(t.Context(), []string{"watch", "-addr", addr, "gone"}, &out, &errOut) }()
	// Write until the watch has seen a write: then it is open.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "\n") {
		if time.Now().After(deadline) {
			t.Fatalf("watch printed nothing within 20s")
		}
		if code := run(t.Context(), []string{"set", "-addr", addr, "gone", "k", "1"}, new(bytes.Buffer), new(bytes.Buffer)); code != exitOK {
			t.Fatalf("set: exit %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := run(t.Context(), []string{"del", "-addr", addr, "-doc", "gone"}, new(bytes.Buffer), new(bytes.Buffer)); code != exitOK {
		t.Fatalf("del -doc: exit %d", code)
	}
	select {
	case code := <-done:
		if code != exitFail || !strings.Contains(errOut.String(), "the document was deleted") {
			t.Errorf("watch of a deleted document: exit %d, stderr %q; want %d saying it was deleted", code, errOut.String(), exitFail)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("watch still running 30s after its document was deleted; stderr %q", errOut.String())
	}
}

func TestDescribeSources(t *testing.T) {
	for _, tt := range []struct {
		sources []string
		want    string
	}{
		{nil, "0 sources"},
		{[]string{"solo~k3x9p2qd"}, "1 source: solo"},
		{[]string{"n1~aaaaaaaa", "n1~bbbbbbbb", "n2~cccccccc"}, "3 sources: n1 (2 incarnations), n2"},
		{[]string{"browser", "n1~aaaaaaaa"}, "2 sources: browser, n1"}, // a JavaScript peer's id has no incarnation
	} {
		if got := describeSources(tt.sources); got != tt.want {
			t.Errorf("describeSources(%q) = %q, want %q", tt.sources, got, tt.want)
		}
	}
}
