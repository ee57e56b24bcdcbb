package stream

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// TestHelloFeaturesVersion1Peer: a version-1 peer decodes a hello that
// offers features as it always did (it knows keys 1 to 4 and ignores the
// rest), and sees version 1, so it accepts it.
func TestHelloFeaturesVersion1Peer(t *testing.T) {
	// wireHello as version 1 had it.
	type v1Hello struct {
		Version int          `cbor:"1,keyasint"`
		ID      string       `cbor:"2,keyasint"`
		Clock   vclock.Clock `cbor:"3,keyasint"`
		Meta    any          `cbor:"4,keyasint,omitempty"`
	}
	h := &scuttlebutt.Hello{Version: scuttlebutt.ProtocolVersion, ID: "peer", Clock: vclock.Clock{"peer": goodTS}, Meta: "m"}
	b, err := appendMessageOffer(nil, scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: h}, DefaultMaxFrameSize, newNegotiation(Version2, true).offer)
	if err != nil {
		t.Fatal(err)
	}
	var old v1Hello
	if err := decMode.Unmarshal(b[headerSize:], &old); err != nil {
		t.Fatalf("a version-1 peer cannot decode the hello: %v", err)
	}
	if d := cmp.Diff(v1Hello{1, "peer", h.Clock, "m"}, old); d != "" {
		t.Errorf("a version-1 peer reads the hello as (-want +got):\n%s", d)
	}
	m, offer, err := decodeMessageIn(scuttlebutt.MsgHello, b[headerSize:], nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(h, m.Hello); d != "" {
		t.Errorf("hello (-sent +read):\n%s", d)
	}
	if want := features(1<<featureCompact | 1<<featureZstd); offer != want {
		t.Errorf("features read %b, want %b", offer, want)
	}
}

func TestFeatures(t *testing.T) {
	for _, tt := range []struct {
		list []uint64
		want features
	}{
		{nil, 0},
		{[]uint64{2}, 1 << featureCompact},
		{[]uint64{3, 2, 2}, 1<<featureCompact | 1<<featureZstd},
		{[]uint64{0, 1, 4, 63, 64, 1 << 40}, 0}, // unknown: a newer peer's
	} {
		if got := featuresOf(tt.list); got != tt.want {
			t.Errorf("featuresOf(%v) = %b, want %b", tt.list, got, tt.want)
		}
	}
	if got := features(1<<featureCompact | 1<<featureZstd).list(); !slicesEqual(got, []uint64{2, 3}) {
		t.Errorf("list = %v, want [2 3]", got)
	}
	for _, tt := range []struct {
		version  int
		compress bool
		want     features
	}{
		{Version1, false, 0},
		{Version1, true, 1 << featureZstd},
		{Version2, false, 1 << featureCompact},
		{Version2, true, 1<<featureCompact | 1<<featureZstd},
	} {
		n := newNegotiation(tt.version, tt.compress)
		if n.offered() != tt.want || n.agreed() != 0 {
			t.Errorf("version %d compress %v: offers %b, agrees %b before the peer's hello; want %b and none", tt.version, tt.compress, n.offered(), n.agreed(), tt.want)
		}
		n.peerSaid(1<<featureCompact | 1<<featureZstd)
		if n.agreed() != tt.want {
			t.Errorf("version %d compress %v: agrees %b with a peer that offers all, want %b", tt.version, tt.compress, n.agreed(), tt.want)
		}
		n.peerSaid(0)
		if n.agreed() != 0 {
			t.Errorf("version %d compress %v: agrees %b with a version-1 peer", tt.version, tt.compress, n.agreed())
		}
	}
	var none *negotiation
	if none.offered() != 0 || none.agreed() != 0 {
		t.Error("a nil negotiation offers or agrees to something")
	}
	none.peerSaid(1 << featureCompact) // no panic
}

func slicesEqual(a, b []uint64) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// TestHelloFeaturesBad: features that are not a short list of unsigned
// integers are malformed.
func TestHelloFeaturesBad(t *testing.T) {
	for name, features := range map[string]any{
		"not an array":   2,
		"text":           []any{"zstd"},
		"negative":       []any{-1},
		"too many":       make([]uint64, maxFeatures+1),
		"nested":         []any{[]any{2}},
		"a map of flags": map[string]any{"2": true},
	} {
		body := cborOf(t, map[int]any{1: 1, 2: "peer", 3: map[string]any{}, 5: features})
		if _, _, err := decodeMessageIn(scuttlebutt.MsgHello, body, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: hello %x = %v, want ErrMalformed", name, body, err)
		}
	}
}

// TestCompressFrames: frames of compressMin bytes or more go compressed
// when that is smaller and come back as they were; others go as they are.
func TestCompressFrames(t *testing.T) {
	small := rawFrame(2, bytes.Repeat([]byte{1}, compressMin-1))
	big := rawFrame(7, bytes.Repeat([]byte("abcdefgh"), compressMin))
	noise := make([]byte, 4*compressMin)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(r.Uint32())
	}
	rnd := rawFrame(3, noise)
	in := cat([]byte("prefix"), small, big, rnd, small, big)
	out, _ := compressFrames(bytes.Clone(in), len("prefix"), nil)
	if !bytes.HasPrefix(out, []byte("prefix")) {
		t.Fatalf("the bytes before start changed: %q", out[:6])
	}
	fr := NewFrameReader(bytes.NewReader(out[len("prefix"):]), DefaultMaxFrameSize)
	var kinds []scuttlebutt.MessageKind
	var got []byte
	var buf []byte
	for range 5 {
		k, body, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, k)
		if k == kindCompressed {
			if k, body, buf, err = decompress(body, DefaultMaxFrameSize, buf); err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, rawFrame(byte(k), body)...)
	}
	if want := []scuttlebutt.MessageKind{2, kindCompressed, 3, 2, kindCompressed}; fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("kinds sent %v, want %v: small and incompressible frames as they are", kinds, want)
	}
	if !bytes.Equal(got, in[len("prefix"):]) {
		t.Errorf("frames do not come back as they were")
	}
	if len(out) >= len(in) {
		t.Errorf("compressed %d bytes to %d", len(in), len(out))
	}
}

