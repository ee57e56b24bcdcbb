package stream

import (
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestWireNumbers pins what is on the wire: changing any of these breaks
// every peer of an older version.
func TestWireNumbers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"sizeOfKind", sizeOfKind, 1},
		{"sizeOfLength", sizeOfLength, 4},
		{"headerSize", headerSize, 5},
		{"DefaultMaxFrameSize", DefaultMaxFrameSize, 4 << 20},
		{"MsgHello", int(scuttlebutt.MsgHello), 1},
		{"MsgUpdates", int(scuttlebutt.MsgUpdates), 2},
		{"MsgSync", int(scuttlebutt.MsgSync), 3},
		{"MsgClock", int(scuttlebutt.MsgClock), 4},
		{"kindClockPart", int(kindClockPart), 5},
		{"kindUpdatesMore", int(kindUpdatesMore), 6},
		{"kindCompact", int(kindCompact), 7},
		{"kindCompactMore", int(kindCompactMore), 8},
		{"kindCompressed", int(kindCompressed), 9},
		{"ProtocolVersion", scuttlebutt.ProtocolVersion, 1},
		{"Version1", Version1, 1},
		{"Version2", Version2, 2},
		{"featureCompact", featureCompact, 2},
		{"featureZstd", featureZstd, 3},
		{"opTick", opTick, 0},
		{"opMilli", opMilli, 1},
		{"opFull", opFull, 2},
		{"opSource", opSource, 4},
		{"opSignature", opSignature, 8},
		{"opStepShift", opStepShift, 4},
		{"compressMin", compressMin, 1024},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	// A sync with an empty clock: kind 3, length 1, the empty map.
	got := frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}})
	if want := []byte{3, 0, 0, 0, 1, 0xa0}; !bytes.Equal(got, want) {
		t.Errorf("empty sync frame = %x, want %x", got, want)
	}
	// An update: [source, float64 timestamp, data].
	got = updatesFrame(t, scuttlebutt.Update{Source: "a", Timestamp: 1, Data: []byte{0xf6}})
	want := []byte{2, 0, 0, 0, 14, 0x81, 0x83, 0x61, 'a', 0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0xf6}
	if !bytes.Equal(got, want) {
		t.Errorf("update frame = %x, want %x", got, want)
	}
	// A hello that offers version 2 and compression: key 5 lists features
	// 2 and 3.
	got, err := appendMessageOffer(nil, scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
		Version: 1, ID: "a", Clock: vclock.Clock{},
	}}, DefaultMaxFrameSize, newNegotiation(Version2, true).offer)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 0, 0, 0, 12, 0xa4, 0x01, 0x01, 0x02, 0x61, 'a', 0x03, 0xa0, 0x05, 0x82, 0x02, 0x03}; !bytes.Equal(got, want) {
		t.Errorf("hello frame offering features 2 and 3 = %x, want %x", got, want)
	}
	// The same update in a unit that goes on: kind 6, the same body.
	got = frameOf(t, scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, More: true,
		Updates: []scuttlebutt.Update{{Source: "a", Timestamp: 1, Data: []byte{0xf6}}}})
	want[0] = 6
	if !bytes.Equal(got, want) {
		t.Errorf("updates-more frame = %x, want %x", got, want)
	}
}

// readMakers are the pathological readers every frame test runs through
// (src/bufio/bufio_test.go's readMakers).
var readMakers = []struct {
	name string
	fn   func(io.Reader) io.Reader
}{
	{"full", func(r io.Reader) io.Reader { return r }},
	{"byte", iotest.OneByteReader},
	{"half", iotest.HalfReader},
	{"data+err", iotest.DataErrReader},
}

// TestFrameRoundTrip encodes every kind of message and reads it back.
func TestFrameRoundTrip(t *testing.T) {
	msgs := seedMessages(t)
	var stream []byte
	for _, m := range msgs {
		stream = append(stream, frameOf(t, m)...)
	}
	for _, rm := range readMakers {
		t.Run(rm.name, func(t *testing.T) {
			fr := NewFrameReader(rm.fn(bytes.NewReader(stream)), 0)
			var got []scuttlebutt.Message
			for {
				kind, body, err := fr.ReadFrame()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("ReadFrame after %d messages: %v", len(got), err)
				}
				m, err := decodeMessage(kind, body)
				if err != nil {
					t.Fatalf("decode message %d: %v", len(got), err)
				}
				got = append(got, m)
			}
			if d := cmp.Diff(msgs, got); d != "" {
				t.Errorf("messages (-sent +read):\n%s", d)
			}
			if n := fr.BytesRead(); n != int64(len(stream)) {
				t.Errorf("BytesRead = %d, want %d", n, len(stream))
			}
		})
	}
}

