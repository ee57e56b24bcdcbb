package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/internal/wire"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// badTimeout bounds how long a Conn may take to give up on bad input. It
// only fires on a hang.
const badTimeout = 30 * time.Second

// goodTS is a valid timestamp for hand-made updates.
const goodTS = vclock.Timestamp(1_700_000_000_000)

// frameOf encodes m as one frame with the package's own encoder.
func frameOf(t testing.TB, m scuttlebutt.Message) []byte {
	t.Helper()
	b, err := appendMessage(nil, m, DefaultMaxFrameSize)
	if err != nil {
		t.Fatalf("encode %v: %v", m, err)
	}
	return b
}

// rawFrame frames body as kind, whatever body holds.
func rawFrame(kind byte, body []byte) []byte {
	b := []byte{kind, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(body)))
	return append(b, body...)
}

// cborOf hand-encodes v with the library's defaults, for bodies the
// package's encoder would not produce.
func cborOf(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatalf("cbor.Marshal(%#v): %v", v, err)
	}
	return b
}

func helloFrom(t testing.TB, id string, clock vclock.Clock) []byte {
	return frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
		Version: scuttlebutt.ProtocolVersion, ID: id, Clock: clock,
	}})
}

func updatesFrame(t testing.TB, us ...scuttlebutt.Update) []byte {
	return frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: us})
}

func syncFrame(t testing.TB, clock vclock.Clock) []byte {
	return frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: clock})
}

// payload is a Model update's data: [key, value].
func payload(t testing.TB, key string, value any) []byte {
	return cborOf(t, []any{key, value})
}

// update is a valid update of key from source "peer" at goodTS + i.
func update(t testing.TB, i int, key string, value any) scuttlebutt.Update {
	return scuttlebutt.Update{Source: "peer", Timestamp: goodTS + vclock.Timestamp(i), Data: payload(t, key, value)}
}

