package rpc_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/rpc"
	"github.com/scuttle-go/scuttle/stream"
)

// frame returns a frame of kind k around a body given in hex (spaces
// ignored).
func frame(t *testing.T, k byte, bodyHex string) []byte {
	t.Helper()
	body, err := hex.DecodeString(strings.ReplaceAll(bodyHex, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", bodyHex, err)
	}
	return header(k, len(body), body...)
}

// header returns a frame header claiming a body of n bytes, followed by
// the bytes given.
func header(k byte, n int, body ...byte) []byte {
	b := []byte{k, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(n))
	return append(b, body...)
}

func cat(frames ...[]byte) []byte {
	var b []byte
	for _, f := range frames {
		b = append(b, f...)
	}
	return b
}

// Call bodies: call(id) of "block" with no arguments.
const (
	callBlock1 = "83 01 65626c6f636b 80"
	callBlock7 = "83 07 65626c6f636b 80"
)

// TestServerBadInput: what a client must not send ends the connection,
// Serve returns an error wrapping the cause, and the calls that were
// running are cancelled; no goroutine is left.
func TestServerBadInput(t *testing.T) {
	longName := strings.Repeat("6e", rpc.MaxNameLen+1) // "nnn..." in hex
	for _, tc := range []struct {
		name  string
		input func(t *testing.T) []byte
		close bool    // close the connection after the input
		want  []error // Serve's error wraps each
		text  string  // and says this
	}{
		{"unknown kind", func(t *testing.T) []byte { return frame(t, 0x01, "80") }, false,
			[]error{rpc.ErrUnknownKind}, "0x1"},
		{"kind after the last", func(t *testing.T) []byte { return frame(t, 0x54, "80") }, false,
			[]error{rpc.ErrUnknownKind}, "0x54"},
		{"result from a client", func(t *testing.T) []byte { return frame(t, 0x51, "82 01 01") }, false,
			[]error{rpc.ErrUnknownKind}, "result from a client"},
		{"error from a client", func(t *testing.T) []byte { return frame(t, 0x52, "83 01 01 60") }, false,
			[]error{rpc.ErrUnknownKind}, "error from a client"},
		{"oversized", func(t *testing.T) []byte { return header(0x50, 1025) }, false,
			[]error{stream.ErrFrameTooLarge}, "1025 bytes, the limit is 1024"},
		{"oversized, length 2^32-1", func(t *testing.T) []byte { return header(0x50, 1<<32-1) }, false,
			[]error{stream.ErrFrameTooLarge}, "4294967295 bytes"},
		{"truncated body", func(t *testing.T) []byte { return header(0x50, 10, 0x83, 0x01) }, true,
			[]error{stream.ErrTruncated}, "2 of 10 body bytes"},
		{"truncated header", func(t *testing.T) []byte { return []byte{0x50, 0} }, true,
			[]error{stream.ErrTruncated}, "2 of 5 header bytes"},
		{"bad CBOR", func(t *testing.T) []byte { return frame(t, 0x50, "ff") }, false,
			[]error{rpc.ErrMalformed}, "call"},
		{"not an array", func(t *testing.T) []byte { return frame(t, 0x50, "a0") }, false,
			[]error{rpc.ErrMalformed}, "call"},
		{"id 0", func(t *testing.T) []byte { return frame(t, 0x50, "83 00 64 6465636f 80") }, false,
			[]error{rpc.ErrMalformed}, "id 0"},
		{"name too long", func(t *testing.T) []byte { return frame(t, 0x50, "83 01 790101"+longName+" 80") }, false,
			[]error{rpc.ErrMalformed}, "method name of 257 bytes"},
		{"NaN argument", func(t *testing.T) []byte { return frame(t, 0x50, "83 01 64 6465636f 81 f97e00") }, false,
			[]error{rpc.ErrMalformed, rpc.ErrInvalidValue}, "not a finite number"},
		{"argument a tag", func(t *testing.T) []byte {
			return frame(t, 0x50, "83 01 64 6465636f 81 c074323031332d30332d32315432303a30343a30305a")
		}, false,
			[]error{rpc.ErrMalformed}, "argument 0"},
		{"argument nested 32 deep", func(t *testing.T) []byte {
			return frame(t, 0x50, "83 01 64 6465636f 81 "+strings.Repeat("81", 32)+"01")
		}, false, []error{rpc.ErrMalformed}, "argument 0"},
		{"duplicate id", func(t *testing.T) []byte { return cat(frame(t, 0x50, callBlock7), frame(t, 0x50, callBlock7)) }, false,
			[]error{rpc.ErrProtocol}, "call 7 has the id of a call still running"},
		{"bad cancel", func(t *testing.T) []byte { return cat(frame(t, 0x50, callBlock1), frame(t, 0x53, "81 00")) }, false,
			[]error{rpc.ErrMalformed}, "cancel"},
		{"garbage after a call", func(t *testing.T) []byte { return cat(frame(t, 0x50, callBlock1), []byte("GET / HTTP/1.1\r\n\r\n")) }, false,
			[]error{stream.ErrFrameTooLarge}, "bytes, the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leak.Check(t)
			srv := rpc.NewServer(&rpc.ServerConfig{MaxFrameSize: 1024})
			b := newBlocker()
			srv.Handle("block", b.handle)
			srv.Handle("deco", func(context.Context, []any) (any, error) { return nil, nil })
			cc, sc := net.Pipe()
			defer cc.Close()
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(context.Background(), sc) }()
			go io.Copy(io.Discard, cc) // replies, until the server closes
			input := tc.input(t)
			calls := strings.Count(string(input), "\x65block") - strings.Count(tc.name, "duplicate")
			go func() {
				cc.Write(input) // fails once the server has closed
				if tc.close {
					cc.Close()
				}
			}()
			b.waitStarted(t, calls)
			var err error
			select {
			case err = <-errc:
			case <-time.After(timeout):
				t.Fatalf("Serve did not return within %v of %x", timeout, input)
			}
			for _, want := range tc.want {
				if !errors.Is(err, want) {
					t.Errorf("Serve after %x = %v, want an error wrapping %q", input, err, want)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("Serve after %x = %v, want an error saying %q", input, err, tc.text)
			}
			for range calls {
				if info := b.waitEnded(t); !errors.Is(info.err, context.Canceled) {
					t.Errorf("a running call's ctx.Err() = %v, want context.Canceled", info.err)
				}
			}
		})
	}
}

