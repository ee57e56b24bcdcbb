// Package cborx holds the small pieces of CBOR the project handles by hand
// on hot paths: checking that bytes hold one well-formed item within the
// limits every replica applies, without decoding or allocating, and
// appending heads. Everything else goes through fxamacker/cbor.
package cborx

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every error of this package.
var ErrMalformed = errors.New("cbor: malformed")

// Item returns the length of the CBOR item at the start of b. It refuses
// tags, indefinite lengths, reserved values, text that is not UTF-8, and
// arrays and maps nested deeper than maxDepth.
func Item(b []byte, maxDepth int) (n int, err error) {
	c := checker{b: b}
	if err := c.item(0, maxDepth); err != nil {
		return 0, err
	}
	return c.off, nil
}

// Whole reports whether b is exactly one item, as Item checks it.
func Whole(b []byte, maxDepth int) error {
	n, err := Item(b, maxDepth)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%w: %d bytes after the item", ErrMalformed, len(b)-n)
	}
	return nil
}

type checker struct {
	b   []byte
	off int
}

func (c *checker) fail(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

func (c *checker) item(depth, maxDepth int) error {
	if c.off >= len(c.b) {
		return c.fail("unexpected end")
	}
	ib := c.b[c.off]
	c.off++
	major, add := ib>>5, ib&0x1f
	var arg uint64
	switch {
	case add < 24:
		arg = uint64(add)
	case add <= 27:
		size := 1 << (add - 24)
		if len(c.b)-c.off < size {
			return c.fail("unexpected end")
		}
		for _, x := range c.b[c.off : c.off+size] {
			arg = arg<<8 | uint64(x)
		}
		c.off += size
	default:
		return c.fail("indefinite length or reserved value (initial byte %#x)", ib)
	}
	switch major {
	case 0, 1: // integers
	case 2, 3: // byte and text strings
		if arg > uint64(len(c.b)-c.off) {
			return c.fail("string of %d bytes past the end", arg)
		}
		s := c.b[c.off : c.off+int(arg)]
		c.off += int(arg)
		if major == 3 && !utf8.Valid(s) {
			return c.fail("text is not UTF-8")
		}
	case 4, 5:
		if depth >= maxDepth {
			return c.fail("nested deeper than %d", maxDepth)
		}
		items := arg
		if major == 5 {
			if arg > uint64(len(c.b)) {
				return c.fail("map of %d pairs past the end", arg)
			}
			items = 2 * arg
		}
		// Every item takes at least one byte: a count past the end is a lie
		// told to make us loop.
		if items > uint64(len(c.b)-c.off) {
			return c.fail("%d items past the end", items)
		}
		for range items {
			if err := c.item(depth+1, maxDepth); err != nil {
				return err
			}
		}
	case 6:
		return c.fail("tags are not allowed")
	case 7:
		if add == 24 && arg < 32 {
			return c.fail("simple value %d in two bytes", arg)
		}
	}
	return nil
}
