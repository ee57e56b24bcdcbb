package wire

import (
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// MaxElements is the most items of one array, and pairs of one map, that a
// decoder accepts from a peer in a message or a value: updates in a frame,
// sources in a clock, items of a replicated value.
const MaxElements = 1 << 20

// Limits bound what a DecMode accepts of one item. They are what differs
// between the project's decoders; everything else is the same for all.
type Limits struct {
	// Depth is the deepest nesting of arrays and maps, counting the
	// outermost (MaxNestedLevels: 4 to 65535).
	Depth int
	// Elements is the most items of one array (MaxArrayElements: 16 to
	// 2^31-1).
	Elements int
	// Pairs is the most pairs of one map (MaxMapPairs: 16 to 2^31-1).
	Pairs int
}

// DecMode returns the fxamacker/cbor decoder every package of the project
// decodes peer data with, within l: duplicate map keys, indefinite lengths
// and tags are refused, maps decode into any as map[string]any and
// integers as int64 (an integer that does not fit is an error). Build it
// once, into a package variable: it panics if l is out of the library's
// ranges, which constant limits never are.
func DecMode(l Limits) cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:  l.Depth,
		MaxArrayElements: l.Elements,
		MaxMapPairs:      l.Pairs,
		IndefLength:      cbor.IndefLengthForbidden,
		TagsMd:           cbor.TagsForbidden,
		DefaultMapType:   reflect.TypeFor[map[string]any](),
		IntDec:           cbor.IntDecConvertSignedOrFail,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}