// TestClientBadInput: what a server must not send ends the connection;
// the pending call and Err return an error wrapping ErrClosed and the
// cause; no goroutine is left.
func TestClientBadInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input func(t *testing.T) []byte
		want  []error
		text  string
	}{
		{"unknown kind", func(t *testing.T) []byte { return frame(t, 0x07, "80") }, []error{rpc.ErrUnknownKind}, "0x7"},
		{"call from a server", func(t *testing.T) []byte { return frame(t, 0x50, callBlock1) }, []error{rpc.ErrUnknownKind}, "call from a server"},
		{"cancel from a server", func(t *testing.T) []byte { return frame(t, 0x53, "81 01") }, []error{rpc.ErrUnknownKind}, "cancel from a server"},
		{"oversized", func(t *testing.T) []byte { return header(0x51, 1025) }, []error{stream.ErrFrameTooLarge}, "1025 bytes"},
		{"bad CBOR", func(t *testing.T) []byte { return frame(t, 0x51, "ff") }, []error{rpc.ErrMalformed}, "result"},
		{"result id 0", func(t *testing.T) []byte { return frame(t, 0x51, "82 00 01") }, []error{rpc.ErrMalformed}, "id 0"},
		{"result for a call never made", func(t *testing.T) []byte { return frame(t, 0x51, "82 02 01") }, []error{rpc.ErrProtocol}, "call 2, which was never made"},
		{"error for a call never made", func(t *testing.T) []byte { return frame(t, 0x52, "83 09 01 60") }, []error{rpc.ErrProtocol}, "call 9"},
		{"result not a value", func(t *testing.T) []byte { return frame(t, 0x51, "82 01 f97c00") }, []error{rpc.ErrMalformed, rpc.ErrInvalidValue}, "not a finite number"},
		{"error message not text", func(t *testing.T) []byte { return frame(t, 0x52, "83 01 01 40") }, []error{rpc.ErrMalformed}, "message"},
		{"truncated", func(t *testing.T) []byte { return header(0x51, 3, 0x82) }, []error{stream.ErrTruncated}, "1 of 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leak.Check(t)
			cc, sc := net.Pipe()
			defer sc.Close()
			cl := rpc.NewClient(cc, &rpc.ClientConfig{MaxFrameSize: 1024})
			defer cl.Close()
			errc := make(chan error, 1)
			go func() {
				_, err := cl.Call(context.Background(), "block")
				errc <- err
			}()
			// The fake server reads the call, then answers with the input
			// and closes.
			fr := stream.NewFrameReader(sc, 0)
			if _, _, err := fr.ReadFrame(); err != nil {
				t.Fatalf("reading the call: %v", err)
			}
			go func() {
				sc.Write(tc.input(t))
				sc.Close()
			}()
			var err error
			select {
			case err = <-errc:
			case <-time.After(timeout):
				t.Fatalf("the call did not return within %v", timeout)
			}
			<-cl.Done()
			for _, got := range []error{err, cl.Err()} {
				for _, want := range append([]error{rpc.ErrClosed}, tc.want...) {
					if !errors.Is(got, want) {
						t.Errorf("after %s: %v, want an error wrapping %q", tc.name, got, want)
					}
				}
				if got == nil || !strings.Contains(got.Error(), tc.text) {
					t.Errorf("after %s: %v, want an error saying %q", tc.name, got, tc.text)
				}
			}
		})
	}
}

// TestClientUnknownCode: an error code this version does not know is a
// remote error, not the end of the connection.
func TestClientUnknownCode(t *testing.T) {
	leak.Check(t)
	cc, sc := net.Pipe()
	defer sc.Close()
	cl := rpc.NewClient(cc, nil)
	defer cl.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := cl.Call(context.Background(), "block")
		errc <- err
	}()
	fr := stream.NewFrameReader(sc, 0)
	if _, _, err := fr.ReadFrame(); err != nil {
		t.Fatalf("reading the call: %v", err)
	}
	if _, err := sc.Write(frame(t, 0x52, "83 01 18 4d 63 6e6577")); err != nil { // code 77, "new"
		t.Fatal(err)
	}
	err := <-errc
	var re *rpc.RemoteError
	if !errors.Is(err, rpc.ErrRemote) || !errors.As(err, &re) || re.Message != "new" {
		t.Errorf("a call answered with code 77 = %v, want a *RemoteError wrapping ErrRemote with message \"new\"", err)
	}
	if err := cl.Err(); err != nil {
		t.Errorf("Err after an unknown code = %v, want nil", err)
	}
}
