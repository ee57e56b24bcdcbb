package cborx

import (
	"errors"
	"testing"
)

func TestReaderHeads(t *testing.T) {
	for _, n := range []uint64{0, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1<<64 - 1} {
		for _, major := range []byte{MajorUint, MajorNeg, MajorBytes, MajorText, MajorArray, MajorMap, MajorTag, MajorSimple} {
			b := AppendHead(nil, major, n)
			r := NewReader(append(b, 0xff))
			m, _, arg, err := r.Head()
			if err != nil || m != major || arg != n || r.Off() != len(b) || r.Len() != 1 {
				t.Errorf("Head(%x) = major %#x, %d, %v at %d; want %#x, %d at %d", b, m, arg, err, r.Off(), major, n, len(b))
			}
			r = NewReader(b)
			if _, err := r.HeadOf(major ^ MajorNeg); !errors.Is(err, ErrMalformed) {
				t.Errorf("HeadOf(%#x) of %x = %v, want ErrMalformed", major^MajorNeg, b, err)
			}
			if len(b) > 1 {
				r = NewReader(b[:len(b)-1])
				if _, _, _, err := r.Head(); !errors.Is(err, ErrMalformed) {
					t.Errorf("Head(%x), one byte short = %v, want ErrMalformed", b[:len(b)-1], err)
				}
			}
		}
	}
	for _, ib := range []byte{0x1c, 0x1d, 0x1e, 0x5f, 0x9f, 0xbf, 0xff} {
		r := NewReader([]byte{ib, 0x00})
		if _, _, _, err := r.Head(); !errors.Is(err, ErrMalformed) {
			t.Errorf("Head(%#x) = %v, want ErrMalformed", ib, err)
		}
	}
}

func TestReaderStrings(t *testing.T) {
	b := append(AppendHead(nil, MajorText, 2), "hi"...)
	b = append(AppendHead(b, MajorBytes, 1), 7)
	r := NewReader(b)
	if s, err := r.Text(); err != nil || string(s) != "hi" {
		t.Errorf("Text = %q, %v", s, err)
	}
	if s, err := r.Bytes(); err != nil || len(s) != 1 || s[0] != 7 || r.Len() != 0 {
		t.Errorf("Bytes = %x, %v, %d left", s, err, r.Len())
	}
	r = NewReader([]byte{0x63, 'a', 'b'})
	if s, err := r.Text(); !errors.Is(err, ErrMalformed) {
		t.Errorf("Text of a string past the end = %q, %v", s, err)
	}
	r = NewReader([]byte{0x82, 0x01, 0x61, 'a', 0xf6})
	if item, err := r.Item(1); err != nil || len(item) != 4 || r.Len() != 1 {
		t.Errorf("Item = %x, %v, %d left", item, err, r.Len())
	}
}
