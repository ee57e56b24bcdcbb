package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"math"
	"slices"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// fuzzFrameLimit is FuzzReadFrame's frame limit: small, so that the fuzzer
// reaches it.
const fuzzFrameLimit = 256

// seedMessages are one message of each kind and shape, for the seed
// corpora.
func seedMessages(tb testing.TB) []scuttlebutt.Message {
	return []scuttlebutt.Message{
		{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{Version: scuttlebutt.ProtocolVersion, ID: "peer", Clock: vclock.Clock{}}},
		{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
			Version: scuttlebutt.ProtocolVersion, ID: "peer",
			Clock: vclock.Clock{"peer": goodTS, "other": goodTS + 0.5},
			Meta:  map[string]any{"app": "fuzz", "n": int64(-3), "f": 1.5, "b": []byte{1}, "l": []any{nil, true}},
		}},
		{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{}},
		{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{
			update(tb, 0, "k", "v"),
			update(tb, 1, "n", map[string]any{"x": []any{1.25, "y"}}),
			{Source: "peer", Timestamp: goodTS + 2, Data: []byte{0x81, 0x61, 'k'}}, // a tombstone
			{Source: "other", Timestamp: goodTS + 0.5, Data: payload(tb, "s", nil), Signature: []byte("sig")},
		}},
		{Kind: scuttlebutt.MsgUpdates, More: true, Updates: []scuttlebutt.Update{update(tb, 3, "u", "unit")}},
		{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}},
		{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"peer": goodTS + 2, "other": goodTS + 0.5}},
		{Kind: scuttlebutt.MsgClock, Clock: vclock.Clock{"third": goodTS + 7}},
	}
}

// seedSession is a valid session as a peer would send it: hello, history,
// sync, then live updates and a clock advance.
func seedSession(tb testing.TB) []byte {
	return cat(
		helloFrom(tb, "peer", vclock.Clock{"peer": goodTS + 9}),
		updatesFrame(tb, update(tb, 0, "a", 1), update(tb, 1, "b", "two")),
		frameOf(tb, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"peer": goodTS + 1}}),
		updatesFrame(tb, update(tb, 2, "a", nil), scuttlebutt.Update{Source: "peer", Timestamp: goodTS + 3, Data: []byte{0x81, 0x61, 'b'}}),
		frameOf(tb, scuttlebutt.Message{Kind: scuttlebutt.MsgClock, Clock: vclock.Clock{"third": goodTS}}),
	)
}

// seedCompactSession is seedSession in version 2's compact encoding: the
// updates frames of one session, one source table.
func seedCompactSession(tb testing.TB) []byte {
	var e compactEncoder
	frame := func(kind scuttlebutt.MessageKind, us ...scuttlebutt.Update) []byte {
		b, err := appendFrame(nil, kind, DefaultMaxFrameSize, func(b []byte) ([]byte, error) { return e.appendUpdates(b, us), nil })
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	hello, err := appendMessageOffer(nil, scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
		Version: scuttlebutt.ProtocolVersion, ID: "peer", Clock: vclock.Clock{"peer": goodTS + 9},
	}}, DefaultMaxFrameSize, newNegotiation(Version2, true).offer)
	if err != nil {
		tb.Fatal(err)
	}
	third := scuttlebutt.Update{Source: "third", Timestamp: goodTS + 0.5, Data: payload(tb, "t", 3), Signature: []byte("sig")}
	return cat(
		hello,
		frame(kindCompact, update(tb, 0, "a", 1), third, update(tb, 1, "b", "two")),
		frameOf(tb, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"peer": goodTS + 1}}),
		frame(kindCompactMore, update(tb, 2, "a", nil)),
		frame(kindCompact, scuttlebutt.Update{Source: "peer", Timestamp: goodTS + 3 + 1.0/1024, Data: []byte{0x81, 0x61, 'b'}}),
		frameOf(tb, scuttlebutt.Message{Kind: scuttlebutt.MsgClock, Clock: vclock.Clock{"third": goodTS}}),
	)
}

