package cborx

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// Reader reads CBOR from a byte slice, head by head or item by item: the
// one reader behind what the project parses by hand (updates, clock
// records, Item and Whole, replicated values). It never reads past the end of its slice and
// never allocates; what it returns aliases the slice. Errors wrap
// ErrMalformed; after one, the Reader's position is unspecified.
//
// The zero Reader reads nothing. A Reader is not safe for concurrent use.
type Reader struct {
	b   []byte
	off int
}

// NewReader returns a Reader at the start of b.
func NewReader(b []byte) Reader { return Reader{b: b} }

// Off returns how many bytes the Reader has read.
func (r *Reader) Off() int { return r.off }

// Len returns how many bytes are left to read.
func (r *Reader) Len() int { return len(r.b) - r.off }

func (r *Reader) pastEnd(n uint64) error { return r.fail("%d bytes past the end", n) }

func (r *Reader) fail(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Head reads the head of the next item: its major type (one of the Major
// constants), its additional information (the low 5 bits of the initial
// byte) and its argument: the count or length, the integer, or a float's
// bits. It refuses indefinite lengths and reserved values.
func (r *Reader) Head() (major, info byte, arg uint64, err error) {
	if r.off >= len(r.b) {
		return 0, 0, 0, r.fail("unexpected end")
	}
	ib := r.b[r.off]
	r.off++
	major, info = ib&0xe0, ib&0x1f
	if info < 24 {
		return major, info, uint64(info), nil
	}
	if info > 27 {
		return 0, 0, 0, r.fail("indefinite length or reserved value (initial byte %#x)", ib)
	}
	size := 1 << (info - 24)
	if len(r.b)-r.off < size {
		return 0, 0, 0, r.fail("unexpected end")
	}
	p := r.b[r.off:]
	switch size {
	case 1:
		arg = uint64(p[0])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(p))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(p))
	default:
		arg = binary.BigEndian.Uint64(p)
	}
	r.off += size
	return major, info, arg, nil
}

// HeadOf reads the head of an item of the given major type and returns
// its argument.
func (r *Reader) HeadOf(major byte) (arg uint64, err error) {
	// The common case, a small argument, in one call.
	if r.off < len(r.b) {
		if ib := r.b[r.off]; ib&0xe0 == major && ib&0x1f < 24 {
			r.off++
			return uint64(ib & 0x1f), nil
		}
	}
	m, _, arg, err := r.Head()
	if err != nil {
		return 0, err
	}
	if m != major {
		return 0, r.fail("major type %d, want %d", m>>5, major>>5)
	}
	return arg, nil
}

// Take reads the next n bytes: the content of a string whose head was
// read.
func (r *Reader) Take(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.off) {
		return nil, r.pastEnd(n)
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s, nil
}

// Text reads a text string. It does not check that the text is UTF-8.
func (r *Reader) Text() ([]byte, error) {
	// The common case, a string shorter than 24 bytes, in one call.
	if r.off < len(r.b) {
		if ib := r.b[r.off]; ib&0xe0 == MajorText && ib&0x1f < 24 {
			if n := int(ib & 0x1f); n < len(r.b)-r.off {
				s := r.b[r.off+1 : r.off+1+n]
				r.off += 1 + n
				return s, nil
			}
		}
	}
	n, err := r.HeadOf(MajorText)
	if err != nil {
		return nil, err
	}
	return r.Take(n)
}

// Bytes reads a byte string.
func (r *Reader) Bytes() ([]byte, error) {
	n, err := r.HeadOf(MajorBytes)
	if err != nil {
		return nil, err
	}
	return r.Take(n)
}

// Number reads a number as a float64: a float of any width (half, single
// or double precision) or an integer, as a JavaScript number. It refuses
// every other item.
func (r *Reader) Number() (float64, error) {
	// The common case, a float64, in one call.
	if len(r.b)-r.off >= 9 && r.b[r.off] == Float64 {
		f := math.Float64frombits(binary.BigEndian.Uint64(r.b[r.off+1:]))
		r.off += 9
		return f, nil
	}
	major, info, arg, err := r.Head()
	if err != nil {
		return 0, err
	}
	switch {
	case major == MajorSimple && info >= 25 && info <= 27:
		return Float(info, arg), nil
	case major == MajorUint:
		return float64(arg), nil
	case major == MajorNeg:
		return -1 - float64(arg), nil
	}
	return 0, r.fail("not a number (major type %d, additional information %d)", major>>5, info)
}

