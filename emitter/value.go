package emitter

import (
	"fmt"
	"github.com/scuttle-go/scuttle/internal/value"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// maxArgDepth is how deeply arrays and maps may nest inside one argument:
// the payload [name, [args...]] takes two levels of scuttlebutt.MaxNesting.
const maxArgDepth = scuttlebutt.MaxNesting - 2

// checkArg reports why v cannot be an event argument, wrapping
// ErrInvalidArg, or nil if it can: the rules of a Model value (package
// internal/value), nested at most maxArgDepth deep.
func checkArg(v any) error {
	if err := value.Check(v, maxArgDepth); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidArg, err)
	}
	return nil
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
	return value.Enc.Marshal(payload{Name: name, Args: args})
}

// decodePayload decodes an update payload into a fresh name and arguments:
// integers as int64, floats as float64, arrays as []any, maps as
// map[string]any. args is nil when there are none.
func decodePayload(data []byte) (name string, args []any, err error) {
	var p payload
	if err := value.Dec.Unmarshal(data, &p); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrInvalidArg, err)
	}
	if len(p.Args) == 0 {
		p.Args = nil
	}
	return p.Name, p.Args, nil
}
