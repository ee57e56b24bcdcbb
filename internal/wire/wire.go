// Package wire encodes updates the one way the project writes them, in
// stream frames and in log records alike: the CBOR array
// [source, timestamp, data] or, with a signature,
// [source, timestamp, data, signature]. stream/SPEC.md specifies it.
package wire

import (
	"encoding/binary"
	"math"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
)

// AppendUpdate appends u's encoding to b. Data is one CBOR item already and
// goes in as it is.
func AppendUpdate(b []byte, u scuttlebutt.Update) []byte {
	n := uint64(3)
	if u.Signature != nil {
		n = 4
	}
	b = cborx.AppendHead(b, cborx.MajorArray, n)
	b = cborx.AppendHead(b, cborx.MajorText, uint64(len(u.Source)))
	b = append(b, u.Source...)
	b = append(b, cborx.Float64)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(float64(u.Timestamp)))
	b = append(b, u.Data...)
	if u.Signature != nil {
		b = cborx.AppendHead(b, cborx.MajorBytes, uint64(len(u.Signature)))
		b = append(b, u.Signature...)
	}
	return b
}
