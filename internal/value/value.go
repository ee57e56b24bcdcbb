// Package value holds the one set of rules for what a replicated value may
// be, shared by package model (values) and package emitter (arguments):
// what CBOR and JSON can both carry. Check tests a Go value before it is
// written; CheckEncoded tests an encoded value from a peer without decoding
// it; Enc and Dec encode and decode both the same way on every replica.
package value

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"slices"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/wire"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Enc and Dec are the encoder and decoder of values: deterministic map order
// and shortest floats out; in, no tags, no indefinite lengths, no duplicate
// keys, integers as int64, maps as map[string]any.
var (
	Enc = func() cbor.EncMode {
		em, err := cbor.EncOptions{Sort: cbor.SortBytewiseLexical, ShortestFloat: cbor.ShortestFloat16}.EncMode()
		if err != nil {
			panic(err)
		}
		return em
	}()
	Dec = wire.DecMode(wire.Limits{Depth: scuttlebutt.MaxNesting, Elements: wire.MaxElements, Pairs: wire.MaxElements})
)

// Check reports why v cannot be replicated as a value, or nil if it can:
// nil, bool, integers that fit in int64, finite floats, UTF-8 strings,
// []byte, and slices, arrays and string-keyed maps of these, nested at most
// maxDepth deep.
func Check(v any, maxDepth int) error {
	switch v := v.(type) { // the common cases, without reflection
	case nil, bool, int, int8, int16, int32, int64, uint8, uint16, uint32, []byte:
		return nil
	case string:
		if !utf8.ValidString(v) {
			return fmt.Errorf("string %q is not UTF-8", v)
		}
		return nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%v is not a finite number", v)
		}
		return nil
	}
	return checkReflect(reflect.ValueOf(v), 0, maxDepth)
}

func checkReflect(v reflect.Value, depth, maxDepth int) error {
	if !v.IsValid() {
		return nil // nil interface
	}
	switch v.Kind() {
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			return fmt.Errorf("string %q is not UTF-8", v.String())
		}
		return nil
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return nil
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		if v.Uint() > math.MaxInt64 {
			return fmt.Errorf("integer %d does not fit in int64", v.Uint())
		}
		return nil
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%v is not a finite number", f)
		}
		return nil
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return checkReflect(v.Elem(), depth, maxDepth)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // []byte
		}
		if depth >= maxDepth {
			return fmt.Errorf("nested deeper than %d", maxDepth)
		}
		for i := range v.Len() {
			if err := checkReflect(v.Index(i), depth+1, maxDepth); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("map keys must be strings, not %s", v.Type().Key())
		}
		if depth >= maxDepth {
			return fmt.Errorf("nested deeper than %d", maxDepth)
		}
		it := v.MapRange()
		for it.Next() {
			if k := it.Key().String(); !utf8.ValidString(k) {
				return fmt.Errorf("map key %q is not UTF-8", k)
			}
			if err := checkReflect(it.Value(), depth+1, maxDepth); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s cannot be replicated", v.Type())
}

// CheckEncoded reports why an encoded value from a peer is not one that Set
// could have made, without decoding it into Go values: only integers within
// int64, finite floats, false, true, null, UTF-8 text, byte strings, arrays,
// and maps with unique text keys; no tags, no indefinite lengths, nesting
// within maxDepth. The whole of b must be one value.
func CheckEncoded(b []byte, maxDepth int) error {
	r := cborx.NewReader(b)
	if err := checkEncoded(&r, 0, maxDepth); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d bytes after the value", r.Len())
	}
	return nil
}

// checkEncoded checks the value at r.
func checkEncoded(r *cborx.Reader, depth, maxDepth int) error {
	major, info, arg, err := r.Head()
	if err != nil {
		return err
	}
	switch major {
	case cborx.MajorUint:
		if arg > math.MaxInt64 {
			return fmt.Errorf("integer %d does not fit in int64", arg)
		}
	case cborx.MajorNeg: // -1-arg
		if arg > math.MaxInt64 {
			return fmt.Errorf("integer -1-%d does not fit in int64", arg)
		}
	case cborx.MajorBytes:
		_, err = r.Take(arg)
	case cborx.MajorText:
		var s []byte
		if s, err = r.Take(arg); err == nil && !utf8.Valid(s) {
			err = fmt.Errorf("text is not UTF-8")
		}
	case cborx.MajorArray:
		if depth >= maxDepth {
			return fmt.Errorf("nested deeper than %d", maxDepth)
		}
		if arg > uint64(r.Len()) {
			return fmt.Errorf("array of %d cannot fit", arg)
		}
		for range arg {
			if err := checkEncoded(r, depth+1, maxDepth); err != nil {
				return err
			}
		}
	case cborx.MajorMap:
		if depth >= maxDepth {
			return fmt.Errorf("nested deeper than %d", maxDepth)
		}
		if arg > uint64(r.Len())/2 {
			return fmt.Errorf("map of %d cannot fit", arg)
		}
		var keys [][]byte
		for range arg {
			k, err := r.Text()
			if err != nil {
				return fmt.Errorf("map key: %w", err)
			}
			if !utf8.Valid(k) {
				return fmt.Errorf("map key is not UTF-8")
			}
			keys = append(keys, k)
			if err := checkEncoded(r, depth+1, maxDepth); err != nil {
				return err
			}
		}
		slices.SortFunc(keys, bytes.Compare)
		for i := 1; i < len(keys); i++ {
			if bytes.Equal(keys[i], keys[i-1]) {
				return fmt.Errorf("duplicate map key %q", keys[i])
			}
		}
	case cborx.MajorTag:
		return fmt.Errorf("tags are not allowed")
	case cborx.MajorSimple:
		switch info {
		case 20, 21, 22: // false, true, null
		case 25, 26, 27:
			if f := cborx.Float(info, arg); math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("%v is not a finite number", f)
			}
		default:
			return fmt.Errorf("simple value %d is not allowed", arg)
		}
	}
	return err
}
