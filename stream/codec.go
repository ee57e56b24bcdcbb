package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/wire"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// CBOR major types used by the hand-written update encoding.
const (
	majorBytes = cborx.MajorBytes
	majorText  = cborx.MajorText
	majorArray = cborx.MajorArray
	float64Tag = cborx.Float64
)

// Decoder limits for frame bodies, on top of the frame size limit.
const (
	maxNesting  = scuttlebutt.MaxNesting + 4 // message, update, data
	maxElements = 1 << 20                    // updates in a frame, items in a value
	maxPairs    = 1 << 20                    // clock entries, map pairs in a value
)

var (
	decMode = func() cbor.DecMode {
		dm, err := cbor.DecOptions{
			DupMapKey:        cbor.DupMapKeyEnforcedAPF,
			MaxNestedLevels:  maxNesting,
			MaxArrayElements: maxElements,
			MaxMapPairs:      maxPairs,
			IndefLength:      cbor.IndefLengthForbidden,
			TagsMd:           cbor.TagsForbidden,
			DefaultMapType:   mapType,
			IntDec:           cbor.IntDecConvertSignedOrFail,
		}.DecMode()
		if err != nil {
			panic(err) // constant options
		}
		return dm
	}()
	encMode = func() cbor.EncMode {
		em, err := cbor.EncOptions{Sort: cbor.SortBytewiseLexical}.EncMode()
		if err != nil {
			panic(err)
		}
		return em
	}()
)

// wireHello is the CBOR body of a hello frame: a map with small integer keys.
type wireHello struct {
	Version int          `cbor:"1,keyasint"`
	ID      string       `cbor:"2,keyasint"`
	Clock   vclock.Clock `cbor:"3,keyasint"`
	Meta    any          `cbor:"4,keyasint,omitempty"`
}

// kindClockPart is the wire kind of a clock part: a CBOR map of entries
// that belong to the clock of the next hello, sync or clock frame. The
// encoder splits a clock too large for one frame into parts (appendSplit);
// the decoder joins them again (cborDecoder.readMessage), so a Link never
// sees a part. It is a wire number, appended after scuttlebutt's message
// kinds: it never changes.
const kindClockPart scuttlebutt.MessageKind = 5

// timestampSize is the encoded size of a clock entry's timestamp, a
// float64 with its initial byte. The CBOR encoder writes NaN and the
// infinities shorter, never longer.
const timestampSize = 9

// appendMessage appends m as one frame. A hello, sync or clock message whose
// clock makes it larger than max bytes is appended instead as clock parts
// followed by the message with the rest of its clock (appendSplit). A
// message that fits is always one frame, the same bytes as before clock
// parts existed. Errors wrap ErrFrameTooLarge (the message is too large even
// without its clock, or one clock entry is larger than a frame),
// ErrMalformed or ErrUnknownKind; on error dst is returned as it was.
func appendMessage(dst []byte, m scuttlebutt.Message, max int) ([]byte, error) {
	c := messageClock(m)
	if minClockSize(c) > max {
		return appendSplit(dst, m, max) // no need to try one frame
	}
	out, err := appendFrame(dst, m.Kind, max, func(b []byte) ([]byte, error) { return appendBody(b, m) })
	if err != nil && errors.Is(err, ErrFrameTooLarge) && len(c) > 0 {
		return appendSplit(dst, m, max)
	}
	return out, err
}

// minClockSize is the least c's entries take in one CBOR map: a timestamp
// takes 3 bytes at the least (a NaN or an infinity as float16).
func minClockSize(c vclock.Clock) int {
	n := 0
	for src := range c {
		n += clockEntrySize(src) - timestampSize + 3
	}
	return n
}

// appendBody appends the CBOR body of m.
func appendBody(b []byte, m scuttlebutt.Message) ([]byte, error) {
	switch m.Kind {
	case scuttlebutt.MsgHello:
		h := m.Hello
		if h == nil {
			return b, fmt.Errorf("%w: hello without a body", ErrMalformed)
		}
		return appendCBOR(b, wireHello{h.Version, h.ID, h.Clock, h.Meta})
	case scuttlebutt.MsgUpdates:
		b = cborx.AppendHead(b, majorArray, uint64(len(m.Updates)))
		for _, u := range m.Updates {
			b = wire.AppendUpdate(b, u)
		}
		return b, nil
	case scuttlebutt.MsgSync, scuttlebutt.MsgClock:
		c := m.Clock
		if c == nil {
			c = vclock.Clock{}
		}
		return appendCBOR(b, c)
	}
	return b, fmt.Errorf("%w: %d", ErrUnknownKind, m.Kind)
}

