package value

import (
	"math"
	"testing"
)

func TestCheck(t *testing.T) {
	good := map[string]any{
		"nil": nil, "bool": true, "int": -5, "int64": int64(1 << 62), "float": 1.5, "string": "héllo",
		"bytes": []byte{1}, "slice": []any{1, "a"}, "map": map[string]any{"a": 1, "b": []any{}},
		"uint32": uint32(7), "typed map": map[string]int{"x": 1},
	}
	for name, v := range good {
		if err := Check(v, 31); err != nil {
			t.Errorf("%s: Check(%v) = %v", name, v, err)
		}
		b, err := Enc.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckEncoded(b, 31); err != nil {
			t.Errorf("%s: CheckEncoded(%x) = %v", name, b, err)
		}
	}
	bad := map[string]any{
		"nan": math.NaN(), "inf": math.Inf(1), "big uint": uint64(math.MaxUint64), "chan": make(chan int),
		"func": func() {}, "int keys": map[int]any{1: 1}, "struct": struct{}{}, "complex": 1i,
		"bad utf8": "\xff", "deep": deep(32),
	}
	for name, v := range bad {
		if err := Check(v, 31); err == nil {
			t.Errorf("%s: Check accepted it", name)
		}
	}
}

func deep(n int) any {
	var v any = 1
	for range n {
		v = []any{v}
	}
	return v
}

func TestCheckEncodedRefuses(t *testing.T) {
	cases := map[string][]byte{
		"half inf":      {0xf9, 0x7c, 0x00},
		"half nan":      {0xf9, 0x7e, 0x00},
		"double nan":    {0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0},
		"tag":           {0xc1, 0x01},
		"duplicate key": {0xa2, 0x61, 'a', 1, 0x61, 'a', 2},
		"int key":       {0xa1, 0x01, 0x01},
		"uint64 max":    {0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"indefinite":    {0x9f, 0xff},
		"undefined":     {0xf7},
		"bad utf8":      {0x62, 0xff, 0xfe},
		"trailing":      {0x01, 0x02},
	}
	for name, b := range cases {
		if err := CheckEncoded(b, 31); err == nil {
			t.Errorf("%s: %x accepted", name, b)
		}
	}
}
