package model

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"unicode/utf8"
)

// checkEncoded reports why an encoded value from a peer is not one that Set
// could have made, without decoding it into Go values: only integers within
// int64, finite floats, false, true, null, UTF-8 text, byte strings, arrays,
// and maps with unique text keys; no tags, no indefinite lengths, nesting
// within maxValueDepth. The whole of b must be one value.
func checkEncoded(b []byte) error {
	w := walker{b: b}
	if err := w.value(0); err != nil {
		return err
	}
	if w.off != len(b) {
		return fmt.Errorf("%d bytes after the value", len(b)-w.off)
	}
	return nil
}

type walker struct {
	b   []byte
	off int
}

// head reads an item's initial byte and argument.
func (w *walker) head() (major byte, add byte, arg uint64, err error) {
	if w.off >= len(w.b) {
		return 0, 0, 0, fmt.Errorf("unexpected end")
	}
	c := w.b[w.off]
	w.off++
	major, add = c>>5, c&0x1f
	switch {
	case add < 24:
		return major, add, uint64(add), nil
	case add <= 27:
		size := 1 << (add - 24)
		if len(w.b)-w.off < size {
			return 0, 0, 0, fmt.Errorf("unexpected end")
		}
		for _, x := range w.b[w.off : w.off+size] {
			arg = arg<<8 | uint64(x)
		}
		w.off += size
		return major, add, arg, nil
	}
	return 0, 0, 0, fmt.Errorf("indefinite length or reserved value (initial byte %#x)", c)
}

func (w *walker) take(n uint64) ([]byte, error) {
	if n > uint64(len(w.b)-w.off) {
		return nil, fmt.Errorf("length %d past the end", n)
	}
	s := w.b[w.off : w.off+int(n)]
	w.off += int(n)
	return s, nil
}

func (w *walker) value(depth int) error {
	major, add, arg, err := w.head()
	if err != nil {
		return err
	}
	switch major {
	case 0: // unsigned integer
		if arg > math.MaxInt64 {
			return fmt.Errorf("integer %d does not fit in int64", arg)
		}
	case 1: // negative integer -1-arg
		if arg > math.MaxInt64 {
			return fmt.Errorf("integer -1-%d does not fit in int64", arg)
		}
	case 2:
		_, err = w.take(arg)
	case 3:
		var s []byte
		if s, err = w.take(arg); err == nil && !utf8.Valid(s) {
			err = fmt.Errorf("text is not UTF-8")
		}
	case 4:
		if depth >= maxValueDepth {
			return fmt.Errorf("nested deeper than %d", maxValueDepth)
		}
		if arg > uint64(len(w.b)-w.off) {
			return fmt.Errorf("array of %d cannot fit", arg)
		}
		for range arg {
			if err := w.value(depth + 1); err != nil {
				return err
			}
		}
	case 5:
		if depth >= maxValueDepth {
			return fmt.Errorf("nested deeper than %d", maxValueDepth)
		}
		if arg > uint64(len(w.b)-w.off)/2 {
			return fmt.Errorf("map of %d cannot fit", arg)
		}
		var keys [][]byte
		for range arg {
			km, _, kn, err := w.head()
			if err != nil {
				return err
			}
			if km != 3 {
				return fmt.Errorf("map key of major type %d, want text", km)
			}
			k, err := w.take(kn)
			if err != nil {
				return err
			}
			if !utf8.Valid(k) {
				return fmt.Errorf("map key is not UTF-8")
			}
			keys = append(keys, k)
			if err := w.value(depth + 1); err != nil {
				return err
			}
		}
		slices.SortFunc(keys, bytes.Compare)
		for i := 1; i < len(keys); i++ {
			if bytes.Equal(keys[i], keys[i-1]) {
				return fmt.Errorf("duplicate map key %q", keys[i])
			}
		}
	case 6:
		return fmt.Errorf("tags are not allowed")
	case 7:
		switch add {
		case 20, 21, 22: // false, true, null
		case 25:
			if arg>>10&0x1f == 0x1f { // all-ones exponent: infinity or NaN
				return fmt.Errorf("half-precision %#04x is not a finite number", arg)
			}
		case 26:
			f := math.Float32frombits(uint32(arg))
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return fmt.Errorf("%v is not a finite number", f)
			}
		case 27:
			f := math.Float64frombits(arg)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("%v is not a finite number", f)
			}
		default:
			return fmt.Errorf("simple value %d is not allowed", arg)
		}
	}
	return err
}
