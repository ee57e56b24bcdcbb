package cborx

import (
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func TestItemAgreesWithEncoder(t *testing.T) {
	values := []any{nil, true, false, 0, -1, 1 << 40, -1 << 40, 1.5, float32(2.5), "héllo", []byte{1, 2, 3},
		[]any{1, "a", []any{}}, map[string]any{"a": 1, "b": map[string]any{"c": nil}}, uint64(1 << 63)}
	for _, v := range values {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := Item(append(b, 0xff), 32); err != nil || n != len(b) {
			t.Errorf("Item(%v) = %d, %v; want %d, nil", v, n, err, len(b))
		}
		if err := Whole(b, 32); err != nil {
			t.Errorf("Whole(%v): %v", v, err)
		}
	}
}

func TestItemRefuses(t *testing.T) {
	deep := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = 0x81
		}
		return append(b, 0x00)
	}
	cases := map[string][]byte{
		"empty":                {},
		"tag":                  {0xc1, 0x01},
		"indefinite array":     {0x9f, 0xff},
		"reserved":             {0x1c},
		"short head":           {0x19, 0x01},
		"short string":         {0x63, 'a', 'b'},
		"bad utf8":             {0x62, 0xff, 0xfe},
		"huge array count":     {0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"huge map count":       {0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"too deep":             deep(33),
		"two-byte simple < 32": {0xf8, 0x10},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Item(b, 32); !errors.Is(err, ErrMalformed) {
				t.Errorf("Item(%x) error %v, want ErrMalformed", b, err)
			}
		})
	}
	if err := Whole(deep(32), 32); err != nil {
		t.Errorf("32 levels refused: %v", err)
	}
	if err := Whole([]byte{0x01, 0x02}, 32); !errors.Is(err, ErrMalformed) {
		t.Errorf("trailing bytes accepted")
	}
}

func FuzzItem(f *testing.F) {
	f.Add([]byte{0x82, 0x61, 'k', 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Item(b, 32)
		if err != nil {
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		// What we accept, the CBOR library finds well-formed.
		if err := cbor.Wellformed(b[:n]); err != nil {
			t.Fatalf("accepted %x, library says %v", b[:n], err)
		}
	})
}
