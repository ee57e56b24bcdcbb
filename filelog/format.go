package filelog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/wire"
	"hash/crc32"
	"io"
	"math"
	"slices"

	"github.com/fxamacker/cbor/v2"
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

// CBOR heads of the update encoding, the one package stream sends, and of
// the clock record.
const (
	majorBytes = 2 << 5
	majorText  = 3 << 5
	majorArray = 4 << 5
	majorMap   = 5 << 5
	float64Tag = 0xfb // major 7, additional 27: IEEE 754 double
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
			e := len(cborx.AppendHead(nil, majorText, uint64(len(src)))) + len(src) + 9
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
			b = append(b, float64Tag)
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(float64(c[src])))
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

// decodeClock parses a clock record's payload.
func decodeClock(p []byte) (vclock.Clock, error) {
	r := cborReader{b: p}
	n, err := r.head(majorMap)
	if err != nil {
		return nil, err
	}
	// Each entry takes at least 10 bytes: bound n before allocating.
	if n > uint64(len(p)/10) {
		return nil, fmt.Errorf("clock of %d entries in %d bytes", n, len(p))
	}
	c := make(vclock.Clock, n)
	for range n {
		src, err := r.text()
		if err != nil {
			return nil, fmt.Errorf("clock source: %v", err)
		}
		if err := scuttlebutt.ValidID(string(src)); err != nil {
			return nil, fmt.Errorf("clock source: %v", err)
		}
		ts, err := r.take(9)
		if err != nil || ts[0] != float64Tag {
			return nil, fmt.Errorf("clock of %q: timestamp not a float64", src)
		}
		t := vclock.Timestamp(math.Float64frombits(binary.BigEndian.Uint64(ts[1:])))
		if !t.Valid() {
			return nil, fmt.Errorf("clock of %q: timestamp %v is not positive and finite", src, float64(t))
		}
		if _, dup := c[string(src)]; dup {
			return nil, fmt.Errorf("clock: %q twice", src)
		}
		c[string(src)] = t
	}
	if r.off != len(p) {
		return nil, fmt.Errorf("%d bytes after the clock", len(p)-r.off)
	}
	return c, nil
}

// dataMode finds the end of an update's data when a signature follows it,
// with the limits every peer applies.
var dataMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  scuttlebutt.MaxNesting,
		MaxArrayElements: 1 << 20,
		MaxMapPairs:      1 << 20,
	}.DecMode()
	if err != nil {
		panic(err) // constant options
	}
	return dm
}()

// decoder turns payloads into updates, interning sources (a log repeats
// few). With keep set, an update's Data and Signature are copies; otherwise
// they alias the payload, which is enough to check it.
type decoder struct {
	keep    bool
	sources map[string]string
}

// decode parses one record's payload. The base validates the result
// further (source id, timestamp, data) when it is applied.
func (d *decoder) decode(p []byte) (u scuttlebutt.Update, err error) {
	r := cborReader{b: p}
	fields, err := r.head(majorArray)
	if err != nil {
		return u, err
	}
	if fields < 3 || fields > 4 {
		return u, fmt.Errorf("%d fields, want 3 or 4", fields)
	}
	src, err := r.text()
	if err != nil {
		return u, fmt.Errorf("source: %v", err)
	}
	ts, err := r.take(9)
	if err != nil || ts[0] != float64Tag {
		return u, errors.New("timestamp: not a float64")
	}
	u.Timestamp = vclock.Timestamp(math.Float64frombits(binary.BigEndian.Uint64(ts[1:])))
	data := r.b[r.off:]
	if fields == 4 {
		var raw cbor.RawMessage
		rest, err := dataMode.UnmarshalFirst(data, &raw)
		if err != nil {
			return u, fmt.Errorf("data: %v", err)
		}
		data = data[:len(data)-len(rest)]
		r.off += len(data)
		sig, err := r.bytes()
		if err != nil {
			return u, fmt.Errorf("signature: %v", err)
		}
		if r.off != len(r.b) {
			return u, fmt.Errorf("%d bytes after the signature", len(r.b)-r.off)
		}
		u.Signature = sig
		if d.keep {
			u.Signature = bytes.Clone(sig)
		}
	}
	if len(data) == 0 {
		return u, errors.New("no data")
	}
	// With three fields the data runs to the end; the base checks that it
	// is exactly one well-formed item when the update is applied.
	u.Data = data
	if d.keep {
		u.Data = bytes.Clone(data)
	}
	if !u.Timestamp.Valid() {
		return u, fmt.Errorf("timestamp %v is not positive and finite", float64(u.Timestamp))
	}
	s, ok := d.sources[string(src)]
	if !ok {
		s = string(src)
		if err := scuttlebutt.ValidID(s); err != nil {
			return u, fmt.Errorf("source: %v", err)
		}
		if d.sources == nil {
			d.sources = make(map[string]string)
		}
		d.sources[s] = s
	}
	u.Source = s
	return u, nil
}

// cborReader parses the few CBOR heads of the update encoding.
type cborReader struct {
	b   []byte
	off int
}

func (r *cborReader) head(major byte) (uint64, error) {
	if r.off >= len(r.b) {
		return 0, io.ErrUnexpectedEOF
	}
	c := r.b[r.off]
	if c&0xe0 != major {
		return 0, fmt.Errorf("major type %d, want %d", c>>5, major>>5)
	}
	r.off++
	var size int
	switch add := c & 0x1f; {
	case add < 24:
		return uint64(add), nil
	case add <= 27:
		size = 1 << (add - 24)
	default:
		return 0, fmt.Errorf("indefinite or reserved length %d", add)
	}
	v, err := r.take(size)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, x := range v {
		n = n<<8 | uint64(x)
	}
	return n, nil
}

func (r *cborReader) text() ([]byte, error) {
	n, err := r.head(majorText)
	if err != nil {
		return nil, err
	}
	if n > scuttlebutt.MaxIDLen {
		return nil, fmt.Errorf("%d bytes, the limit is %d", n, scuttlebutt.MaxIDLen)
	}
	return r.take(int(n))
}

func (r *cborReader) bytes() ([]byte, error) {
	n, err := r.head(majorBytes)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)-r.off) {
		return nil, io.ErrUnexpectedEOF
	}
	return r.take(int(n))
}

func (r *cborReader) take(n int) ([]byte, error) {
	if n > len(r.b)-r.off {
		return nil, io.ErrUnexpectedEOF
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s, nil
}
