package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// bigClock returns a clock of n sources with ids of idLen bytes (at least
// 7), timestamps goodTS + i.
func bigClock(n, idLen int) vclock.Clock {
	c := make(vclock.Clock, n)
	for i := range n {
		c[sourceName(i, idLen)] = goodTS + vclock.Timestamp(i)
	}
	return c
}

// sourceName is source i of bigClock, padded to idLen bytes.
func sourceName(i, idLen int) string {
	s := fmt.Sprintf("s%06d", i)
	return s + strings.Repeat("x", max(0, idLen-len(s)))
}

// frameInfo is one frame of an encoded stream.
type frameInfo struct {
	kind scuttlebutt.MessageKind
	body []byte
}

// framesOf splits an encoded stream into its frames.
func framesOf(t *testing.T, b []byte) []frameInfo {
	t.Helper()
	fr := NewFrameReader(bytes.NewReader(b), math.MaxInt32)
	var out []frameInfo
	for {
		kind, body, err := fr.ReadFrame()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("frame %d of the encoding: %v", len(out), err)
		}
		out = append(out, frameInfo{kind, slices.Clone(body)})
	}
}

// decodeStream reads every message of b as the CBOR codec does, with a
// bound of maxSources on split clocks, until the end or an error.
func decodeStream(b []byte, maxFrame, maxSources int) ([]scuttlebutt.Message, error) {
	d := &cborDecoder{fr: NewFrameReader(bytes.NewReader(b), maxFrame), maxSources: maxSources}
	var ms []scuttlebutt.Message
	for {
		m, err := d.readMessage()
		if err == io.EOF {
			return ms, nil
		}
		if err != nil {
			return ms, err
		}
		ms = append(ms, m)
	}
}

// clockMessages are a hello (with meta), a sync and a clock message, each
// carrying c.
func clockMessages(c vclock.Clock) []scuttlebutt.Message {
	return []scuttlebutt.Message{
		{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
			Version: scuttlebutt.ProtocolVersion, ID: "peer", Clock: c, Meta: map[string]any{"app": "split"},
		}},
		{Kind: scuttlebutt.MsgSync, Clock: c},
		{Kind: scuttlebutt.MsgClock, Clock: c},
	}
}

// TestClockSplitRoundTrip encodes hello, sync and clock messages at frame
// limits around the size of their one-frame encoding. A message that fits
// is the one frame it always was; one that does not becomes clock parts
// and a final frame, none over the limit, sources in sorted order, and
// decodes to the message it was.
func TestClockSplitRoundTrip(t *testing.T) {
	clock := bigClock(500, 20)
	for _, m := range clockMessages(clock) {
		whole, err := appendMessage(nil, m, math.MaxInt32)
		if err != nil {
			t.Fatalf("encode %s without a limit: %v", m.Kind, err)
		}
		size := len(whole) - headerSize
		for _, limit := range []int{size + 1, size, size - 1, size / 2, 4096, 1024, 256, 64} {
			t.Run(fmt.Sprintf("%s of %d bytes, limit %d", m.Kind, size, limit), func(t *testing.T) {
				got, err := appendMessage([]byte("prefix"), m, limit)
				if err != nil {
					t.Fatalf("appendMessage: %v", err)
				}
				if !bytes.HasPrefix(got, []byte("prefix")) {
					t.Fatalf("appendMessage did not append to dst: %q...", got[:min(len(got), 10)])
				}
				got = got[len("prefix"):]
				frames := framesOf(t, got)
				if limit >= size {
					if !bytes.Equal(got, whole) {
						t.Fatalf("a message that fits the limit was not encoded as one frame, as always:\ngot  %x\nwant %x", got, whole)
					}
				} else if len(frames) < 2 {
					t.Fatalf("a %d-byte message in %d frame with limit %d", size, len(frames), limit)
				}
				var partSources []string
				for i, f := range frames {
					if len(f.body) > limit {
						t.Errorf("frame %d of %d (%s) is %d bytes, over the limit %d", i, len(frames), f.kind, len(f.body), limit)
					}
					if i < len(frames)-1 {
						if f.kind != kindClockPart {
							t.Fatalf("frame %d of %d is a %s, want a clock part", i, len(frames), f.kind)
						}
						var part vclock.Clock
						if err := decMode.Unmarshal(f.body, &part); err != nil {
							t.Fatalf("clock part %d: %v", i, err)
						}
						partSources = append(partSources, slices.Sorted(maps.Keys(part))...)
					} else if f.kind != m.Kind {
						t.Fatalf("last frame is a %s, want %s", f.kind, m.Kind)
					}
				}
				if !slices.IsSorted(partSources) {
					t.Errorf("clock parts are not in source order")
				}
				again, err := appendMessage(nil, m, limit)
				if err != nil || !bytes.Equal(again, got) {
					t.Errorf("a second encoding differs: the split is not deterministic (%v)", err)
				}
				ms, err := decodeStream(got, limit, len(clock))
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if d := cmp.Diff([]scuttlebutt.Message{m}, ms); d != "" {
					t.Errorf("round trip (-sent +received):\n%s", d)
				}
			})
		}
	}
}

