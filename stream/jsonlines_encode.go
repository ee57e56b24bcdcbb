package stream

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/x448/float16"
)

// jsonEncoder writes messages as JSON lines.
type jsonEncoder struct {
	t   JSONTranscoder
	max int
}

func (e *jsonEncoder) appendMessage(dst []byte, m scuttlebutt.Message) ([]byte, error) {
	switch m.Kind {
	case scuttlebutt.MsgHello:
		if m.Hello == nil {
			return dst, fmt.Errorf("%w: hello without a body", ErrMalformed)
		}
		out, err := e.line(dst, func(b []byte) ([]byte, error) { return e.appendHello(b, m.Hello) })
		if errors.Is(err, ErrFrameTooLarge) {
			// JavaScript reads the hello as one line: a clock cannot be
			// split over several, as the CBOR codec does.
			return out, fmt.Errorf("%w: a hello whose clock names %d sources is longer than the %d-byte line limit, and JSON lines cannot split a clock (the CBOR codec can)",
				ErrFrameTooLarge, len(m.Hello.Clock), e.max)
		}
		return out, err
	case scuttlebutt.MsgUpdates:
		for _, u := range m.Updates {
			var err error
			dst, err = e.line(dst, func(b []byte) ([]byte, error) { return e.appendUpdate(b, u) })
			if err != nil {
				return dst, err
			}
		}
		return dst, nil
	case scuttlebutt.MsgSync:
		return append(dst, syncLine+"\n"...), nil
	case scuttlebutt.MsgClock:
		return dst, nil // no JSON form
	}
	return dst, fmt.Errorf("%w: %d", ErrUnknownKind, m.Kind)
}

// line appends one line made by f and its "\n", checking the size limit.
// On error dst is returned as it was.
func (e *jsonEncoder) line(dst []byte, f func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(dst)
	b, err := f(dst)
	if err != nil {
		return dst[:start], err
	}
	if n := len(b) - start; n > e.max {
		return dst[:start], fmt.Errorf("%w: a %d-byte line, the limit is %d", ErrFrameTooLarge, n, e.max)
	}
	return append(b, '\n'), nil
}

func (e *jsonEncoder) appendHello(b []byte, h *scuttlebutt.Hello) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, h.ID)
	b = append(b, `,"clock":{`...)
	for i, src := range slices.Sorted(maps.Keys(h.Clock)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, src)
		b = append(b, ':')
		var err error
		if b, err = appendJSNumber(b, float64(h.Clock[src])); err != nil {
			return b, fmt.Errorf("%w: hello: clock entry %q: %v", ErrMalformed, src, err)
		}
	}
	b = append(b, '}')
	if h.Meta != nil {
		item, err := encMode.Marshal(h.Meta)
		if err != nil {
			return b, fmt.Errorf("%w: hello: meta: %v", ErrMalformed, err)
		}
		b = append(b, `,"meta":`...)
		if b, _, err = appendCBORAsJSON(b, item, 0); err != nil {
			return b, fmt.Errorf("%w: hello: meta: %v", ErrMalformed, err)
		}
	}
	return append(b, '}'), nil
}

func (e *jsonEncoder) appendUpdate(b []byte, u scuttlebutt.Update) ([]byte, error) {
	item := u.Data
	if e.t != nil {
		var err error
		if item, err = e.t.DataToJSON(u.Data); err != nil {
			return b, fmt.Errorf("%w: update %s: %v", ErrMalformed, u, err)
		}
	}
	b = append(b, '[')
	b, rest, err := appendCBORAsJSON(b, item, 0)
	if err == nil && len(rest) > 0 {
		err = errors.New("bytes after the item")
	}
	if err != nil {
		return b, fmt.Errorf("%w: update %s: data: %v", ErrMalformed, u, err)
	}
	b = append(b, ',')
	if b, err = appendJSNumber(b, float64(u.Timestamp)); err != nil {
		return b, fmt.Errorf("%w: update %s: timestamp: %v", ErrMalformed, u, err)
	}
	b = append(b, ',')
	b = appendJSONString(b, u.Source)
	if u.Signature != nil && utf8.Valid(u.Signature) {
		b = append(b, ',')
		b = appendJSONString(b, string(u.Signature))
	}
	return append(b, ']'), nil
}

