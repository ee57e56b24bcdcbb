package stream

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Frame compression (SPEC.md, "Compressed frames"): once both hellos
// offer it, a frame whose body is at least compressMin bytes goes as a
// kind-9 frame, its body the inner frame's kind and the inner body
// compressed as one zstd frame, when that is smaller.
//
// Why zstd and not S2: compression is for history dumps and large
// batches, where the link's bandwidth, not our CPU, bounds the time, and
// zstd's entropy coding is what shrinks them. A frame of 6,000 compact
// W4 updates (43 bytes each) takes 0.8 bytes an update with zstd and 9
// with S2 when the values are the peers' near-identical strings, and 27
// against S2's 40 when they are random letters, which only entropy coding
// can shorten. zstd's fastest level costs about 60 ns an update to
// compress and 20 to decompress, S2 12 and 6. Its frame header states the
// decompressed size, which is checked against the frame limit before
// anything is allocated (S2's block header would allow that too).

// kindCompressed is the wire kind of a compressed frame. A wire number: it
// never changes.
const kindCompressed scuttlebutt.MessageKind = 9

// compressMin is the smallest body that is compressed: below it, what
// zstd saves does not pay for its frame header and the time.
const compressMin = 1024

// zstdEncoder and zstdDecoder are shared by every Conn: EncodeAll and
// DecodeAll may be called concurrently, each call on one goroutine, and
// the coders hold tables and buffers a Conn of its own would not reuse
// often enough to keep.
var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderCRC(false), // the transport's job, as for plain frames
			zstd.WithSingleSegment(true),
			zstd.WithLowerEncoderMem(true),
		)
		if err != nil {
			panic(err) // constant options
		}
		return enc
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecodeAllCapLimit(true), // no output past cap(dst)
			zstd.WithDecoderLowmem(true),
		)
		if err != nil {
			panic(err)
		}
		return dec
	})
)

// compressFrames replaces each frame of b[start:] whose body is at least
// compressMin bytes with its compressed frame, when that is smaller. scratch
// is a buffer to reuse; compressFrames returns it grown.
func compressFrames(b []byte, start int, scratch []byte) (out, scratchOut []byte) {
	var frames [][2]int // body bounds of the frames to compress
	for off := start; off < len(b); {
		n := int(header(b[off:]).Length())
		if n >= compressMin {
			frames = append(frames, [2]int{off, n})
		}
		off += headerSize + n
	}
	if len(frames) == 0 {
		return b, scratch
	}
	// Rebuild from the first frame to compress on.
	from := frames[0][0]
	scratch = append(scratch[:0], b[from:]...)
	b = b[:from]
	enc := zstdEncoder()
	for off := 0; off < len(scratch); {
		h := header(scratch[off:])
		n := int(h.Length())
		body := scratch[off+headerSize : off+headerSize+n]
		if n < compressMin {
			b = append(b, scratch[off:off+headerSize+n]...)
			off += headerSize + n
			continue
		}
		fstart := len(b)
		b = append(b, make([]byte, headerSize)...)
		b = append(b, byte(h.Kind()))
		b = enc.EncodeAll(body, b)
		if size := len(b) - fstart - headerSize; size < n {
			header(b[fstart:]).encode(kindCompressed, size)
		} else {
			b = append(b[:fstart], scratch[off:off+headerSize+n]...)
		}
		off += headerSize + n
	}
	return b, scratch
}

// decompress returns the kind and the body of the frame that a compressed
// frame's body holds. The body is in buf, grown as needed, and valid until
// the next call. The stated size is checked against max before anything
// is allocated, and the decoder writes no more than that.
func decompress(body []byte, max int, buf []byte) (kind scuttlebutt.MessageKind, out, bufOut []byte, err error) {
	if len(body) < 1 {
		return 0, nil, buf, fmt.Errorf("%w: compressed frame without a kind", ErrMalformed)
	}
	kind = scuttlebutt.MessageKind(body[0])
	if kind == kindCompressed {
		return 0, nil, buf, fmt.Errorf("%w: a compressed frame inside a compressed frame", ErrMalformed)
	}
	var h zstd.Header
	if err := h.Decode(body[1:]); err != nil {
		return 0, nil, buf, fmt.Errorf("%w: compressed frame: %v", ErrMalformed, err)
	}
	switch {
	case h.Skippable || h.DictionaryID != 0 || !h.HasFCS:
		return 0, nil, buf, fmt.Errorf("%w: compressed frame: not one zstd frame of a stated size without a dictionary", ErrMalformed)
	case h.FrameContentSize > uint64(max) || (!h.SingleSegment && h.WindowSize > uint64(max)):
		return 0, nil, buf, fmt.Errorf("%w: compressed frame of %d bytes, the limit is %d", ErrFrameTooLarge, h.FrameContentSize, max)
	}
	size := int(h.FrameContentSize)
	if cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	out, err = zstdDecoder().DecodeAll(body[1:], buf[:0:size])
	if err != nil {
		return 0, nil, buf, fmt.Errorf("%w: compressed frame: %v", ErrMalformed, err)
	}
	if len(out) != size {
		return 0, nil, buf, fmt.Errorf("%w: compressed frame of %d bytes, its header says %d", ErrMalformed, len(out), size)
	}
	return kind, out, buf, nil
}