// TestClockSplitRefused: a message that cannot be split to fit is refused
// with ErrFrameTooLarge, and dst is left as it was.
func TestClockSplitRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		m     scuttlebutt.Message
		limit int
	}{
		{
			name:  "clock entry larger than the limit",
			m:     scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: bigClock(10, 128)},
			limit: 100,
		},
		{
			name: "hello too large without its clock",
			m: scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
				Version: 1, ID: "peer", Clock: bigClock(10, 10), Meta: strings.Repeat("m", 300),
			}},
			limit: 256,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := appendMessage([]byte("prefix"), tc.m, tc.limit)
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Errorf("appendMessage with limit %d = %v, want ErrFrameTooLarge", tc.limit, err)
			}
			if string(got) != "prefix" {
				t.Errorf("appendMessage left %q, want the buffer as it was", got)
			}
		})
	}
}

// TestClockPartsDecode feeds the decoder sequences of clock parts: the
// good ones join, the bad ones are refused with a documented error, and
// none panics.
func TestClockPartsDecode(t *testing.T) {
	const limit = 8 // sources a split clock may name
	part := func(c vclock.Clock) []byte {
		return rawFrame(byte(kindClockPart), appendClockEntries(nil, c, slices.Sorted(maps.Keys(c))))
	}
	sync := func(c vclock.Clock) []byte {
		return frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: c})
	}
	a, b, c := vclock.Clock{"a": 1}, vclock.Clock{"b": 2, "bb": 3}, vclock.Clock{"c": 4}
	for _, tc := range []struct {
		name  string
		input []byte
		want  []scuttlebutt.Message // if no error
		err   []error               // any of
	}{
		{
			name:  "parts before a sync",
			input: cat(part(a), part(b), sync(c)),
			want:  []scuttlebutt.Message{{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"a": 1, "b": 2, "bb": 3, "c": 4}}},
		},
		{
			name:  "a part before an empty clock message",
			input: cat(part(a), frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgClock, Clock: vclock.Clock{}})),
			want:  []scuttlebutt.Message{{Kind: scuttlebutt.MsgClock, Clock: a}},
		},
		{
			name:  "a part before a hello without a clock",
			input: cat(part(a), rawFrame(byte(scuttlebutt.MsgHello), cborOf(t, map[int]any{1: 1, 2: "peer"}))),
			want:  []scuttlebutt.Message{{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{Version: 1, ID: "peer", Clock: a}}},
		},
		{
			name:  "parts apply to the next message only",
			input: cat(part(a), sync(b), sync(c)),
			want:  []scuttlebutt.Message{{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"a": 1, "b": 2, "bb": 3}}, {Kind: scuttlebutt.MsgSync, Clock: c}},
		},
		{
			name:  "exactly as many sources as allowed",
			input: cat(part(bigClock(3, 7)), part(vclock.Clock{"x": 1, "y": 2, "z": 3, "w": 4}), sync(a)),
			want: []scuttlebutt.Message{{Kind: scuttlebutt.MsgSync, Clock: func() vclock.Clock {
				c := bigClock(3, 7)
				maps.Copy(c, vclock.Clock{"x": 1, "y": 2, "z": 3, "w": 4, "a": 1})
				return c
			}()}},
		},
		{name: "a part naming more sources than allowed", input: cat(part(bigClock(limit+1, 7)), sync(a)), err: []error{ErrMalformed, scuttlebutt.ErrTooManySources}},
		{name: "parts naming more sources than allowed", input: cat(part(bigClock(5, 7)), part(bigClock(9, 8)), sync(a)), err: []error{ErrMalformed, scuttlebutt.ErrTooManySources}},
		{name: "parts and message naming more sources than allowed", input: cat(part(bigClock(limit, 7)), sync(a)), err: []error{ErrMalformed, scuttlebutt.ErrTooManySources}},
		{name: "a part claiming 2^32-1 entries", input: cat(rawFrame(byte(kindClockPart), []byte{0xba, 0xff, 0xff, 0xff, 0xff}), sync(a)), err: []error{ErrMalformed, scuttlebutt.ErrTooManySources}},
		{name: "parts before updates", input: cat(part(a), updatesFrame(t, update(t, 0, "k", 1))), err: []error{ErrMalformed}},
		{name: "parts before an unknown kind", input: cat(part(a), rawFrame(42, []byte{0xa0})), err: []error{ErrUnknownKind}},
		{name: "parts at the end of the stream", input: cat(part(a), part(b)), err: []error{ErrTruncated}},
		{name: "a part cut short", input: part(b)[:8], err: []error{ErrTruncated}},
		{name: "a source in two parts", input: cat(part(a), part(vclock.Clock{"a": 2}), sync(c)), err: []error{ErrMalformed}},
		{name: "a source in a part and in the message", input: cat(part(a), part(b), sync(vclock.Clock{"bb": 5})), err: []error{ErrMalformed}},
		{name: "a part without entries", input: cat(rawFrame(byte(kindClockPart), []byte{0xa0}), sync(a)), err: []error{ErrMalformed}},
		{name: "a part that is not a map", input: cat(rawFrame(byte(kindClockPart), cborOf(t, []any{"a", 1})), sync(a)), err: []error{ErrMalformed}},
		{name: "a part with a duplicate key", input: cat(rawFrame(byte(kindClockPart), []byte{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02}), sync(a)), err: []error{ErrMalformed}},
		{name: "a part with an int key", input: cat(rawFrame(byte(kindClockPart), []byte{0xa1, 0x01, 0x01}), sync(a)), err: []error{ErrMalformed}},
		{name: "a part with bytes after the map", input: cat(rawFrame(byte(kindClockPart), append(appendClockEntries(nil, a, []string{"a"}), 0x00)), sync(c)), err: []error{ErrMalformed}},
		{name: "a part with a text timestamp", input: cat(rawFrame(byte(kindClockPart), cborOf(t, map[string]any{"a": "1"})), sync(c)), err: []error{ErrMalformed}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeStream(tc.input, DefaultMaxFrameSize, limit)
			if tc.err != nil {
				for _, want := range tc.err {
					if !errors.Is(err, want) {
						t.Errorf("input %x:\ndecode = %v, want an error wrapping %v", tc.input, err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("input %x:\ndecode: %v", tc.input, err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("input %x:\ndecoded (-want +got):\n%s", tc.input, d)
			}
		})
	}
}

// TestConnBadClockParts feeds a Conn bad sequences of clock parts: each
// ends Run with the right error, changes nothing and leaks nothing.
func TestConnBadClockParts(t *testing.T) {
	hello := helloFrom(t, "peer", vclock.Clock{})
	part := func(c vclock.Clock) []byte {
		return rawFrame(byte(kindClockPart), appendClockEntries(nil, c, slices.Sorted(maps.Keys(c))))
	}
	sync := frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"peer": goodTS}})
	tooMany := bigClock(scuttlebutt.DefaultMaxSources+1, 7)
	half := bigClock(scuttlebutt.DefaultMaxSources/2+1, 7)
	other := make(vclock.Clock, len(half))
	for s, ts := range half {
		other["o"+s] = ts
	}
	for _, tc := range []struct {
		name  string
		input []byte
		close bool // hang up after the input
		want  []error
	}{
		{name: "a part naming more sources than allowed", input: cat(part(tooMany), hello), want: []error{scuttlebutt.ErrTooManySources}},
		{name: "parts naming more sources than allowed", input: cat(hello, part(half), part(other), sync), want: []error{scuttlebutt.ErrTooManySources}},
		{name: "a part claiming 2^32-1 entries", input: cat(rawFrame(byte(kindClockPart), []byte{0xba, 0xff, 0xff, 0xff, 0xff}), hello), want: []error{scuttlebutt.ErrTooManySources}},
		{name: "parts before updates", input: cat(hello, part(vclock.Clock{"peer": goodTS}), updatesFrame(t, update(t, 0, "k", 1))), want: []error{ErrMalformed}},
		{name: "parts at the end of the stream", input: cat(hello, part(vclock.Clock{"peer": goodTS})), close: true, want: []error{ErrTruncated}},
		{name: "a source in two parts", input: cat(part(vclock.Clock{"x": goodTS}), part(vclock.Clock{"x": goodTS + 1}), hello), want: []error{ErrMalformed}},
		{name: "a source in a part and in the sync", input: cat(hello, part(vclock.Clock{"peer": goodTS}), sync), want: []error{ErrMalformed}},
		{name: "a part with a NaN entry", input: cat(hello, part(vclock.Clock{"x": vclock.Timestamp(math.NaN())}), sync), want: []error{scuttlebutt.ErrProtocol}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leak.Check(t)
			v := serveVictim(t, nil)
			v.peer.Write(tc.input) // fails if the Conn gives up before reading it all
			if tc.close {
				v.hangUp(t, bytes.HasPrefix(tc.input, hello))
			}
			err := v.result(t)
			for _, want := range tc.want {
				if !errors.Is(err, want) {
					t.Errorf("Run = %v, want an error wrapping %v", err, want)
				}
			}
			v.unchanged(t)
		})
	}
}

// TestClockEntrySize: the size the splitter assumes for an entry is what
// the encoders write, or more.
func TestClockEntrySize(t *testing.T) {
	for _, n := range []int{1, 23, 24, 127, 128, 255, 256} {
		src := strings.Repeat("s", n)
		for _, ts := range []vclock.Timestamp{goodTS, 1, vclock.Timestamp(math.NaN()), vclock.Timestamp(math.Inf(1))} {
			c := vclock.Clock{src: ts}
			enc, err := encMode.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(enc)-1, clockEntrySize(src); got > want {
				t.Errorf("a %d-byte source at %v encodes as %d bytes, more than the %d assumed", n, ts, got, want)
			}
			if got, want := len(appendClockEntries(nil, c, []string{src}))-cborx.HeadLen(1), clockEntrySize(src); got != want {
				t.Errorf("a %d-byte source at %v is a %d-byte part entry, want %d", n, ts, got, want)
			}
		}
	}
}
