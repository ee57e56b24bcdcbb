package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestMain lets the test binary play the example's processes: with
// RPC_EXAMPLE_ARGS set it runs main with those arguments.
func TestMain(m *testing.M) {
	if args := os.Getenv("RPC_EXAMPLE_ARGS"); args != "" {
		os.Args = append([]string{os.Args[0]}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const wantCalls = `client: greet(ada) = "hello ada, from server"
client: add(1, 2, 39) = 42
client: greet() failed: node: call "greet" on server: rpc: remote error: greet: greet takes a name, got 0 arguments
client: nobody() failed: node: call "nobody": no live member serves it: rpc: unknown method
`

func TestRunInProcess(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	if diff := cmp.Diff(wantCalls, out.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

// TestTwoProcesses runs -serve and -call as two processes of the test
// binary.
func TestTwoProcesses(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	srv := exec.CommandContext(ctx, os.Args[0])
	srv.Env = append(os.Environ(), "RPC_EXAMPLE_ARGS=-serve -gossip 127.0.0.1:0")
	stdout, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	srv.Stderr = &stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); srv.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the server's first line: %v\nstderr: %s", err, stderr.String())
	}
	_, addr, ok := strings.Cut(strings.TrimSpace(line), "join ")
	if !ok {
		t.Fatalf("server said %q, want its join address", line)
	}
	cl := exec.CommandContext(ctx, os.Args[0])
	cl.Env = append(os.Environ(), "RPC_EXAMPLE_ARGS=-call -join "+addr)
	out, err := cl.CombinedOutput()
	if err != nil {
		t.Fatalf("-call: %v\noutput:\n%s", err, out)
	}
	if diff := cmp.Diff(wantCalls, string(out)); diff != "" {
		t.Errorf("-call output (-want +got):\n%s", diff)
	}
}