// Float returns the value of a float whose head Head read: additional
// information 25 (half precision), 26 (single) or 27 (double) and the
// argument, the float's bits.
func Float(info byte, arg uint64) float64 {
	switch info {
	case 25:
		return Float16(uint16(arg))
	case 26:
		return float64(math.Float32frombits(uint32(arg)))
	}
	return math.Float64frombits(arg)
}

// Float16 returns the value of IEEE 754 half-precision bits.
func Float16(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, frac := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0: // zero or subnormal
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	}
	return sign * math.Ldexp(1024+frac, exp-25)
}

// Item reads the next item whole and returns its bytes. It refuses what
// the package-level Item refuses.
func (r *Reader) Item(maxDepth int) ([]byte, error) {
	start := r.off
	err := r.item(maxDepth)
	return r.b[start:r.off], err // empty on error
}

// item reads one item whole.
func (r *Reader) item(maxDepth int) error {
	end, bad, arg := scanItems(r.b, r.off, 1, 0, maxDepth)
	if bad != 0 {
		return r.itemError(bad, arg, maxDepth)
	}
	r.off = end
	return nil
}

// The ways an item can be refused, from scanItems.
const (
	_         = iota
	badEnd    // the item runs past the end
	badHead   // indefinite length or reserved value; arg: initial byte
	badString // a string past the end; arg: its length
	badUTF8   // text that is not UTF-8
	badDepth  // nested deeper than maxDepth
	badCount  // a count of items past the end; arg: the count
	badTag    // a tag
	badSimple // a simple value below 32 in two bytes; arg: the value
)

func (r *Reader) itemError(bad int, arg uint64, maxDepth int) error {
	switch bad {
	case badEnd:
		return r.fail("unexpected end")
	case badHead:
		return r.fail("indefinite length or reserved value (initial byte %#x)", arg)
	case badString:
		return r.pastEnd(arg)
	case badUTF8:
		return r.fail("text is not UTF-8")
	case badDepth:
		return r.fail("nested deeper than %d", maxDepth)
	case badCount:
		return r.fail("%d items past the end", arg)
	case badTag:
		return r.fail("tags are not allowed")
	}
	return r.fail("simple value %d in two bytes", arg)
}

// scanItems returns the end of the n items at b[off:], at depth depth,
// or why one is refused. It runs for every item of every update, so it
// makes no calls but to check text and to descend into an array or a map.
func scanItems(b []byte, off int, n uint64, depth, maxDepth int) (end, bad int, arg uint64) {
	var x uint64 // the argument of the head at hand
	for ; n > 0; n-- {
		if off >= len(b) {
			return 0, badEnd, 0
		}
		ib := b[off]
		off++
		info := ib & 0x1f
		x = uint64(info)
		if info >= 24 {
			if info > 27 {
				return 0, badHead, uint64(ib)
			}
			size := 1 << (info - 24)
			if len(b)-off < size {
				return 0, badEnd, 0
			}
			switch size {
			case 1:
				x = uint64(b[off])
			case 2:
				x = uint64(binary.BigEndian.Uint16(b[off:]))
			case 4:
				x = uint64(binary.BigEndian.Uint32(b[off:]))
			default:
				x = binary.BigEndian.Uint64(b[off:])
			}
			off += size
		}
		switch major := ib & 0xe0; major {
		case MajorUint, MajorNeg:
		case MajorBytes, MajorText:
			if x > uint64(len(b)-off) {
				return 0, badString, x
			}
			s := b[off : off+int(x)]
			off += int(x)
			if major == MajorText && !validText(s) {
				return 0, badUTF8, 0
			}
		case MajorArray, MajorMap:
			if depth >= maxDepth {
				return 0, badDepth, 0
			}
			items := x
			if major == MajorMap {
				if x > uint64(len(b)) {
					return 0, badCount, x
				}
				items = 2 * x
			}
			// Every item takes at least one byte: a count past the end is a
			// lie told to make us loop.
			if items > uint64(len(b)-off) {
				return 0, badCount, items
			}
			if off, bad, arg = scanItems(b, off, items, depth+1, maxDepth); bad != 0 {
				return 0, bad, arg
			}
		case MajorTag:
			return 0, badTag, 0
		case MajorSimple:
			if info == 24 && x < 32 {
				return 0, badSimple, x
			}
		}
	}
	return off, 0, 0
}

// validText is utf8.Valid with ASCII, what most text in an update is
// (keys, ids), checked in line eight bytes at a time.
func validText(s []byte) bool {
	for len(s) >= 8 {
		if binary.LittleEndian.Uint64(s)&0x8080808080808080 != 0 {
			return utf8.Valid(s)
		}
		s = s[8:]
	}
	for _, c := range s {
		if c >= utf8.RuneSelf {
			return utf8.Valid(s)
		}
	}
	return true
}