// deepPayload is [key, value] with the value nested depth arrays deep,
// built byte by byte.
func deepPayload(depth int) []byte {
	b := []byte{0x82, 0x61, 'k'}
	b = append(b, bytes.Repeat([]byte{0x81}, depth)...)
	return append(b, 0x00)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// victim is the replica under attack: a model with some state, served by a
// Conn over one end of a net.Pipe whose other end the test holds.
type victim struct {
	m     *model.Model
	snap  map[string]any
	clock vclock.Clock
	peer  net.Conn // the test's end
	conn  *Conn
	errc  chan error
	// sentSync is closed when the Conn's sync has been read: it has sent
	// its history and is idle until the peer says more.
	sentSync chan struct{}
}

// serveVictim starts a Conn and reads its hello from the peer's end, so
// that the Conn has nothing more to write until the peer says hello; the
// rest of what it writes is drained.
func serveVictim(t *testing.T, opts *Options) *victim {
	t.Helper()
	// A fixed incarnation: the victim's source is victim~1.
	m, err := model.New("victim", &scuttlebutt.Config{Incarnation: "1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []struct {
		k string
		v any
	}{{"k1", "v1"}, {"k2", int64(2)}, {"k3", []any{"x"}}} {
		if err := m.Set(kv.k, kv.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Delete("k1"); err != nil {
		t.Fatal(err)
	}
	ours, theirs := net.Pipe()
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	v := &victim{m: m, snap: m.Snapshot(), clock: m.Clock(), peer: theirs, errc: make(chan error, 1), sentSync: make(chan struct{})}
	v.conn = NewConn(m, ours, opts)
	go func() { v.errc <- v.conn.Run(context.Background()) }()

	fr := NewFrameReader(theirs, 0)
	kind, _, err := fr.ReadFrame()
	if err != nil || kind != scuttlebutt.MsgHello {
		t.Fatalf("first frame from the Conn: kind %v, error %v; want a hello", kind, err)
	}
	go func() {
		for {
			kind, _, err := fr.ReadFrame()
			if err != nil {
				io.Copy(io.Discard, theirs)
				return
			}
			if kind == scuttlebutt.MsgSync {
				close(v.sentSync)
			}
		}
	}()
	return v
}

// hangUp closes the peer's end once the Conn is idle: a Conn still
// writing its history when the peer hangs up may fail that write first and
// report it rather than what it read.
func (v *victim) hangUp(t *testing.T, helloSent bool) {
	t.Helper()
	if helloSent {
		select {
		case <-v.sentSync:
		case <-time.After(badTimeout):
			t.Fatalf("the Conn did not send its sync within %v", badTimeout)
		}
	}
	v.peer.Close()
}

// result waits for Run's error, failing if Run does not return.
func (v *victim) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-v.errc:
		return err
	case <-time.After(badTimeout):
		buf := make([]byte, 1<<20)
		t.Fatalf("Run did not return within %v of bad input; goroutines:\n%s", badTimeout, buf[:runtime.Stack(buf, true)])
		return nil
	}
}

// unchanged checks that the replica's state is what it was before the
// peer spoke.
func (v *victim) unchanged(t *testing.T) {
	t.Helper()
	if d := cmp.Diff(v.snap, v.m.Snapshot()); d != "" {
		t.Errorf("snapshot changed by bad input (-before +after):\n%s", d)
	}
	if d := cmp.Diff(v.clock, v.m.Clock()); d != "" {
		t.Errorf("clock changed by bad input (-before +after):\n%s", d)
	}
}

// isAny reports whether err matches one of targets.
func isAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// TestConnBadInput feeds a Conn hand-made bad streams: each must end Run
// promptly with the right error, change nothing and leak nothing.
func TestConnBadInput(t *testing.T) {
	hello := helloFrom(t, "peer", vclock.Clock{})
	good := update(t, 0, "good", "value")
	withTS := func(ts float64) scuttlebutt.Update {
		u := update(t, 0, "k", 1)
		u.Timestamp = vclock.Timestamp(ts)
		return u
	}
	withData := func(data []byte) scuttlebutt.Update {
		return scuttlebutt.Update{Source: "peer", Timestamp: goodTS, Data: data}
	}
	tests := []struct {
		name  string
		input []byte
		close bool // hang up after the input
		want  []error
	}{
		{
			name:  "truncated frame",
			input: cat(hello, []byte{byte(scuttlebutt.MsgUpdates), 0, 0, 0, 100}, make([]byte, 10)),
			close: true,
			want:  []error{ErrTruncated},
		},
		{
			name:  "truncated header",
			input: []byte{byte(scuttlebutt.MsgHello), 0, 0},
			close: true,
			want:  []error{ErrTruncated},
		},
		{
			name:  "truncated hello",
			input: hello[:len(hello)-1],
			close: true,
			want:  []error{ErrTruncated},
		},
		{
			name:  "garbage body",
			input: rawFrame(byte(scuttlebutt.MsgHello), bytes.Repeat([]byte{0xff}, 16)),
			want:  []error{ErrMalformed},
		},
		{
			name:  "garbage text",
			input: []byte("\x02\x00\x00\x00\x10this is no CBOR!"),
			want:  []error{ErrMalformed, ErrUnknownKind},
		},
		{name: "unknown kind 0", input: rawFrame(0, []byte{0xa0}), want: []error{ErrUnknownKind}},
		{name: "unknown kind 10", input: rawFrame(10, []byte{0xa0}), want: []error{ErrUnknownKind}},
		{name: "updates-more not an array", input: rawFrame(6, []byte{0xa0}), want: []error{ErrMalformed}},
		{name: "unknown kind 255", input: rawFrame(255, nil), want: []error{ErrUnknownKind}},
		{
			name:  "unknown kind after hello",
			input: cat(hello, rawFrame(42, []byte{0xa0})),
			want:  []error{ErrUnknownKind},
		},
		{
			name:  "hello without a clock",
			input: rawFrame(byte(scuttlebutt.MsgHello), cborOf(t, map[int]any{1: 1, 2: "peer"})),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{
			name:  "hello with version 2",
			input: rawFrame(byte(scuttlebutt.MsgHello), cborOf(t, map[int]any{1: 2, 2: "peer", 3: map[string]any{}})),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{
			name:  "hello without a version",
			input: rawFrame(byte(scuttlebutt.MsgHello), cborOf(t, map[int]any{2: "peer", 3: map[string]any{}})),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{
			name:  "hello with a huge version",
			input: rawFrame(byte(scuttlebutt.MsgHello), cborOf(t, map[int]any{1: uint64(math.MaxUint64), 2: "peer", 3: map[string]any{}})),
			want:  []error{ErrMalformed},
		},
		{
			name:  "hello as an array",
			input: rawFrame(byte(scuttlebutt.MsgHello), cborOf(t, []any{1, "peer", map[string]any{}})),
			want:  []error{ErrMalformed},
		},
		{
			name:  "hello with an empty id",
			input: helloFrom(t, "", vclock.Clock{}),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{
			name:  "hello with this replica's source id",
			input: helloFrom(t, "victim~1", vclock.Clock{}),
			want:  []error{scuttlebutt.ErrSameID},
		},
		{
			name:  "hello with a NaN clock entry",
			input: helloFrom(t, "peer", vclock.Clock{"x": vclock.Timestamp(math.NaN())}),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{
			name:  "hello with a negative clock entry",
			input: helloFrom(t, "peer", vclock.Clock{"x": -1}),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{
			name:  "hello with an int-keyed meta map",
			input: rawFrame(byte(scuttlebutt.MsgHello), cborOf(t, map[int]any{1: 1, 2: "peer", 3: map[string]any{}, 4: map[int]any{1: 2}})),
			want:  []error{ErrMalformed},
		},
		{
			name:  "hello with a duplicate key",
			input: rawFrame(byte(scuttlebutt.MsgHello), []byte{0xa3, 0x01, 0x01, 0x02, 0x61, 'p', 0x02, 0x61, 'q'}),
			want:  []error{ErrMalformed},
		},
		{
			name:  "second hello",
			input: cat(hello, hello),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{
			name:  "updates before hello",
			input: updatesFrame(t, good),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{
			name:  "sync before hello",
			input: frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{
			name:  "clock before sync",
			input: cat(hello, frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgClock, Clock: vclock.Clock{"peer": goodTS}})),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{
			name: "second sync",
			input: cat(hello,
				frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}),
				frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}})),
			want: []error{scuttlebutt.ErrProtocol},
		},
		{
			name:  "sync without a clock",
			input: cat(hello, rawFrame(byte(scuttlebutt.MsgSync), []byte{0xf6})),
			want:  []error{ErrMalformed},
		},
		{
			name:  "sync with an infinite clock entry",
			input: cat(hello, frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"peer": vclock.Timestamp(math.Inf(1))}})),
			want:  []error{scuttlebutt.ErrProtocol},
		},
		{name: "update with a NaN timestamp", input: cat(hello, updatesFrame(t, withTS(math.NaN()))), want: []error{scuttlebutt.ErrInvalidUpdate}},
		{name: "update with a negative timestamp", input: cat(hello, updatesFrame(t, withTS(-1))), want: []error{scuttlebutt.ErrInvalidUpdate}},
		{name: "update with a zero timestamp", input: cat(hello, updatesFrame(t, withTS(0))), want: []error{scuttlebutt.ErrInvalidUpdate}},
		{name: "update with a +Inf timestamp", input: cat(hello, updatesFrame(t, withTS(math.Inf(1)))), want: []error{scuttlebutt.ErrInvalidUpdate}},
		{name: "update with a -Inf timestamp", input: cat(hello, updatesFrame(t, withTS(math.Inf(-1)))), want: []error{scuttlebutt.ErrInvalidUpdate}},
		{
			name:  "update with an empty source",
			input: cat(hello, updatesFrame(t, scuttlebutt.Update{Source: "", Timestamp: goodTS, Data: payload(t, "k", 1)})),
			want:  []error{scuttlebutt.ErrInvalidUpdate},
		},
		{
			name:  "update with a control character in its source",
			input: cat(hello, updatesFrame(t, scuttlebutt.Update{Source: "pe\x00er", Timestamp: goodTS, Data: payload(t, "k", 1)})),
			want:  []error{scuttlebutt.ErrInvalidUpdate},
		},
		{
			name:  "value nested one deeper than a model allows",
			input: cat(hello, updatesFrame(t, withData(deepPayload(scuttlebutt.MaxNesting)))),
			want:  []error{scuttlebutt.ErrInvalidUpdate},
		},
		{
			name:  "value nested far deeper than the decoder allows",
			input: cat(hello, updatesFrame(t, withData(deepPayload(10_000)))),
			want:  []error{ErrMalformed},
		},
		{
			name:  "value with an int-keyed map",
			input: cat(hello, updatesFrame(t, withData([]byte{0x82, 0x61, 'k', 0xa1, 0x01, 0x61, 'x'}))),
			want:  []error{scuttlebutt.ErrInvalidUpdate},
		},
		{
			name:  "value with a NaN",
			input: cat(hello, updatesFrame(t, withData(payload(t, "k", math.NaN())))),
			want:  []error{scuttlebutt.ErrInvalidUpdate},
		},
		{
			name:  "value with a tag",
			input: cat(hello, updatesFrame(t, withData([]byte{0x82, 0x61, 'k', 0xc1, 0x01}))),
			want:  []error{ErrMalformed},
		},
		{
			name:  "value of indefinite length",
			input: cat(hello, updatesFrame(t, withData([]byte{0x82, 0x61, 'k', 0x9f, 0x01, 0xff}))),
			want:  []error{ErrMalformed},
		},
		{
			name:  "payload that is not [key, value]",
			input: cat(hello, updatesFrame(t, withData(cborOf(t, "just a string")))),
			want:  []error{scuttlebutt.ErrInvalidUpdate},
		},
		{
			name:  "payload with an int key",
			input: cat(hello, updatesFrame(t, withData(cborOf(t, []any{7, "v"})))),
			want:  []error{scuttlebutt.ErrInvalidUpdate},
		},
		{
			name:  "update over the size limit",
			input: cat(hello, updatesFrame(t, withData(payload(t, "k", strings.Repeat("x", scuttlebutt.DefaultMaxUpdateSize))))),
			want:  []error{scuttlebutt.ErrInvalidUpdate},
		},
		{
			name: "batch with one bad update among good ones",
			input: cat(hello, updatesFrame(t,
				update(t, 0, "a", 1), update(t, 1, "b", 2), withTS(math.NaN()), update(t, 3, "c", 3))),
			want: []error{scuttlebutt.ErrInvalidUpdate},
		},
		{
			name: "batch with one bad payload among good ones",
			input: cat(hello, updatesFrame(t,
				update(t, 0, "a", 1), update(t, 1, "b", 2), update(t, 2, "c", 3),
				scuttlebutt.Update{Source: "peer", Timestamp: goodTS + 3, Data: deepPayload(scuttlebutt.MaxNesting)})),
			want: []error{scuttlebutt.ErrInvalidUpdate},
		},
		{
			name:  "bytes after the last update",
			input: cat(hello, rawFrame(byte(scuttlebutt.MsgUpdates), append(updatesFrame(t, good)[headerSize:], 0x00))),
			want:  []error{ErrMalformed},
		},
		{
			name:  "update count past the frame",
			input: cat(hello, rawFrame(byte(scuttlebutt.MsgUpdates), []byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 0})),
			want:  []error{ErrMalformed},
		},
		{
			name:  "update with two fields",
			input: cat(hello, rawFrame(byte(scuttlebutt.MsgUpdates), cborOf(t, []any{[]any{"peer", float64(goodTS)}}))),
			want:  []error{ErrMalformed},
		},
		{
			name:  "update whose data runs past the frame",
			input: cat(hello, rawFrame(byte(scuttlebutt.MsgUpdates), updatesFrame(t, good)[headerSize:len(updatesFrame(t, good))-1])),
			want:  []error{ErrMalformed},
		},
		{
			name:  "update with a text timestamp",
			input: cat(hello, rawFrame(byte(scuttlebutt.MsgUpdates), cborOf(t, []any{[]any{"peer", "1700000000000", []any{"k", 1}}}))),
			want:  []error{ErrMalformed},
		},
	}
	// Random garbage: any documented error will do, but an error it must be.
	garbage := []error{ErrMalformed, ErrUnknownKind, ErrFrameTooLarge, ErrTruncated,
		scuttlebutt.ErrProtocol, scuttlebutt.ErrInvalidUpdate, scuttlebutt.ErrSameID}
	for seed := range uint64(8) {
		r := rand.New(rand.NewPCG(seed, 0))
		b := make([]byte, 1+r.IntN(300))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		tests = append(tests, struct {
			name  string
			input []byte
			close bool
			want  []error
		}{name: fmt.Sprintf("random garbage seed %d", seed), input: b, close: true, want: garbage})
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leak.Check(t)
			v := serveVictim(t, nil)
			// The write fails if the Conn gives up before reading it all.
			v.peer.Write(tc.input)
			if tc.close {
				v.hangUp(t, bytes.HasPrefix(tc.input, hello))
			}
			err := v.result(t)
			if !isAny(err, tc.want) {
				t.Errorf("input %x:\nRun = %v, want an error wrapping one of %v", tc.input, err, tc.want)
			}
			v.unchanged(t)
		})
	}
}

