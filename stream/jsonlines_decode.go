package stream

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
	"github.com/x448/float16"
)

// jsonDecoder reads JSON lines. Errors are sticky.
type jsonDecoder struct {
	t        JSONTranscoder
	br       *bufio.Reader
	max      int
	n        int64  // bytes consumed
	lineNo   int    // lines consumed
	long     []byte // a line longer than the bufio buffer
	syncSeen bool
	err      error // sticky; returned once the batch before it is out
}

func newJSONDecoder(t JSONTranscoder, r io.Reader, max int) *jsonDecoder {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	return &jsonDecoder{t: t, br: bufio.NewReaderSize(r, min(max+2, 64<<10)), max: max}
}

func (d *jsonDecoder) bytesRead() int64 { return d.n }

// recycle keeps nothing: the JSON-lines decoder makes a slice a batch.
func (d *jsonDecoder) recycle([]scuttlebutt.Update) {}

// readLine returns the next line without its "\n". The slice is valid until
// the next call. A last line without "\n" comes with io.EOF (and is not
// empty); a clean end is io.EOF and an empty line. The limit counts the
// line without "\n" and without a "\r" before it.
func (d *jsonDecoder) readLine() ([]byte, error) {
	d.long = d.long[:0]
	for {
		chunk, err := d.br.ReadSlice('\n')
		d.n += int64(len(chunk))
		var line []byte
		switch {
		case err == nil && len(d.long) == 0:
			line = chunk[:len(chunk)-1]
		case err == nil:
			d.long = append(d.long, chunk[:len(chunk)-1]...)
			line = d.long
		case errors.Is(err, bufio.ErrBufferFull):
			d.long = append(d.long, chunk...)
			if len(d.long) > d.max+1 {
				return nil, d.tooLong()
			}
			continue
		case err == io.EOF:
			d.long = append(d.long, chunk...)
			if len(d.long) == 0 {
				return nil, io.EOF
			}
			line = d.long
		default:
			return nil, fmt.Errorf("stream: read: %w", err)
		}
		if len(bytes.TrimSuffix(line, []byte("\r"))) > d.max {
			return nil, d.tooLong()
		}
		d.lineNo++
		return line, err
	}
}

func (d *jsonDecoder) tooLong() error {
	return fmt.Errorf("%w: line %d is longer than %d bytes", ErrFrameTooLarge, d.lineNo+1, d.max)
}

func (d *jsonDecoder) readMessage() (scuttlebutt.Message, error) {
	for {
		if d.err != nil {
			return scuttlebutt.Message{}, d.err
		}
		line, rerr := d.readLine()
		if rerr != nil && rerr != io.EOF {
			d.err = rerr
			continue
		}
		if rerr == io.EOF && len(line) == 0 {
			d.err = io.EOF
			continue
		}
		m, skip, err := d.parseLine(line)
		if err != nil {
			if rerr == io.EOF {
				err = fmt.Errorf("%w (the last line has no end): %w", ErrTruncated, err)
			}
			d.err = err
			continue
		}
		if rerr == io.EOF {
			d.err = io.EOF // after this message
		}
		if skip {
			continue
		}
		if m.Kind == scuttlebutt.MsgUpdates && rerr == nil {
			m.Updates = d.batch(m.Updates)
		}
		return m, nil
	}
}

// batch appends the updates of the complete update lines that have already
// arrived, so a long history is applied in batches. A line that fails to
// decode is left for the next readMessage to report.
func (d *jsonDecoder) batch(us []scuttlebutt.Update) []scuttlebutt.Update {
	size := 0
	for len(us) < maxJSONBatch && size < d.max {
		buf, _ := d.br.Peek(d.br.Buffered())
		i := bytes.IndexByte(buf, '\n')
		if i < 0 || !bytes.HasPrefix(bytes.TrimLeft(buf[:i], " \t"), []byte("[")) {
			return us
		}
		line := bytes.TrimSuffix(buf[:i], []byte("\r"))
		if len(line) > d.max {
			return us // read it again to report it
		}
		m, _, err := d.parseLine(line)
		if err != nil {
			return us // read it again to report it
		}
		d.br.Discard(i + 1)
		d.n += int64(i + 1)
		d.lineNo++
		size += i + 1
		us = append(us, m.Updates...)
	}
	return us
}

