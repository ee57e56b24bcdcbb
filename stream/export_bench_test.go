package stream

import (
	"io"

	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// Hooks for the codec benchmarks in bench_test.go. Those live in package
// stream_test because they share internal/testkit/bench, which imports stream.

// AppendMessageForBench appends m as codec c frames it for document d.
func AppendMessageForBench(c Codec, d scuttlebutt.Document, dst []byte, m scuttlebutt.Message) ([]byte, error) {
	return c.newEncoder(d, DefaultMaxFrameSize).appendMessage(dst, m)
}

// NewReaderForBench returns a function that reads the next message from r
// as codec c decodes it for document d.
func NewReaderForBench(c Codec, d scuttlebutt.Document, r io.Reader) func() (scuttlebutt.Message, error) {
	return c.newDecoder(d, r, DefaultMaxFrameSize).readMessage
}