// FuzzReadFrame reads arbitrary bytes as frames: no panic, no body past the
// limit (not even its capacity), every frame exactly the bytes of the
// input, and errors only the documented ones, sticky.
func FuzzReadFrame(f *testing.F) {
	var all []byte
	for _, m := range seedMessages(f) {
		fr, err := appendMessage(nil, m, DefaultMaxFrameSize)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr)
		all = append(all, fr...)
	}
	f.Add(all)
	f.Add(all[:len(all)-1])
	f.Add(seedSession(f))
	f.Add(seedCompactSession(f))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{2, 0, 0, 1, 0}) // one byte over the limit
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff})
	f.Add(rawFrame(9, bytes.Repeat([]byte{7}, fuzzFrameLimit)))
	f.Add(cat(rawFrame(9, make([]byte, 130)), rawFrame(9, make([]byte, 140)))) // buffer growth
	f.Fuzz(func(t *testing.T, data []byte) {
		readers := []struct {
			name string
			r    io.Reader
		}{
			{"whole", bytes.NewReader(data)},
			{"one byte", iotest.OneByteReader(bytes.NewReader(data))},
			{"half", iotest.HalfReader(bytes.NewReader(data))},
		}
		for _, rd := range readers {
			fr := NewFrameReader(rd.r, fuzzFrameLimit)
			off := 0
			for {
				kind, body, err := fr.ReadFrame()
				if err != nil {
					if !isAny(err, []error{io.EOF, ErrTruncated, ErrFrameTooLarge}) {
						t.Fatalf("%s: ReadFrame at offset %d = %v, not a documented error", rd.name, off, err)
					}
					if errors.Is(err, io.EOF) && off != len(data) {
						t.Fatalf("%s: io.EOF at offset %d of %d", rd.name, off, len(data))
					}
					if _, _, again := fr.ReadFrame(); again != err {
						t.Fatalf("%s: error not sticky: %v, then %v", rd.name, err, again)
					}
					break
				}
				if cap(body) > fuzzFrameLimit {
					t.Fatalf("%s: body of %d bytes has capacity %d, past the limit %d", rd.name, len(body), cap(body), fuzzFrameLimit)
				}
				if len(data)-off < headerSize {
					t.Fatalf("%s: a frame from %d bytes", rd.name, len(data)-off)
				}
				n := int(binary.BigEndian.Uint32(data[off+1 : off+headerSize]))
				if kind != scuttlebutt.MessageKind(data[off]) || !bytes.Equal(body, data[off+headerSize:off+headerSize+n]) {
					t.Fatalf("%s: frame at offset %d is kind %d with %x, the input has kind %d with %x",
						rd.name, off, kind, body, data[off], data[off+headerSize:off+headerSize+n])
				}
				off += headerSize + n
				if got := fr.BytesRead(); got != int64(off) {
					t.Fatalf("%s: BytesRead = %d after %d bytes of frames", rd.name, got, off)
				}
			}
		}
	})
}

// messageOpts compares decoded messages: NaNs are equal to NaNs (a NaN's
// payload is not kept through re-encoding), in timestamps and in meta.
var messageOpts = cmp.Options{
	cmpopts.EquateNaNs(),
	cmp.Comparer(func(a, b vclock.Timestamp) bool {
		return a == b || (math.IsNaN(float64(a)) && math.IsNaN(float64(b)))
	}),
}