// failReader fails the test if it is read: what follows a refused header.
type failReader struct{ t *testing.T }

func (r failReader) Read([]byte) (int, error) {
	r.t.Error("the body of a frame over the limit was read")
	return 0, io.EOF
}

// TestFrameReaderErrors checks each way a stream of frames can be bad.
func TestFrameReaderErrors(t *testing.T) {
	errDisk := errors.New("disk on fire")
	tests := []struct {
		name   string
		r      func(t *testing.T) io.Reader
		frames int // good frames before the error
		want   error
	}{
		{"empty", func(*testing.T) io.Reader { return bytes.NewReader(nil) }, 0, io.EOF},
		{"half a header", func(*testing.T) io.Reader { return bytes.NewReader([]byte{1, 0}) }, 0, ErrTruncated},
		{"header only", func(*testing.T) io.Reader { return bytes.NewReader([]byte{1, 0, 0, 0, 3}) }, 0, ErrTruncated},
		{"short body", func(*testing.T) io.Reader { return bytes.NewReader([]byte{1, 0, 0, 0, 3, 0xa0}) }, 0, ErrTruncated},
		{"frame then half a header", func(*testing.T) io.Reader {
			return bytes.NewReader([]byte{3, 0, 0, 0, 1, 0xa0, 3})
		}, 1, ErrTruncated},
		{"over the limit", func(t *testing.T) io.Reader {
			return io.MultiReader(bytes.NewReader([]byte{2, 0, 0, 1, 1}), failReader{t})
		}, 0, ErrFrameTooLarge},
		{"max uint32", func(t *testing.T) io.Reader {
			return io.MultiReader(bytes.NewReader([]byte{2, 0xff, 0xff, 0xff, 0xff}), failReader{t})
		}, 0, ErrFrameTooLarge},
		{"read error", func(*testing.T) io.Reader {
			return io.MultiReader(bytes.NewReader([]byte{3, 0, 0, 0, 1, 0xa0}), iotest.ErrReader(errDisk))
		}, 1, errDisk},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fr := NewFrameReader(tc.r(t), 256)
			for i := range tc.frames {
				if _, _, err := fr.ReadFrame(); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			_, body, err := fr.ReadFrame()
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadFrame = %v, want %v", err, tc.want)
			}
			if body != nil {
				t.Errorf("ReadFrame returned a body of %d bytes with its error", len(body))
			}
			if _, _, again := fr.ReadFrame(); again != err {
				t.Errorf("second ReadFrame = %v, want the same error %v (sticky)", again, err)
			}
		})
	}
}

// TestFrameReaderCapacity reads growing frames: the buffer that holds them
// never grows past the limit, as the limit bounds memory.
func TestFrameReaderCapacity(t *testing.T) {
	const limit = 256
	var stream []byte
	for _, n := range []int{10, 130, 140, 200, 256, 3} {
		stream = append(stream, rawFrame(9, bytes.Repeat([]byte{1}, n))...)
	}
	fr := NewFrameReader(bytes.NewReader(stream), limit)
	for {
		_, body, err := fr.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if cap(body) > limit {
			t.Errorf("body of %d bytes has capacity %d, past the limit %d", len(body), cap(body), limit)
		}
	}
}

// TestAppendMessageTooLarge: a message that encodes past the limit is
// refused, and the buffer is left as it was.
func TestAppendMessageTooLarge(t *testing.T) {
	m := scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{update(t, 0, "k", "0123456789")}}
	dst := []byte("prefix")
	got, err := appendMessage(dst, m, 16)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("appendMessage with a 16-byte limit = %v, want ErrFrameTooLarge", err)
	}
	if string(got) != "prefix" {
		t.Errorf("appendMessage left %q, want the buffer as it was", got)
	}
	if _, err := appendMessage(nil, scuttlebutt.Message{Kind: 77}, math.MaxInt32); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("appendMessage of kind 77 = %v, want ErrUnknownKind", err)
	}
}
