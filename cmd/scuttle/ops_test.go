package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/node"
)

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"-version"}} {
		var out, errb bytes.Buffer
		if code := run(t.Context(), args, &out, &errb); code != exitOK {
			t.Errorf("scuttle %v: exit %d, stderr %s", args, code, errb.String())
		}
		if !strings.HasPrefix(out.String(), "scuttle ") || !strings.Contains(out.String(), "go1.") {
			t.Errorf("scuttle %v printed %q", args, out.String())
		}
	}
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-30T17:00:00Z"},
		{Key: "vcs.modified", Value: "true"}, {Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
	}}
	if got, want := formatVersion(bi), "scuttle v1.2.3 0123456789ab 2026-11-30T17:00:00Z (modified) go1.26.0 linux/arm64"; got != want {
		t.Errorf("formatVersion = %q, want %q", got, want)
	}
}

// TestConfigLayers checks the precedence of serve's settings: the
// command line over the environment over the config file over defaults.
func TestConfigLayers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "scuttle.conf")
	os.WriteFile(file, []byte(`# a comment
id = fromfile
bind = 127.0.0.1:1001
gossip = 127.0.0.1:1002
http = 127.0.0.1:1003
join = 127.0.0.1:2001
join = 127.0.0.1:2002
leave = false
`), 0o600)
	env := map[string]string{
		"SCUTTLE_BIND":       "127.0.0.1:3001",
		"SCUTTLE_GOSSIP":     "127.0.0.1:3002",
		"SCUTTLE_LOG_FORMAT": "json",
		"SCUTTLE_CONFIG":     file,
		"SCUTTLE_ADDR":       "ignored: serve has no -addr",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	fs, _ := serveCommand.newFlags(io.Discard)
	if err := fs.Parse([]string{"-bind", "127.0.0.1:4001", "-reap-after", "5s"}); err != nil {
		t.Fatal(err)
	}
	if err := layer(fs, lookup); err != nil {
		t.Fatalf("layer: %v", err)
	}
	for name, want := range map[string]string{
		"bind":       "127.0.0.1:4001", // flag over env and file
		"reap-after": "5s",             // flag
		"gossip":     "127.0.0.1:3002", // env over file
		"log-format": "json",           // env over default
		"id":         "fromfile",       // file over default
		"http":       "127.0.0.1:1003", // file
		"leave":      "false",          // file, a boolean
		"network":    "lan",            // default
		"config":     file,             // env
	} {
		if got := fs.Lookup(name).Value.String(); got != want {
			t.Errorf("-%s = %q, want %q", name, got, want)
		}
	}

	for _, tc := range []struct {
		name, file, err string
	}{
		{"unknown key", "bnid = x\n", `unknown key "bnid"`},
		{"no equals", "bind\n", "want key = value"},
		{"twice", "id = a\nid = b\n", `key "id" given twice`},
		{"bad value", "leave = maybe\n", "leave"},
		{"nested config", "config = /etc/x\n", "cannot name another"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, _ := serveCommand.newFlags(io.Discard)
			fs.Parse(nil)
			err := applyConfig(fs, strings.NewReader(tc.file), "f.conf", map[string]bool{})
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "f.conf:") {
				t.Errorf("applyConfig(%q) = %v, want an error with the line and %q", tc.file, err, tc.err)
			}
		})
	}
	fs, _ = serveCommand.newFlags(io.Discard)
	fs.Parse(nil)
	if err := layer(fs, func(k string) (string, bool) {
		if k == "SCUTTLE_REAP_AFTER" {
			return "soon", true
		}
		return "", false
	}); err == nil || !strings.Contains(err.Error(), "$SCUTTLE_REAP_AFTER") {
		t.Errorf("a bad variable: %v, want an error naming it", err)
	}
}