// FuzzDecodeMessage decodes arbitrary frame bodies: no panic, only the
// documented errors, a message that shares nothing with the body, and
// whatever decodes re-encodes to a frame that decodes to the same message.
func FuzzDecodeMessage(f *testing.F) {
	for _, m := range seedMessages(f) {
		fr, err := appendMessage(nil, m, DefaultMaxFrameSize)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fr[0], fr[headerSize:])
	}
	for fr := NewFrameReader(bytes.NewReader(seedCompactSession(f)), 0); ; {
		k, body, err := fr.ReadFrame()
		if err != nil {
			break
		}
		f.Add(byte(k), bytes.Clone(body))
	}
	f.Add(byte(kindCompact), []byte{0x02, 0x06, 0x61, 'a', 0xfb, 0x42, 0x78, 0xbc, 0xfe, 0x56, 0x80, 0, 0, 0xf6, 0x10, 0xf6})
	f.Add(byte(kindCompact), []byte{0x02, 0x06, 0x61, 'a', 0x01, 0xf6, 0x1b, 0x02, 0, 0, 0, 0, 0, 0, 0x11, 0xf6}) // step 2^53 + 1
	f.Add(byte(kindCompactMore), []byte{0x01, 0x14, 0x00, 0xf6})                                                  // unknown index
	f.Add(byte(scuttlebutt.MsgUpdates), []byte{0x9b, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Add(byte(scuttlebutt.MsgUpdates), []byte{0x81, 0x83, 0x61, 'p', 0xfa, 0x7f, 0xc0, 0, 0, 0x01})
	f.Add(byte(scuttlebutt.MsgHello), []byte{0xa1, 0x04, 0xf9, 0x7e, 0x00})
	f.Add(byte(scuttlebutt.MsgSync), []byte{0xf6})
	f.Add(byte(0), []byte{})
	f.Fuzz(func(t *testing.T, kind byte, body []byte) {
		m, err := decodeMessage(scuttlebutt.MessageKind(kind), body)
		if err != nil {
			if !isAny(err, []error{ErrMalformed, ErrUnknownKind}) {
				t.Fatalf("decode kind %d %x: %v, not ErrMalformed or ErrUnknownKind", kind, body, err)
			}
			return
		}
		enc, err := appendMessage(nil, m, math.MaxInt32)
		if err != nil {
			t.Fatalf("decoded %v from kind %d %x, but it does not encode: %v", m, kind, body, err)
		}
		// The message shares nothing with body: scribbling over the body
		// changes nothing of it.
		for i := range body {
			body[i] = ^body[i]
		}
		if again, err := appendMessage(nil, m, math.MaxInt32); err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("the message changed with the body it was decoded from:\n%x\n%x (%v)", enc, again, err)
		}
		k2, body2, err := NewFrameReader(bytes.NewReader(enc), math.MaxInt32).ReadFrame()
		if err != nil {
			t.Fatalf("re-encoded frame of %v does not read: %v", m, err)
		}
		m2, err := decodeMessage(k2, body2)
		if err != nil {
			t.Fatalf("re-encoded %v does not decode: %v\nframe %x", m, err, enc)
		}
		if d := cmp.Diff(m, m2, messageOpts); d != "" {
			t.Fatalf("round trip changed the message (-decoded +re-decoded):\n%s", d)
		}
	})
}

// fuzzModel returns the replica FuzzConn serves, the same each time: a
// frozen wall clock and a fixed incarnation make its source and timestamps
// deterministic.
func fuzzModel(t *testing.T) *model.Model {
	t.Helper()
	wall := time.UnixMilli(int64(goodTS) + 5)
	m, err := model.New("victim", &scuttlebutt.Config{Now: func() time.Time { return wall }, Incarnation: "fuzz"})
	if err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"a", "b", "c"} {
		if err := m.Set(key, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Delete("c"); err != nil {
		t.Fatal(err)
	}
	return m
}

// stepAll is the reference FuzzConn checks a Conn against: it reads the
// stream's messages as the CBOR codec of a Conn with the default Options
// decodes them (clock parts joined to their message, compact updates of
// version 2 through one source table) and steps a Link with each until
// the first error. It returns that error (nil at a clean end) and how many
// messages other than hellos it stepped.
func stepAll(m *model.Model, stream []byte) (stepped int, err error) {
	l := m.NewLink(nil)
	defer l.Close()
	dec := CBOR.newDecoder(m, bytes.NewReader(stream), 0, newNegotiation(Version2, false))
	for {
		msg, err := dec.readMessage()
		if err == io.EOF {
			return stepped, nil
		}
		if err != nil {
			return stepped, err
		}
		if err := l.Step(msg); err != nil {
			return stepped, err
		}
		if msg.Kind != scuttlebutt.MsgHello {
			stepped++
		}
	}
}

// FuzzConn feeds arbitrary bytes to a Conn as everything its peer sends.
// Run must not panic and must return (the peer's end of the stream ends
// the session); it fails exactly when the stream is bad; and the replica
// changes exactly as a Link stepped with the stream's frames one by one
// changes a copy of it: the frames before the first bad one apply, the bad
// one and the rest do not. So a stream whose first frame after the hello
// is bad changes nothing.
func FuzzConn(f *testing.F) {
	for _, session := range [][]byte{seedSession(f), seedCompactSession(f)} {
		f.Add(session)
		for _, cut := range []int{1, headerSize, len(session) / 3, len(session) / 2, len(session) - 1} {
			f.Add(session[:cut])
		}
	}
	hello := helloFrom(f, "peer", vclock.Clock{})
	f.Add(cat(hello, updatesFrame(f, update(f, 0, "a", 1), scuttlebutt.Update{Source: "peer", Timestamp: goodTS + 1, Data: deepPayload(40)})))
	f.Add(cat(hello, updatesFrame(f, update(f, 0, "x", 1)), rawFrame(9, nil)))
	f.Add(cat(hello, frameOf(f, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"peer": vclock.Timestamp(math.NaN())}})))
	f.Add(helloFrom(f, "victim", vclock.Clock{}))
	f.Add([]byte{})
	for _, seed := range clockPartSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		m, ref := fuzzModel(t), fuzzModel(t)
		before, beforeClock := m.Snapshot(), m.Clock()
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(stream), io.Discard}
		c := NewConn(m, rw, nil)
		errc := make(chan error, 1)
		go func() { errc <- c.Run(context.Background()) }()
		var err error
		select {
		case err = <-errc:
		case <-time.After(badTimeout):
			t.Fatalf("Run did not return within %v of its peer's stream ending:\n%x", badTimeout, stream)
		}

		stepped, refErr := stepAll(ref, stream)
		if (err == nil) != (refErr == nil) {
			t.Fatalf("Run = %v, but stepping the frames gives %v; stream:\n%x", err, refErr, stream)
		}
		if d := cmp.Diff(ref.Snapshot(), m.Snapshot()); d != "" {
			t.Fatalf("snapshot differs from the stepped reference (-reference +conn):\n%s\nstream %x", d, stream)
		}
		if d := cmp.Diff(ref.Clock(), m.Clock()); d != "" {
			t.Fatalf("clock differs from the stepped reference (-reference +conn):\n%s\nstream %x", d, stream)
		}
		if stepped == 0 {
			if d := cmp.Diff(before, m.Snapshot()); d != "" {
				t.Fatalf("no frame but a hello was good, yet the snapshot changed (-before +after):\n%s", d)
			}
			if d := cmp.Diff(beforeClock, m.Clock()); d != "" {
				t.Fatalf("no frame but a hello was good, yet the clock changed (-before +after):\n%s", d)
			}
		}
	})
}

