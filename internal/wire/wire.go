// Package wire encodes and decodes updates the one way the project reads
// and writes them, in stream frames and in log records alike: the CBOR
// array [source, timestamp, data] or, with a signature,
// [source, timestamp, data, signature]. stream/SPEC.md specifies it. It
// also holds the one rule for timestamps and the one set of limits for
// every fxamacker/cbor decoder (DecMode).
//
// # Timestamps
//
// A timestamp is written as a float64 (AppendTimestamp), always. It is
// read (ReadTimestamp) from a float of any width (half, single or double
// precision) or an integer, since other encoders (JavaScript peers among
// them) may write a number in its shortest form, and it must be positive
// and finite (vclock.Timestamp.Valid): NaN, the infinities, zero and
// negative numbers are refused. Updates, log clock records and every
// other timestamp the project parses by hand go through ReadTimestamp;
// clocks that package stream decodes with a DecMode into vclock.Clock
// accept the same encodings, and the Link checks their entries.
package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// ErrInvalidTimestamp is wrapped by ReadTimestamp's error for a number
// that is not positive and finite.
var ErrInvalidTimestamp = errors.New("wire: timestamp is not positive and finite")

// TimestampSize is the size of an encoded timestamp: a float64 and its
// initial byte.
const TimestampSize = 9

// minUpdateSize is the least an update takes: array head, a one-byte
// source with its head, a timestamp as a small integer, a one-byte data
// item.
const minUpdateSize = 1 + 2 + 1 + 1

// AppendTimestamp appends t as a float64.
func AppendTimestamp(b []byte, t vclock.Timestamp) []byte {
	b = append(b, cborx.Float64)
	return binary.BigEndian.AppendUint64(b, math.Float64bits(float64(t)))
}

// ReadTimestamp reads a timestamp: a float of any width or an integer,
// positive and finite. The error wraps ErrInvalidTimestamp for a number
// that is not, cborx.ErrMalformed for anything else.
func ReadTimestamp(r *cborx.Reader) (vclock.Timestamp, error) {
	f, err := r.Number()
	if t := vclock.Timestamp(f); err == nil && t.Valid() {
		return t, nil
	}
	return 0, timestampError(f, err)
}

func timestampError(f float64, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: %v", ErrInvalidTimestamp, f)
}

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
	b = AppendTimestamp(b, u.Timestamp)
	b = append(b, u.Data...)
	if u.Signature != nil {
		b = cborx.AppendHead(b, cborx.MajorBytes, uint64(len(u.Signature)))
		b = append(b, u.Signature...)
	}
	return b
}

// Decoder decodes updates. It checks what the base checks of any update
// before anything else sees it (scuttlebutt.ValidID for the source,
// ReadTimestamp, and data that is one well-formed item within
// scuttlebutt.MaxNesting, as cborx.Item checks it), all but the size
// limit, which is the document's; an update that fails these gets an error
// wrapping scuttlebutt.ErrInvalidUpdate. Bytes that are not an update's
// encoding get an error wrapping cborx.ErrMalformed.
//
// A Decoder interns sources, which a frame or a log repeats: each distinct
// source is allocated and checked once. The zero Decoder is ready to use.
// It is not safe for concurrent use.
type Decoder struct {
	// Copy makes the decoded Data and Signature copies. Without it they
	// alias the input.
	Copy bool

	sources map[string]string
}

// Update decodes b, which must hold one update and nothing else.
func (d *Decoder) Update(b []byte) (u scuttlebutt.Update, err error) {
	r := cborx.NewReader(b)
	if err = d.read(&r, &u); err != nil {
		return u, err
	}
	if r.Len() != 0 {
		return u, fmt.Errorf("%w: %d bytes after the update", cborx.ErrMalformed, r.Len())
	}
	return u, nil
}

// Updates decodes b, which must hold one array of updates and nothing
// else. Errors name the update at fault by its index.
func (d *Decoder) Updates(b []byte) ([]scuttlebutt.Update, error) {
	r := cborx.NewReader(b)
	n, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return nil, err
	}
	return ReadUpdates(&r, n, minUpdateSize, nil, d.read)
}

// ReadUpdates reads n updates from r with read, each taking at least
// minSize bytes, and requires r to be empty after the last: the loop of
// every encoding of an update batch. A count that cannot fit in what is
// left of r is refused before anything is allocated. Errors name the
// update at fault by its index.
//
// The updates go in dst's array when it has room for n, else in a new
// one: dst is a slice a decoder got back from the caller, which no longer
// holds it (see stream's decoder.recycle). Each update read is zeroed
// before read, so nothing of what dst held shows through.
func ReadUpdates(r *cborx.Reader, n uint64, minSize int, dst []scuttlebutt.Update, read func(*cborx.Reader, *scuttlebutt.Update) error) ([]scuttlebutt.Update, error) {
	if n > uint64(r.Len()/minSize) {
		return nil, fmt.Errorf("%w: %d updates cannot fit in %d bytes", cborx.ErrMalformed, n, r.Len())
	}
	us := dst[:0]
	if dst == nil || uint64(cap(dst)) < n {
		// Room for updates of a typical 16 bytes at the most: a count
		// that lies costs no more than that, and append grows the slice
		// for real ones.
		us = make([]scuttlebutt.Update, 0, min(n, uint64(r.Len()/16)))
	}
	for i := range int(n) {
		us = append(us, scuttlebutt.Update{})
		if err := read(r, &us[i]); err != nil {
			return nil, fmt.Errorf("update %d: %w", i, err)
		}
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last update", cborx.ErrMalformed, r.Len())
	}
	return us, nil
}

// read decodes the update at r into u, the zero Update. u is written
// once, at the end (it may be in a heap slice: each pointer stored is a
// write barrier).
func (d *Decoder) read(r *cborx.Reader, u *scuttlebutt.Update) error {
	fields, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return err
	}
	if fields < 3 || fields > 4 {
		return fmt.Errorf("%w: %d fields, want 3 or 4", cborx.ErrMalformed, fields)
	}
	src, err := r.Text()
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	s, ok := d.sources[string(src)]
	if !ok {
		s = string(src)
		if err := scuttlebutt.ValidID(s); err != nil {
			return fmt.Errorf("%w: source: %w", scuttlebutt.ErrInvalidUpdate, err)
		}
		if d.sources == nil {
			d.sources = make(map[string]string)
		}
		d.sources[s] = s
	}
	t, err := ReadTimestamp(r)
	if err != nil {
		if errors.Is(err, ErrInvalidTimestamp) {
			return fmt.Errorf("%w: %w", scuttlebutt.ErrInvalidUpdate, err)
		}
		return fmt.Errorf("timestamp: %w", err)
	}
	data, err := r.Item(scuttlebutt.MaxNesting)
	if err != nil {
		return fmt.Errorf("%w: data: %w", scuttlebutt.ErrInvalidUpdate, err)
	}
	var sig []byte
	if fields == 4 {
		if sig, err = r.Bytes(); err != nil {
			return fmt.Errorf("signature: %w", err)
		}
	}
	if d.Copy {
		data = bytes.Clone(data)
		if sig != nil {
			sig = bytes.Clone(sig)
		}
	}
	// Field by field: a whole-struct store would be a typed memmove.
	u.Source, u.Timestamp, u.Data = s, t, data
	if sig != nil {
		u.Signature = sig
	}
	return nil
}
