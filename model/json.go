package model

import (
	"fmt"
	"github.com/scuttle-go/scuttle/internal/value"

	"github.com/fxamacker/cbor/v2"
)

// DataToJSON implements stream.JSONTranscoder, for the JSON-lines codec
// that speaks to JavaScript scuttlebutt: JavaScript's Model deletes a key by
// setting it to null, so a tombstone [key] goes out as [key, null]. A
// payload [key, value] or [key, value, options] goes out as it is: a
// JavaScript Model reads the first two elements and keeps the rest, so it
// relays the options to other Go replicas intact (but does not itself
// expire keys or honour leases).
//
// Note that JavaScript cannot tell a key set to nil from a deleted one: Set
// (key, nil) reaches a JavaScript replica, and through it other replicas, as
// a delete.
func (m *Model) DataToJSON(data []byte) ([]byte, error) {
	p, err := parseUpdate(data)
	if err != nil {
		return nil, err
	}
	if p.voff != 0 || p.ext {
		return data, nil
	}
	out := make([]byte, 0, len(data)+1)
	out = append(out, 0x82)
	out = append(out, data[1:]...)
	return append(out, 0xf6), nil
}

// DataFromJSON implements stream.JSONTranscoder: a JavaScript change [key,
// value] becomes the payload [key, value], and [key, null] (or [key], whose
// value JavaScript reads as undefined) becomes a tombstone, as in
// JavaScript. A third element that is a valid options map (a Go replica's
// update relayed by a JavaScript one) is kept, with the value as it is:
// [key, value, options]. Other elements after the value are dropped, as
// JavaScript's Model ignores them. A change that is not an array starting
// with a string key is an error wrapping ErrInvalidValue.
func (m *Model) DataFromJSON(item []byte) ([]byte, error) {
	var parts []cbor.RawMessage
	if err := value.Dec.Unmarshal(item, &parts); err != nil {
		return nil, fmt.Errorf("%w: change is not an array: %v", ErrInvalidValue, err)
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("%w: change [] has no key", ErrInvalidValue)
	}
	key := parts[0]
	if len(key) == 0 || key[0]>>5 != 3 {
		return nil, fmt.Errorf("%w: change's key is not a string", ErrInvalidValue)
	}
	if len(parts) >= 3 && len(parts[1]) > 0 && parts[1][0] != 0xf7 {
		if o, err := parseOptions(parts[2]); err == nil && (!o.del || parts[1][0] == 0xf6) {
			out := make([]byte, 0, 1+len(key)+len(parts[1])+len(parts[2]))
			out = append(out, 0x83)
			out = append(out, key...)
			out = append(out, parts[1]...)
			return append(out, parts[2]...), nil
		}
	}
	if len(parts) == 1 || isNull(parts[1]) {
		return append([]byte{0x81}, key...), nil
	}
	out := make([]byte, 0, 1+len(key)+len(parts[1]))
	out = append(out, 0x82)
	out = append(out, key...)
	return append(out, parts[1]...), nil
}

// isNull reports whether an encoded value is CBOR null or undefined.
func isNull(v []byte) bool {
	return len(v) == 1 && (v[0] == 0xf6 || v[0] == 0xf7)
}
