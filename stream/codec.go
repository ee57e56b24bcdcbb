package stream

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/wire"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// CBOR major types and the float64 initial byte, for the CBOR written by
// hand here and in jsonlines.go.
const (
	majorBytes = cborx.MajorBytes
	majorText  = cborx.MajorText
	majorArray = cborx.MajorArray
	float64Tag = cborx.Float64
)

// maxNesting is the deepest nesting of arrays and maps decMode accepts in
// a body: SPEC.md's limit, scuttlebutt.MaxNesting and the levels of a
// message around it. Updates frames are decoded by wire.Decoder, which
// holds each update's data to scuttlebutt.MaxNesting itself.
const maxNesting = scuttlebutt.MaxNesting + 4

var (
	// decMode decodes hello, sync, clock and clock part bodies, and the
	// JSON-lines codec's CBOR.
	decMode = wire.DecMode(wire.Limits{Depth: maxNesting, Elements: wire.MaxElements, Pairs: wire.MaxElements})
	encMode = func() cbor.EncMode {
		em, err := cbor.EncOptions{Sort: cbor.SortBytewiseLexical}.EncMode()
		if err != nil {
			panic(err)
		}
		return em
	}()
)

// wireHello is the CBOR body of a hello frame: a map with small integer
// keys. Features (key 5) lists the wire numbers of the features the sender
// offers (negotiate.go); a peer that predates them ignores the key.
type wireHello struct {
	Version  int          `cbor:"1,keyasint"`
	ID       string       `cbor:"2,keyasint"`
	Clock    vclock.Clock `cbor:"3,keyasint"`
	Meta     any          `cbor:"4,keyasint,omitempty"`
	Features featureList  `cbor:"5,keyasint,omitempty"`
}

// featureList is a hello's key 5: an array of at most maxFeatures
// unsigned integers. Its length is checked on the array's head, before
// anything is allocated.
type featureList []uint64

// UnmarshalCBOR implements cbor.Unmarshaler.
func (l *featureList) UnmarshalCBOR(b []byte) error {
	r := cborx.NewReader(b)
	n, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return fmt.Errorf("features: %w", err)
	}
	if n > maxFeatures {
		return fmt.Errorf("%d features, the limit is %d", n, maxFeatures)
	}
	list := make(featureList, n)
	for i := range list {
		if list[i], err = r.HeadOf(cborx.MajorUint); err != nil {
			return fmt.Errorf("feature %d: %w", i, err)
		}
	}
	if r.Len() != 0 {
		return fmt.Errorf("features: %d bytes after the array", r.Len())
	}
	*l = list
	return nil
}

// kindClockPart is the wire kind of a clock part: a CBOR map of entries
// that belong to the clock of the next hello, sync or clock frame. The
// encoder splits a clock too large for one frame into parts (appendSplit);
// the decoder joins them again (cborDecoder.readMessage), so a Link never
// sees a part. It is a wire number, appended after scuttlebutt's message
// kinds: it never changes.
const kindClockPart scuttlebutt.MessageKind = 5

// kindUpdatesMore is the wire kind of an updates message marked
// scuttlebutt.Message.More: the body is an updates body, and the unit of
// updates goes on in the next updates frame. Only a unit too large for
// one frame's batch is split so: a peer that predates the kind sees it only
// then. A wire number: it never changes.
const kindUpdatesMore scuttlebutt.MessageKind = 6

// timestampSize is the encoded size of a clock entry's timestamp. The CBOR
// encoder writes NaN and the infinities shorter, never longer.
const timestampSize = wire.TimestampSize

// appendMessage appends m as one frame. A hello, sync or clock message whose
// clock makes it larger than max bytes is appended instead as clock parts
// followed by the message with the rest of its clock (appendSplit). A
// message that fits is always one frame, the same bytes as before clock
// parts existed. Errors wrap ErrFrameTooLarge (the message is too large even
// without its clock, or one clock entry is larger than a frame),
// ErrMalformed or ErrUnknownKind; on error dst is returned as it was.
func appendMessage(dst []byte, m scuttlebutt.Message, max int) ([]byte, error) {
	return appendMessageOffer(dst, m, max, 0)
}

