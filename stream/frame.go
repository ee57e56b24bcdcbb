package stream

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// The frame header: one byte of message kind, then the body length as a
// big-endian uint32. The body is one CBOR data item.
const (
	sizeOfKind   = 1
	sizeOfLength = 4
	headerSize   = sizeOfKind + sizeOfLength
)

// DefaultMaxFrameSize is the default limit on a frame's body, 4 MiB.
const DefaultMaxFrameSize = 4 << 20

// header is a frame header with accessors.
type header []byte

func (h header) Kind() scuttlebutt.MessageKind { return scuttlebutt.MessageKind(h[0]) }
func (h header) Length() uint32                { return binary.BigEndian.Uint32(h[sizeOfKind:headerSize]) }

func (h header) encode(k scuttlebutt.MessageKind, n int) {
	h[0] = byte(k)
	binary.BigEndian.PutUint32(h[sizeOfKind:headerSize], uint32(n))
}

// FrameReader reads frames from an io.Reader. Errors are sticky: after the
// first, every call returns it. It is not safe for concurrent use.
type FrameReader struct {
	r   io.Reader
	max int
	hdr [headerSize]byte
	buf []byte
	err error
	n   int64
}

// NewFrameReader returns a reader of frames whose bodies are at most max
// bytes; max <= 0 means DefaultMaxFrameSize.
func NewFrameReader(r io.Reader, max int) *FrameReader {
	if max <= 0 {
		max = DefaultMaxFrameSize
	}
	return &FrameReader{r: r, max: max}
}

// ReadFrame returns the next frame's kind and body. The body is valid until
// the next call. At a clean end of the stream, between frames, it returns
// io.EOF; inside a frame, ErrTruncated; for a length over the limit,
// ErrFrameTooLarge, before reading or allocating the body.
func (f *FrameReader) ReadFrame() (kind scuttlebutt.MessageKind, body []byte, err error) {
	if f.err != nil {
		return 0, nil, f.err
	}
	kind, body, err = f.readFrame()
	f.err = err
	return kind, body, err
}

func (f *FrameReader) readFrame() (scuttlebutt.MessageKind, []byte, error) {
	n, err := io.ReadFull(f.r, f.hdr[:])
	f.n += int64(n)
	switch {
	case err == io.EOF:
		return 0, nil, io.EOF
	case err == io.ErrUnexpectedEOF:
		return 0, nil, fmt.Errorf("%w: %d of %d header bytes", ErrTruncated, n, headerSize)
	case err != nil:
		return 0, nil, err
	}
	h := header(f.hdr[:])
	size := h.Length()
	if int64(size) > int64(f.max) {
		return 0, nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, size, f.max)
	}
	if cap(f.buf) < int(size) {
		f.buf = make([]byte, size, min(max(int(size), 2*cap(f.buf)), f.max))
	}
	f.buf = f.buf[:size]
	n, err = io.ReadFull(f.r, f.buf)
	f.n += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return 0, nil, fmt.Errorf("%w: %d of %d body bytes", ErrTruncated, n, size)
	}
	if err != nil {
		return 0, nil, err
	}
	return h.Kind(), f.buf, nil
}

// BytesRead returns how many bytes the reader has consumed.
func (f *FrameReader) BytesRead() int64 { return f.n }

// appendFrame appends a frame of kind k whose body is produced by body,
// which appends to its argument. It returns ErrFrameTooLarge, and leaves dst
// as it was, if the body exceeds max.
func appendFrame(dst []byte, k scuttlebutt.MessageKind, max int, body func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, headerSize)...)
	dst, err := body(dst)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - headerSize
	if n > max {
		return dst[:start], fmt.Errorf("%w: %s message of %d bytes, the limit is %d", ErrFrameTooLarge, k, n, max)
	}
	header(dst[start:]).encode(k, n)
	return dst, nil
}
