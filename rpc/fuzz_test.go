package rpc

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"slices"
	"testing"
	"testing/iotest"

	"github.com/scuttle-go/scuttle/stream"
)

// fuzzFrameLimit is the fuzz targets' frame limit: small, so that the
// fuzzer reaches it.
const fuzzFrameLimit = 256

// seedFrames are frames of every kind and shape, for the seed corpora:
// SPEC.md's examples and more.
func seedFrames(t testing.TB) [][]byte {
	f := func(k kind, body func([]byte) ([]byte, error)) []byte {
		b, err := appendFrame(nil, k, DefaultMaxFrameSize, body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	args := func(vs ...any) []byte {
		b, err := appendArgs(nil, vs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	value := func(v any) []byte {
		b, err := appendValue(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return [][]byte{
		f(kindCall, func(b []byte) ([]byte, error) {
			return appendCall(b, call{id: 1, name: "echo", args: args("x")}), nil
		}),
		f(kindCall, func(b []byte) ([]byte, error) {
			return appendCall(b, call{id: 2, name: "args", args: args(1, -2, 1.5, nil, true, []byte{1}, []any{"a"}, map[string]any{"k": 3}), timeout: 500, hasTimeout: true}), nil
		}),
		f(kindCall, func(b []byte) ([]byte, error) {
			return appendCall(b, call{id: 3, name: "fail", args: args("boom")}), nil
		}),
		f(kindCall, func(b []byte) ([]byte, error) {
			return appendCall(b, call{id: 4, name: "panic", args: args("oops")}), nil
		}),
		f(kindCall, func(b []byte) ([]byte, error) {
			return appendCall(b, call{id: 5, name: "block", args: args(), timeout: 1, hasTimeout: true}), nil
		}),
		f(kindCancel, func(b []byte) ([]byte, error) { return appendCancel(b, 5), nil }),
		f(kindCall, func(b []byte) ([]byte, error) { return appendCall(b, call{id: 6, name: "nope", args: args()}), nil }),
		f(kindResult, func(b []byte) ([]byte, error) {
			return appendResult(b, 1, value(map[string]any{"a": []any{1.25}})), nil
		}),
		f(kindError, func(b []byte) ([]byte, error) { return appendError(b, 3, codeRemote, "boom"), nil }),
	}
}

func addSeeds(f *testing.F) {
	frames := seedFrames(f)
	for _, fr := range frames {
		f.Add(fr)
	}
	all := bytes.Join(frames, nil)
	f.Add(all)
	f.Add(all[:len(all)-1])
	f.Add(bytes.Repeat(frames[0], 2)) // a duplicate id
	f.Add([]byte{})
	f.Add([]byte{0x50, 0, 0})
	f.Add([]byte{0x50, 0, 0, 1, 1}) // one byte over the limit
	f.Add([]byte{0x51, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x01, 0, 0, 0, 1, 0x80})
	f.Add([]byte{0x50, 0, 0, 0, 6, 0x83, 0x01, 0x61, 'x', 0x81, 0xf7}) // undefined
}

// FuzzReadFrame reads frames from arbitrary bytes, through readers that
// return a byte, half the bytes or all of them at a time, and parses each
// body by its kind. It must never panic; every error must be a documented
// one; whatever parses must decode, and write back to bytes that parse and
// decode the same.
func FuzzReadFrame(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var first []string
		for i, mk := range []func(io.Reader) io.Reader{
			func(r io.Reader) io.Reader { return r },
			iotest.OneByteReader,
			iotest.HalfReader,
		} {
			var got []string
			fr := stream.NewFrameReader(mk(bytes.NewReader(data)), fuzzFrameLimit)
			for {
				k, body, err := fr.ReadFrame()
				if err != nil {
					if err != io.EOF && !errors.Is(err, stream.ErrTruncated) && !errors.Is(err, stream.ErrFrameTooLarge) {
						t.Fatalf("ReadFrame = %v, not a documented error", err)
					}
					got = append(got, err.Error())
					break
				}
				got = append(got, roundTrip(t, kind(k), body))
			}
			if i == 0 {
				first = got
			} else if !slices.Equal(first, got) {
				t.Fatalf("reader %d read %q, the whole reader %q", i, got, first)
			}
		}
	})
}

// roundTrip parses body as kind k, checks that it writes back to the same
// thing, and describes it.
func roundTrip(t *testing.T, k kind, body []byte) string {
	switch k {
	case kindCall:
		c, err := parseCall(body)
		if err != nil {
			return checkMalformed(t, k, err)
		}
		args, err := decodeArgs(c.args)
		if err != nil {
			t.Fatalf("call %x: the arguments passed the checks but do not decode: %v", body, err)
		}
		again, err := parseCall(appendCall(nil, c))
		if err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("call %x: written back, it parses as %+v, %v; want %+v", body, again, err, c)
		}
		c.args, err = appendArgs(nil, args)
		if err != nil {
			t.Fatalf("call %x: decoded arguments %#v do not encode: %v", body, args, err)
		}
		args2, err := decodeArgs(c.args)
		if err != nil || !reflect.DeepEqual(args, args2) {
			t.Fatalf("call %x: arguments %#v encoded and decoded again are %#v, %v", body, args, args2, err)
		}
	case kindResult:
		id, v, err := parseResult(body)
		if err != nil {
			return checkMalformed(t, k, err)
		}
		res, err := decodeValue(v)
		if err != nil {
			t.Fatalf("result %x: the value passed the checks but does not decode: %v", body, err)
		}
		enc, err := appendValue(nil, res)
		if err != nil {
			t.Fatalf("result %x: decoded %#v does not encode: %v", body, res, err)
		}
		id2, v2, err := parseResult(appendResult(nil, id, enc))
		if err != nil || id2 != id {
			t.Fatalf("result %x: written back: id %d, %v", body, id2, err)
		}
		if res2, err := decodeValue(v2); err != nil || !reflect.DeepEqual(res, res2) {
			t.Fatalf("result %x: %#v written back decodes as %#v, %v", body, res, res2, err)
		}
	case kindError:
		id, c, msg, err := parseError(body)
		if err != nil {
			return checkMalformed(t, k, err)
		}
		id2, c2, msg2, err := parseError(appendError(nil, id, c, msg))
		if err != nil || id2 != id || c2 != c || msg2 != msg {
			t.Fatalf("error %x: written back: %d %d %q %v", body, id2, c2, msg2, err)
		}
	case kindCancel:
		id, err := parseCancel(body)
		if err != nil {
			return checkMalformed(t, k, err)
		}
		if id2, err := parseCancel(appendCancel(nil, id)); err != nil || id2 != id {
			t.Fatalf("cancel %x: written back: %d %v", body, id2, err)
		}
	}
	return describe(k, body)
}

func checkMalformed(t *testing.T, k kind, err error) string {
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("parsing a %s = %v, not wrapping ErrMalformed", k, err)
	}
	return err.Error()
}

// fuzzConn is a connection whose peer sent data and then closed it;
// what is written to it is dropped.
type fuzzConn struct{ io.Reader }

func (fuzzConn) Write(p []byte) (int, error) { return len(p), nil }
func (fuzzConn) Close() error                { return nil }

// FuzzServe serves a client that sends arbitrary bytes. Serve must never
// panic, and must return nil (the bytes ended cleanly) or an error
// wrapping one of the documented causes.
func FuzzServe(f *testing.F) {
	addSeeds(f)
	srv := NewServer(&ServerConfig{MaxFrameSize: fuzzFrameLimit})
	srv.Handle("echo", func(_ context.Context, args []any) (any, error) { return args, nil })
	srv.Handle("args", func(_ context.Context, args []any) (any, error) { return args, nil })
	srv.Handle("fail", func(context.Context, []any) (any, error) { return nil, errors.New("boom") })
	srv.Handle("panic", func(_ context.Context, args []any) (any, error) { panic(args) })
	srv.Handle("block", func(ctx context.Context, _ []any) (any, error) { <-ctx.Done(); return nil, ctx.Err() })
	f.Fuzz(func(t *testing.T, data []byte) {
		err := srv.Serve(context.Background(), fuzzConn{bytes.NewReader(data)})
		if err == nil {
			return
		}
		for _, want := range []error{ErrMalformed, ErrUnknownKind, ErrProtocol, stream.ErrFrameTooLarge, stream.ErrTruncated} {
			if errors.Is(err, want) {
				return
			}
		}
		t.Fatalf("Serve(%x) = %v, not a documented error", data, err)
	})
}