// parseLine decodes one line. skip reports a line that carries nothing for
// the link (a repeated "SYNC").
func (d *jsonDecoder) parseLine(line []byte) (m scuttlebutt.Message, skip bool, err error) {
	p := jsonParser{b: line}
	p.ws()
	if p.off == len(p.b) {
		return m, false, fmt.Errorf("%w: line %d is blank", ErrMalformed, d.lineNo)
	}
	switch p.b[p.off] {
	case '{':
		h, err := p.hello()
		if err != nil {
			return m, false, fmt.Errorf("%w: line %d: header: %v", ErrMalformed, d.lineNo, err)
		}
		return scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: h}, false, nil
	case '[':
		u, err := p.update(d.t)
		if err != nil {
			return m, false, fmt.Errorf("%w: line %d: update: %v", ErrMalformed, d.lineNo, err)
		}
		return scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: []scuttlebutt.Update{u}}, false, nil
	case '"':
		s, err := p.str()
		if err == nil {
			err = p.end()
		}
		if err != nil {
			return m, false, fmt.Errorf("%w: line %d: %v", ErrMalformed, d.lineNo, err)
		}
		if string(s) != "SYNC" {
			return m, false, fmt.Errorf("%w: line %d: the string %q, want \"SYNC\"", ErrMalformed, d.lineNo, s)
		}
		if d.syncSeen {
			return m, true, nil
		}
		d.syncSeen = true
		return scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: vclock.Clock{}}, false, nil
	}
	// Validate it, to say which is wrong: the JSON or what it holds.
	if _, err := p.value(nil, 0); err != nil {
		return m, false, fmt.Errorf("%w: line %d: %v", ErrMalformed, d.lineNo, err)
	}
	return m, false, fmt.Errorf("%w: line %d is not a header, an update or \"SYNC\"", ErrMalformed, d.lineNo)
}

// jsonParser reads one line of JSON (RFC 8259, as JSON.parse accepts it) and
// transcodes values to CBOR.
type jsonParser struct {
	b   []byte
	off int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("column %d: %s", p.off+1, fmt.Sprintf(format, args...))
}

func (p *jsonParser) ws() {
	for p.off < len(p.b) {
		switch p.b[p.off] {
		case ' ', '\t', '\r', '\n':
			p.off++
		default:
			return
		}
	}
}

// end checks that nothing but whitespace follows.
func (p *jsonParser) end() error {
	p.ws()
	if p.off != len(p.b) {
		return p.errorf("%q after the value", clip(p.b[p.off:]))
	}
	return nil
}

// next skips whitespace and reports the next byte, 0 at the end.
func (p *jsonParser) next() byte {
	p.ws()
	if p.off < len(p.b) {
		return p.b[p.off]
	}
	return 0
}

func (p *jsonParser) expect(c byte) error {
	if p.next() != c {
		return p.unexpected()
	}
	p.off++
	return nil
}

func (p *jsonParser) unexpected() error {
	if p.off >= len(p.b) {
		return p.errorf("unexpected end of line")
	}
	r, _ := utf8.DecodeRune(p.b[p.off:])
	return p.errorf("unexpected %q", r)
}

// hello reads a header object.
func (p *jsonParser) hello() (*scuttlebutt.Hello, error) {
	item, err := p.value(nil, 0)
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	return helloFromCBOR(item)
}

// helloFromCBOR makes a header of the CBOR form of its JSON object.
func helloFromCBOR(item []byte) (*scuttlebutt.Hello, error) {
	var fields map[string]any
	if err := decMode.Unmarshal(item, &fields); err != nil {
		return nil, err
	}
	h := &scuttlebutt.Hello{Version: scuttlebutt.ProtocolVersion, Meta: fields["meta"]}
	if id, ok := fields["id"]; ok {
		s, ok := id.(string)
		if !ok {
			return nil, fmt.Errorf("id is %s, not a string", jsonType(id))
		}
		h.ID = s
	}
	raw, ok := fields["clock"]
	if !ok || raw == nil {
		return nil, errors.New("no clock")
	}
	clock, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("clock is %s, not an object", jsonType(raw))
	}
	h.Clock = make(vclock.Clock, len(clock))
	for src, v := range clock {
		var t float64
		switch v := v.(type) {
		case nil:
			continue // JavaScript: a falsy entry means nothing seen
		case int64:
			t = float64(v)
		case uint64:
			t = float64(v)
		case float64:
			t = v
		default:
			return nil, fmt.Errorf("clock entry %q is %s, not a number", src, jsonType(v))
		}
		h.Clock[src] = vclock.Timestamp(t)
	}
	return h, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int64, uint64, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// update reads [data, timestamp, source, signature?, ...].