// appendCBORAsJSON appends the JSON text of the CBOR item at the start of
// item and returns the bytes after it. depth counts the enclosing
// containers.
func appendCBORAsJSON(b, item []byte, depth int) ([]byte, []byte, error) {
	if len(item) == 0 {
		return b, nil, errors.New("unexpected end of CBOR")
	}
	if depth > maxJSONDepth {
		return b, nil, fmt.Errorf("nested deeper than %d", maxJSONDepth)
	}
	major, add := item[0]&0xe0, item[0]&0x1f
	if major == majorSimple {
		switch add {
		case 20:
			return append(b, "false"...), item[1:], nil
		case 21:
			return append(b, "true"...), item[1:], nil
		case 22, 23: // null, undefined
			return append(b, "null"...), item[1:], nil
		case 25, 26, 27: // float16, float32, float64
			size := 1 << (add - 24)
			if len(item) < 1+size {
				return b, nil, errors.New("unexpected end of CBOR")
			}
			var f float64
			switch size {
			case 2:
				f = float64(float16.Frombits(binary.BigEndian.Uint16(item[1:])).Float32())
			case 4:
				f = float64(math.Float32frombits(binary.BigEndian.Uint32(item[1:])))
			default:
				f = math.Float64frombits(binary.BigEndian.Uint64(item[1:]))
			}
			b, err := appendJSNumber(b, f)
			return b, item[1+size:], err
		}
		return b, nil, fmt.Errorf("CBOR simple value %d has no JSON form", add)
	}
	r := cborReader{b: item}
	n, err := r.head(major)
	if err != nil {
		return b, nil, err
	}
	rest := item[r.off:]
	switch major {
	case majorUint:
		return strconv.AppendUint(b, n, 10), rest, nil
	case majorNegInt:
		if n == math.MaxUint64 {
			return append(b, "-18446744073709551616"...), rest, nil
		}
		return strconv.AppendUint(append(b, '-'), n+1, 10), rest, nil
	case majorBytes, majorText:
		if n > uint64(len(rest)) {
			return b, nil, errors.New("unexpected end of CBOR")
		}
		s := rest[:n]
		if major == majorBytes {
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, s)
			return append(b, '"'), rest[n:], nil
		}
		if !utf8.Valid(s) {
			return b, nil, errors.New("a text string that is not UTF-8")
		}
		return appendJSONString(b, string(s)), rest[n:], nil
	case majorArray:
		b = append(b, '[')
		for i := uint64(0); i < n; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			if b, rest, err = appendCBORAsJSON(b, rest, depth+1); err != nil {
				return b, nil, err
			}
		}
		return append(b, ']'), rest, nil
	case majorMap:
		b = append(b, '{')
		for i := uint64(0); i < n; i++ {
			if i > 0 {
				b = append(b, ',')
			}
			if len(rest) == 0 || rest[0]&0xe0 != majorText {
				return b, nil, errors.New("a map key that is not a string")
			}
			if b, rest, err = appendCBORAsJSON(b, rest, depth+1); err != nil {
				return b, nil, err
			}
			b = append(b, ':')
			if b, rest, err = appendCBORAsJSON(b, rest, depth+1); err != nil {
				return b, nil, err
			}
		}
		return append(b, '}'), rest, nil
	}
	return b, nil, errors.New("CBOR tags have no JSON form")
}

// appendJSONString appends s quoted as JavaScript's JSON.stringify quotes
// it: '"', '\\' and control characters escaped, everything else as is.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSNumber appends f as JavaScript's Number.prototype.toString (and so
// JSON.stringify) writes it: the shortest decimal that reads back to f, in
// plain notation from 1e-6 up to 1e21 and in exponent notation outside.
// That is encoding/json's float64 format (its floatEncoder) but for -0,
// which JavaScript writes as "0". NaN and infinities, which JSON cannot
// hold, are an error.
func appendJSNumber(b []byte, f float64) ([]byte, error) {
	switch abs := math.Abs(f); {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return b, fmt.Errorf("%v has no JSON form", f)
	case f == 0:
		return append(b, '0'), nil // -0 too
	case abs < 1e-6 || abs >= 1e21:
		b = strconv.AppendFloat(b, f, 'e', -1, 64)
		// Go writes at least two exponent digits: "1e-07" becomes "1e-7".
		// (From 1e21 up the exponent has two digits anyway.)
		if n := len(b); b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
		return b, nil
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64), nil
}
