package main

import (
	"bytes"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestDemo(t *testing.T) {
	before := runtime.NumGoroutine()
	var out bytes.Buffer
	err := demo(t.Context(), &out, demoOptions{keys: 200, timeout: 15 * time.Second})
	if err != nil {
		t.Fatalf("demo: %v\noutput:\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"1. Start three replicas",
		"A-B  listening on 127.0.0.1:",
		"B-C  listening on 127.0.0.1:",
		`B  has color="red" shape="circle"`,
		"every replica holds 202 keys",
		"A-B  cut",
		"B-C  cut",
		`C  set color = "blue"`,
		`A  set key/000..key/019 = "rewritten" (20 keys)`,
		"A's and C's clocks are concurrent",
		"converged ",
		"equal everywhere",
		"converged: 3 replicas, 202 keys each, equal clocks",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q\noutput:\n%s", want, got)
		}
	}
	// Each replica prints its clock and its snapshot's digest; all equal.
	clocks := regexp.MustCompile(`(?m)^   ([ABC])  clock (\{.*\})$`).FindAllStringSubmatch(got, -1)
	final := map[string]bool{}
	for _, m := range clocks[len(clocks)-3:] {
		final[m[2]] = true
	}
	if len(clocks) != 6 || len(final) != 1 {
		t.Errorf("want 3 clocks in the partition and 3 equal final ones, got %q", clocks)
	}
	digests := regexp.MustCompile(`(?m)^   [ABC]  202 keys, digest ([0-9a-f]{8}): color="(blue|green)" note="written while alone"$`).FindAllStringSubmatch(got, -1)
	if len(digests) != 3 || digests[0][1] != digests[1][1] || digests[1][1] != digests[2][1] {
		t.Errorf("want 3 equal snapshot lines, got %q", digests)
	}
	for _, dir := range []string{"A->B", "B->A", "B->C", "C->B"} {
		if !regexp.MustCompile(`(?m)^   ` + dir + ` +[1-9][0-9]* B +[0-9]+ updates \| +[1-9][0-9]* B +[0-9]+ updates$`).MatchString(got) {
			t.Errorf("no traffic line for %s\noutput:\n%s", dir, got)
		}
	}
	waitGoroutines(t, before)
}

func TestDemoQuiet(t *testing.T) {
	var out bytes.Buffer
	if err := demo(t.Context(), &out, demoOptions{keys: 10, quiet: true}); err != nil {
		t.Fatalf("demo: %v\noutput:\n%s", err, out.String())
	}
	if !regexp.MustCompile(`^converged: 3 replicas, 12 keys each, equal clocks, [0-9.]+ms after the heal\n$`).MatchString(out.String()) {
		t.Errorf("quiet output is not the one result line:\n%s", out.String())
	}
}

// waitGoroutines fails t if the goroutine count does not fall back to n:
// the demo must stop everything it started.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left running, had %d before:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string // a substring stdout must contain
		stderr     string // a substring stderr must contain
		noStdout   bool
		stdoutLine string // a regexp some line of stdout must match
	}{
		{name: "no arguments", args: nil, code: exitUsage, stderr: "usage: scuttle <command>", noStdout: true},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: "  demo     three replicas"},
		{name: "-h", args: []string{"-h"}, code: exitOK, stdout: "usage: scuttle <command>"},
		{name: "help demo", args: []string{"help", "demo"}, code: exitOK, stdout: "-keys int"},
		{name: "help unknown", args: []string{"help", "nope"}, code: exitUsage, stderr: `unknown command "nope"`},
		{name: "demo -h", args: []string{"demo", "-h"}, code: exitOK, stderr: "usage: scuttle demo [flags]", noStdout: true},
		{name: "unknown command", args: []string{"nope"}, code: exitUsage, stderr: `unknown command "nope"`},
		{name: "bad flag value", args: []string{"demo", "-keys", "many"}, code: exitUsage, stderr: "invalid value"},
		{name: "extra argument", args: []string{"demo", "extra"}, code: exitFail, stderr: "unexpected arguments"},
		{name: "negative keys", args: []string{"demo", "-keys", "-1"}, code: exitFail, stderr: "-keys -1 is negative"},
		{name: "demo -quiet", args: []string{"demo", "-quiet", "-keys", "5"}, code: exitOK, stdoutLine: `^converged: 3 replicas, 7 keys each`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("run(%q) = %d, want %d\nstdout:\n%s\nstderr:\n%s", tt.args, code, tt.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("run(%q) stdout lacks %q:\n%s", tt.args, tt.stdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("run(%q) stderr lacks %q:\n%s", tt.args, tt.stderr, stderr.String())
			}
			if tt.noStdout && stdout.Len() > 0 {
				t.Errorf("run(%q) wrote to stdout:\n%s", tt.args, stdout.String())
			}
			if tt.stdoutLine != "" && !regexp.MustCompile("(?m)"+tt.stdoutLine).MatchString(stdout.String()) {
				t.Errorf("run(%q) stdout has no line matching %q:\n%s", tt.args, tt.stdoutLine, stdout.String())
			}
		})
	}
}
