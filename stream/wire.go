package stream

import (
	"bufio"
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

func (cborCodec) newDecoder(_ scuttlebutt.Document, r io.Reader, maxFrame int) decoder {
	return &cborDecoder{NewFrameReader(bufio.NewReaderSize(r, 64<<10), maxFrame)}
}

type cborEncoder struct{ max int }

func (e cborEncoder) appendMessage(dst []byte, m scuttlebutt.Message) ([]byte, error) {
	return appendMessage(dst, m, e.max)
}

type cborDecoder struct{ fr *FrameReader }

func (d *cborDecoder) readMessage() (scuttlebutt.Message, error) {
	kind, body, err := d.fr.ReadFrame()
	if err != nil {
		return scuttlebutt.Message{}, err
	}
	return decodeMessage(kind, body)
}

func (d *cborDecoder) bytesRead() int64 { return d.fr.BytesRead() }
