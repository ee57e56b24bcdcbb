package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/node"
	"github.com/scuttle-go/scuttle/rpc"
)

// rpcMethodsEnv, in the environment of a process this test binary starts
// with runAsMain, makes it run "scuttle serve" with handlers of the
// functions it lists (comma-separated; see rpcServeMain). rpcHangEnv=1
// makes its get and put wait until their context ends.
const (
	rpcMethodsEnv = "SCUTTLE_TEST_RPC_METHODS"
	rpcHangEnv    = "SCUTTLE_TEST_RPC_HANG"
)

// rpcServeMain runs the serve command line of os.Args as the scuttle
// program would, with handlers registered once the node is up:
//
//	add(a, b, ...) -> {"sum": a+b+..., "by": id}
//	fail() -> the error "no luck on id"
//	get() -> id; idempotent; says "called get on id" on stdout first
//	put() -> id; not idempotent; says "called put on id" first
func rpcServeMain(methods string) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var o serveOptions
	o.flags(fs)
	if len(os.Args) < 2 || os.Args[1] != "serve" || fs.Parse(os.Args[2:]) != nil {
		fmt.Fprintf(os.Stderr, "want serve and its flags, not %q\n", os.Args[1:])
		os.Exit(exitUsage)
	}
	hang := os.Getenv(rpcHangEnv) == "1"
	o.ready = func(n *node.Node, _ string) {
		for m := range strings.SplitSeq(methods, ",") {
			if err := registerTestFunc(n, m, hang); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(exitFail)
			}
		}
	}
	if err := serve(ctx, os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(exitFail)
	}
	os.Exit(exitOK)
}