// fuzzMaxSources is FuzzClockParts' bound on the sources of a split
// clock: small, so that the fuzzer reaches it.
const fuzzMaxSources = 16

// clockPartSeeds are streams of clock parts, good and bad: split hello,
// sync and clock messages, and parts out of place, repeated or too many.
func clockPartSeeds(tb testing.TB) [][]byte {
	split := func(m scuttlebutt.Message, limit int) []byte {
		b, err := appendMessage(nil, m, limit)
		if err != nil {
			tb.Fatalf("split %v at %d bytes: %v", m, limit, err)
		}
		return b
	}
	part := func(c vclock.Clock) []byte {
		return rawFrame(byte(kindClockPart), appendClockEntries(nil, c, slices.Sorted(maps.Keys(c))))
	}
	hello := func(c vclock.Clock) scuttlebutt.Message {
		return scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
			Version: scuttlebutt.ProtocolVersion, ID: "peer", Clock: c, Meta: map[string]any{"m": 1.5},
		}}
	}
	sync := scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{"peer": goodTS + 1}}
	small, many := bigClock(6, 12), bigClock(fuzzMaxSources+1, 7)
	return [][]byte{
		split(hello(small), 64),
		split(hello(vclock.Clock{"peer": goodTS, "other": goodTS + 1}), 32),
		cat(split(hello(small), 80), updatesFrame(tb, update(tb, 0, "a", 1)), split(scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: small}, 48)),
		split(scuttlebutt.Message{Kind: scuttlebutt.MsgClock, Clock: bigClock(fuzzMaxSources, 7)}, 40),
		cat(part(small), updatesFrame(tb, update(tb, 0, "a", 1))),
		cat(frameOf(tb, hello(nil)), part(small)),
		cat(part(small), part(small), frameOf(tb, sync)),
		cat(part(vclock.Clock{"peer": goodTS}), frameOf(tb, sync)),
		cat(part(many), frameOf(tb, sync)),
		cat(part(bigClock(10, 7)), part(bigClock(10, 8)), frameOf(tb, sync)),
		cat(rawFrame(byte(kindClockPart), []byte{0xba, 0xff, 0xff, 0xff, 0xff}), frameOf(tb, sync)),
		cat(rawFrame(byte(kindClockPart), []byte{0xa0}), frameOf(tb, sync)),
		cat(part(small), rawFrame(42, nil)),
		cat(part(vclock.Clock{"x": vclock.Timestamp(math.NaN())}), frameOf(tb, sync)),
	}
}

