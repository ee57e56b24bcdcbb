package stream

import (
	"io"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Hooks for the codec benchmarks in bench_test.go. Those live in package
// stream_test because they share internal/testkit/bench, which imports stream.

// agreedForBench returns the negotiation of a session in which both sides
// speak version and offer compression if compress is set.
func agreedForBench(version int, compress bool) *negotiation {
	neg := newNegotiation(version, compress)
	neg.peerSaid(neg.offer)
	return neg
}

// NewEncoderForBench returns a function that appends messages as codec c
// frames them for document d, one session's frames in order, with a peer
// that speaks version and compresses if compress is set.
func NewEncoderForBench(c Codec, d scuttlebutt.Document, version int, compress bool) func(dst []byte, m scuttlebutt.Message) ([]byte, error) {
	return c.newEncoder(d, DefaultMaxFrameSize, agreedForBench(version, compress)).appendMessage
}

// NewReaderForBench returns a function that reads the next message from r
// as codec c decodes it for document d, in a session as NewEncoderForBench
// makes it.
func NewReaderForBench(c Codec, d scuttlebutt.Document, r io.Reader, version int, compress bool) func() (scuttlebutt.Message, error) {
	return c.newDecoder(d, r, DefaultMaxFrameSize, agreedForBench(version, compress)).readMessage
}
