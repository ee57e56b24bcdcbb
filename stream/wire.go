package stream

import (
	"bufio"
	"fmt"
	"io"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Codec is a wire encoding of the protocol's messages. The protocol, the
// one scuttlebutt.Link runs, is the same whatever the codec; only the bytes
// differ. Choose one with Options.Codec.
type Codec interface {
	// String names the codec.
	String() string
	// newEncoder and newDecoder make the two ends of one session; neg is
	// what they share of the features both hellos offer (nil for none).
	newEncoder(d scuttlebutt.Document, maxFrame int, neg *negotiation) encoder
	newDecoder(d scuttlebutt.Document, r io.Reader, maxFrame int, neg *negotiation) decoder
}

// encoder appends messages to a byte slice.
type encoder interface {
	appendMessage(dst []byte, m scuttlebutt.Message) ([]byte, error)
}

// decoder reads messages. It returns io.EOF at a clean end of the stream.
type decoder interface {
	readMessage() (scuttlebutt.Message, error)
	bytesRead() int64
	// recycle hands back the updates of a message readMessage returned,
	// once nothing holds the slice any more (the Link has stepped it: Step
	// keeps no message's slice), for a later message to be decoded into.
	// It may be called from another goroutine than readMessage's.
	recycle(updates []scuttlebutt.Update)
}

// spareUpdates passes the update slices of stepped messages from the
// loop back to the reader, which decodes the next compact frames into
// them rather than into a new slice a frame: on a live session, a slice of
// 72 bytes an update, scanned by the collector, less for every update
// received. It holds at most cap(spare) slices of at most maxSpareUpdates
// each, and what they held until they are reused. A nil spareUpdates
// keeps nothing.
type spareUpdates chan []scuttlebutt.Update

// maxSpareUpdates bounds the slices spareUpdates keeps: a frame's worth
// of small updates (MaxBatchBytes of scuttlebutt's Link), so that a
// connection keeps a few hundred kilobytes at most.
const maxSpareUpdates = 4096

// get returns a spare slice, or nil if there is none.
func (s spareUpdates) get() []scuttlebutt.Update {
	select {
	case us := <-s:
		return us
	default:
		return nil
	}
}

// put keeps us for a later get, unless it is too large or enough are
// kept already.
func (s spareUpdates) put(us []scuttlebutt.Update) {
	if s == nil || cap(us) == 0 || cap(us) > maxSpareUpdates {
		return
	}
	select {
	case s <- us[:0]:
	default:
	}
}

// CBOR is the native codec, the default: length-prefixed CBOR frames as
// SPEC.md describes.
var CBOR Codec = cborCodec{}

type cborCodec struct{}

func (cborCodec) String() string { return "cbor" }

func (cborCodec) newEncoder(_ scuttlebutt.Document, maxFrame int, neg *negotiation) encoder {
	return &cborEncoder{max: maxFrame, neg: neg}
}

// newDecoder bounds the sources of a clock split into parts, and of the
// compact encoding's source table, by d's Config.MaxSources; a nil d means
// the default.
func (cborCodec) newDecoder(d scuttlebutt.Document, r io.Reader, maxFrame int, neg *negotiation) decoder {
	maxSources := scuttlebutt.DefaultMaxSources
	if d != nil {
		maxSources = d.Base().MaxSources()
	}
	return &cborDecoder{
		fr:         NewFrameReader(bufio.NewReaderSize(r, 64<<10), maxFrame),
		max:        maxFrame,
		maxSources: maxSources,
		neg:        neg,
		spare:      make(spareUpdates, 2),
	}
}

// cborEncoder frames messages, splitting a clock too large for one frame
// into clock parts (appendMessage). Once the peer's hello offers what ours
// does, it writes updates in the compact encoding of version 2
// (compactEncoder), and compresses large frames (compressFrames). Its
// errors are sticky: the compact encoding's state has moved on with the
// frames of the message that failed, which are not sent.
type cborEncoder struct {
	max     int
	neg     *negotiation
	compact compactEncoder
	scratch []byte // compressFrames'
	err     error
}

func (e *cborEncoder) appendMessage(dst []byte, m scuttlebutt.Message) ([]byte, error) {
	if e.err != nil {
		return dst, e.err
	}
	agreed := e.neg.agreed()
	start := len(dst)
	var err error
	if m.Kind == scuttlebutt.MsgUpdates && agreed.has(featureCompact) {
		kind := kindCompact
		if m.More {
			kind = kindCompactMore
		}
		dst, err = appendFrame(dst, kind, e.max, func(b []byte) ([]byte, error) {
			return e.compact.appendUpdates(b, m.Updates), nil
		})
		if err != nil {
			e.err = err
			return dst, err
		}
	} else if dst, err = appendMessageOffer(dst, m, e.max, e.neg.offered()); err != nil {
		return dst, err
	}
	// A hello is never compressed, even when the peer's hello came first:
	// SPEC.md says so, and a peer need not look for one.
	if agreed.has(featureZstd) && m.Kind != scuttlebutt.MsgHello {
		dst, e.scratch = compressFrames(dst, start, e.scratch)
		if cap(e.scratch) > 4*e.max {
			e.scratch = nil
		}
	}
	return dst, nil
}

// cborDecoder reads frames and decodes them as messages, joining clock
// parts to the message they precede, decompressing compressed frames, and
// keeping the peer's source table of the compact encoding.
type cborDecoder struct {
	fr         *FrameReader
	max        int // frame limit, compressed or not
	maxSources int // sources of a split clock, and of the source table
	neg        *negotiation
	compact    *compactDecoder // nil until the first compact frame
	zbuf       []byte          // decompressed bodies
	spare      spareUpdates    // recycled slices for compact frames
}

// readMessage returns the next message. Clock parts are read on until the
// hello, sync or clock frame they belong to, and returned as one message
// with the joined clock. A stream that ends after parts, before their
// message, is truncated (ErrTruncated); parts that do not make a clock
// are refused with ErrMalformed (see clockParts). Frames of a feature
// this side did not offer are of an unknown kind.
func (d *cborDecoder) readMessage() (scuttlebutt.Message, error) {
	var parts *clockParts
	offer := d.neg.offered()
	for {
		kind, body, err := d.fr.ReadFrame()
		if err == io.EOF && parts != nil {
			return scuttlebutt.Message{}, fmt.Errorf("%w: the stream ended after %d clock parts, before their message", ErrTruncated, parts.n)
		}
		if err != nil {
			return scuttlebutt.Message{}, err
		}
		if kind == kindCompressed && offer.has(featureZstd) {
			if kind, body, d.zbuf, err = decompress(body, d.max, d.zbuf); err != nil {
				return scuttlebutt.Message{}, err
			}
		}
		if kind == kindClockPart {
			if parts == nil {
				parts = &clockParts{max: d.maxSources}
			}
			if err := parts.add(body); err != nil {
				return scuttlebutt.Message{}, err
			}
			continue
		}
		var cd *compactDecoder
		if kind == kindCompact || kind == kindCompactMore {
			if !offer.has(featureCompact) {
				return scuttlebutt.Message{}, fmt.Errorf("%w: %d (compact updates, not offered)", ErrUnknownKind, kind)
			}
			if d.compact == nil {
				d.compact = newCompactDecoder(d.maxSources)
				d.compact.spare = d.spare
			}
			cd = d.compact
		}
		m, peer, err := decodeMessageIn(kind, body, cd)
		if err == nil && m.Kind == scuttlebutt.MsgHello {
			d.neg.peerSaid(peer)
		}
		if err != nil || parts == nil {
			return m, err
		}
		return parts.join(m)
	}
}

func (d *cborDecoder) bytesRead() int64 { return d.fr.BytesRead() }

func (d *cborDecoder) recycle(updates []scuttlebutt.Update) { d.spare.put(updates) }
