package main

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRunLocal(t *testing.T) {
	var out bytes.Buffer
	if err := runFlags(t.Context(), "", "", "", &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	state := `    greeting = "hello from the client"
    live = "sent after the sync"
    motd = "welcome"
    reply = "got it"
`
	want := "client: synced with the server over TCP\nconverged:\n" +
		"  server: 4 keys\n" + state + "  client: 4 keys\n" + state
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output mismatch (-want +got):\n%s", diff)
	}
}

// TestListenConnect runs the two-process mode in one process: a listener and
// two connectors, one after the other.
func TestListenConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	var lout lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- listenMode(ctx, ln, "listener", &lout) }()

	for _, tt := range []struct {
		id   string
		want string
	}{
		{"alice", "synced with listener at " + addr + `
  alice: 2 keys
    hello/alice = "hello from alice"
    hello/listener = "hello from listener"
`},
		{"bob", "synced with listener at " + addr + `
  bob: 3 keys
    hello/alice = "hello from alice"
    hello/bob = "hello from bob"
    hello/listener = "hello from listener"
`},
	} {
		var out bytes.Buffer
		if err := runFlags(t.Context(), "", addr, tt.id, &out); err != nil {
			t.Fatalf("connector %s: %v", tt.id, err)
		}
		if diff := cmp.Diff(tt.want, out.String()); diff != "" {
			t.Errorf("connector %s output mismatch (-want +got):\n%s", tt.id, diff)
		}
	}

	// The listener may apply the last update after the connector has gone.
	want := "listener listening on " + addr + "; stop with Ctrl-C\n" +
		`got hello/alice = "hello from alice" (written by alice)` + "\n" +
		`got hello/bob = "hello from bob" (written by bob)` + "\n"
	deadline := time.Now().Add(10 * time.Second)
	for lout.String() != want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if diff := cmp.Diff(want, lout.String()); diff != "" {
		t.Errorf("listener output mismatch (-want +got):\n%s", diff)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("listener: %v", err)
	}
}

func TestFlagsConflict(t *testing.T) {
	err := runFlags(t.Context(), "127.0.0.1:0", "127.0.0.1:1", "", &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("runFlags with -listen and -connect: err = %v, want one naming both", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
