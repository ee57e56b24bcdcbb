package api

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/vclock"
)

func TestPositionRoundTrip(t *testing.T) {
	for _, c := range []vclock.Clock{
		{},
		{"n1~k3x9p2qd": 1795385884149},
		{"n1~a": 1795385884149.001, "n2~b": 1, "é": 2.5},
	} {
		id := encodePosition(c)
		if strings.ContainsAny(id, "+/=") {
			t.Errorf("id %q of %v is not URL-safe", id, c)
		}
		got, err := decodePosition(id)
		if err != nil {
			t.Fatalf("decodePosition(%q) of %v: %v", id, c, err)
		}
		if diff := cmp.Diff(c, got); diff != "" {
			t.Errorf("round trip of %v (-want +got):\n%s", c, diff)
		}
	}
}

func TestPositionInvalid(t *testing.T) {
	raw := func(b ...byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	ts := []byte{0x42, 0x7a, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00} // a valid float64
	for _, tt := range []struct{ name, id string }{
		{"not base64", "a!b"},
		{"padded", "AQ=="},
		{"empty", ""},
		{"version 2", raw(2)},
		{"length past the end", raw(append([]byte{1, 9, 'a'}, ts...)...)},
		{"empty source", raw(append([]byte{1, 0}, ts...)...)},
		{"short timestamp", raw(1, 1, 'a', 0x42, 0x7a)},
		{"zero timestamp", raw(1, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0)},
		{"NaN timestamp", raw(1, 1, 'a', 0x7f, 0xf8, 0, 0, 0, 0, 0, 1)},
		{"negative timestamp", raw(1, 1, 'a', 0xc2, 0x7a, 0x20, 0, 0, 0, 0, 0)},
		{"source twice", raw(append(append([]byte{1, 1, 'a'}, ts...), append([]byte{1, 'a'}, ts...)...)...)},
		{"source not UTF-8", raw(append([]byte{1, 1, 0xff}, ts...)...)},
		{"too long", strings.Repeat("A", MaxWatchIDSize+1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := decodePosition(tt.id); err == nil {
				t.Errorf("decodePosition(%q) = %v, want an error", tt.id, c)
			}
		})
	}
}

// FuzzDecodePosition: decodePosition never panics, and what it accepts
// encodes back to a position equal to it.
func FuzzDecodePosition(f *testing.F) {
	f.Add(encodePosition(vclock.Clock{"n1~a": 1795385884149.001, "n2~b": 1}))
	f.Add("AQ")
	f.Add("")
	f.Fuzz(func(t *testing.T, id string) {
		c, err := decodePosition(id)
		if err != nil {
			return
		}
		again, err := decodePosition(encodePosition(c))
		if err != nil || !cmp.Equal(c, again) {
			t.Fatalf("%q: %v re-encoded gives %v, %v", id, c, again, err)
		}
	})
}