// TestConnFrameTooLarge: the Conn gives up on the header alone, without
// waiting for a body it would refuse.
func TestConnFrameTooLarge(t *testing.T) {
	for _, size := range []uint32{DefaultMaxFrameSize + 1, math.MaxUint32} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			leak.Check(t)
			v := serveVictim(t, nil)
			hdr := []byte{byte(scuttlebutt.MsgUpdates), 0, 0, 0, 0}
			binary.BigEndian.PutUint32(hdr[1:], size)
			if _, err := v.peer.Write(hdr); err != nil {
				t.Fatalf("write header: %v", err)
			}
			err := v.result(t) // returns before any body is written
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Errorf("Run = %v after a header of %d bytes, want ErrFrameTooLarge", err, size)
			}
			// The Conn hung up: the body has nowhere to go.
			if _, err := v.peer.Write(make([]byte, 1024)); err == nil {
				t.Error("writing the body succeeded: the Conn is still reading")
			}
			v.unchanged(t)
		})
	}
	t.Run("limit from Options", func(t *testing.T) {
		leak.Check(t)
		v := serveVictim(t, &Options{MaxFrameSize: 64})
		big := updatesFrame(t, update(t, 0, "k", strings.Repeat("x", 100)))
		v.peer.Write(cat(helloFrom(t, "peer", vclock.Clock{}), big))
		if err := v.result(t); !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("Run = %v for a %d-byte frame with MaxFrameSize 64, want ErrFrameTooLarge", err, len(big)-headerSize)
		}
		v.unchanged(t)
	})
}