// messageClock returns the clock m carries: a hello's, a sync's or a
// clock message's; nil for other kinds.
func messageClock(m scuttlebutt.Message) vclock.Clock {
	switch m.Kind {
	case scuttlebutt.MsgHello:
		if m.Hello != nil {
			return m.Hello.Clock
		}
	case scuttlebutt.MsgSync, scuttlebutt.MsgClock:
		return m.Clock
	}
	return nil
}

// withClock returns m carrying c instead of its clock; m's Hello is copied,
// not modified.
func withClock(m scuttlebutt.Message, c vclock.Clock) scuttlebutt.Message {
	if m.Kind == scuttlebutt.MsgHello {
		h := *m.Hello
		h.Clock = c
		m.Hello = &h
		return m
	}
	m.Clock = c
	return m
}

// clockEntrySize is the most a clock entry of source src takes in a CBOR
// map: the text and the timestamp.
func clockEntrySize(src string) int {
	return cborx.HeadLen(uint64(len(src))) + len(src) + timestampSize
}

// appendSplit appends m, a hello, sync or clock message with a clock too
// large for one frame, as clock parts and a final frame. The clock's
// sources are sorted; the final frame, m itself, takes the last of them
// that fit beside its other fields, and the rest go, in order, into as few
// clock parts as hold them, each filled up to max. The split depends on
// nothing but m and max.
func appendSplit(dst []byte, m scuttlebutt.Message, max int) ([]byte, error) {
	clock := messageClock(m)
	// The message without its clock: the empty map is one byte.
	rest, err := appendBody(nil, withClock(m, vclock.Clock{}))
	if err != nil {
		return dst, err
	}
	if len(rest) > max {
		return dst, fmt.Errorf("%w: %s message of %d bytes without its clock, the limit is %d", ErrFrameTooLarge, m.Kind, len(rest), max)
	}
	room := max - (len(rest) - 1)
	sources := slices.Sorted(maps.Keys(clock))
	split, size := len(sources), 0
	for split > 0 {
		s := size + clockEntrySize(sources[split-1])
		if cborx.HeadLen(uint64(len(sources)-split+1))+s > room {
			break
		}
		split, size = split-1, s
	}
	start := len(dst)
	for i := 0; i < split; {
		n, size := 0, 0
		for i+n < split {
			s := size + clockEntrySize(sources[i+n])
			if cborx.HeadLen(uint64(n+1))+s > max {
				break
			}
			n, size = n+1, s
		}
		if n == 0 {
			return dst[:start], fmt.Errorf("%w: clock entry %.32q of %d bytes, the limit is %d", ErrFrameTooLarge, sources[i], clockEntrySize(sources[i]), max)
		}
		var err error
		dst, err = appendFrame(dst, kindClockPart, max, func(b []byte) ([]byte, error) {
			return appendClockEntries(b, clock, sources[i:i+n]), nil
		})
		if err != nil {
			return dst[:start], err
		}
		i += n
	}
	last := make(vclock.Clock, len(sources)-split)
	for _, src := range sources[split:] {
		last[src] = clock[src]
	}
	dst, err = appendFrame(dst, m.Kind, max, func(b []byte) ([]byte, error) { return appendBody(b, withClock(m, last)) })
	if err != nil {
		return dst[:start], err
	}
	return dst, nil
}

// appendClockEntries appends a CBOR map of the entries of c for sources,
// in their order, timestamps as float64.
func appendClockEntries(b []byte, c vclock.Clock, sources []string) []byte {
	b = cborx.AppendHead(b, cborx.MajorMap, uint64(len(sources)))
	for _, src := range sources {
		b = cborx.AppendHead(b, majorText, uint64(len(src)))
		b = append(b, src...)
		b = append(b, float64Tag)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(float64(c[src])))
	}
	return b
}

