package model

import (
	"fmt"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/value"
	"unicode/utf8"
	"unsafe"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// maxValueDepth is how deeply arrays and maps may nest inside a value: the
// update's [key, value] array takes one level of scuttlebutt.MaxNesting.
const maxValueDepth = scuttlebutt.MaxNesting - 1

// checkValue reports why v cannot be a Model value, wrapping
// ErrInvalidValue, or nil if it can (see package internal/value).
func checkValue(v any) error {
	if err := value.Check(v, maxValueDepth); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return nil
}

// checkEncoded reports why an encoded value from a peer is not one that Set
// could have made.
func checkEncoded(b []byte) error { return value.CheckEncoded(b, maxValueDepth) }

// encodeUpdate returns the update payload [key, value], or [key] for a
// tombstone.
func encodeUpdate(key string, v any, tombstone bool) ([]byte, error) {
	n := byte(0x82)
	if tombstone {
		n = 0x81
	}
	prefix := 1 + cborx.HeadLen(uint64(len(key))) + len(key)
	var enc []byte // the v, when the encoder must make it
	hint := 0
	if !tombstone {
		if hint = sizeHint(v); hint == 0 {
			var err error
			if enc, err = value.Enc.Marshal(v); err != nil {
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
	switch v := v.(type) { // the common cases, without reflection
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
	if err := value.Dec.Unmarshal(b, &v); err != nil {
		return nil // unreachable: values are checked before they are stored
	}
	return v
}