// TestConnBadFrameAfterGoodOnes: live frames before the bad one stay
// applied, the bad one is not: each frame is applied whole or not at all.
// A history is applied whole at the peer's sync: a bad frame inside it
// ends the session with none of it applied.
func TestConnBadFrameAfterGoodOnes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history bool
	}{{"live", false}, {"history", true}} {
		t.Run(tc.name, func(t *testing.T) {
			leak.Check(t)
			v := serveVictim(t, nil)
			input := helloFrom(t, "peer", vclock.Clock{})
			if !tc.history {
				input = cat(input, syncFrame(t, vclock.Clock{}))
			}
			input = cat(input,
				updatesFrame(t, update(t, 0, "first", 1), update(t, 1, "second", 2)),
				updatesFrame(t, update(t, 2, "third", 3), scuttlebutt.Update{Source: "", Timestamp: goodTS + 3, Data: payload(t, "fourth", 4)}),
			)
			v.peer.Write(input)
			if err := v.result(t); !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
				t.Errorf("Run = %v, want ErrInvalidUpdate", err)
			}
			if tc.history {
				v.unchanged(t)
				return
			}
			want := map[string]any{"first": int64(1), "second": int64(2)}
			for k, x := range v.snap {
				want[k] = x
			}
			if d := cmp.Diff(want, v.m.Snapshot()); d != "" {
				t.Errorf("snapshot (-want +got):\n%s", d)
			}
			if got := v.m.Clock().Get("peer"); got != goodTS+1 {
				t.Errorf("clock has peer at %v, want %v: the bad frame moved it", got, goodTS+1)
			}
		})
	}
}

