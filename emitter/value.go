package emitter

import (
	"fmt"
	"math"
	"reflect"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// maxArgDepth is how deeply arrays and maps may nest inside one argument:
// the payload [name, [args...]] takes two levels of scuttlebutt.MaxNesting.
const maxArgDepth = scuttlebutt.MaxNesting - 2

// The encoder and decoder of event payloads. They follow package model's
// value rules, so that an argument an Emitter accepts is one a Model would
// accept as a value, and both decode to the same Go types.
var (
	payloadEnc = func() cbor.EncMode {
		em, err := cbor.EncOptions{Sort: cbor.SortBytewiseLexical, ShortestFloat: cbor.ShortestFloat16}.EncMode()
		if err != nil {
			panic(err) // constant options
		}
		return em
	}()
	payloadDec = func() cbor.DecMode {
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
			panic(err) // constant options
		}
		return dm
	}()
)

// checkArg reports why v cannot be an event argument, or nil if it can:
// nil, bool, integers that fit in int64, finite floats, UTF-8 strings,
// []byte, and slices, arrays and string-keyed maps of these, nested at most
// maxArgDepth deep. The error wraps ErrInvalidArg.
func checkArg(v any) error {
	return checkReflect(reflect.ValueOf(v), 0)
}

func checkReflect(v reflect.Value, depth int) error {
	if !v.IsValid() {
		return nil // nil interface
	}
	switch v.Kind() {
	case reflect.String:
		if !utf8.ValidString(v.String()) {
			return fmt.Errorf("%w: string %q is not UTF-8", ErrInvalidArg, v.String())
		}
		return nil
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return nil
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		if v.Uint() > math.MaxInt64 {
			return fmt.Errorf("%w: integer %d does not fit in int64", ErrInvalidArg, v.Uint())
		}
		return nil
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%w: %v is not a finite number", ErrInvalidArg, f)
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
		if depth >= maxArgDepth {
			return fmt.Errorf("%w: nested deeper than %d", ErrInvalidArg, maxArgDepth)
		}
		for i := range v.Len() {
			if err := checkReflect(v.Index(i), depth+1); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("%w: map keys must be strings, not %s", ErrInvalidArg, v.Type().Key())
		}
		if depth >= maxArgDepth {
			return fmt.Errorf("%w: nested deeper than %d", ErrInvalidArg, maxArgDepth)
		}
		it := v.MapRange()
		for it.Next() {
			if k := it.Key().String(); !utf8.ValidString(k) {
				return fmt.Errorf("%w: map key %q is not UTF-8", ErrInvalidArg, k)
			}
			if err := checkReflect(it.Value(), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%w: %s cannot be replicated", ErrInvalidArg, v.Type())
}

// payload is the decoded form of an event update: [name, [args...]].
type payload struct {
	_    struct{} `cbor:",toarray"`
	Name string
	Args []any
}

// encodePayload returns the update payload [name, [args...]].
func encodePayload(name string, args []any) ([]byte, error) {
	if args == nil {
		args = []any{}
	}
	return payloadEnc.Marshal(payload{Name: name, Args: args})
}

// decodePayload decodes an update payload into a fresh name and arguments:
// integers as int64, floats as float64, arrays as []any, maps as
// map[string]any. args is nil when there are none.
func decodePayload(data []byte) (name string, args []any, err error) {
	var p payload
	if err := payloadDec.Unmarshal(data, &p); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrInvalidArg, err)
	}
	if len(p.Args) == 0 {
		p.Args = nil
	}
	return p.Name, p.Args, nil
}