// decodeMessage decodes the body of a frame of kind k. The message shares
// nothing with body. Errors wrap ErrMalformed or ErrUnknownKind. A clock
// part is not a message: cborDecoder joins parts to the message they
// precede, and decodeMessage refuses them as ErrUnknownKind.
func decodeMessage(k scuttlebutt.MessageKind, body []byte) (scuttlebutt.Message, error) {
	m := scuttlebutt.Message{Kind: k}
	switch k {
	case scuttlebutt.MsgHello:
		var h wireHello
		if err := decMode.Unmarshal(body, &h); err != nil {
			return m, fmt.Errorf("%w: hello: %v", ErrMalformed, err)
		}
		m.Hello = &scuttlebutt.Hello{Version: h.Version, ID: h.ID, Clock: h.Clock, Meta: h.Meta}
	case scuttlebutt.MsgUpdates:
		us, err := decodeUpdates(body)
		if err != nil {
			return m, fmt.Errorf("%w: updates: %v", ErrMalformed, err)
		}
		m.Updates = us
	case scuttlebutt.MsgSync, scuttlebutt.MsgClock:
		if err := decMode.Unmarshal(body, &m.Clock); err != nil {
			return m, fmt.Errorf("%w: %s: %v", ErrMalformed, k, err)
		}
		if m.Clock == nil {
			return m, fmt.Errorf("%w: %s: no clock", ErrMalformed, k)
		}
	default:
		return m, fmt.Errorf("%w: %d", ErrUnknownKind, k)
	}
	return m, nil
}

// clockParts accumulates the clock parts that precede a hello, sync or
// clock frame, within a bound on the number of sources.
type clockParts struct {
	max     int          // sources allowed in the joined clock
	n       int          // parts added
	entries vclock.Clock // nil before the first part
}

