package rpc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/rpc"
	"github.com/scuttle-go/scuttle/stream"
)

// TestOverYamuxNextToDocument runs calls on one yamux stream while a
// document replicates on another stream of the same session, the layout
// of a stream.Mux session (yamux, one stream per document, the same
// session settings). stream.Mux itself has no way yet to hand a stream to
// something other than a document, so the test builds the session as Mux
// does. The handler reads the replicated document, so calls see the
// writes of the other side. Cutting the session fails a pending call with
// ErrClosed; no goroutine is left.
func TestOverYamuxNextToDocument(t *testing.T) {
	leak.Check(t)
	ca, cb := tcpPair(t)
	cfg := yamux.DefaultConfig()
	cfg.KeepAliveInterval = 10 * time.Second // as stream.Mux's defaults
	cfg.ConnectionWriteTimeout = 10 * time.Second
	cfg.LogOutput = io.Discard
	sa, err := yamux.Client(ca, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sa.Close()
	sb, err := yamux.Server(cb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()

	// Two streams, opened by a and accepted by b, matched by id.
	docA, rpcA := openStream(t, sa), openStream(t, sa)
	accepted := map[uint32]*yamux.Stream{}
	for range 2 {
		st, err := sb.AcceptStream()
		if err != nil {
			t.Fatal(err)
		}
		accepted[st.StreamID()] = st
	}
	docB, rpcB := accepted[docA.StreamID()], accepted[rpcA.StreamID()]

	// The document: a's writes replicate to b.
	ma, mb := newModel(t, "a"), newModel(t, "b")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { stream.NewConn(ma, docA, nil).Run(ctx) })
	wg.Go(func() { stream.NewConn(mb, docB, nil).Run(ctx) })

	// The calls: a calls b, whose handler reads b's replica.
	srv := rpc.NewServer(nil)
	srv.Handle("get", func(_ context.Context, args []any) (any, error) {
		v, _ := mb.Get(args[0].(string))
		return v, nil
	})
	b := newBlocker()
	srv.Handle("block", b.handle)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ctx, rpcB) }()
	cl := rpc.NewClient(rpcA, nil)
	defer cl.Close()

	// Writes and calls at once: each call waits until b has the write.
	const n = 200
	var calls sync.WaitGroup
	for i := range n {
		key, want := fmt.Sprintf("k%03d", i), int64(i)
		if err := ma.Set(key, want); err != nil {
			t.Fatal(err)
		}
		calls.Go(func() {
			deadline := time.Now().Add(timeout)
			for {
				got, err := cl.Call(ctx, "get", key)
				if err != nil {
					t.Errorf("get(%q): %v", key, err)
					return
				}
				if got == want {
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("get(%q) = %v after %v, want %d", key, got, timeout, want)
					return
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	calls.Wait()

	// The session dies under a pending call.
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Call(ctx, "block")
		errc <- err
	}()
	b.waitStarted(t, 1)
	ca.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, rpc.ErrClosed) {
			t.Errorf("a call when the session died = %v, want ErrClosed", err)
		}
	case <-time.After(timeout):
		t.Fatalf("a pending call did not return within %v of the session's end", timeout)
	}
	select {
	case <-serveErr:
	case <-time.After(timeout):
		t.Fatalf("Serve did not return within %v of the session's end", timeout)
	}
	b.waitEnded(t)
}

func openStream(t *testing.T, s *yamux.Session) *yamux.Stream {
	t.Helper()
	st, err := s.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newModel(t *testing.T, id string) *model.Model {
	t.Helper()
	m, err := model.New(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestYamuxEnds: a yamux stream's Close only half-closes it, so each side
// must still end the other: the client's Close ends Serve (nil), and
// Serve's end fails the client's pending call.
func TestYamuxEnds(t *testing.T) {
	for _, end := range []string{"client closes", "server stops"} {
		t.Run(end, func(t *testing.T) {
			leak.Check(t)
			ca, cb := pipePair(t)
			cfg := yamux.DefaultConfig()
			cfg.LogOutput = io.Discard
			sa, err := yamux.Client(ca, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sa.Close()
			sb, err := yamux.Server(cb, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer sb.Close()
			stA := openStream(t, sa)
			stB, err := sb.AcceptStream()
			if err != nil {
				t.Fatal(err)
			}
			srv := rpc.NewServer(nil)
			b := newBlocker()
			srv.Handle("block", b.handle)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			serveErr := make(chan error, 1)
			go func() { serveErr <- srv.Serve(ctx, stB) }()
			cl := rpc.NewClient(stA, nil)
			defer cl.Close()
			errc := make(chan error, 1)
			go func() {
				_, err := cl.Call(context.Background(), "block")
				errc <- err
			}()
			b.waitStarted(t, 1)
			if end == "client closes" {
				cl.Close()
			} else {
				cancel()
			}
			for what, c := range map[string]chan error{"the pending call": errc, "Serve": serveErr} {
				select {
				case err := <-c:
					if what == "Serve" && err != nil {
						t.Errorf("Serve = %v, want nil", err)
					}
					if what != "Serve" && !errors.Is(err, rpc.ErrClosed) {
						t.Errorf("%s = %v, want ErrClosed", what, err)
					}
				case <-time.After(timeout):
					t.Fatalf("%s did not return within %v", what, timeout)
				}
			}
			b.waitEnded(t)
		})
	}
}
