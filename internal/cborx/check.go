// Package cborx holds the small pieces of CBOR the project handles by hand
// on hot paths: one Reader for heads, strings, numbers and whole items;
// checking that bytes hold one well-formed item within the limits every
// replica applies, without decoding or allocating (Item, Whole); and
// appending heads. Everything else goes through fxamacker/cbor, with the
// options of package wire (wire.DecMode).
package cborx

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error of this package.
var ErrMalformed = errors.New("cbor: malformed")

// Item returns the length of the CBOR item at the start of b. It refuses
// tags, indefinite lengths, reserved values, text that is not UTF-8, and
// arrays and maps nested deeper than maxDepth.
func Item(b []byte, maxDepth int) (n int, err error) {
	r := Reader{b: b}
	if err := r.item(maxDepth); err != nil {
		return 0, err
	}
	return r.off, nil
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