func (p *jsonParser) update(t JSONTranscoder) (scuttlebutt.Update, error) {
	var u scuttlebutt.Update
	if err := p.expect('['); err != nil {
		return u, err
	}
	if p.next() == ']' {
		return u, p.errorf("an empty array")
	}
	item, err := p.value(nil, 1)
	if err != nil {
		return u, fmt.Errorf("data: %w", err)
	}
	if t != nil {
		if item, err = t.DataFromJSON(item); err != nil {
			return u, fmt.Errorf("data: %w", err)
		}
	}
	u.Data = item
	if err := p.expect(','); err != nil {
		return u, fmt.Errorf("no timestamp: %w", err)
	}
	ts, err := p.timestamp()
	if err != nil {
		return u, fmt.Errorf("timestamp: %w", err)
	}
	u.Timestamp = ts
	if err := p.expect(','); err != nil {
		return u, fmt.Errorf("no source: %w", err)
	}
	if p.next() != '"' {
		return u, fmt.Errorf("source: %w", p.unexpected())
	}
	src, err := p.str()
	if err != nil {
		return u, fmt.Errorf("source: %w", err)
	}
	u.Source = string(src)
	for i := 3; ; i++ {
		switch p.next() {
		case ']':
			p.off++
			return u, p.end()
		case ',':
			p.off++
		default:
			return u, p.unexpected()
		}
		if i == 3 && p.next() == '"' {
			sig, err := p.str()
			if err != nil {
				return u, fmt.Errorf("signature: %w", err)
			}
			u.Signature = []byte(string(sig))
			continue
		}
		if _, err := p.value(nil, 1); err != nil { // extra: checked, dropped
			return u, err
		}
	}
}

// timestamp reads a number that is a valid timestamp.
func (p *jsonParser) timestamp() (vclock.Timestamp, error) {
	c := p.next()
	if c != '-' && (c < '0' || c > '9') {
		return 0, p.unexpected()
	}
	text, err := p.number()
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(string(text), 64)
	t := vclock.Timestamp(f)
	if err != nil || !t.Valid() {
		return 0, fmt.Errorf("%s is not a positive finite number", text)
	}
	return t, nil
}

// value appends the CBOR form of the JSON value at the cursor. depth is
// the nesting of the value's container.
func (p *jsonParser) value(dst []byte, depth int) ([]byte, error) {
	switch c := p.next(); {
	case c == '{' || c == '[':
		if depth >= maxJSONDepth {
			return dst, p.errorf("nested deeper than %d", maxJSONDepth)
		}
		if c == '{' {
			return p.object(dst, depth+1)
		}
		return p.array(dst, depth+1)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return dst, err
		}
		return append(cborx.AppendHead(dst, majorText, uint64(len(s))), s...), nil
	case c == 't':
		return p.literal(dst, "true", 0xf5)
	case c == 'f':
		return p.literal(dst, "false", 0xf4)
	case c == 'n':
		return p.literal(dst, "null", 0xf6)
	case c == '-' || c >= '0' && c <= '9':
		text, err := p.number()
		if err != nil {
			return dst, err
		}
		return appendJSONNumberAsCBOR(dst, text)
	}
	return dst, p.unexpected()
}

func (p *jsonParser) literal(dst []byte, word string, b byte) ([]byte, error) {
	if !bytes.HasPrefix(p.b[p.off:], []byte(word)) {
		return dst, p.unexpected()
	}
	p.off += len(word)
	return append(dst, b), nil
}

// container appends a definite-length CBOR array or map of the elements
// that elem appends, n of them, given the head's major type.
func (p *jsonParser) container(dst []byte, major, close byte, elem func([]byte) ([]byte, error)) ([]byte, error) {
	p.off++ // the opening bracket
	start := len(dst)
	dst = append(dst, make([]byte, 9)...) // room for the longest head
	n := uint64(0)
	if p.next() == close {
		p.off++
	} else {
		for {
			var err error
			if dst, err = elem(dst); err != nil {
				return dst, err
			}
			n++
			switch p.next() {
			case ',':
				p.off++
				continue
			case close:
				p.off++
			default:
				return dst, p.unexpected()
			}
			break
		}
	}
	return patchHead(dst, start, major, n), nil
}

// patchHead writes, at dst[start:], the head of a container of n elements
// that follow it, in place of the 9 bytes reserved for the longest head.
func patchHead(dst []byte, start int, major byte, n uint64) []byte {
	var head [9]byte
	h := cborx.AppendHead(head[:0], major, n)
	copy(dst[start+len(h):], dst[start+9:])
	copy(dst[start:], h)
	return dst[:len(dst)-(9-len(h))]
}

func (p *jsonParser) array(dst []byte, depth int) ([]byte, error) {
	return p.container(dst, majorArray, ']', func(b []byte) ([]byte, error) {
		return p.value(b, depth)
	})
}

func (p *jsonParser) object(dst []byte, depth int) ([]byte, error) {
	var keys []string
	var seen map[string]bool
	return p.container(dst, majorMap, '}', func(b []byte) ([]byte, error) {
		if p.next() != '"' {
			return b, p.unexpected()
		}
		k, err := p.str()
		if err != nil {
			return b, err
		}
		// Check for duplicates: by scan while few, by map after.
		dup := false
		if seen != nil {
			dup = seen[string(k)]
			seen[string(k)] = true
		} else {
			dup = slices.Contains(keys, string(k))
			keys = append(keys, string(k))
			if len(keys) > 16 {
				seen = make(map[string]bool, 2*len(keys))
				for _, k := range keys {
					seen[k] = true
				}
			}
		}
		if dup {
			return b, p.errorf("duplicate key %q", k)
		}
		b = append(cborx.AppendHead(b, majorText, uint64(len(k))), k...)
		if err := p.expect(':'); err != nil {
			return b, err
		}
		return p.value(b, depth)
	})
}