// add decodes a clock part's body and adds its entries. It refuses a part
// without entries, a part that would take the sources past the bound
// (before decoding it), and a source that an earlier part named.
func (p *clockParts) add(body []byte) error {
	r := cborReader{b: body}
	n, err := r.head(cborx.MajorMap)
	if err != nil {
		return fmt.Errorf("%w: clock part %d: %v", ErrMalformed, p.n+1, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: clock part %d has no entries", ErrMalformed, p.n+1)
	}
	if n > uint64(p.max-len(p.entries)) {
		return p.tooMany(n)
	}
	var part vclock.Clock
	if err := decMode.Unmarshal(body, &part); err != nil {
		return fmt.Errorf("%w: clock part %d: %v", ErrMalformed, p.n+1, err)
	}
	p.n++
	if p.entries == nil {
		p.entries = make(vclock.Clock, len(part))
	}
	return p.merge(part)
}

// merge adds c's entries, refusing a source already present.
func (p *clockParts) merge(c vclock.Clock) error {
	for src, t := range c {
		if _, dup := p.entries[src]; dup {
			return fmt.Errorf("%w: clock parts name source %.32q twice", ErrMalformed, src)
		}
		p.entries[src] = t
	}
	return nil
}

func (p *clockParts) tooMany(more uint64) error {
	return fmt.Errorf("%w: a split clock names %d sources or more, the limit is %d (%w)",
		ErrMalformed, uint64(len(p.entries))+more, p.max, scuttlebutt.ErrTooManySources)
}

// join returns m with the accumulated entries merged into its clock. m must
// be a hello, sync or clock message: parts before anything else are an
// error, as are more sources than the bound and a source both in the parts
// and in m's own clock.
func (p *clockParts) join(m scuttlebutt.Message) (scuttlebutt.Message, error) {
	switch m.Kind {
	case scuttlebutt.MsgHello, scuttlebutt.MsgSync, scuttlebutt.MsgClock:
	default:
		return scuttlebutt.Message{}, fmt.Errorf("%w: %d clock parts followed by a %s frame, not a hello, sync or clock", ErrMalformed, p.n, m.Kind)
	}
	own := messageClock(m)
	if len(own) > p.max-len(p.entries) {
		return scuttlebutt.Message{}, p.tooMany(uint64(len(own)))
	}
	if err := p.merge(own); err != nil {
		return scuttlebutt.Message{}, err
	}
	return withClock(m, p.entries), nil
}

// decodeUpdates decodes an array of updates. Heads are parsed by hand; each
// update's data is checked and copied by the CBOR decoder with its limits.
func decodeUpdates(body []byte) ([]scuttlebutt.Update, error) {
	d := cborReader{b: body}
	n, err := d.head(majorArray)
	if err != nil {
		return nil, err
	}
	// Every update takes at least 12 bytes ([, source, float64, data]), so n
	// is bounded by the body before we allocate for it.
	if n > uint64(len(body)/12) {
		return nil, fmt.Errorf("%d updates cannot fit in %d bytes", n, len(body))
	}
	us := make([]scuttlebutt.Update, n)
	var sources map[string]string // interned: a frame repeats few sources
	for i := range us {
		u := &us[i]
		fields, err := d.head(majorArray)
		if err != nil {
			return nil, fmt.Errorf("update %d: %v", i, err)
		}
		if fields < 3 || fields > 4 {
			return nil, fmt.Errorf("update %d: %d fields, want 3 or 4", i, fields)
		}
		src, err := d.text()
		if err != nil {
			return nil, fmt.Errorf("update %d: source: %v", i, err)
		}
		s, ok := sources[string(src)]
		if !ok {
			if sources == nil {
				sources = make(map[string]string)
			}
			s = string(src)
			sources[s] = s
		}
		u.Source = s
		ts, err := d.float64()
		if err != nil {
			return nil, fmt.Errorf("update %d: timestamp: %v", i, err)
		}
		u.Timestamp = vclock.Timestamp(ts)
		n, err := cborx.Item(d.b[d.off:], maxNesting)
		if err != nil {
			return nil, fmt.Errorf("update %d: data: %v", i, err)
		}
		u.Data = append([]byte(nil), d.b[d.off:d.off+n]...)
		d.off += n
		if fields == 4 {
			sig, err := d.bytes()
			if err != nil {
				return nil, fmt.Errorf("update %d: signature: %v", i, err)
			}
			u.Signature = append([]byte(nil), sig...)
		}
	}
	if d.off != len(d.b) {
		return nil, fmt.Errorf("%d bytes after the last update", len(d.b)-d.off)
	}
	return us, nil
}

// cborReader parses the few CBOR heads of the update encoding.
type cborReader struct {
	b   []byte
	off int
}

func (d *cborReader) head(major byte) (uint64, error) {
	if d.off >= len(d.b) {
		return 0, fmt.Errorf("unexpected end")
	}
	c := d.b[d.off]
	if c&0xe0 != major {
		return 0, fmt.Errorf("major type %d, want %d", c>>5, major>>5)
	}
	d.off++
	add := c & 0x1f
	var size int
	switch {
	case add < 24:
		return uint64(add), nil
	case add == 24:
		size = 1
	case add == 25:
		size = 2
	case add == 26:
		size = 4
	case add == 27:
		size = 8
	default:
		return 0, fmt.Errorf("indefinite or reserved length %d", add)
	}
	if len(d.b)-d.off < size {
		return 0, fmt.Errorf("unexpected end")
	}
	var n uint64
	for _, x := range d.b[d.off : d.off+size] {
		n = n<<8 | uint64(x)
	}
	d.off += size
	return n, nil
}

func (d *cborReader) text() ([]byte, error) {
	n, err := d.head(majorText)
	if err != nil {
		return nil, err
	}
	return d.take(n)
}

func (d *cborReader) bytes() ([]byte, error) {
	n, err := d.head(majorBytes)
	if err != nil {
		return nil, err
	}
	return d.take(n)
}

func (d *cborReader) take(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) {
		return nil, fmt.Errorf("length %d past the end", n)
	}
	s := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return s, nil
}

// float64 reads a float of any width, or an unsigned integer, as float64.
func (d *cborReader) float64() (float64, error) {
	if d.off >= len(d.b) {
		return 0, fmt.Errorf("unexpected end")
	}
	switch c := d.b[d.off]; {
	case c == float64Tag:
		v, err := d.take1(9)
		if err != nil {
			return 0, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(v[1:])), nil
	case c == 0xfa:
		v, err := d.take1(5)
		if err != nil {
			return 0, err
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(v[1:]))), nil
	case c>>5 == 0:
		n, err := d.head(0)
		return float64(n), err
	}
	return 0, fmt.Errorf("not a number (initial byte %#x)", d.b[d.off])
}

func (d *cborReader) take1(n int) ([]byte, error) {
	if len(d.b)-d.off < n {
		return nil, fmt.Errorf("unexpected end")
	}
	s := d.b[d.off : d.off+n]
	d.off += n
	return s, nil
}

// appendCBOR appends the CBOR encoding of v.
func appendCBOR(b []byte, v any) ([]byte, error) {
	e, err := encMode.Marshal(v)
	if err != nil {
		return b, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return append(b, e...), nil
}

var mapType = reflect.TypeOf(map[string]any(nil))
