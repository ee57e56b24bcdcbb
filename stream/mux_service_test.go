package stream_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/scuttle-go/scuttle/internal/testkit/nettest"
	"github.com/scuttle-go/scuttle/rpc"
	"github.com/scuttle-go/scuttle/stream"
)

// TestMuxService: a document replicates and an rpc call is served on the
// same Mux, each way; a service name equal to a document name reaches the
// service; an unknown service is refused.
func TestMuxService(t *testing.T) {
	ma, mb := muxPair(t, nil, nil)
	da, db := newModel(t, "a"), newModel(t, "b")
	da.Set("k", "from a")
	ma.Add("doc", da)
	mb.Add("doc", db)

	serve := func(who string) stream.ServiceFunc {
		srv := rpc.NewServer(nil)
		srv.Handle("who", func(ctx context.Context, args []any) (any, error) { return who, nil })
		return func(ctx context.Context, rwc io.ReadWriteCloser) { srv.Serve(ctx, rwc) }
	}
	ma.Handle("doc", serve("a")) // the name of a document, on purpose
	mb.Handle("doc", serve("b"))

	for _, tc := range []struct {
		name string
		from *stream.Mux
		want string
	}{{"a calls b", ma, "b"}, {"b calls a", mb, "a"}} {
		t.Run(tc.name, func(t *testing.T) {
			rwc, err := tc.from.Open(t.Context(), "doc")
			if err != nil {
				t.Fatalf("Open(doc): %v", err)
			}
			cl := rpc.NewClient(rwc, nil)
			defer cl.Close()
			got, err := cl.Call(t.Context(), "who")
			if err != nil || got != tc.want {
				t.Fatalf("Call(who) = %v, %v; want %q, nil", got, err, tc.want)
			}
		})
	}
	waitEqual(t, da, db)
	if v, _ := db.Get("k"); v != "from a" {
		t.Fatalf("b's doc k = %v, want %q", v, "from a")
	}

	if _, err := ma.Open(t.Context(), "nope"); !errors.Is(err, stream.ErrUnknownService) {
		t.Fatalf("Open(nope) = %v, want ErrUnknownService", err)
	}
	mb.Handle("doc", nil)
	if _, err := ma.Open(t.Context(), "doc"); !errors.Is(err, stream.ErrUnknownService) {
		t.Fatalf("Open(doc) after Handle(doc, nil) = %v, want ErrUnknownService", err)
	}
}

// TestMuxServiceStreamClosed: a call pending on a service stream fails
// with rpc.ErrClosed, not a hang, when its stream closes.
func TestMuxServiceStreamClosed(t *testing.T) {
	ma, mb := muxPair(t, nil, nil)
	block := make(chan struct{})
	defer close(block)
	srv := rpc.NewServer(nil)
	srv.Handle("block", func(ctx context.Context, args []any) (any, error) {
		<-block
		return nil, nil
	})
	mb.Handle("rpc", func(ctx context.Context, rwc io.ReadWriteCloser) { srv.Serve(ctx, rwc) })
	rwc, err := ma.Open(t.Context(), "rpc")
	if err != nil {
		t.Fatal(err)
	}
	cl := rpc.NewClient(rwc, nil)
	defer cl.Close()
	errc := make(chan error, 1)
	go func() { _, err := cl.Call(context.Background(), "block"); errc <- err }()
	rwc.Close() // the call is in flight or about to be

	if err := <-errc; !errors.Is(err, rpc.ErrClosed) {
		t.Fatalf("Call(block) after the stream closed = %v, want ErrClosed", err)
	}
}

// TestMuxServiceAddrs: a service stream on a Mux over TCP is a net.Conn
// with the TCP connection's addresses, on the side that opened it and on
// the side that serves it.
func TestMuxServiceAddrs(t *testing.T) {
	x, y := nettest.TCPPair(t)
	ma, mb := muxPairOver(t, x, y, nil, nil)
	served := make(chan net.Conn, 1)
	mb.Handle("addr", func(ctx context.Context, rwc io.ReadWriteCloser) {
		c, _ := rwc.(net.Conn)
		served <- c
	})
	rwc, err := ma.Open(t.Context(), "addr")
	if err != nil {
		t.Fatal(err)
	}
	defer rwc.Close()
	for _, tc := range []struct {
		side string
		c    any
		conn net.Conn
	}{{"opened", rwc, x}, {"served", <-served, y}} {
		c, ok := tc.c.(net.Conn)
		if !ok || c == nil {
			t.Fatalf("%s stream: %T, not a net.Conn", tc.side, tc.c)
		}
		if got, want := c.LocalAddr().String(), tc.conn.LocalAddr().String(); got != want {
			t.Errorf("%s stream LocalAddr = %s, want %s", tc.side, got, want)
		}
		if got, want := c.RemoteAddr().String(), tc.conn.RemoteAddr().String(); got != want {
			t.Errorf("%s stream RemoteAddr = %s, want %s", tc.side, got, want)
		}
	}
}
