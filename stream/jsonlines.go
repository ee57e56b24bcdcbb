package stream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// JSONLines is the codec of JavaScript scuttlebutt@5.6.15 (dominictarr's):
// newline-delimited JSON, byte for byte as Node writes it, so a Go replica
// can be piped to a Node one:
//
//	c := stream.NewConn(m, conn, &stream.Options{Codec: stream.JSONLines})
//
// It is the same protocol as the native codec; only the bytes differ. Each
// message is one line of compact JSON ended by "\n":
//
//	{"id":"A","clock":{"A":1795385884149.001}}   hello ("meta" follows when set)
//	[["k","v"],1795385884149,"A"]                one line per update: [data, timestamp, source]
//	"SYNC"                                       end of the history
//
// The mapping, and where it loses something:
//
//   - hello: id, clock and meta; JavaScript sends no version, so a received
//     header is protocol version 1. Clock entries are written in sorted
//     order. A null clock entry reads as absent (JavaScript's "send
//     everything from that source").
//   - updates: [data, timestamp, source], plus the signature as a 4th
//     element when the update has one that is UTF-8 text (JavaScript's
//     security plugin puts a base64 string there). Elements after the 4th
//     are accepted and dropped; so is a 4th that is not a string.
//   - sync: the clock it carries has no JSON form and is dropped; a received
//     "SYNC" is a sync with an empty clock. A second "SYNC" on the same
//     stream (JavaScript's one-way master/slave streams send one) is
//     skipped.
//   - clock messages have no JSON form: nothing is written.
//
// Update data is CBOR; on this wire it is JSON. A Document that implements
// JSONTranscoder (model.Model does) reshapes it; otherwise the generic
// mapping below applies both ways.
//
//   - Numbers: a JSON integer literal (digits, optional minus, no fraction
//     or exponent) that fits in int64 becomes a CBOR integer, exactly;
//     every other number becomes a float64, the nearest one, as
//     JavaScript's JSON.parse does (the CBOR float is the shortest that
//     holds it exactly). Numbers are written as JavaScript writes them:
//     integers in full, floats as the shortest decimal that reads back to
//     the same float64, with an exponent below 1e-6 and from 1e21 up
//     ("1e+300", "1.5e-7"), and -0 as "0". A number from JavaScript
//     therefore goes back to JavaScript as the same text. A Go float64
//     that holds an integer (2.0) comes back as an int64, and integers
//     beyond ±2^53 do not survive JavaScript's doubles.
//   - Strings are UTF-8 and are written as JSON.stringify writes them: only
//     '"', '\\' and control characters are escaped. A lone UTF-16
//     surrogate escape (\ud800) reads as U+FFFD.
//   - CBOR byte strings have no JSON form: they are written as base64
//     strings (padded, standard alphabet) and come back as strings.
//   - Objects keep their key order, both ways; duplicate keys are an error.
//     Maps with keys that are not strings, CBOR tags, NaN and infinities
//     cannot be written: the session ends with ErrMalformed.
//
// Received input is checked more strictly than JavaScript does: a line
// that is not valid JSON or UTF-8, a blank line, a line longer than
// Options.MaxFrameSize (ErrFrameTooLarge), a header without a clock object,
// an update whose timestamp is not a positive finite number or whose source
// is not a string, and a line that is none of a header, an update or
// "SYNC", each end the session with an error wrapping ErrMalformed, and
// nothing of that line is applied. A last line without "\n" that does not
// parse is ErrTruncated. "\r\n" line ends are accepted, and a UTF-8
// character split across reads is reassembled.
var JSONLines Codec = jsonCodec{}

// JSONTranscoder is implemented by documents whose update data, which is
// CBOR, takes another shape in JavaScript's JSON than the generic mapping
// gives. Both methods work on CBOR: the codec turns JSON text into a CBOR
// item (or back) with the generic mapping, and the transcoder reshapes the
// item. Package model's Model implements it to map its tombstone [key] to
// JavaScript's [key, null].
//
// The methods may be called concurrently, from any session's goroutines;
// they must not depend on the document's state.
type JSONTranscoder interface {
	// DataToJSON returns, as one CBOR item, the value whose JSON text is the
	// change JavaScript expects for the update data.
	DataToJSON(data []byte) (item []byte, err error)
	// DataFromJSON returns the update data for a change that arrived as
	// JSON, given as the CBOR item the generic mapping made of it. An error
	// ends the session: the change is malformed.
	DataFromJSON(item []byte) (data []byte, err error)
}

