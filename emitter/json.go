package emitter

import (
	"fmt"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/value"

	"github.com/fxamacker/cbor/v2"
)

// DataToJSON implements stream.JSONTranscoder, for the JSON-lines codec
// that speaks to JavaScript scuttlebutt: an event's payload [name,
// [args...]] goes out as JavaScript's ReliableEventEmitter writes a change,
// [name, arg1, arg2, ...].
func (e *Emitter) DataToJSON(data []byte) ([]byte, error) {
	var p []cbor.RawMessage
	if err := value.Dec.Unmarshal(data, &p); err != nil || len(p) != 2 {
		return nil, fmt.Errorf("%w: payload is not [name, [args...]]", ErrInvalidArg)
	}
	var args []cbor.RawMessage
	if err := value.Dec.Unmarshal(p[1], &args); err != nil {
		return nil, fmt.Errorf("%w: payload's arguments are not an array", ErrInvalidArg)
	}
	return appendChange(nil, p[0], args), nil
}

// DataFromJSON implements stream.JSONTranscoder: JavaScript's change [name,
// arg1, arg2, ...] becomes the payload [name, [args...]]. A change that is
// not an array starting with a string name is an error wrapping
// ErrInvalidArg.
func (e *Emitter) DataFromJSON(item []byte) ([]byte, error) {
	var parts []cbor.RawMessage
	if err := value.Dec.Unmarshal(item, &parts); err != nil {
		return nil, fmt.Errorf("%w: change is not an array: %v", ErrInvalidArg, err)
	}
	if len(parts) == 0 || len(parts[0]) == 0 || parts[0][0]>>5 != 3 {
		return nil, fmt.Errorf("%w: change does not start with an event name", ErrInvalidArg)
	}
	b := cborx.AppendHead(nil, cborx.MajorArray, 2)
	b = append(b, parts[0]...)
	b = cborx.AppendHead(b, cborx.MajorArray, uint64(len(parts)-1))
	for _, a := range parts[1:] {
		b = append(b, a...)
	}
	return b, nil
}

// appendChange appends the CBOR array [name, args...].
func appendChange(b []byte, name []byte, args []cbor.RawMessage) []byte {
	b = cborx.AppendHead(b, cborx.MajorArray, uint64(1+len(args)))
	b = append(b, name...)
	for _, a := range args {
		b = append(b, a...)
	}
	return b
}