// TestConnCancelWhileWriteBlocked: a peer that stops reading must not keep
// Run from returning when its context ends.
func TestConnCancelWhileWriteBlocked(t *testing.T) {
	leak.Check(t)
	m, err := model.New("victim", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := m.Set(fmt.Sprintf("key%03d", i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	ours, theirs := net.Pipe()
	defer theirs.Close()
	c := NewConn(m, ours, nil)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx) }()
	// Read the Conn's hello, say hello, and read nothing more: the
	// Conn's write of its history blocks for good.
	if _, _, err := NewFrameReader(theirs, 0).ReadFrame(); err != nil {
		t.Fatalf("read hello: %v", err)
	}
	if _, err := theirs.Write(helloFrom(t, "peer", vclock.Clock{})); err != nil {
		t.Fatalf("write hello: %v", err)
	}
	deadline := time.Now().Add(badTimeout)
	for c.Stats().FramesIn == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the Conn did not take the hello")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
	case <-time.After(badTimeout):
		theirs.Close() // let it go, so the leak check does not pile on
		t.Fatalf("Run did not return within %v of cancel while its write was blocked", badTimeout)
	}
}

// compactFrameOf frames us in the compact encoding, as the first frame of
// a session.
func compactFrameOf(t testing.TB, us ...scuttlebutt.Update) []byte {
	t.Helper()
	var e compactEncoder
	b, err := appendFrame(nil, kindCompact, DefaultMaxFrameSize, func(b []byte) ([]byte, error) { return e.appendUpdates(b, us), nil })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compressedFrame wraps a frame (header and body) in a compressed frame.
func compressedFrame(frame []byte) []byte {
	return rawFrame(byte(kindCompressed), cat([]byte{frame[0]}, zstdFrame(frame[headerSize:])))
}

// TestConnBadCompactInput feeds a Conn bad input in version 2's compact
// encoding and in compressed frames: each ends Run with the right error,
// applies nothing and leaks nothing. A Conn that did not offer a feature
// refuses its frames as of an unknown kind.
func TestConnBadCompactInput(t *testing.T) {
	hello := helloFrom(t, "peer", vclock.Clock{})
	data := payload(t, "k", 1)
	full := wire.AppendTimestamp(nil, goodTS)
	count := func(n uint64) []byte { return cborx.AppendHead(nil, cborx.MajorUint, n) }
	newPeer := cat(compactOp(opFull, 0, true, false), []byte{0x64, 'p', 'e', 'e', 'r'}, full, data)
	compact := func(body ...[]byte) []byte { return rawFrame(byte(kindCompact), cat(body...)) }
	good := compactFrameOf(t, update(t, 0, "a", 1), update(t, 1, "b", 2))
	// More new sources in one frame than a replica's clock may hold.
	var many []byte
	for i := range scuttlebutt.DefaultMaxSources + 1 {
		src := fmt.Sprintf("s%d", i)
		many = append(many, compactOp(opFull, 0, true, false)...)
		many = cborx.AppendHead(many, cborx.MajorText, uint64(len(src)))
		many = append(many, src...)
		many = append(many, full...)
		many = append(many, 0xf6)
	}
	many = cat(count(scuttlebutt.DefaultMaxSources+1), many)
	bomb := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0, 0, 0, 0x40} // a 1 GiB frame, stated
	v1 := &Options{Version: Version1}
	zstdOn := &Options{Compress: true}
	tests := []struct {
		name  string
		opts  *Options
		input []byte
		close bool
		want  []error
	}{
		{name: "unknown source index", input: cat(hello, compact(count(2), newPeer, compactOp(opTick, 1, true, false), []byte{0x05}, data)), want: []error{ErrMalformed}},
		{name: "step past 2^53", input: cat(hello, compact(count(2), newPeer, compactOp(opMilli, maxStep+1, false, false), data)), want: []error{ErrMalformed}},
		{name: "step without a timestamp", input: cat(hello, compact(count(1), compactOp(opTick, 1, true, false), []byte{0x61, 'p'}, data)), want: []error{ErrMalformed}},
		{name: "no source", input: cat(hello, compact(count(1), compactOp(opFull, 0, false, false), full, data)), want: []error{ErrMalformed}},
		{name: "source added twice", input: cat(hello, compact(count(2), newPeer, newPeer)), want: []error{ErrMalformed}},
		{name: "table past MaxSources", input: cat(hello, compact(many)), want: []error{scuttlebutt.ErrTooManySources}},
		{name: "timestamp form 3", input: cat(hello, compact(count(1), compactOp(opForm, 0, true, false), []byte{0x61, 'p'}, full, data)), want: []error{ErrMalformed}},
		{name: "source with a control character", input: cat(hello, compact(count(1), compactOp(opFull, 0, true, false), []byte{0x62, 'p', 0x00}, full, data)), want: []error{scuttlebutt.ErrInvalidUpdate}},
		{name: "NaN timestamp", input: cat(hello, compact(count(1), compactOp(opFull, 0, true, false), []byte{0x61, 'p'}, wire.AppendTimestamp(nil, vclock.Timestamp(math.NaN())), data)), want: []error{scuttlebutt.ErrInvalidUpdate}},
		{name: "value a model refuses", input: cat(hello, compactFrameOf(t, withDataCompact(t, cborOf(t, "just a string")))), want: []error{scuttlebutt.ErrInvalidUpdate}},
		{name: "count past the frame", input: cat(hello, compact(count(9), newPeer)), want: []error{ErrMalformed}},
		{name: "body cut short", input: cat(hello, rawFrame(byte(kindCompact), good[headerSize:len(good)-1])), want: []error{ErrMalformed}},
		{name: "stream cut inside a frame", input: cat(hello, good[:len(good)-1]), close: true, want: []error{ErrTruncated}},
		{name: "bytes after the last update", input: cat(hello, rawFrame(byte(kindCompact), cat(good[headerSize:], []byte{0}))), want: []error{ErrMalformed}},
		{name: "more-kind with a bad body", input: cat(hello, rawFrame(byte(kindCompactMore), []byte{0xa0})), want: []error{ErrMalformed}},
		{name: "compact frame to a version-1 side", opts: v1, input: cat(hello, good), want: []error{ErrUnknownKind}},
		{name: "compressed frame, not offered", input: cat(hello, compressedFrame(good)), want: []error{ErrUnknownKind}},
		{name: "compressed bomb", opts: zstdOn, input: cat(hello, rawFrame(byte(kindCompressed), cat([]byte{byte(kindCompact)}, bomb))), want: []error{ErrFrameTooLarge}},
		{name: "compressed garbage", opts: zstdOn, input: cat(hello, rawFrame(byte(kindCompressed), []byte("\x07not zstd"))), want: []error{ErrMalformed}},
		{name: "compressed inside compressed", opts: zstdOn, input: cat(hello, compressedFrame(compressedFrame(good))), want: []error{ErrMalformed}},
		{name: "compressed bad compact body", opts: zstdOn, input: cat(hello, compressedFrame(compact(count(1), compactOp(opForm, 0, true, false)))), want: []error{ErrMalformed}},
		{name: "compressed compact to a version-1 side", opts: &Options{Version: Version1, Compress: true}, input: cat(hello, compressedFrame(good)), want: []error{ErrUnknownKind}},
		{name: "compressed unknown kind", opts: zstdOn, input: cat(hello, compressedFrame(rawFrame(42, []byte{0xa0}))), want: []error{ErrUnknownKind}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leak.Check(t)
			v := serveVictim(t, tc.opts)
			v.peer.Write(tc.input)
			if tc.close {
				v.hangUp(t, true)
			}
			err := v.result(t)
			if !isAny(err, tc.want) {
				t.Errorf("input %x:\nRun = %v, want an error wrapping one of %v", tc.input[:min(len(tc.input), 200)], err, tc.want)
			}
			t.Logf("Run = %v", err)
			v.unchanged(t)
		})
	}
}

// withDataCompact is a valid update of source "peer" with data as given.
func withDataCompact(t testing.TB, data []byte) scuttlebutt.Update {
	return scuttlebutt.Update{Source: "peer", Timestamp: goodTS, Data: data}
}
