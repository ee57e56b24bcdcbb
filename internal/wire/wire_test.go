package wire

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

const goodTS = vclock.Timestamp(1_700_000_000_000.5)

// data is a model update's payload, ["k", 1].
var data = []byte{0x82, 0x61, 'k', 0x01}

func TestUpdateRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name string
		u    scuttlebutt.Update
	}{
		{"three fields", scuttlebutt.Update{Source: "a", Timestamp: goodTS, Data: data}},
		{"signed", scuttlebutt.Update{Source: "peer~1", Timestamp: 1, Data: []byte{0xf6}, Signature: []byte{1, 2, 3}}},
		{"empty signature", scuttlebutt.Update{Source: "b", Timestamp: math.MaxFloat64, Data: data, Signature: []byte{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := AppendUpdate(nil, tt.u)
			for _, copy := range []bool{false, true} {
				d := Decoder{Copy: copy}
				got, err := d.Update(b)
				if err != nil {
					t.Fatalf("Update(%x), Copy %v: %v", b, copy, err)
				}
				if diff := cmp.Diff(tt.u, got); diff != "" {
					t.Errorf("Update(%x), Copy %v (-want +got):\n%s", b, copy, diff)
				}
				aliased := len(got.Data) > 0 && &got.Data[0] == &b[len(b)-len(got.Data)-sigLen(tt.u)]
				if aliased == copy {
					t.Errorf("Copy %v: Data aliases the input: %v", copy, aliased)
				}
			}
		})
	}
}

func sigLen(u scuttlebutt.Update) int {
	if u.Signature == nil {
		return 0
	}
	return cborx.HeadLen(uint64(len(u.Signature))) + len(u.Signature)
}

// TestTimestampRule pins the one rule: float64 out; in, a float of any
// width or an integer, positive and finite.
func TestTimestampRule(t *testing.T) {
	if got, want := AppendTimestamp(nil, 1), []byte{0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}; !bytes.Equal(got, want) {
		t.Errorf("AppendTimestamp(1) = %x, want %x", got, want)
	}
	if n := len(AppendTimestamp(nil, goodTS)); n != TimestampSize {
		t.Errorf("a timestamp takes %d bytes, TimestampSize is %d", n, TimestampSize)
	}
	for _, tt := range []struct {
		name string
		enc  []byte
		want vclock.Timestamp // 0: refused as invalid; -1: refused as malformed
	}{
		{"float64", AppendTimestamp(nil, goodTS), goodTS},
		{"float32", []byte{0xfa, 0x3f, 0xc0, 0, 0}, 1.5},
		{"float16", []byte{0xf9, 0x3e, 0x00}, 1.5},
		{"float16 subnormal", []byte{0xf9, 0x00, 0x01}, vclock.Timestamp(math.Ldexp(1, -24))},
		{"small integer", []byte{0x07}, 7},
		{"uint64", []byte{0x1b, 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00}, 1_700_000_000_000},
		{"largest uint64", []byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, vclock.Timestamp(math.MaxUint64)},
		{"zero", []byte{0x00}, 0},
		{"float zero", []byte{0xf9, 0x00, 0x00}, 0},
		{"negative zero", []byte{0xf9, 0x80, 0x00}, 0},
		{"negative integer", []byte{0x20}, 0},
		{"negative float", AppendTimestamp(nil, -1), 0},
		{"NaN float64", AppendTimestamp(nil, vclock.Timestamp(math.NaN())), 0},
		{"NaN float32", []byte{0xfa, 0x7f, 0xc0, 0, 0}, 0},
		{"NaN float16", []byte{0xf9, 0x7e, 0x00}, 0},
		{"+Inf float16", []byte{0xf9, 0x7c, 0x00}, 0},
		{"-Inf float32", []byte{0xfa, 0xff, 0x80, 0, 0}, 0},
		{"+Inf float64", AppendTimestamp(nil, vclock.Timestamp(math.Inf(1))), 0},
		{"text", []byte{0x61, '1'}, -1},
		{"null", []byte{0xf6}, -1},
		{"tagged", []byte{0xc1, 0x01}, -1},
		{"cut short", []byte{0xfb, 0x3f}, -1},
		{"nothing", nil, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := cborx.NewReader(tt.enc)
			got, err := ReadTimestamp(&r)
			switch tt.want {
			case 0:
				if !errors.Is(err, ErrInvalidTimestamp) {
					t.Errorf("ReadTimestamp(%x) = %v, %v; want ErrInvalidTimestamp", tt.enc, got, err)
				}
			case -1:
				if !errors.Is(err, cborx.ErrMalformed) {
					t.Errorf("ReadTimestamp(%x) = %v, %v; want cborx.ErrMalformed", tt.enc, got, err)
				}
			default:
				if err != nil || got != tt.want {
					t.Errorf("ReadTimestamp(%x) = %v, %v; want %v", tt.enc, got, err, tt.want)
				}
			}
			// An update carries timestamps by the same rule.
			u := append([]byte{0x83, 0x61, 'a'}, tt.enc...)
			u = append(u, 0xf6)
			var d Decoder
			dec, err := d.Update(u)
			switch {
			case tt.want == 0 && !errors.Is(err, scuttlebutt.ErrInvalidUpdate):
				t.Errorf("Update(%x) = %v, %v; want ErrInvalidUpdate", u, dec, err)
			case tt.want == -1 && err == nil:
				t.Errorf("Update(%x) = %v, want an error", u, dec)
			case tt.want > 0 && (err != nil || dec.Timestamp != tt.want):
				t.Errorf("Update(%x) = %v, %v; want timestamp %v", u, dec, err, tt.want)
			}
		})
	}
}