// TestGetWait checks that get -wait polls until the key exists, and gives
// up with the 404 after the wait.
func TestGetWait(t *testing.T) {
	addr := serveInProcess(t)
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"get", "-addr", addr, "-wait", "20s", "later", "k"}, &out, &errb)
	}()
	if code := run(t.Context(), []string{"set", "-addr", addr, "later", "k", "42"}, io.Discard, io.Discard); code != exitOK {
		t.Fatalf("set: exit %d", code)
	}
	if code := <-done; code != exitOK || out.String() != "42\n" {
		t.Errorf("get -wait: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	start := time.Now()
	var errs bytes.Buffer
	code := run(t.Context(), []string{"get", "-addr", addr, "-wait", "300ms", "later", "missing"}, io.Discard, &errs)
	if code != exitFail || !strings.Contains(errs.String(), "404") {
		t.Errorf("get -wait of a missing key: exit %d, stderr %q", code, errs.String())
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("get -wait 300ms gave up after %v", d)
	}
}

// probe returns the status code and body of GET path on p.
func (p *proc) probe(path string) (int, string) {
	resp, err := httpClient.Get(p.httpURL + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// members returns the ids p lists in its status, whatever their state.
func (p *proc) members() ([]string, error) {
	var st node.Status
	if err := p.get("/v1/status", &st); err != nil {
		return nil, err
	}
	var out []string
	for _, m := range st.Members {
		out = append(out, m.ID+"="+string(m.State))
	}
	return out, nil
}

// TestOperations runs three serve processes (JSON logs, a config file and
// environment variables among their settings): /healthz and /readyz, a
// killed member forced out with scuttle force-leave, one reaped by
// -reap-after, and a stop of the whole cluster at once that does not wait
// for leave broadcasts.
func TestOperations(t *testing.T) {
	procs := newProcs(t, 4)
	conf := filepath.Join(t.TempDir(), "scuttle.conf")
	os.WriteFile(conf, []byte("log-format = text\nreap-after = 1h\n"), 0o600)
	for _, p := range procs {
		p.extra = []string{"-config", conf}
		p.env = []string{"SCUTTLE_LOG_FORMAT=json"} // over the file
	}
	procs[0].extra = append(procs[0].extra, "-reap-after", "500ms") // over the file
	for _, p := range procs {
		p.start()
	}
	waitMembers(t, procs, ids(procs))
	for _, p := range procs {
		waitUntil(t, p.id+" ready", 30*time.Second, func() (bool, string) {
			code, body := p.probe("/readyz")
			return code == http.StatusOK, fmt.Sprint(code, body)
		})
		if code, body := p.probe("/healthz"); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
			t.Errorf("%s /healthz: %d %s", p.id, code, body)
		}
	}
	// n4 dies. n1 reaps it after 500ms; n2 forces it out for n2 and n3.
	n1, n2, n3, n4 := procs[0], procs[1], procs[2], procs[3]
	n4.kill()
	waitUntil(t, "n2 records n4 as failed", 30*time.Second, func() (bool, string) {
		ms, err := n2.members()
		return slices.Contains(ms, "n4=failed"), fmt.Sprint(ms, err)
	})
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"force-leave", "-addr", n2.httpAddr, "n1"}, &out, &errb); code != exitFail || !strings.Contains(errb.String(), "alive") {
		t.Errorf("force-leave of a live member: exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run(t.Context(), []string{"force-leave", "-addr", n2.httpAddr, "n4"}, &out, &errb); code != exitOK {
		t.Errorf("force-leave n4: exit %d, stderr %q", code, errb.String())
	}
	for _, p := range []*proc{n1, n2, n3} {
		waitUntil(t, p.id+" forgets n4", 30*time.Second, func() (bool, string) {
			ms, err := p.members()
			return err == nil && len(ms) == 3 && !slices.ContainsFunc(ms, func(m string) bool { return strings.HasPrefix(m, "n4=") }), fmt.Sprint(ms, err)
		})
	}

	// A write on n1 is fsynced there and applied on n2 and n3: the
	// histograms count it.
	n1.mustCall("PUT", "/v1/models/metered/keys/k", `"v"`)
	for _, p := range []*proc{n2, n3} {
		waitUntil(t, p.id+" counts the replication lag of metered", 30*time.Second, func() (bool, string) {
			text, err := p.metrics()
			return err == nil && sampleAtLeast(text, `scuttle_replication_lag_seconds_count{document="metered"}`, 1) &&
				sampleAtLeast(text, "scuttle_fsync_duration_seconds_count", 1), fmt.Sprint(err)
		})
	}
	text, _ := n1.metrics()
	for _, name := range []string{`scuttle_http_request_duration_seconds_count{route="PUT /v1/models/{name}/keys/{key...}"}`, "go_goroutines", "process_open_fds"} {
		if !sampleAtLeast(text, name, 1) {
			t.Errorf("n1's metrics lack %s", name)
		}
	}

	// The whole cluster stops at once: nobody waits for a broadcast.
	start := time.Now()
	var wg sync.WaitGroup
	for _, p := range []*proc{n1, n2, n3} {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range []*proc{n1, n2, n3} {
		wg.Go(func() {
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				t.Errorf("%s still running 30s after SIGTERM", p.id)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	for _, p := range []*proc{n1, n2, n3} {
		b, _ := os.ReadFile(p.logPath)
		for _, stall := range []string{"timeout waiting for leave broadcast", "timeout waiting for update broadcast"} {
			if bytes.Contains(b, []byte(stall)) {
				t.Errorf("%s stalled: %s", p.id, stall)
			}
		}
	}
	t.Logf("the cluster stopped in %v", took)
	if took > 5*time.Second {
		t.Errorf("stopping the cluster took %v", took)
	}

	// Every log line is a JSON object: memberlist's too.
	sawMemberlist := false
	for _, p := range procs {
		b, _ := os.ReadFile(p.logPath)
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, "=== start") {
				continue
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Errorf("log line is not JSON: %q", line)
				continue
			}
			if rec["component"] == "memberlist" {
				sawMemberlist = true
			}
		}
	}
	if !sawMemberlist {
		t.Errorf("no memberlist record in the logs")
	}
}

// TestReapAfter checks -reap-after on its own: a killed member leaves
// status after it.
func TestReapAfter(t *testing.T) {
	procs := newProcs(t, 2)
	for _, p := range procs {
		p.extra = []string{"-reap-after", "300ms"}
		p.start()
	}
	waitMembers(t, procs, ids(procs))
	procs[1].kill()
	waitUntil(t, "n1 reaps n2", 30*time.Second, func() (bool, string) {
		ms, err := procs[0].members()
		return err == nil && slices.Equal(ms, []string{"n1=alive"}), fmt.Sprint(ms, err)
	})
}

// metrics returns p's /metrics text.
func (p *proc) metrics() (string, error) {
	resp, err := httpClient.Get(p.httpURL + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// sampleAtLeast reports whether the metrics text has the sample name
// (with its labels, as written) with a value of at least min.
func sampleAtLeast(text, name string, min float64) bool {
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && f >= min
		}
	}
	return false
}
