package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/scuttle-go/scuttle/node"
)

// TestCallCommand calls functions of a node served in the test's process,
// and finds them in its status.
func TestCallCommand(t *testing.T) {
	addr := serveInProcessWith(t, func(o *serveOptions) {
		ready := o.ready
		o.ready = func(n *node.Node, a string) {
			n.Handle("add", func(ctx context.Context, args []any) (any, error) {
				var sum int64
				for _, a := range args {
					i, _ := a.(int64)
					sum += i
				}
				return sum, nil
			})
			n.Handle("echo", func(ctx context.Context, args []any) (any, error) { return args, nil })
			n.Handle("fail", func(ctx context.Context, args []any) (any, error) { return nil, errors.New("no luck") })
			ready(n, a)
		}
	})
	for _, s := range []struct {
		name   string
		args   []string
		code   int
		stdout string // a regexp stdout must match whole
		stderr string // a substring of stderr
	}{
		{"numbers", []string{"call", "add", "1", "2", "39"}, exitOK, `42\n`, ""},
		{"no arguments", []string{"call", "add"}, exitOK, `0\n`, ""},
		{"JSON and words", []string{"call", "echo", "ada", `{"n": 1}`, "true", "01x"}, exitOK,
			`\[\n  "ada",\n  \{\n    "n": 1\n  \},\n  true,\n  "01x"\n\]\n`, ""},
		{"-string", []string{"call", "-string", "echo", "1"}, exitOK, `\[\n  "1"\n\]\n`, ""},
		{"handler error", []string{"call", "fail"}, exitFail, ``, "502 Bad Gateway: node: call \"fail\" on solo: rpc: remote error: fail: no luck"},
		{"unknown", []string{"call", "nobody"}, exitFail, ``, "404 Not Found"},
		{"no name", []string{"call"}, exitFail, ``, "want arguments <name> [arg...]"},
		{"status lists them", []string{"status"}, exitOK,
			`(?s).*\nfunctions \(3\):\n  add +served by solo\n  echo +served by solo\n  fail +served by solo\n.*`, ""},
	} {
		t.Run(s.name, func(t *testing.T) {
			args := append([]string{s.args[0], "-addr", addr}, s.args[1:]...)
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