// appendMessageOffer is appendMessage with the features a hello offers.
func appendMessageOffer(dst []byte, m scuttlebutt.Message, max int, offer features) ([]byte, error) {
	c := messageClock(m)
	if minClockSize(c) > max {
		return appendSplit(dst, m, max, offer) // no need to try one frame
	}
	kind := m.Kind
	if kind == scuttlebutt.MsgUpdates && m.More {
		kind = kindUpdatesMore
	}
	out, err := appendFrame(dst, kind, max, func(b []byte) ([]byte, error) { return appendBody(b, m, offer) })
	if err != nil && errors.Is(err, ErrFrameTooLarge) && len(c) > 0 {
		return appendSplit(dst, m, max, offer)
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

// appendBody appends the CBOR body of m; a hello lists the features of
// offer.
func appendBody(b []byte, m scuttlebutt.Message, offer features) ([]byte, error) {
	switch m.Kind {
	case scuttlebutt.MsgHello:
		h := m.Hello
		if h == nil {
			return b, fmt.Errorf("%w: hello without a body", ErrMalformed)
		}
		return appendCBOR(b, wireHello{h.Version, h.ID, h.Clock, h.Meta, offer.list()})
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
func appendSplit(dst []byte, m scuttlebutt.Message, max int, offer features) ([]byte, error) {
	clock := messageClock(m)
	// The message without its clock: the empty map is one byte.
	rest, err := appendBody(nil, withClock(m, vclock.Clock{}), offer)
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
	dst, err = appendFrame(dst, m.Kind, max, func(b []byte) ([]byte, error) { return appendBody(b, withClock(m, last), offer) })
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
		b = wire.AppendTimestamp(b, c[src])
	}
	return b
}

// decodeMessage decodes the body of a frame of kind k. The message shares
// nothing with body. Errors wrap ErrMalformed or ErrUnknownKind; an
// updates frame with an update the base would refuse (its source,
// timestamp or data) wraps scuttlebutt.ErrInvalidUpdate as well. A clock
// part is not a message: cborDecoder joins parts to the message they
// precede, and decodeMessage refuses them as ErrUnknownKind. A compact
// updates frame (kinds 7 and 8) is decoded with a source table of its own,
// as if it were the first of its session; cborDecoder decodes them with
// the session's.
func decodeMessage(k scuttlebutt.MessageKind, body []byte) (scuttlebutt.Message, error) {
	m, _, err := decodeMessageIn(k, body, nil)
	return m, err
}

// decodeMessageIn is decodeMessage with the session's compact decoder (nil
// for one of its own), and it returns the features a hello offers.
func decodeMessageIn(k scuttlebutt.MessageKind, body []byte, cd *compactDecoder) (m scuttlebutt.Message, offer features, err error) {
	m = scuttlebutt.Message{Kind: k}
	switch k {
	case kindUpdatesMore:
		m.Kind, m.More = scuttlebutt.MsgUpdates, true
	case kindCompact, kindCompactMore:
		m.Kind, m.More = scuttlebutt.MsgUpdates, k == kindCompactMore
		if cd == nil {
			cd = newCompactDecoder(scuttlebutt.DefaultMaxSources)
		}
		us, err := cd.updates(body)
		if err != nil {
			return m, 0, fmt.Errorf("%w: compact updates: %w", ErrMalformed, err)
		}
		m.Updates = us
		return m, 0, nil
	}
	switch m.Kind {
	case scuttlebutt.MsgHello:
		var h wireHello
		if err := decMode.Unmarshal(body, &h); err != nil {
			return m, 0, fmt.Errorf("%w: hello: %v", ErrMalformed, err)
		}
		m.Hello = &scuttlebutt.Hello{Version: h.Version, ID: h.ID, Clock: h.Clock, Meta: h.Meta}
		offer = featuresOf(h.Features)
	case scuttlebutt.MsgUpdates:
		// An update the base would refuse is scuttlebutt.ErrInvalidUpdate
		// too (wire.Decoder).
		d := wire.Decoder{Copy: true}
		us, err := d.Updates(body)
		if err != nil {
			return m, 0, fmt.Errorf("%w: updates: %w", ErrMalformed, err)
		}
		m.Updates = us
	case scuttlebutt.MsgSync, scuttlebutt.MsgClock:
		if err := decMode.Unmarshal(body, &m.Clock); err != nil {
			return m, 0, fmt.Errorf("%w: %s: %v", ErrMalformed, k, err)
		}
		if m.Clock == nil {
			return m, 0, fmt.Errorf("%w: %s: no clock", ErrMalformed, k)
		}
	default:
		return m, 0, fmt.Errorf("%w: %d", ErrUnknownKind, k)
	}
	return m, offer, nil
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
	r := cborx.NewReader(body)
	n, err := r.HeadOf(cborx.MajorMap)
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

// cborReader reads CBOR heads for the JSON-lines codec (jsonlines.go): a
// cursor over cborx.Reader, the one reader.
type cborReader struct {
	b   []byte
	off int
}

func (r *cborReader) head(major byte) (uint64, error) {
	cr := cborx.NewReader(r.b[r.off:])
	n, err := cr.HeadOf(major)
	r.off += cr.Off()
	return n, err
}

// appendCBOR appends the CBOR encoding of v.
func appendCBOR(b []byte, v any) ([]byte, error) {
	e, err := encMode.Marshal(v)
	if err != nil {
		return b, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return append(b, e...), nil
}
