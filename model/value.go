package model

import (
	"fmt"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"math"
	"reflect"
	"unicode/utf8"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// maxValueDepth is how deeply arrays and maps may nest inside a value: the
// update's [key, value] array takes one level of scuttlebutt.MaxNesting.
const maxValueDepth = scuttlebutt.MaxNesting - 1

var (
	valueEnc = func() cbor.EncMode {
		em, err := cbor.EncOptions{Sort: cbor.SortBytewiseLexical, ShortestFloat: cbor.ShortestFloat16}.EncMode()
		if err != nil {
			panic(err)
		}
		return em
	}()
	valueDec = func() cbor.DecMode {
		dm, err := cbor.DecOptions{
			DupMapKey:        cbor.DupMapKeyEnforcedAPF,
			MaxNestedLevels:  scuttlebutt.MaxNesting,
			MaxArrayElements: 1 << 20,
			MaxMapPairs:      1 << 20,
			IndefLength:      cbor.IndefLengthForbidden,
			TagsMd:           cbor.TagsForbidden,
			DefaultMapType:   reflect.TypeOf(map[string]any(nil)),
			IntDec:           cbor.IntDecConvertSignedOrFail,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return dm
	}()
)

// checkValue reports why v cannot be a Model value, or nil if it can: nil,
// bool, integers that fit in int64, finite floats, strings, []byte, and
// slices, arrays and string-keyed maps of these, nested at most
// maxValueDepth deep.
func checkValue(v any) error {
	switch v := v.(type) { // the common cases, without reflection
	case nil, bool, int, int8, int16, int32, int64, uint8, uint16, uint32, []byte:
		return nil
	case string:
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: string %q is not UTF-8", ErrInvalidValue, v)
		}
		return nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: %v is not a finite number", ErrInvalidValue, v)
		}
		return nil
	}
	return checkReflect(reflect.ValueOf(v), 0)
}

func checkReflect(v reflect.Value, depth int) error {
	if !v.IsValid() {
		return nil // nil interface
	}
	switch v.Kind() {
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			return fmt.Errorf("%w: string %q is not UTF-8", ErrInvalidValue, v.String())
		}
		return nil
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return nil
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		if v.Uint() > math.MaxInt64 {
			return fmt.Errorf("%w: integer %d does not fit in int64", ErrInvalidValue, v.Uint())
		}
		return nil
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%w: %v is not a finite number", ErrInvalidValue, f)
		}
		return nil
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return checkReflect(v.Elem(), depth)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // []byte
		}
		if depth >= maxValueDepth {
			return fmt.Errorf("%w: nested deeper than %d", ErrInvalidValue, maxValueDepth)
		}
		for i := range v.Len() {
			if err := checkReflect(v.Index(i), depth+1); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("%w: map keys must be strings, not %s", ErrInvalidValue, v.Type().Key())
		}
		if depth >= maxValueDepth {
			return fmt.Errorf("%w: nested deeper than %d", ErrInvalidValue, maxValueDepth)
		}
		it := v.MapRange()
		for it.Next() {
			if k := it.Key().String(); !utf8.ValidString(k) {
				return fmt.Errorf("%w: map key %q is not UTF-8", ErrInvalidValue, k)
			}
			if err := checkReflect(it.Value(), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: %s cannot be replicated", ErrInvalidValue, v.Type())
}

// encodeUpdate returns the update payload [key, value], or [key] for a
// tombstone.
func encodeUpdate(key string, value any, tombstone bool) ([]byte, error) {
	n := byte(0x82)
	if tombstone {
		n = 0x81
	}
	prefix := 1 + cborx.HeadLen(uint64(len(key))) + len(key)
	var enc []byte // the value, when the encoder must make it
	hint := 0
	if !tombstone {
		if hint = sizeHint(value); hint == 0 {
			var err error
			if enc, err = valueEnc.Marshal(value); err != nil {
				return nil, err
			}
			hint = len(enc)
		}
	}
	b := make([]byte, 0, prefix+hint)
	b = append(b, n)
	b = appendText(b, key)
	if tombstone {
		return b, nil
	}
	switch v := value.(type) { // the common cases, without reflection
	case string:
		return appendText(b, v), nil
	case []byte:
		return append(cborx.AppendHead(b, 2<<5, uint64(len(v))), v...), nil
	case int:
		return appendInt(b, int64(v)), nil
	case int64:
		return appendInt(b, v), nil
	case bool:
		if v {
			return append(b, 0xf5), nil
		}
		return append(b, 0xf4), nil
	case nil:
		return append(b, 0xf6), nil
	}
	return append(b, enc...), nil
}

// sizeHint returns the encoded size of v where it is cheap to know, so the
// payload is allocated once at its exact size (it lives as long as the key).
func sizeHint(v any) int {
	switch v := v.(type) {
	case string:
		return cborx.HeadLen(uint64(len(v))) + len(v)
	case []byte:
		return cborx.HeadLen(uint64(len(v))) + len(v)
	case int:
		return 9
	case int64:
		return 9
	case bool, nil:
		return 1
	}
	return 0 // encoded separately and appended
}

func appendText(b []byte, s string) []byte {
	return append(cborx.AppendHead(b, 3<<5, uint64(len(s))), s...)
}

func appendInt(b []byte, i int64) []byte {
	if i < 0 {
		return cborx.AppendHead(b, 1<<5, uint64(-1-i))
	}
	return cborx.AppendHead(b, 0, uint64(i))
}

// parsed is an update payload split into its parts.
type parsed struct {
	key  string // aliases the payload, which is immutable
	voff int    // offset of the encoded value in the payload; 0 for a tombstone
}

// parseUpdate splits the payload of a Model update, [key, value] or [key],
// without copying or decoding the value. The key aliases data: update
// payloads are never modified.
func parseUpdate(data []byte) (parsed, error) {
	var p parsed
	if len(data) < 2 || (data[0] != 0x81 && data[0] != 0x82) {
		return p, fmt.Errorf("%w: payload is not [key, value] or [key]", ErrInvalidValue)
	}
	c := data[1]
	if c>>5 != 3 {
		return p, fmt.Errorf("%w: key is not a string", ErrInvalidValue)
	}
	off, n := 2, uint64(c&0x1f)
	switch c & 0x1f {
	case 24, 25, 26, 27:
		size := 1 << (c&0x1f - 24)
		if len(data) < off+size {
			return p, fmt.Errorf("%w: short key", ErrInvalidValue)
		}
		n = 0
		for _, b := range data[off : off+size] {
			n = n<<8 | uint64(b)
		}
		off += size
	case 28, 29, 30, 31:
		return p, fmt.Errorf("%w: indefinite key", ErrInvalidValue)
	}
	if n > uint64(len(data)-off) {
		return p, fmt.Errorf("%w: short key", ErrInvalidValue)
	}
	if n > 0 {
		p.key = unsafe.String(&data[off], int(n))
	}
	if !utf8.ValidString(p.key) {
		return p, fmt.Errorf("%w: key is not UTF-8", ErrInvalidValue)
	}
	end := off + int(n)
	if data[0] == 0x81 {
		if end != len(data) {
			return p, fmt.Errorf("%w: bytes after a tombstone's key", ErrInvalidValue)
		}
		return p, nil
	}
	if end >= len(data) {
		return p, fmt.Errorf("%w: no value", ErrInvalidValue)
	}
	p.voff = end
	return p, nil
}

// decodeValue decodes an encoded value into the Go types Get documents.
func decodeValue(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	var v any
	if err := valueDec.Unmarshal(b, &v); err != nil {
		return nil // unreachable: values are checked before they are stored
	}
	return v
}
