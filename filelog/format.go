package filelog

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/wire"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// The file header: magic, format version, replica id, checksum. See doc.go.
const (
	magic         = "\x89SCTLOG\n"
	formatVersion = 2 // what Open creates and Compact writes
	// minVersion is the oldest format version this package reads. Version
	// 1 has no clock records.
	minVersion = 1

	sizeOfMagic   = len(magic)
	sizeOfVersion = 2
	sizeOfIDLen   = 2
	sizeOfCRC     = 4
	// sizeOfFixedHeader is the file header without the id.
	sizeOfFixedHeader = sizeOfMagic + sizeOfVersion + sizeOfIDLen + sizeOfCRC
	// maxHeaderSize is the largest file header: the longest id.
	maxHeaderSize = sizeOfFixedHeader + scuttlebutt.MaxIDLen
)

// The record header: payload length, payload checksum, header checksum.
const (
	sizeOfLength       = 4
	sizeOfRecordHeader = sizeOfLength + 2*sizeOfCRC
	// maxRecordLimit is the largest Config.MaxRecordSize.
	maxRecordLimit = 1 << 30
)

// castagnoli is CRC-32C, the checksum of every header and record.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// appendFileHeader appends the file header of the log of replica id.
func appendFileHeader(b []byte, id string) []byte {
	start := len(b)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, formatVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	return binary.BigEndian.AppendUint32(b, checksum(b[start:]))
}

// parseFileHeader parses the file header at the start of b and returns the
// replica id, the format version and the header's length. Errors wrap
// ErrCorrupt or ErrVersion.
func parseFileHeader(b []byte) (id string, version uint16, n int, err error) {
	if len(b) < sizeOfFixedHeader {
		return "", 0, 0, fmt.Errorf("%w: file header: %d bytes, want at least %d", ErrCorrupt, len(b), sizeOfFixedHeader)
	}
	if string(b[:sizeOfMagic]) != magic {
		return "", 0, 0, fmt.Errorf("%w: not a log file (magic %q)", ErrCorrupt, b[:sizeOfMagic])
	}
	version = binary.BigEndian.Uint16(b[sizeOfMagic:])
	if version < minVersion || version > formatVersion {
		return "", 0, 0, fmt.Errorf("%w: version %d, this package reads %d to %d", ErrVersion, version, minVersion, formatVersion)
	}
	idLen := int(binary.BigEndian.Uint16(b[sizeOfMagic+sizeOfVersion:]))
	n = sizeOfFixedHeader + idLen
	if idLen > scuttlebutt.MaxIDLen || len(b) < n {
		return "", 0, 0, fmt.Errorf("%w: file header: id of %d bytes", ErrCorrupt, idLen)
	}
	if got, want := binary.BigEndian.Uint32(b[n-sizeOfCRC:]), checksum(b[:n-sizeOfCRC]); got != want {
		return "", 0, 0, fmt.Errorf("%w: file header checksum %#08x, want %#08x", ErrCorrupt, got, want)
	}
	id = string(b[n-sizeOfCRC-idLen : n-sizeOfCRC])
	if err := scuttlebutt.ValidID(id); err != nil {
		return "", 0, 0, fmt.Errorf("%w: file header: %v", ErrCorrupt, err)
	}
	return id, version, n, nil
}

// recordHeader is the 12 bytes before each record's payload.
type recordHeader []byte

func (h recordHeader) Length() uint32    { return binary.BigEndian.Uint32(h) }
func (h recordHeader) DataCRC() uint32   { return binary.BigEndian.Uint32(h[sizeOfLength:]) }
func (h recordHeader) HeaderCRC() uint32 { return binary.BigEndian.Uint32(h[sizeOfLength+sizeOfCRC:]) }

// intact reports whether the header's own checksum holds.
func (h recordHeader) intact() bool {
	return h.HeaderCRC() == checksum(h[:sizeOfLength+sizeOfCRC])
}

// appendRecord appends u as one record: header and payload. It fails with
// ErrTooLarge if the payload would exceed max bytes, and then leaves b as it
// was (up to its length).
func appendRecord(b []byte, u scuttlebutt.Update, max int) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, sizeOfRecordHeader)...)
	b = wire.AppendUpdate(b, u)
	n := len(b) - start - sizeOfRecordHeader
	if n > max {
		return b[:start], fmt.Errorf("%w: %s takes %d bytes, the limit is %d", ErrTooLarge, u, n, max)
	}
	sealRecord(b[start:])
	return b, nil
}

