package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/value"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
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
// tombstone; with options, [key, value, options], or [key, null, options]
// for a tombstone (see Payload in the package doc).
func encodeUpdate(key string, v any, tombstone bool, o options) ([]byte, error) {
	ext := !o.none()
	n := byte(0x82)
	switch {
	case ext:
		n = 0x83
		o.del = tombstone
		if tombstone {
			v = nil // [key, null, {"since": ..., "del": true}]
		}
	case tombstone:
		n = 0x81
	}
	prefix := 1 + cborx.HeadLen(uint64(len(key))) + len(key)
	var enc []byte // the v, when the encoder must make it
	hint := 0
	if !tombstone || ext {
		if hint = sizeHint(v); hint == 0 {
			var err error
			if enc, err = value.Enc.Marshal(v); err != nil {
				return nil, err
			}
			hint = len(enc)
		}
	}
	if ext {
		hint += o.size()
	}
	b := make([]byte, 0, prefix+hint)
	b = append(b, n)
	b = appendText(b, key)
	if n == 0x81 {
		return b, nil
	}
	switch v := v.(type) { // the common cases, without reflection
	case string:
		b = appendText(b, v)
	case []byte:
		b = append(cborx.AppendHead(b, 2<<5, uint64(len(v))), v...)
	case int:
		b = appendInt(b, int64(v))
	case int64:
		b = appendInt(b, v)
	case bool:
		if v {
			b = append(b, 0xf5)
		} else {
			b = append(b, 0xf4)
		}
	case nil:
		b = append(b, 0xf6)
	default:
		b = append(b, enc...)
	}
	if ext {
		b = o.append(b)
	}
	return b, nil
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

// parsed is an update payload split into its parts. It is small (32
// bytes: a plain Set's apply is measurably slower with the options in it),
// as it is made for every update; the options, if any (ext), are read
// again from the payload where needed: options(data).
type parsed struct {
	key  string // aliases the payload, which is immutable
	voff int32  // offset of the encoded value in the payload; 0 for a tombstone
	vend int32  // end of the encoded value: len(data), unless options follow
	ext  bool   // the payload has options: [key, value, options]
}

// options returns the options of data, the payload p was parsed from.
func (p parsed) options(data []byte) options {
	if !p.ext {
		return options{}
	}
	b := data[p.vend:]
	if ttl, ok := ttlOption(b); ok {
		return options{ttl: ttl} // SetTTL's, the common case
	}
	o, _ := parseOptions(b) // checked by parseUpdate
	return o
}

// parseUpdate splits the payload of a Model update, [key, value], [key] or
// [key, value, options], without copying or decoding the value, and checks
// the options. The key aliases data: update payloads are never modified.
func parseUpdate(data []byte) (parsed, error) {
	var p parsed
	if len(data) < 2 || (data[0] != 0x81 && data[0] != 0x82 && data[0] != 0x83) {
		return p, fmt.Errorf("%w: payload is not [key, value], [key] or [key, value, options]", ErrInvalidValue)
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
	p.voff, p.vend = int32(end), int32(len(data))
	if data[0] == 0x82 {
		return p, nil
	}
	vlen, err := valueLen(data[end:])
	if err != nil {
		return p, fmt.Errorf("%w: value: %v", ErrInvalidValue, err)
	}
	p.vend, p.ext = int32(end+vlen), true
	o, err := parseOptions(data[p.vend:])
	if err != nil {
		return p, err
	}
	if o.del {
		if vlen != 1 || data[end] != 0xf6 {
			return p, fmt.Errorf("%w: a tombstone with options has a value other than null", ErrInvalidValue)
		}
		p.voff = 0
	}
	return p, nil
}

// valueLen returns the length of the value at the start of b: from its
// head alone for a number, a simple value or a string, which need no scan.
func valueLen(b []byte) (int, error) {
	r := cborx.NewReader(b)
	major, info, arg, err := r.Head()
	if err != nil {
		return 0, err
	}
	switch major {
	case cborx.MajorUint, cborx.MajorNeg, cborx.MajorSimple:
		if major != cborx.MajorSimple || info != 31 {
			return r.Off(), nil
		}
	case cborx.MajorText, cborx.MajorBytes:
		if arg <= uint64(r.Len()) {
			return r.Off() + int(arg), nil
		}
	}
	return cborx.Item(b, scuttlebutt.MaxNesting)
}

// keyOf returns the key of a payload parseUpdate accepted, aliasing it.
func keyOf(data []byte) string {
	r := cborx.NewReader(data[1:])
	k, _ := r.Text()
	if len(k) == 0 {
		return ""
	}
	return unsafe.String(&k[0], len(k))
}

// Bounds of the options, checked on every update, local or remote.
const (
	// MaxTTL is the longest time to live SetTTL accepts: 10 years.
	MaxTTL = 10 * 365 * 24 * time.Hour
	// MaxLease is the longest Config.Lease: one hour. It also bounds how
	// long the record of a holding is kept (see Leases in the package doc).
	MaxLease = time.Hour
)

// options are the options of a payload [key, value, options]: a CBOR map
// with text keys, written in this order, each at most once.
type options struct {
	ttl   uint64           // "ttl": time to live in ms, 1 to MaxTTL; 0: none
	lease uint64           // "lease": lease in ms, 1 to MaxLease; 0: none
	since vclock.Timestamp // "since": the claim the write continues (a timestamp); 0: none
	del   bool             // "del": true: the update is a tombstone (its value is null)
	tomb  bool             // "tomb": true: once the ttl runs out the key reads as deleted, and the update stays
}

const (
	optTTL   = "ttl"
	optLease = "lease"
	optSince = "since"
	optDel   = "del"
	optTomb  = "tomb"
)

// none reports whether o has no option, so that the payload is [key,
// value] or [key].
func (o options) none() bool { return o.ttl == 0 && o.ttlOnly() }

// ttlOnly reports whether o has no option but a ttl (or none at all). It
// compares field by field: == on options calls the compiler's equality
// function for the type, on every write.
func (o options) ttlOnly() bool { return o.lease == 0 && o.since == 0 && !o.del && !o.tomb }

// selfChecked reports whether o, which plan made, are options that
// parseOptions accepts whatever the payload's key and value: none, or a
// ttl within bounds and perhaps "tomb" (a SetTTL without lease), so that
// a payload encodeUpdate writes with them needs no second check.
func (o options) selfChecked() bool {
	if o.none() {
		return true
	}
	return o.lease == 0 && o.since == 0 && !o.del && o.ttl != 0 && o.ttl <= uint64(MaxTTL/time.Millisecond)
}

// size returns the encoded size of o, so that a payload is allocated at its
// exact size (it lives as long as the key).
func (o options) size() int {
	n := 1
	if o.ttl != 0 {
		n += 1 + len(optTTL) + cborx.HeadLen(o.ttl)
	}
	if o.lease != 0 {
		n += 1 + len(optLease) + cborx.HeadLen(o.lease)
	}
	if o.since != 0 {
		n += 1 + len(optSince) + 9
	}
	if o.del {
		n += 1 + len(optDel) + 1
	}
	if o.tomb {
		n += 1 + len(optTomb) + 1
	}
	return n
}

// append appends o as a CBOR map.
func (o options) append(b []byte) []byte {
	if o.ttlOnly() {
		return cborx.AppendHead(append(b, ttlPrefix...), cborx.MajorUint, o.ttl)
	}
	n := 0
	for _, set := range []bool{o.ttl != 0, o.lease != 0, o.since != 0, o.del, o.tomb} {
		if set {
			n++
		}
	}
	b = cborx.AppendHead(b, cborx.MajorMap, uint64(n))
	if o.ttl != 0 {
		b = cborx.AppendHead(appendText(b, optTTL), cborx.MajorUint, o.ttl)
	}
	if o.lease != 0 {
		b = cborx.AppendHead(appendText(b, optLease), cborx.MajorUint, o.lease)
	}
	if o.since != 0 {
		b = appendText(b, optSince)
		b = binary.BigEndian.AppendUint64(append(b, cborx.Float64), math.Float64bits(float64(o.since)))
	}
	if o.del {
		b = append(appendText(b, optDel), 0xf5)
	}
	if o.tomb {
		b = append(appendText(b, optTomb), 0xf5)
	}
	return b
}

// ttlPrefix is how options {"ttl": n} start: a map of one entry, and its
// key; the head of n follows.
const ttlPrefix = "\xa1\x63" + optTTL

// ttlOption reads options that are SetTTL's {"ttl": n}, the common case,
// without the general loop of parseOptions: ok is false unless b is that
// map with n within bounds, as parseOptions would read it.
func ttlOption(b []byte) (ttl uint64, ok bool) {
	if len(b) <= len(ttlPrefix) || string(b[:len(ttlPrefix)]) != ttlPrefix {
		return 0, false
	}
	h := b[len(ttlPrefix):] // the head of n, all of it
	if h[0]>>5 != 0 {
		return 0, false
	}
	switch info := h[0] & 0x1f; {
	case info < 24 && len(h) == 1:
		ttl = uint64(info)
	case info == 24 && len(h) == 2:
		ttl = uint64(h[1])
	case info == 25 && len(h) == 3:
		ttl = uint64(binary.BigEndian.Uint16(h[1:]))
	case info == 26 && len(h) == 5:
		ttl = uint64(binary.BigEndian.Uint32(h[1:]))
	case info == 27 && len(h) == 9:
		ttl = binary.BigEndian.Uint64(h[1:])
	default:
		return 0, false
	}
	return ttl, ttl != 0 && ttl <= uint64(MaxTTL/time.Millisecond)
}

// parseOptions reads the options map, which must be the whole of b, and
// checks every bound: known keys, each once; ttl and lease whole
// milliseconds within MaxTTL and MaxLease; since a valid timestamp; del
// and tomb true when present; tomb only with a ttl; del with nothing but
// since. An empty map is refused: a payload without options has two
// elements.
func parseOptions(b []byte) (o options, err error) {
	if ttl, ok := ttlOption(b); ok {
		return options{ttl: ttl}, nil
	}
	bad := func(format string, args ...any) (options, error) {
		return options{}, fmt.Errorf("%w: options: "+format, append([]any{ErrInvalidValue}, args...)...)
	}
	r := cborx.NewReader(b)
	n, err := r.HeadOf(cborx.MajorMap)
	if err != nil {
		return bad("%v", err)
	}
	if n == 0 || n > 5 {
		return bad("a map of %d entries", n)
	}
	var seen [5]bool
	for range n {
		k, err := r.Text()
		if err != nil {
			return bad("key: %v", err)
		}
		i := -1
		switch string(k) {
		case optTTL:
			i = 0
		case optLease:
			i = 1
		case optSince:
			i = 2
		case optDel:
			i = 3
		case optTomb:
			i = 4
		default:
			return bad("unknown option %q", k)
		}
		if seen[i] {
			return bad("%q twice", k)
		}
		seen[i] = true
		switch i {
		case 0, 1:
			v, err := r.HeadOf(cborx.MajorUint)
			if err != nil {
				return bad("%s: %v", k, err)
			}
			limit := uint64(MaxTTL / time.Millisecond)
			if i == 1 {
				limit = uint64(MaxLease / time.Millisecond)
			}
			if v == 0 || v > limit {
				return bad("%s %d ms is not within 1 to %d", k, v, limit)
			}
			if i == 0 {
				o.ttl = v
			} else {
				o.lease = v
			}
		case 2:
			f, err := r.Number()
			if err != nil {
				return bad("since: %v", err)
			}
			if o.since = vclock.Timestamp(f); !o.since.Valid() {
				return bad("since %v is not a positive finite timestamp", f)
			}
		case 3, 4:
			major, info, _, err := r.Head()
			if err != nil || major != cborx.MajorSimple || info != 21 {
				return bad("%s is not true", k)
			}
			if i == 3 {
				o.del = true
			} else {
				o.tomb = true
			}
		}
	}
	if r.Len() != 0 {
		return bad("%d bytes after the options", r.Len())
	}
	switch {
	case o.tomb && o.ttl == 0:
		return bad("tomb without a ttl")
	case o.del && (o.ttl != 0 || o.lease != 0 || o.tomb):
		return bad("a tombstone with a ttl or a lease")
	case o.del && o.since == 0:
		return bad("a tombstone with options but no since")
	}
	return o, nil
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