// str reads a JSON string at the cursor, which is at its opening quote,
// and returns its UTF-8 text. The result may alias the line.
func (p *jsonParser) str() ([]byte, error) {
	p.off++
	start := p.off
	// Fast path: no escapes.
	for p.off < len(p.b) {
		c := p.b[p.off]
		if c == '"' {
			s := p.b[start:p.off]
			if !utf8.Valid(s) {
				return nil, p.errorf("a string that is not UTF-8")
			}
			p.off++
			return s, nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, p.errorf("control character %#02x in a string", c)
		}
		p.off++
	}
	out := append([]byte(nil), p.b[start:p.off]...)
	for p.off < len(p.b) {
		c := p.b[p.off]
		switch {
		case c == '"':
			if !utf8.Valid(out) {
				return nil, p.errorf("a string that is not UTF-8")
			}
			p.off++
			return out, nil
		case c < 0x20:
			return nil, p.errorf("control character %#02x in a string", c)
		case c != '\\':
			out = append(out, c)
			p.off++
			continue
		}
		if p.off+1 >= len(p.b) {
			break
		}
		e := p.b[p.off+1]
		p.off += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.errorf("a bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if bytes.HasPrefix(p.b[p.off:], []byte(`\u`)) {
					save := p.off
					p.off += 2
					var ok bool
					if r2, ok = p.hex4(); !ok {
						return nil, p.errorf("a bad \\u escape")
					}
					if utf16.DecodeRune(r, r2) == utf8.RuneError {
						p.off = save // not a pair: the second stands alone
						r2 = -1
					}
				}
				if r2 >= 0 {
					r = utf16.DecodeRune(r, r2)
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			p.off -= 2
			return nil, p.errorf("a bad escape \\%c", e)
		}
	}
	return nil, p.errorf("unterminated string")
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.off < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.off : p.off+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.off += 4
	return r, true
}

// number reads a JSON number's text: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonParser) number() ([]byte, error) {
	start := p.off
	digits := func() int {
		n := 0
		for p.off < len(p.b) && p.b[p.off] >= '0' && p.b[p.off] <= '9' {
			p.off++
			n++
		}
		return n
	}
	if p.off < len(p.b) && p.b[p.off] == '-' {
		p.off++
	}
	switch {
	case p.off < len(p.b) && p.b[p.off] == '0':
		p.off++
	case digits() == 0:
		return nil, p.unexpected()
	}
	if p.off < len(p.b) && p.b[p.off] == '.' {
		p.off++
		if digits() == 0 {
			return nil, p.unexpected()
		}
	}
	if p.off < len(p.b) && (p.b[p.off] == 'e' || p.b[p.off] == 'E') {
		p.off++
		if p.off < len(p.b) && (p.b[p.off] == '+' || p.b[p.off] == '-') {
			p.off++
		}
		if digits() == 0 {
			return nil, p.unexpected()
		}
	}
	return p.b[start:p.off], nil
}

// appendJSONNumberAsCBOR appends the CBOR form of a JSON number: an integer
// if the text is an integer literal within int64, else the nearest float64.
func appendJSONNumberAsCBOR(dst []byte, text []byte) ([]byte, error) {
	if !bytes.ContainsAny(text, ".eE") {
		if n, err := strconv.ParseInt(string(text), 10, 64); err == nil {
			if n >= 0 {
				return cborx.AppendHead(dst, majorUint, uint64(n)), nil
			}
			return cborx.AppendHead(dst, majorNegInt, uint64(-(n + 1))), nil
		}
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
		return dst, fmt.Errorf("the number %s is out of range", text)
	}
	return appendCBORFloat(dst, f), nil
}

// appendCBORFloat appends f, finite, in the shortest CBOR float that holds
// it exactly, as model.Model's encoder (value.Enc, ShortestFloat16) does.
func appendCBORFloat(b []byte, f float64) []byte {
	f32 := float32(f)
	if float64(f32) != f {
		return binary.BigEndian.AppendUint64(append(b, float64Tag), math.Float64bits(f))
	}
	if h := float16.Fromfloat32(f32); h.Float32() == f32 {
		return binary.BigEndian.AppendUint16(append(b, 0xf9), h.Bits())
	}
	return binary.BigEndian.AppendUint32(append(b, 0xfa), math.Float32bits(f32))
}

func clip(b []byte) []byte {
	if len(b) > 20 {
		return b[:20]
	}
	return b
}
