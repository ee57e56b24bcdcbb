//go:build goexperiment.jsonv2

package stream

import (
	"bytes"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// The jsontext reader of BenchmarkJSONLinesReader: one Decoder, Reset for
// each line; strings and numbers read as raw values (ReadValue) and
// unquoted into a scratch buffer, which allocates less than ReadToken.
func init() {
	jsonReaders = append(jsonReaders, jsonReader{"jsontext", func(lines [][]byte) func(func(scuttlebutt.Message)) error {
		return func(f func(scuttlebutt.Message)) error {
			var r bytes.Reader
			x := &jsontextReader{dec: jsontext.NewDecoder(&r)}
			for _, l := range lines {
				if !utf8.Valid(l) { // AllowInvalidUTF8 makes a lone \ud800 U+FFFD, and bad bytes too
					return errors.New("not UTF-8")
				}
				r.Reset(l)
				x.dec.Reset(&r, jsontext.AllowInvalidUTF8(true))
				m, err := x.message()
				if err != nil {
					return err
				}
				if _, err := x.dec.ReadToken(); err != io.EOF {
					return fmt.Errorf("after the value: %v", err)
				}
				f(m)
			}
			return nil
		}
	}})
}

type jsontextReader struct {
	dec *jsontext.Decoder
	str []byte // unquoted string scratch
}

func (x *jsontextReader) message() (scuttlebutt.Message, error) {
	switch x.dec.PeekKind() {
	case '{':
		item, err := x.value(nil, 0)
		if err != nil {
			return scuttlebutt.Message{}, err
		}
		h, err := helloFromCBOR(item)
		return scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: h}, err
	case '[':
		u, err := x.update()
		return scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{u}}, err
	case '"':
		s, err := x.string()
		if err == nil && string(s) != "SYNC" {
			err = fmt.Errorf("the string %q, want \"SYNC\"", s)
		}
		return scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}, err
	}
	return scuttlebutt.Message{}, errors.New("not a header, an update or \"SYNC\"")
}

func (x *jsontextReader) update() (u scuttlebutt.Update, err error) {
	x.dec.ReadToken() // '['
	if x.dec.PeekKind() == ']' {
		return u, errors.New("an empty array")
	}
	if u.Data, err = x.value(nil, 1); err != nil {
		return u, err
	}
	if x.dec.PeekKind() != '0' {
		return u, errors.New("timestamp is not a number")
	}
	v, err := x.dec.ReadValue()
	if err != nil {
		return u, err
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if u.Timestamp = vclock.Timestamp(f); err != nil || !u.Timestamp.Valid() {
		return u, fmt.Errorf("%s is not a positive finite number", v)
	}
	if x.dec.PeekKind() != '"' {
		return u, errors.New("source is not a string")
	}
	s, err := x.string()
	if err != nil {
		return u, err
	}
	u.Source = string(s)
	for i := 3; x.dec.PeekKind() != ']'; i++ {
		if i == 3 && x.dec.PeekKind() == '"' {
			s, err := x.string()
			if err != nil {
				return u, err
			}
			u.Signature = bytes.Clone(s)
			continue
		}
		if _, err := x.value(nil, 1); err != nil { // extra: checked, dropped
			return u, err
		}
	}
	_, err = x.dec.ReadToken() // ']'
	return u, err
}

// string reads a string value, unquoted into x.str.
func (x *jsontextReader) string() ([]byte, error) {
	v, err := x.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	x.str, err = jsontext.AppendUnquote(x.str[:0], v)
	return x.str, err
}

func (x *jsontextReader) value(dst []byte, depth int) ([]byte, error) {
	switch k := x.dec.PeekKind(); k {
	case '{', '[':
		if depth >= maxJSONDepth {
			return dst, fmt.Errorf("nested deeper than %d", maxJSONDepth)
		}
		x.dec.ReadToken()
		major, end := byte(majorArray), jsontext.Kind(']')
		if k == '{' {
			major, end = majorMap, '}'
		}
		start := len(dst)
		dst = append(dst, make([]byte, 9)...) // room for the longest head
		n := uint64(0)
		for ; x.dec.PeekKind() != end; n++ {
			if k == '{' { // duplicate names: the Decoder refuses them
				s, err := x.string()
				if err != nil {
					return dst, err
				}
				dst = append(cborx.AppendHead(dst, majorText, uint64(len(s))), s...)
			}
			var err error
			if dst, err = x.value(dst, depth+1); err != nil {
				return dst, err
			}
		}
		if _, err := x.dec.ReadToken(); err != nil {
			return dst, err
		}
		return patchHead(dst, start, major, n), nil
	case '"':
		s, err := x.string()
		return append(cborx.AppendHead(dst, majorText, uint64(len(s))), s...), err
	case '0':
		v, err := x.dec.ReadValue()
		if err != nil {
			return dst, err
		}
		return appendJSONNumberAsCBOR(dst, v)
	case 't':
		x.dec.ReadToken()
		return append(dst, 0xf5), nil
	case 'f':
		x.dec.ReadToken()
		return append(dst, 0xf4), nil
	case 'n':
		x.dec.ReadToken()
		return append(dst, 0xf6), nil
	}
	_, err := x.dec.ReadToken()
	if err == nil {
		err = errors.New("unexpected token")
	}
	return dst, err
}
