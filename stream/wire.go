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
	newEncoder(d scuttlebutt.Document, maxFrame int) encoder
	newDecoder(d scuttlebutt.Document, r io.Reader, maxFrame int) decoder
}

// encoder appends messages to a byte slice.
type encoder interface {
	appendMessage(dst []byte, m scuttlebutt.Message) ([]byte, error)
}

// decoder reads messages. It returns io.EOF at a clean end of the stream.
type decoder interface {
	readMessage() (scuttlebutt.Message, error)
	bytesRead() int64
}

// CBOR is the native codec, the default: length-prefixed CBOR frames as
// SPEC.md describes.
var CBOR Codec = cborCodec{}

type cborCodec struct{}

func (cborCodec) String() string { return "cbor" }

func (cborCodec) newEncoder(_ scuttlebutt.Document, maxFrame int) encoder {
	return cborEncoder{maxFrame}
}

// newDecoder bounds the sources of a clock split into parts by d's
// Config.MaxSources; a nil d means the default.
func (cborCodec) newDecoder(d scuttlebutt.Document, r io.Reader, maxFrame int) decoder {
	maxSources := scuttlebutt.DefaultMaxSources
	if d != nil {
		maxSources = d.Base().MaxSources()
	}
	return &cborDecoder{fr: NewFrameReader(bufio.NewReaderSize(r, 64<<10), maxFrame), maxSources: maxSources}
}

// cborEncoder frames messages, splitting a clock too large for one frame
// into clock parts (appendMessage).
type cborEncoder struct{ max int }

func (e cborEncoder) appendMessage(dst []byte, m scuttlebutt.Message) ([]byte, error) {
	return appendMessage(dst, m, e.max)
}

// cborDecoder reads frames and decodes them as messages, joining clock
// parts to the message they precede.
type cborDecoder struct {
	fr         *FrameReader
	maxSources int // sources of a split clock
}

// readMessage returns the next message. Clock parts are read on until the
// hello, sync or clock frame they belong to, and returned as one message
// with the joined clock. A stream that ends after parts, before their
// message, is truncated (ErrTruncated); parts that do not make a clock
// are refused with ErrMalformed (see clockParts).
func (d *cborDecoder) readMessage() (scuttlebutt.Message, error) {
	var parts *clockParts
	for {
		kind, body, err := d.fr.ReadFrame()
		if err == io.EOF && parts != nil {
			return scuttlebutt.Message{}, fmt.Errorf("%w: the stream ended after %d clock parts, before their message", ErrTruncated, parts.n)
		}
		if err != nil {
			return scuttlebutt.Message{}, err
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
		m, err := decodeMessage(kind, body)
		if err != nil || parts == nil {
			return m, err
		}
		return parts.join(m)
	}
}

func (d *cborDecoder) bytesRead() int64 { return d.fr.BytesRead() }
