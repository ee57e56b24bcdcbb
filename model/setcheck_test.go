package model_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/scuttle-go/scuttle/model"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// taggedString encodes itself as a CBOR tag, which no peer accepts in a
// value.
type taggedString string

func (s taggedString) MarshalCBOR() ([]byte, error) {
	return append([]byte{0xd8, 0x64}, appendCBORText(nil, string(s))...), nil
}

func appendCBORText(b []byte, s string) []byte {
	return append(append(b, 0x60|byte(len(s))), s...) // short strings only
}

// TestSetChecks: a plain Set, and a SetTTL, skip the base's second check
// of the payload they encoded themselves (scuttlebutt.LocalUpdateChecked),
// but not the size limit, and a value encoded by a type's own marshaller
// is still checked as a peer would check it.
func TestSetChecks(t *testing.T) {
	m, err := model.New("a", &scuttlebutt.Config{MaxUpdateSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set("k", "fits"); err != nil {
		t.Fatalf("Set: %v", err)
	}
	for _, v := range []any{
		"a value well over the limit of sixty-four bytes on an update's payload",
		taggedString("x"),
	} {
		clock := m.Clock()
		if err := m.Set("k", v); !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
			t.Errorf("Set(%q) = %v, want ErrInvalidUpdate", v, err)
		}
		if err := m.SetTTL("k", v, time.Minute); !errors.Is(err, scuttlebutt.ErrInvalidUpdate) {
			t.Errorf("SetTTL(%q) = %v, want ErrInvalidUpdate", v, err)
		}
		if diff := cmp.Diff(clock, m.Clock()); diff != "" {
			t.Errorf("Set(%q) moved the clock (-before +after):\n%s", v, diff)
		}
	}
	if err := m.SetTTL("t", "fits", time.Minute); err != nil {
		t.Fatalf("SetTTL: %v", err)
	}
	b, err := model.New("b", nil)
	if err != nil {
		t.Fatal(err)
	}
	pull(t, b, m)
	if v, ok := b.Get("k"); !ok || v != "fits" {
		t.Errorf("peer's k = %v, %v; want fits", v, ok)
	}
	if v, ok := b.Get("t"); !ok || v != "fits" {
		t.Errorf("peer's t = %v, %v; want fits", v, ok)
	}
}