// FuzzClockParts decodes arbitrary streams of frames as the CBOR codec
// reads them, joining clock parts to the hello, sync or clock message
// they precede. It must not panic and must fail only with the documented
// errors. A joined clock never names more sources than the bound; a
// message of one frame decodes as decodeMessage decodes that frame; and
// every message re-encodes, split at a fuzzed frame limit if need be, to
// frames within that limit that decode to the same message.
func FuzzClockParts(f *testing.F) {
	for _, seed := range clockPartSeeds(f) {
		f.Add(seed, uint16(64))
	}
	f.Add(seedSession(f), uint16(24))
	f.Add([]byte{}, uint16(0))
	f.Fuzz(func(t *testing.T, stream []byte, limit uint16) {
		const maxFrame = 1 << 16
		ms, err := decodeStream(stream, maxFrame, fuzzMaxSources)
		if err != nil && !isAny(err, []error{ErrMalformed, ErrUnknownKind, ErrTruncated, ErrFrameTooLarge}) {
			t.Fatalf("decode %x: %v, not a documented error", stream, err)
		}
		// The frames of each message: its clock parts, then itself.
		type framed struct {
			parts int
			kind  scuttlebutt.MessageKind
			body  []byte
		}
		var frames []framed
		fr, parts := NewFrameReader(bytes.NewReader(stream), maxFrame), 0
		for len(frames) < len(ms) {
			kind, body, err := fr.ReadFrame()
			if err != nil {
				t.Fatalf("decoded %d messages from %d whole ones: %v", len(ms), len(frames), err)
			}
			if kind == kindClockPart {
				parts++
				continue
			}
			frames = append(frames, framed{parts, kind, slices.Clone(body)})
			parts = 0
		}
		for i, m := range ms {
			clock := messageClock(m)
			if frames[i].parts == 0 {
				one, err := decodeMessage(frames[i].kind, frames[i].body)
				if err != nil {
					t.Fatalf("message %d decoded from one frame, which decodeMessage refuses: %v", i, err)
				}
				if d := cmp.Diff(one, m, messageOpts); d != "" {
					t.Fatalf("message %d of one frame differs from decodeMessage's (-decodeMessage +decoder):\n%s", i, d)
				}
			} else if len(clock) > fuzzMaxSources {
				t.Fatalf("message %d joined from %d parts names %d sources, over the bound %d", i, frames[i].parts, len(clock), fuzzMaxSources)
			}

			whole, err := appendMessage(nil, m, math.MaxInt32)
			if err != nil {
				t.Fatalf("decoded %v, but it does not encode: %v", m, err)
			}
			lim := max(int(limit), 1)
			enc, err := appendMessage(nil, m, lim)
			if errors.Is(err, ErrFrameTooLarge) {
				continue // too large even split: a field or entry over lim
			}
			if err != nil {
				t.Fatalf("encode %v at %d bytes: %v", m, lim, err)
			}
			if len(whole)-headerSize <= lim && !bytes.Equal(enc, whole) {
				t.Fatalf("%v fits in %d bytes but was not encoded as one frame:\n%x\n%x", m, lim, enc, whole)
			}
			rd := NewFrameReader(bytes.NewReader(enc), math.MaxInt32)
			for {
				_, body, err := rd.ReadFrame()
				if err != nil {
					break
				}
				if len(body) > lim {
					t.Fatalf("%v encoded at %d bytes has a %d-byte frame", m, lim, len(body))
				}
			}
			again, err := decodeStream(enc, lim, max(fuzzMaxSources, len(clock)))
			if err != nil {
				t.Fatalf("%v encoded at %d bytes does not decode: %v\n%x", m, lim, err, enc)
			}
			if d := cmp.Diff([]scuttlebutt.Message{m}, again, messageOpts); d != "" {
				t.Fatalf("round trip at %d bytes changed the message (-decoded +re-decoded):\n%s", lim, d)
			}
		}
	})
}
