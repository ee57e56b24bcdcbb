package wire

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecMode(t *testing.T) {
	dm := DecMode(Limits{Depth: 4, Elements: 16, Pairs: 16})
	var v any
	if err := dm.Unmarshal([]byte{0xa1, 0x61, 'a', 0x82, 0x01, 0x20}, &v); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"a": []any{int64(1), int64(-1)}}, v); diff != "" {
		t.Errorf("maps and integers (-want +got):\n%s", diff)
	}
	deep := func(n int) []byte { return append(bytes.Repeat([]byte{0x81}, n), 0x00) }
	if err := dm.Unmarshal(deep(4), &v); err != nil {
		t.Errorf("4 levels refused: %v", err)
	}
	array := func(n byte) []byte { return append([]byte{0x80 | n}, make([]byte, n)...) }
	if err := dm.Unmarshal(array(16), &v); err != nil {
		t.Errorf("16 elements refused: %v", err)
	}
	pairs := func(n byte) []byte {
		b := []byte{0xb8, n}
		for i := range n {
			b = append(b, 0x61, 'A'+i, 0x00)
		}
		return b
	}
	if err := dm.Unmarshal(pairs(16), &v); err != nil {
		t.Errorf("16 pairs refused: %v", err)
	}
	for name, b := range map[string][]byte{
		"too deep":               deep(5),
		"too many elements":      array(17),
		"too many pairs":         pairs(17),
		"duplicate key":          {0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02},
		"tag":                    {0xc1, 0x01},
		"indefinite length":      {0x9f, 0xff},
		"uint64 past int64":      {0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"text that is not UTF-8": {0x62, 0xff, 0xfe},
	} {
		if err := dm.Unmarshal(b, &v); err == nil {
			t.Errorf("%s: %x accepted as %v", name, b, v)
		}
	}
}

func TestDecModePanicsOutOfRange(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("DecMode with Depth 1 did not panic")
		}
	}()
	DecMode(Limits{Depth: 1, Elements: 16, Pairs: 16})
}