func TestFloat16MatchesLibrary(t *testing.T) {
	for h := range 1 << 16 {
		b := []byte{0xf9, byte(h >> 8), byte(h)}
		var want float64
		if err := cbor.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		got := cborx.Float16(uint16(h))
		same := got == want && math.Signbit(got) == math.Signbit(want) || math.IsNaN(got) && math.IsNaN(want)
		if !same {
			t.Fatalf("Float16(%#04x) = %v, the library says %v", h, got, want)
		}
	}
}

// TestDecodeRefuses: bytes that are not an update are malformed; an update
// the base would refuse is an invalid update.
func TestDecodeRefuses(t *testing.T) {
	head := []byte{0x83, 0x61, 'a', 0xfb, 0x42, 0x78, 0xbc, 0xfe, 0x56, 0x80, 0x00, 0x00} // ["a", 1.7e12,
	deep := append(bytes.Repeat([]byte{0x81}, scuttlebutt.MaxNesting+1), 0x00)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tt := range []struct {
		name    string
		enc     []byte
		invalid bool // else malformed
	}{
		{"empty", nil, false},
		{"not an array", []byte{0xa0}, false},
		{"two fields", []byte{0x82, 0x61, 'a', 0x01}, false},
		{"five fields", cat([]byte{0x85}, head[1:], data, []byte{0x40, 0x00}), false},
		{"indefinite array", cat([]byte{0x9f}, head[1:], data, []byte{0xff}), false},
		{"source not text", cat([]byte{0x83, 0x41, 'a'}, head[3:], data), false},
		{"source past the end", []byte{0x83, 0x78, 0xff, 'a'}, false},
		{"empty source", cat([]byte{0x83, 0x60}, head[3:], data), true},
		{"source with a control character", cat([]byte{0x83, 0x62, 'a', 0x00}, head[3:], data), true},
		{"source too long", cat([]byte{0x83, 0x78, 129}, bytes.Repeat([]byte{'a'}, 129), head[3:], data), true},
		{"no data", head, true},
		{"data nested too deep", cat(head, deep), true},
		{"data with a tag", cat(head, []byte{0xc1, 0x01}), true},
		{"data of indefinite length", cat(head, []byte{0x9f, 0xff}), true},
		{"data text not UTF-8", cat(head, []byte{0x62, 0xff, 0xfe}), true},
		{"bytes after the data", cat(head, data, []byte{0x00}), false},
		{"signature not bytes", cat([]byte{0x84}, head[1:], data, []byte{0x61, 's'}), false},
		{"signature missing", cat([]byte{0x84}, head[1:], data), false},
		{"bytes after the signature", cat([]byte{0x84}, head[1:], data, []byte{0x41, 's', 0x00}), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var d Decoder
			u, err := d.Update(tt.enc)
			if tt.invalid && !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
				t.Errorf("Update(%x) = %v, %v; want ErrInvalidUpdate", tt.enc, u, err)
			}
			if !tt.invalid && !errors.Is(err, cborx.ErrMalformed) {
				t.Errorf("Update(%x) = %v, %v; want cborx.ErrMalformed", tt.enc, u, err)
			}
		})
	}
}

