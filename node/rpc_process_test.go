package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/rpc"
)

// TestRPCHelperProcess is a node of TestRPCProcesses when run by it: it
// joins SCUTTLE_RPC_JOIN as SCUTTLE_RPC_ID, serves "who" and "get" (its
// idempotence from SCUTTLE_RPC_IDEMPOTENT), says "called" on stdout when
// get is called and answers it only once a line arrives on stdin.
func TestRPCHelperProcess(t *testing.T) {
	id := os.Getenv("SCUTTLE_RPC_ID")
	if id == "" {
		t.Skip("run by TestRPCProcesses")
	}
	cfg := testConfig(t, id)
	cfg.Logger = nil
	cfg.Join = []string{os.Getenv("SCUTTLE_RPC_JOIN")}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// One reader of stdin: its first line answers get, its end ends us.
	answer, eof := make(chan struct{}), make(chan struct{})
	go func() {
		r := bufio.NewReader(os.Stdin)
		r.ReadString('\n')
		close(answer)
		io.Copy(io.Discard, r)
		close(eof)
	}()
	n.Handle("who", func(ctx context.Context, args []any) (any, error) { return id, nil })
	n.HandleMethod(rpc.Method{Name: "get", Idempotent: os.Getenv("SCUTTLE_RPC_IDEMPOTENT") == "1"},
		func(ctx context.Context, args []any) (any, error) {
			fmt.Println("called")
			select {
			case <-answer:
				return id, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	fmt.Println("ready")
	<-eof // until the test closes stdin or kills us
}

// helperProc is a node of TestRPCProcesses in a process of its own.
type helperProc struct {
	id    string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

func startHelper(t *testing.T, id, join string, idempotent bool) *helperProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRPCHelperProcess$", "-test.v=false")
	idem := "0"
	if idempotent {
		idem = "1"
	}
	cmd.Env = append(os.Environ(), "SCUTTLE_RPC_ID="+id, "SCUTTLE_RPC_JOIN="+join, "SCUTTLE_RPC_IDEMPOTENT="+idem)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testLogWriter(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helperProc{id: id, cmd: cmd, stdin: stdin, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	h.expect(t, "ready")
	return h
}

func (h *helperProc) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok || !strings.Contains(l, want) {
			t.Fatalf("%s said %q (open %v), want %q", h.id, l, ok, want)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("%s did not say %q", h.id, want)
	}
}

// TestRPCProcesses: n2 and n3 run in processes of their own and serve
// "get"; n1, in the test's process, calls it, and the process whose
// handler got the call is killed (SIGKILL) before it answers. An
// idempotent call is answered by the other process; a non-idempotent one
// fails with rpc.ErrClosed. The killed process's registry entries are
// deleted, and it registers again once restarted.
func TestRPCProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, tc := range []struct {
		name       string
		idempotent bool
	}{{"idempotent", true}, {"not idempotent", false}} {
		t.Run(tc.name, func(t *testing.T) {
			n1 := start(t, testConfig(t, "n1"))
			helpers := []*helperProc{
				startHelper(t, "n2", n1.GossipAddr(), tc.idempotent),
				startHelper(t, "n3", n1.GossipAddr(), tc.idempotent),
			}
			waitServers(t, n1, "get", 2)
			for _, h := range helpers {
				waitFor(t, "n1 calls who on "+h.id, func() bool {
					v, err := n1.Call(t.Context(), "who")
					return err == nil && v != nil
				})
			}
			type result struct {
				v   any
				err error
			}
			done := make(chan result, 1)
			go func() {
				v, err := n1.Call(t.Context(), "get")
				done <- result{v, err}
			}()
			// Whichever process got the call dies before it answers.
			var dying, other *helperProc
			select {
			case <-helpers[0].lines:
				dying, other = helpers[0], helpers[1]
			case <-helpers[1].lines:
				dying, other = helpers[1], helpers[0]
			case <-time.After(waitTimeout):
				t.Fatal("no process got the call")
			}
			t.Logf("%s got the call: killing it", dying.id)
			dying.cmd.Process.Kill()
			if tc.idempotent {
				other.expect(t, "called")
				fmt.Fprintln(other.stdin, "answer")
			}
			r := <-done
			t.Logf("Call(get) = %v, %v", r.v, r.err)
			switch {
			case tc.idempotent && (r.err != nil || r.v != other.id):
				t.Fatalf("Call(get) = %v, %v; want %q once %s was killed", r.v, r.err, other.id, dying.id)
			case !tc.idempotent && !errors.Is(r.err, rpc.ErrClosed):
				t.Fatalf("Call(get) = %v, %v; want ErrClosed once %s was killed", r.v, r.err, dying.id)
			}

			// n1, the live member with the smallest id, deletes the
			// entries of the killed process; restarted, it registers
			// its handlers again.
			waitRegistry(t, dying.id, nil, n1)
			startHelper(t, dying.id, n1.GossipAddr(), tc.idempotent)
			waitRegistry(t, dying.id, []string{"get/" + dying.id, "who/" + dying.id}, n1)
			waitFor(t, "n1 calls who on the restarted "+dying.id, func() bool {
				v, err := n1.Call(t.Context(), "who")
				return err == nil && v == dying.id
			})
		})
	}
}
