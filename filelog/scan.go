package filelog

import (
	"fmt"
	"io"
)

// readChunk is how much the scanner reads at a time.
const readChunk = 1 << 20

// scanner reads the records of a log in order. Allocation is bounded: a
// length field is believed only after it is checked against the limit and
// against the bytes left in the file.
type scanner struct {
	r    io.ReaderAt
	size int64 // where the records end: the file's length
	max  int   // MaxRecordSize
	off  int64 // offset of the next record

	buf    []byte
	bufOff int64 // file offset of buf[0]

	zero int64 // start of the trailing run of zero bytes; -1 until known
}

func newScanner(r io.ReaderAt, off, size int64, max int) *scanner {
	return &scanner{r: r, off: off, size: size, max: max, zero: -1}
}

// badRecord describes a record the scanner cannot read: where it starts,
// why, and whether a crash during a write can explain it (a torn tail).
type badRecord struct {
	off    int64
	reason string
	torn   bool
}

func (b *badRecord) Error() string { return fmt.Sprintf("offset %d: %s", b.off, b.reason) }

// next returns the payload of the next record, valid until the next call,
// and the record's offset. It returns io.EOF at the end of the records, a
// *badRecord at a record it cannot read (without moving past it), or the
// reader's error.
func (s *scanner) next() (payload []byte, off int64, err error) {
	off = s.off
	left := s.size - off
	if left == 0 {
		return nil, off, io.EOF
	}
	if left < sizeOfRecordHeader {
		return nil, off, s.bad(fmt.Sprintf("%d bytes, short of a record header", left), true)
	}
	b, err := s.window(sizeOfRecordHeader)
	if err != nil {
		return nil, off, err
	}
	h := recordHeader(b)
	if !h.intact() {
		// A crash leaves a header whole, cut short or zeroed, never
		// changed: it is torn only where it runs into the zeros at the end.
		z, err := s.zeroStart()
		if err != nil {
			return nil, off, err
		}
		return nil, off, s.bad("record header checksum mismatch", off+sizeOfRecordHeader > z)
	}
	n := int64(h.Length())
	if n == 0 || n > int64(s.max) {
		return nil, off, s.bad(fmt.Sprintf("record length %d is outside [1, %d] (MaxRecordSize)", n, s.max), false)
	}
	if n > left-sizeOfRecordHeader {
		return nil, off, s.bad(fmt.Sprintf("record of %d bytes cut short at %d", n, left-sizeOfRecordHeader), true)
	}
	b, err = s.window(sizeOfRecordHeader + int(n))
	if err != nil {
		return nil, off, err
	}
	payload = b[sizeOfRecordHeader:]
	if checksum(payload) != recordHeader(b).DataCRC() {
		// The payload of the last write may be partly zeros or stale
		// blocks after a crash: torn if nothing but zeros follows it.
		z, err := s.zeroStart()
		if err != nil {
			return nil, off, err
		}
		return nil, off, s.bad(fmt.Sprintf("record of %d bytes: checksum mismatch", n), off+sizeOfRecordHeader+n >= z)
	}
	s.off += sizeOfRecordHeader + n
	return payload, off, nil
}

func (s *scanner) bad(reason string, torn bool) *badRecord {
	return &badRecord{off: s.off, reason: reason, torn: torn}
}

// window returns the n bytes at s.off, reading more of the file if the
// buffer does not hold them. The caller has checked that they exist.
func (s *scanner) window(n int) ([]byte, error) {
	if s.off >= s.bufOff && s.off+int64(n) <= s.bufOff+int64(len(s.buf)) {
		i := s.off - s.bufOff
		return s.buf[i : i+int64(n)], nil
	}
	want := int64(max(n, readChunk))
	want = min(want, s.size-s.off)
	if int64(cap(s.buf)) < want {
		s.buf = make([]byte, want)
	}
	s.buf = s.buf[:want]
	s.bufOff = s.off
	got, err := s.r.ReadAt(s.buf, s.off)
	if int64(got) < want {
		s.buf = s.buf[:got]
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading at offset %d: %w", s.off, err)
	}
	return s.buf[:n], nil
}

// zeroStart returns the offset where the file's trailing run of zero bytes
// starts (s.size if the last byte is not zero), reading backwards.
func (s *scanner) zeroStart() (int64, error) {
	if s.zero >= 0 {
		return s.zero, nil
	}
	var chunk [64 << 10]byte
	end := s.size
	for end > 0 {
		start := max(end-int64(len(chunk)), 0)
		b := chunk[:end-start]
		if _, err := s.r.ReadAt(b, start); err != nil && err != io.EOF {
			return 0, fmt.Errorf("reading at offset %d: %w", start, err)
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				s.zero = start + int64(i) + 1
				return s.zero, nil
			}
		}
		end = start
	}
	s.zero = 0
	return 0, nil
}