// zstdFrame compresses b as one zstd frame.
func zstdFrame(b []byte) []byte { return zstdEncoder().EncodeAll(b, nil) }

// TestDecompressBounds: a compressed frame that would expand past the
// frame limit is refused on its header, before anything is allocated;
// other bad frames are malformed.
func TestDecompressBounds(t *testing.T) {
	const limit = 4096
	within := zstdFrame(bytes.Repeat([]byte{0xa0}, limit))
	past := zstdFrame(bytes.Repeat([]byte{0xa0}, limit+1))
	// A header that claims a size past the limit with a tiny body: the
	// bomb is refused before the decoder or a buffer is touched.
	bomb := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0, 0, 0, 0x40} // single segment, 4-byte size 1 GiB
	var h zstd.Header
	if err := h.Decode(bomb); err != nil || h.FrameContentSize != 1<<30 {
		t.Fatalf("bomb header: %+v, %v", h, err)
	}
	// A frame whose header understates what it holds: its 2-byte size
	// field, less 256 and little-endian, says 3,840 instead of 4,096.
	liar := bytes.Clone(within)
	if liar[4] != 0x60 || liar[6] != 0x0f {
		t.Fatalf("the encoder's frame header changed: %x", liar[:8])
	}
	liar[6] = 0x0e
	noSize := zstdFrame(nil)[:4] // magic only
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"within the limit", cat([]byte{2}, within), nil},
		{"past the limit", cat([]byte{2}, past), ErrFrameTooLarge},
		{"bomb", cat([]byte{2}, bomb), ErrFrameTooLarge},
		{"empty", nil, ErrMalformed},
		{"kind only", []byte{2}, ErrMalformed},
		{"nested", cat([]byte{byte(kindCompressed)}, within), ErrMalformed},
		{"not zstd", cat([]byte{2}, []byte("this is not zstd at all")), ErrMalformed},
		{"magic only", cat([]byte{2}, noSize), ErrMalformed},
		{"cut short", cat([]byte{2}, within[:len(within)-2]), ErrMalformed},
		{"header says less", cat([]byte{2}, liar), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf []byte
			k, body, buf, err := decompress(tt.body, limit, buf)
			if tt.want == nil {
				if err != nil || k != 2 || len(body) != limit {
					t.Errorf("decompress = kind %d, %d bytes, %v; want kind 2, %d bytes", k, len(body), err, limit)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("decompress(%x) = %v, want %v", tt.body[:min(len(tt.body), 16)], err, tt.want)
			}
			if cap(buf) > limit {
				t.Errorf("buffer of %d bytes for a frame limit of %d", cap(buf), limit)
			}
		})
	}
}

// TestCompactEncoderSticky: after an error, the encoder refuses every
// message, since its table has moved on with frames never sent.
func TestCompactEncoderSticky(t *testing.T) {
	e := &cborEncoder{max: 64, neg: newNegotiation(Version2, false)}
	e.neg.peerSaid(e.neg.offer)
	big := scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{{Source: "a", Timestamp: goodTS, Data: cborOf(t, strings.Repeat("x", 100))}}}
	if _, err := e.appendMessage(nil, big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("100-byte update in a 64-byte frame: %v, want ErrFrameTooLarge", err)
	}
	small := scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}
	if _, err := e.appendMessage(nil, small); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("after an error: %v, want the same error again", err)
	}
}

// FuzzDecompress: any compressed frame body decompresses within the limit
// or fails with ErrMalformed or ErrFrameTooLarge; none panics or grows
// its buffer past the limit.
func FuzzDecompress(f *testing.F) {
	const limit = 4096
	f.Add(cat([]byte{2}, zstdFrame(bytes.Repeat([]byte{0xa0}, 100))))
	f.Add(cat([]byte{7}, zstdFrame(bytes.Repeat([]byte("abc"), limit/3))))
	f.Add(cat([]byte{2}, zstdFrame(bytes.Repeat([]byte{0xa0}, limit+1))))
	f.Add([]byte{2, 0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0, 0, 0, 0x40})
	f.Add([]byte{9})
	f.Fuzz(func(t *testing.T, body []byte) {
		_, out, buf, err := decompress(body, limit, nil)
		if err != nil {
			if !isAny(err, []error{ErrMalformed, ErrFrameTooLarge}) {
				t.Fatalf("decompress(%x) = %v, neither malformed nor too large", body, err)
			}
		} else if len(out) > limit {
			t.Fatalf("decompress(%x) = %d bytes, past the limit %d", body, len(out), limit)
		}
		if cap(buf) > limit {
			t.Fatalf("decompress(%x) grew its buffer to %d, past the limit %d", body, cap(buf), limit)
		}
	})
}
