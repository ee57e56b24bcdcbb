package cborx

import (
	"fmt"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// BenchmarkItem checks a model update's data ([key, value]) and a larger
// nested value, as the base does for every update.
func BenchmarkItem(b *testing.B) {
	for _, tt := range []struct {
		name string
		v    any
	}{
		{"small", []any{"key-0000001", 123456}},
		{"nested", map[string]any{"a": []any{1, 2.5, "three", []byte{4}}, "b": map[string]any{"c": nil, "d": true}, "e": "héllo wörld"}},
	} {
		data, err := cbor.Marshal(tt.v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%s/%dB", tt.name, len(data)), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := Whole(data, 32); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