type jsonCodec struct{}

func (jsonCodec) String() string { return "jsonlines" }

func (jsonCodec) newEncoder(d scuttlebutt.Document, maxFrame int) encoder {
	t, _ := d.(JSONTranscoder)
	return &jsonEncoder{t: t, max: maxFrame}
}

func (jsonCodec) newDecoder(d scuttlebutt.Document, r io.Reader, maxFrame int) decoder {
	t, _ := d.(JSONTranscoder)
	return newJSONDecoder(t, r, maxFrame)
}

// syncLine is the JavaScript end-of-history marker.
const syncLine = `"SYNC"`

// maxJSONBatch bounds how many update lines that have already arrived are
// decoded into one message.
const maxJSONBatch = 512

// jsonEncoder writes messages as JSON lines.
type jsonEncoder struct {
	t   JSONTranscoder
	max int
	tmp []byte // CBOR scratch
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

// maxJSONDepth bounds the nesting of arrays and objects in a line: an
// update's data may nest scuttlebutt.MaxNesting deep, inside the update.
const maxJSONDepth = scuttlebutt.MaxNesting + 1

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
	var head [9]byte
	h := cborx.AppendHead(head[:0], major, n)
	copy(dst[start+len(h):], dst[start+9:])
	copy(dst[start:], h)
	return dst[:len(dst)-(9-len(h))], nil
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

// CBOR major types besides those of codec.go.
const (
	majorUint   = 0 << 5
	majorNegInt = 1 << 5
	majorMap    = 5 << 5
	majorSimple = 7 << 5
)

// appendCBORFloat appends f in the shortest CBOR float that holds it
// exactly, as model.Model's encoder does.
func appendCBORFloat(b []byte, f float64) []byte {
	if h, ok := float16Bits(f); ok {
		return append(b, 0xf9, byte(h>>8), byte(h))
	}
	if f32 := float32(f); float64(f32) == f {
		return binary.BigEndian.AppendUint32(append(b, 0xfa), math.Float32bits(f32))
	}
	return binary.BigEndian.AppendUint64(append(b, float64Tag), math.Float64bits(f))
}

// float16Bits returns the IEEE 754 half-precision bits of f if f, finite,
// is exactly representable in that format.
func float16Bits(f float64) (uint16, bool) {
	bits := math.Float64bits(f)
	sign := uint16(bits>>48) & 0x8000
	exp := int(bits>>52&0x7ff) - 1023
	mant := bits & (1<<52 - 1)
	switch {
	case bits&^(1<<63) == 0:
		return sign, true
	case exp >= -14 && exp <= 15:
		if mant&(1<<42-1) != 0 {
			return 0, false
		}
		return sign | uint16(exp+15)<<10 | uint16(mant>>42), true
	case exp >= -24 && exp < -14:
		sig := mant | 1<<52
		shift := uint(52 - (exp + 24))
		if sig&(1<<shift-1) != 0 {
			return 0, false
		}
		return sign | uint16(sig>>shift), true
	}
	return 0, false
}

// float16Value decodes IEEE 754 half-precision bits.
func float16Value(h uint16) float64 {
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	var f float64
	switch exp {
	case 0:
		f = math.Ldexp(mant, -24)
	case 0x1f:
		f = math.Inf(1)
		if mant != 0 {
			f = math.NaN()
		}
	default:
		f = math.Ldexp(mant+1024, exp-25)
	}
	if h&0x8000 != 0 {
		f = -f
	}
	return f
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
		case 25, 26, 27:
			size := 1 << (add - 24)
			if len(item) < 1+size {
				return b, nil, errors.New("unexpected end of CBOR")
			}
			var f float64
			switch size {
			case 2:
				f = float16Value(binary.BigEndian.Uint16(item[1:]))
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
// NaN and infinities, which JSON cannot hold, are an error.
func appendJSNumber(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("%v has no JSON form", f)
	}
	if f == 0 {
		return append(b, '0'), nil // -0 too
	}
	if f < 0 {
		b = append(b, '-')
		f = -f
	}
	// Shortest digits d1.d2d3...e±x, then ECMA-262 Number::toString.
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	mant, exp, _ := bytes.Cut(e, []byte("e"))
	digits := make([]byte, 0, len(mant))
	for _, c := range mant {
		if c != '.' {
			digits = append(digits, c)
		}
	}
	x, _ := strconv.Atoi(string(exp))
	k, n := len(digits), x+1 // f = 0.digits × 10^n
	switch {
	case k <= n && n <= 21:
		b = append(b, digits...)
		for range n - k {
			b = append(b, '0')
		}
	case 0 < n && n <= 21:
		b = append(b, digits[:n]...)
		b = append(b, '.')
		b = append(b, digits[n:]...)
	case -6 < n && n <= 0:
		b = append(b, '0', '.')
		for range -n {
			b = append(b, '0')
		}
		b = append(b, digits...)
	default:
		b = append(b, digits[0])
		if k > 1 {
			b = append(b, '.')
			b = append(b, digits[1:]...)
		}
		b = append(b, 'e')
		if n-1 >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return b, nil
}

func clip(b []byte) []byte {
	if len(b) > 20 {
		return b[:20]
	}
	return b
}

// LoadJSONLines applies to d a replica saved in JavaScript scuttlebutt's
// persistence format, which is its wire format written to a file:
//
//	model.createReadStream().pipe(fs.createWriteStream(file))  // Node
//	stream.SaveJSONLines(ctx, m, f)                             // Go
//
// It reads r to its end: the header, the updates, "SYNC" and any updates a
// tailing save appended after it. Updates are applied in batches as they
// are read, with d's validation, as Scuttlebutt.Apply does; stale and
// duplicate ones are skipped. A header's id may be d's own: this is how a
// replica is restored. applied counts the updates that advanced the clock.
//
// A bad line (see JSONLines) stops the load with an error, after the
// updates before it were applied; a torn last line, the mark of a save that
// was cut short, is an error wrapping ErrTruncated. Lines are limited to
// DefaultMaxFrameSize bytes. ctx is checked between batches.
func LoadJSONLines(ctx context.Context, d scuttlebutt.Document, r io.Reader) (applied int, err error) {
	t, _ := d.(JSONTranscoder)
	dec := newJSONDecoder(t, r, DefaultMaxFrameSize)
	for {
		if err := ctx.Err(); err != nil {
			return applied, err
		}
		m, err := dec.readMessage()
		if err == io.EOF {
			return applied, nil
		}
		if err != nil {
			return applied, err
		}
		if m.Kind == scuttlebutt.MsgUpdates { // headers and "SYNC" carry nothing to keep
			n, err := d.Base().Apply(m.Updates...)
			applied += n
			if err != nil {
				return applied, fmt.Errorf("stream: line %d: %w", dec.lineNo, err)
			}
		}
	}
}

// SaveJSONLines writes d to w in JavaScript scuttlebutt's persistence
// format, what model.createReadStream({tail: false}) writes: the header
// with d's id and clock, every update of d's history in (timestamp, source)
// order, and "SYNC". A Node replica loads it with
//
//	fs.createReadStream(file).pipe(model.createWriteStream())
//
// and LoadJSONLines reads it back. It returns once everything is written,
// or with ctx's error. With storage attached, it waits until what it writes
// is durable. To keep appending live updates, as a tailing
// createReadStream does, serve d on the file with a Conn instead:
// Options{Codec: JSONLines, Mode: scuttlebutt.SendOnly, PeerClock:
// vclock.Clock{}}.
func SaveJSONLines(ctx context.Context, d scuttlebutt.Document, w io.Writer) error {
	l := d.Base().NewLink(&scuttlebutt.LinkOptions{
		Mode:      scuttlebutt.SendOnly,
		OneShot:   true,
		PeerClock: vclock.Clock{},
	})
	defer l.Close()
	enc := JSONLines.newEncoder(d, DefaultMaxFrameSize)
	var buf []byte
	for {
		msgs := l.Ready()
		buf = buf[:0]
		for _, m := range msgs {
			var err error
			if buf, err = enc.appendMessage(buf, m); err != nil {
				return err
			}
		}
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("stream: write: %w", err)
			}
		}
		if l.Done() {
			return nil
		}
		if len(msgs) == 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-l.Wake():
			}
		}
	}
}