func registerTestFunc(n *node.Node, name string, hang bool) error {
	id := n.ID()
	switch name {
	case "add":
		return n.Handle(name, func(_ context.Context, args []any) (any, error) {
			var sum int64
			for _, a := range args {
				i, _ := a.(int64)
				sum += i
			}
			return map[string]any{"sum": sum, "by": id}, nil
		})
	case "fail":
		return n.Handle(name, func(context.Context, []any) (any, error) { return nil, fmt.Errorf("no luck on %s", id) })
	case "get", "put":
		return n.HandleMethod(rpc.Method{Name: name, Idempotent: name == "get"}, func(ctx context.Context, _ []any) (any, error) {
			fmt.Printf("called %s on %s\n", name, id)
			if hang {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return id, nil
		})
	}
	return fmt.Errorf("no test function %q", name)
}

// outcome is what a call of a function through a node's API or the CLI
// gave: its result as JSON, or its error.
type outcome struct {
	result string // the JSON of the result, compacted
	err    string // the API's error, or the CLI's exit status and stderr
}

// callFunc calls the function name with the JSON array args through p's
// HTTP API, or through "scuttle call -addr" of p with cli.
func callFunc(p *proc, name string, cli bool, args ...string) outcome {
	var raw []byte
	if cli {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(scuttleBinary(p.t), append([]string{"call", "-addr", p.httpAddr, name}, args...)...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.SysProcAttr = childAttr()
		if err := cmd.Run(); err != nil {
			return outcome{err: fmt.Sprintf("%v: %s", err, bytes.TrimSpace(stderr.Bytes()))}
		}
		raw = stdout.Bytes()
	} else {
		resp, err := httpClient.Post(p.httpURL+"/v1/rpc/"+name, "application/json", strings.NewReader("["+strings.Join(args, ",")+"]"))
		if err != nil {
			return outcome{err: err.Error()}
		}
		defer resp.Body.Close()
		var body struct {
			Result json.RawMessage
			Error  string
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return outcome{err: fmt.Sprintf("%s: %v", resp.Status, err)}
		}
		if resp.StatusCode != http.StatusOK {
			return outcome{err: resp.Status + ": " + body.Error} // as the CLI prints it
		}
		raw = body.Result
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return outcome{err: fmt.Sprintf("not JSON: %q", raw)}
	}
	return outcome{result: b.String()}
}

// waitStatus waits until cond holds for the status of every proc.
func waitStatus(t *testing.T, what string, cond func(node.Status) (bool, string), procs ...*proc) {
	t.Helper()
	for _, p := range procs {
		waitUntil(t, p.id+": "+what, 30*time.Second, func() (bool, string) {
			var st node.Status
			if err := p.get("/v1/status", &st); err != nil {
				return false, err.Error()
			}
			return cond(st)
		})
	}
}

// servedBy is a waitStatus condition: the node's registry is want, and it
// has a link to every member in it.
func servedBy(want map[string][]string) func(node.Status) (bool, string) {
	return func(st node.Status) (bool, string) {
		if diff := cmp.Diff(want, st.Methods); diff != "" {
			return false, "registry (-want +got):\n" + diff
		}
		linked := map[string]bool{st.ID: true}
		for _, l := range st.Links {
			linked[l.Peer] = true
		}
		for _, ids := range want {
			for _, id := range ids {
				if !linked[id] {
					return false, "no link to " + id
				}
			}
		}
		return true, ""
	}
}

// TestCallProcesses runs three nodes in processes of their own on
// loopback: n1 is "scuttle serve", n2 and n3 the same program with
// functions registered (rpcServeMain). n2's functions are called from n1
// and n3 through their HTTP APIs and through the scuttle call command.
// Then, four times, n1 is asked for get (idempotent) or put (not) until
// n2, whose handlers never answer, has the call, and n2 is killed
// (SIGKILL): get is answered by n3's handler, put fails with a 502. n1,
// the live member with the smallest id, deletes n2's registry entries on
// every node; restarted, n2 registers its functions again.
func TestCallProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes; skipped with -short")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	procs := newProcs(t, 3)
	n1, n2, n3 := procs[0], procs[1], procs[2]
	n2.bin, n2.env = self, []string{rpcMethodsEnv + "=add,fail,get,put", rpcHangEnv + "=1"}
	n3.bin, n3.env = self, []string{rpcMethodsEnv + "=get,put"}
	for _, p := range procs {
		p.start()
	}
	all := map[string][]string{"add": {"n2"}, "fail": {"n2"}, "get": {"n2", "n3"}, "put": {"n2", "n3"}}
	waitStatus(t, "n2's and n3's functions registered", servedBy(all), procs...)

	for _, from := range []*proc{n1, n3} {
		for _, cli := range []bool{false, true} {
			way := "HTTP"
			if cli {
				way = "CLI"
			}
			if got, want := callFunc(from, "add", cli, "1", "2", "39"), (outcome{result: `{"by":"n2","sum":42}`}); got != want {
				t.Errorf("add(1, 2, 39) from %s by %s = %+v, want %+v", from.id, way, got, want)
			}
			got := callFunc(from, "fail", cli)
			if want := `502 Bad Gateway: node: call "fail" on n2: rpc: remote error: fail: no luck on n2`; !strings.Contains(got.err, want) {
				t.Errorf("fail() from %s by %s = %+v, want the error %q", from.id, way, got, want)
			}
			if cli && !strings.Contains(got.err, fmt.Sprintf("exit status %d", exitFail)) {
				t.Errorf("fail() from %s by the CLI = %+v, want exit status %d", from.id, got, exitFail)
			}
		}
	}

	for _, tc := range []struct {
		name   string
		method string
		cli    bool
		want   outcome // err: a substring
	}{
		{"idempotent over HTTP", "get", false, outcome{result: `"n3"`}},
		{"not idempotent over HTTP", "put", false, outcome{err: `502 Bad Gateway: node: call "put" on n2: rpc: connection closed`}},
		{"idempotent with the CLI", "get", true, outcome{result: `"n3"`}},
		{"not idempotent with the CLI", "put", true, outcome{err: `502 Bad Gateway: node: call "put" on n2: rpc: connection closed`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pending := callWhileOn(t, n1, n2, n3, tc.method, tc.cli)
			n2.kill()
			var got outcome
			select {
			case got = <-pending:
			case <-time.After(30 * time.Second):
				t.Fatalf("%s on n1: no answer 30 s after n2 was killed", tc.method)
			}
			if got.result != tc.want.result || tc.want.err == "" && got.err != "" || !strings.Contains(got.err, tc.want.err) {
				t.Errorf("%s on n1, n2 killed during the call = %+v, want %+v", tc.method, got, tc.want)
			}

			waitStatus(t, "n2's entries deleted", servedBy(map[string][]string{"get": {"n3"}, "put": {"n3"}}), n1, n3)
			n2.start()
			waitStatus(t, "n2's functions registered again", servedBy(all), procs...)
		})
	}
}

// callWhileOn calls method on from (with the CLI or not) until on has the
// call, and returns the outcome to come: from picks a server at random,
// and a call that went to other first is answered by other at once.
func callWhileOn(t *testing.T, from, on, other *proc, method string, cli bool) <-chan outcome {
	t.Helper()
	said := fmt.Sprintf("called %s on %s\n", method, on.id)
	for attempt := 1; ; attempt++ {
		before := strings.Count(on.log(), said)
		pending := make(chan outcome, 1)
		go func() { pending <- callFunc(from, method, cli) }()
		var early *outcome
		waitUntil(t, fmt.Sprintf("%s has the call of %s, or %s answers it", on.id, method, other.id), 30*time.Second, func() (bool, string) {
			select {
			case o := <-pending:
				early = &o
				return true, ""
			default:
			}
			n := strings.Count(on.log(), said)
			return n > before, fmt.Sprintf("%d calls on %s", n-before, on.id)
		})
		if early == nil {
			return pending
		}
		if want := (outcome{result: `"` + other.id + `"`}); *early != want {
			t.Fatalf("%s on %s while %s serves it = %+v, want %+v", method, from.id, other.id, *early, want)
		}
		if attempt == 30 {
			t.Fatalf("%d calls of %s on %s, none went to %s", attempt, method, from.id, on.id)
		}
	}
}