func TestUpdates(t *testing.T) {
	us := []scuttlebutt.Update{
		{Source: "a", Timestamp: goodTS, Data: data},
		{Source: "b", Timestamp: goodTS + 1, Data: []byte{0xf6}, Signature: []byte{9}},
		{Source: "a", Timestamp: goodTS + 2, Data: data},
	}
	b := cborx.AppendHead(nil, cborx.MajorArray, uint64(len(us)))
	for _, u := range us {
		b = AppendUpdate(b, u)
	}
	d := Decoder{Copy: true}
	got, err := d.Updates(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(us, got); diff != "" {
		t.Errorf("Updates (-want +got):\n%s", diff)
	}
	if unsafe.StringData(got[0].Source) != unsafe.StringData(got[2].Source) {
		t.Errorf("source %q not interned", got[0].Source)
	}
	// Every update takes at least minUpdateSize bytes: the smallest fits.
	small := []byte{0x81, 0x83, 0x61, 'a', 0x01, 0xf6}
	if got, err := d.Updates(small); err != nil || len(got) != 1 {
		t.Errorf("Updates(%x) = %v, %v; want one update", small, got, err)
	}
	for name, enc := range map[string][]byte{
		"count past the end":    {0x9b, 0, 0, 0, 1, 0, 0, 0, 0},
		"count one too many":    append([]byte{0x84}, b[1:]...),
		"bytes after the array": append(b[:len(b):len(b)], 0x00),
		"not an array":          {0xf6},
	} {
		if got, err := d.Updates(enc); !errors.Is(err, cborx.ErrMalformed) {
			t.Errorf("%s: Updates(%x) = %v, %v; want cborx.ErrMalformed", name, enc, got, err)
		}
	}
}

// FuzzDecodeUpdate: no panic, errors of the two documented kinds, and what
// decodes re-encodes to bytes that decode to the same update.
func FuzzDecodeUpdate(f *testing.F) {
	f.Add(AppendUpdate(nil, scuttlebutt.Update{Source: "a", Timestamp: goodTS, Data: data}))
	f.Add(AppendUpdate(nil, scuttlebutt.Update{Source: "a", Timestamp: goodTS, Data: data, Signature: []byte{1}}))
	f.Add([]byte{0x83, 0x61, 'a', 0xf9, 0x3e, 0x00, 0xf6})
	f.Add([]byte{0x83, 0x61, 'a', 0xfa, 0x7f, 0xc0, 0, 0, 0xf6})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := Decoder{Copy: true}
		u, err := d.Update(b)
		if err != nil {
			if !errors.Is(err, cborx.ErrMalformed) && !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
				t.Fatalf("Update(%x): %v, neither malformed nor invalid", b, err)
			}
			return
		}
		if !u.Timestamp.Valid() || scuttlebutt.ValidID(u.Source) != nil || cborx.Whole(u.Data, scuttlebutt.MaxNesting) != nil {
			t.Fatalf("Update(%x) = %v, which the base refuses", b, u)
		}
		enc := AppendUpdate(nil, u)
		again, err := d.Update(enc)
		if err != nil {
			t.Fatalf("re-encoded %v does not decode: %v", u, err)
		}
		if diff := cmp.Diff(u, again); diff != "" {
			t.Fatalf("round trip (-decoded +re-decoded):\n%s", diff)
		}
	})
}