// CBOR major types of the records: an update is an array (package wire),
// a clock record a map of text to timestamp.
const (
	majorText  = cborx.MajorText
	majorArray = cborx.MajorArray
	majorMap   = cborx.MajorMap
)

// isClockRecord reports whether payload p is a clock record (a CBOR map)
// rather than an update (a CBOR array).
func isClockRecord(p []byte) bool { return len(p) > 0 && p[0]&0xe0 == majorMap }

// appendClockRecords appends c as clock records: CBOR maps of source to
// float64 timestamp, in source order, as many as it takes to keep each
// payload within max bytes, and returns how many records it appended. It
// fails with ErrTooLarge, leaving b as it was (up to its length), if one
// entry alone does not fit.
func appendClockRecords(b []byte, c vclock.Clock, max int) (_ []byte, records int, err error) {
	start := len(b)
	srcs := slices.Sorted(func(yield func(string) bool) {
		for src := range c {
			if !yield(src) {
				return
			}
		}
	})
	const sizeOfMapHead = 1 + 4 // up to 2^32 entries
	for len(srcs) > 0 {
		// Take the entries that fit.
		n, size := 0, sizeOfMapHead
		for _, src := range srcs {
			e := cborx.HeadLen(uint64(len(src))) + len(src) + wire.TimestampSize
			if size+e > max {
				break
			}
			n, size = n+1, size+e
		}
		if n == 0 {
			return b[:start], 0, fmt.Errorf("%w: clock entry of %q does not fit in %d bytes", ErrTooLarge, srcs[0], max)
		}
		h := len(b)
		b = append(b, make([]byte, sizeOfRecordHeader)...)
		b = cborx.AppendHead(b, majorMap, uint64(n))
		for _, src := range srcs[:n] {
			b = cborx.AppendHead(b, majorText, uint64(len(src)))
			b = append(b, src...)
			b = wire.AppendTimestamp(b, c[src])
		}
		sealRecord(b[h:])
		srcs = srcs[n:]
		records++
	}
	return b, records, nil
}

// sealRecord fills in the header of the record that rec holds, header and
// payload.
func sealRecord(rec []byte) {
	h, p := rec[:sizeOfRecordHeader], rec[sizeOfRecordHeader:]
	binary.BigEndian.PutUint32(h, uint32(len(p)))
	binary.BigEndian.PutUint32(h[sizeOfLength:], checksum(p))
	binary.BigEndian.PutUint32(h[sizeOfLength+sizeOfCRC:], checksum(h[:sizeOfLength+sizeOfCRC]))
}

// decodeClock parses a clock record's payload. Timestamps are read as
// updates' are (wire.ReadTimestamp).
func decodeClock(p []byte) (vclock.Clock, error) {
	r := cborx.NewReader(p)
	n, err := r.HeadOf(majorMap)
	if err != nil {
		return nil, err
	}
	// Each entry takes at least 3 bytes (a one-byte source with its head, a
	// small integer): bound n before allocating.
	if n > uint64(len(p)/3) {
		return nil, fmt.Errorf("clock of %d entries in %d bytes", n, len(p))
	}
	c := make(vclock.Clock, n)
	for range n {
		src, err := r.Text()
		if err != nil {
			return nil, fmt.Errorf("clock source: %v", err)
		}
		if err := scuttlebutt.ValidID(string(src)); err != nil {
			return nil, fmt.Errorf("clock source: %v", err)
		}
		t, err := wire.ReadTimestamp(&r)
		if err != nil {
			return nil, fmt.Errorf("clock of %q: %v", src, err)
		}
		if _, dup := c[string(src)]; dup {
			return nil, fmt.Errorf("clock: %q twice", src)
		}
		c[string(src)] = t
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%d bytes after the clock", r.Len())
	}
	return c, nil
}

// decoder turns payloads into updates with wire's decoder, which interns
// sources (a log repeats few). With keep set, an update's Data and
// Signature are copies; otherwise they alias the payload, which is enough
// to check it.
type decoder struct {
	keep bool
	w    wire.Decoder
}

// decode parses one record's payload, and checks it as wire.Decoder does.
// The base checks the rest (size, and what the replica checks) when the
// update is applied.
func (d *decoder) decode(p []byte) (scuttlebutt.Update, error) {
	d.w.Copy = d.keep
	return d.w.Update(p)
}
