package cborx

import (
	"bytes"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func TestAppendHeadMatchesEncoder(t *testing.T) {
	for _, n := range []uint64{0, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1} {
		want, err := cbor.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendHead(nil, MajorUint, n); !bytes.Equal(got, want) {
			t.Errorf("AppendHead(uint, %d) = %x, want %x", n, got, want)
		}
		if got := HeadLen(n); got != len(want) {
			t.Errorf("HeadLen(%d) = %d, want %d", n, got, len(want))
		}
	}
	s := string(make([]byte, 300))
	want, _ := cbor.Marshal(s)
	if got := append(AppendHead(nil, MajorText, uint64(len(s))), s...); !bytes.Equal(got, want) {
		t.Errorf("text head differs: %x vs %x", got[:4], want[:4])
	}
}
