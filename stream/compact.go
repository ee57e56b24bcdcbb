package stream

import (
	"bytes"
	"errors"
	"fmt"
	"math"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/wire"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// The compact encoding of updates, protocol version 2 (SPEC.md, "Version
// 2: compact updates"). One direction of a session carries a source table
// and a timestamp per source; the encoder and the decoder at the two ends
// keep the same state, frame by frame, so each source id is sent once and
// each timestamp as a small step from the last of its source.

// Wire kinds of version 2: appended after version 1's kinds, never
// changed.
const (
	// kindCompact is an updates message in the compact encoding.
	kindCompact scuttlebutt.MessageKind = 7
	// kindCompactMore is kindCompact marked scuttlebutt.Message.More: the
	// unit of updates goes on in the next updates frame.
	kindCompactMore scuttlebutt.MessageKind = 8
)

// The op of a compact update: a CBOR unsigned integer whose bits say what
// follows it. Wire numbers: they never change.
const (
	// The low two bits are the timestamp's form.
	opTick  = 0 // t = prev + k·2⁻¹⁰ ms: the HLC's logical step
	opMilli = 1 // t = floor(prev) + k ms: the wall clock moved on
	opFull  = 2 // t follows in full, as a number (version 1's rule)
	opForm  = 3 // the mask of the form; form 3 is refused

	// opSource says that the source follows: a table index (unsigned) or
	// a new source (text), which takes the next index. Without it the
	// update has the source of the previous update.
	opSource = 1 << 2
	// opSignature says that a signature (bytes) follows the data.
	opSignature = 1 << 3
	// opStepShift is where k, the step of forms opTick and opMilli,
	// starts: k = op >> opStepShift, 1 to maxStep.
	opStepShift = 4
)

// maxStep is the largest step k a compact update may carry: 2⁵³, the
// largest up to which every integer is a float64, so that k and k·2⁻¹⁰
// convert exactly and no sum overflows (floor(prev) + 2⁵³ is at most the
// largest float64, rounded down).
const maxStep = 1 << 53

// tickAfter returns prev + k·2⁻¹⁰, as IEEE 754 computes it: the product is
// exact (k ≤ 2⁵³), the sum is rounded once. The conversion keeps the
// compiler from fusing the two into one multiply-add, whose single
// rounding some machines would give.
func tickAfter(prev vclock.Timestamp, k uint64) vclock.Timestamp {
	return vclock.Timestamp(float64(prev) + float64(float64(k)*0x1p-10))
}

// milliAfter returns floor(prev) + k.
func milliAfter(prev vclock.Timestamp, k uint64) vclock.Timestamp {
	return vclock.Timestamp(math.Floor(float64(prev)) + float64(k))
}

// sameBits reports whether a and b are the same float64, bit for bit.
func sameBits(a, b vclock.Timestamp) bool {
	return math.Float64bits(float64(a)) == math.Float64bits(float64(b))
}

// step returns the form and the step that say t after prev, the last
// timestamp of its source, in the fewest bytes: the smaller step of
// opTick and opMilli that gives t back bit for bit, or opFull when neither
// does (t not after prev, a fraction that is no multiple of 2⁻¹⁰ from
// prev, as a JavaScript peer's .001, or a step past maxStep).
func step(prev, t vclock.Timestamp) (form, k uint64) {
	form = opFull
	p, f := float64(prev), float64(t)
	if !(f > p) {
		return opFull, 0
	}
	if d := (f - p) * 1024; d <= maxStep && d == math.Trunc(d) && sameBits(tickAfter(prev, uint64(d)), t) {
		form, k = opTick, uint64(d)
	}
	if d := f - math.Floor(p); d >= 1 && d <= maxStep && d == math.Trunc(d) && sameBits(milliAfter(prev, uint64(d)), t) {
		if form == opFull || uint64(d) < k {
			form, k = opMilli, uint64(d)
		}
	}
	return form, k
}

// compactEncoder writes the compact updates of one direction of a
// session. Its state follows every frame it has appended, so a frame it
// appended must be sent, in order, or the session ended: after an error
// the state no longer matches the peer's (cborEncoder makes errors
// sticky). The zero value is ready to use. Not safe for concurrent use.
type compactEncoder struct {
	index map[string]uint32  // source → table index
	prev  []vclock.Timestamp // by index: the source's last timestamp sent
	last  string             // the previous update's source
	lastI uint32             // and its index
	begun bool               // an update has been appended: last is set
}

// appendUpdates appends the body of a compact updates frame: the number
// of updates, then each.
func (e *compactEncoder) appendUpdates(b []byte, us []scuttlebutt.Update) []byte {
	b = cborx.AppendHead(b, cborx.MajorUint, uint64(len(us)))
	for i := range us {
		b = e.appendUpdate(b, &us[i])
	}
	return b
}

func (e *compactEncoder) appendUpdate(b []byte, u *scuttlebutt.Update) []byte {
	var op uint64
	i, known := e.lastI, e.begun && u.Source == e.last
	if !known {
		op |= opSource
		i, known = e.index[u.Source]
	}
	form, k := uint64(opFull), uint64(0)
	if known {
		form, k = step(e.prev[i], u.Timestamp)
	}
	op |= form | k<<opStepShift
	if u.Signature != nil {
		op |= opSignature
	}
	b = cborx.AppendHead(b, cborx.MajorUint, op)
	if op&opSource != 0 {
		if known {
			b = cborx.AppendHead(b, cborx.MajorUint, uint64(i))
		} else {
			b = cborx.AppendHead(b, cborx.MajorText, uint64(len(u.Source)))
			b = append(b, u.Source...)
			if e.index == nil {
				e.index = make(map[string]uint32)
			}
			i = uint32(len(e.prev))
			e.index[u.Source] = i
			e.prev = append(e.prev, 0)
		}
	}
	if form == opFull {
		b = wire.AppendTimestamp(b, u.Timestamp)
	}
	b = append(b, u.Data...)
	if u.Signature != nil {
		b = cborx.AppendHead(b, cborx.MajorBytes, uint64(len(u.Signature)))
		b = append(b, u.Signature...)
	}
	e.prev[i] = u.Timestamp
	e.last, e.lastI, e.begun = u.Source, i, true
	return b
}

// minCompactUpdate is the least a compact update takes: an op and a
// one-byte data item.
const minCompactUpdate = 2

// compactDecoder reads the compact updates of one direction of a session,
// keeping the state of the peer's compactEncoder. It checks what
// wire.Decoder checks of every update, and the encoding's own bounds: the
// table holds at most max sources (the replica's Config.MaxSources), an
// index names an entry of it, a step is 1 to maxStep and follows a
// timestamp of its source. An update is checked whole before it changes
// the state; after an error the state is unspecified, and the session must
// end. Not safe for concurrent use.
type compactDecoder struct {
	max     int                // sources the table may hold
	sources []string           // the table
	index   map[string]uint32  // the table's sources: a source named twice is refused
	prev    []vclock.Timestamp // by index: the source's last timestamp received
	last    int                // index of the previous update's source, -1 before the first
	spare   spareUpdates       // slices to decode into, or nil
}

func newCompactDecoder(maxSources int) *compactDecoder {
	return &compactDecoder{max: maxSources, last: -1}
}

// updates decodes the body of a compact updates frame. Data and
// signatures are copies: the updates share nothing with body. Errors wrap
// cborx.ErrMalformed, or scuttlebutt.ErrInvalidUpdate for an update the
// base would refuse, or scuttlebutt.ErrTooManySources for a source past
// the table's bound; they name the update at fault by its index.
func (d *compactDecoder) updates(body []byte) ([]scuttlebutt.Update, error) {
	r := cborx.NewReader(body)
	n, err := r.HeadOf(cborx.MajorUint)
	if err != nil {
		return nil, err
	}
	return wire.ReadUpdates(&r, n, minCompactUpdate, d.spare.get(), d.read)
}

// read decodes the update at r into u, the zero Update, and only then
// updates the table and the timestamps.
func (d *compactDecoder) read(r *cborx.Reader, u *scuttlebutt.Update) error {
	op, err := r.HeadOf(cborx.MajorUint)
	if err != nil {
		return fmt.Errorf("op: %w", err)
	}
	form, k := op&opForm, op>>opStepShift
	switch {
	case form == opForm:
		return fmt.Errorf("%w: op %#x: timestamp form 3", cborx.ErrMalformed, op)
	case form == opFull && k != 0:
		return fmt.Errorf("%w: op %#x: a step with a full timestamp", cborx.ErrMalformed, op)
	case form != opFull && (k == 0 || k > maxStep):
		return fmt.Errorf("%w: op %#x: step %d, want 1 to 2^53", cborx.ErrMalformed, op, k)
	}
	i, src, added := d.last, "", false
	if op&opSource == 0 {
		if i < 0 {
			return fmt.Errorf("%w: no source, and no update before", cborx.ErrMalformed)
		}
	} else if i, src, added, err = d.source(r); err != nil {
		return err
	}
	if !added {
		src = d.sources[i]
	}
	var t vclock.Timestamp
	if form == opFull {
		if t, err = wire.ReadTimestamp(r); err != nil {
			if errors.Is(err, wire.ErrInvalidTimestamp) {
				return fmt.Errorf("%w: %w", scuttlebutt.ErrInvalidUpdate, err)
			}
			return fmt.Errorf("timestamp: %w", err)
		}
	} else {
		if added || d.prev[i] == 0 {
			return fmt.Errorf("%w: a step from no timestamp of source %.32q", cborx.ErrMalformed, src)
		}
		if form == opTick {
			t = tickAfter(d.prev[i], k)
		} else {
			t = milliAfter(d.prev[i], k)
		}
		if !t.Valid() {
			return fmt.Errorf("%w: %w: %v", scuttlebutt.ErrInvalidUpdate, wire.ErrInvalidTimestamp, t)
		}
	}
	data, err := r.Item(scuttlebutt.MaxNesting)
	if err != nil {
		return fmt.Errorf("%w: data: %w", scuttlebutt.ErrInvalidUpdate, err)
	}
	var sig []byte
	if op&opSignature != 0 {
		if sig, err = r.Bytes(); err != nil {
			return fmt.Errorf("signature: %w", err)
		}
		sig = bytes.Clone(sig)
	}
	if added {
		i = len(d.sources)
		d.sources = append(d.sources, src)
		d.prev = append(d.prev, 0)
		if d.index == nil {
			d.index = make(map[string]uint32)
		}
		d.index[src] = uint32(i)
	}
	d.prev[i], d.last = t, i
	// Field by field: a whole-struct store would be a typed memmove.
	u.Source, u.Timestamp, u.Data = src, t, bytes.Clone(data)
	if sig != nil {
		u.Signature = sig
	}
	return nil
}

// source reads the source of an update whose op says it follows: the
// index of a source in the table, or a new source, checked (added) but
// not yet in the table.
func (d *compactDecoder) source(r *cborx.Reader) (i int, src string, added bool, err error) {
	major, _, arg, err := r.Head()
	if err != nil {
		return 0, "", false, fmt.Errorf("source: %w", err)
	}
	switch major {
	case cborx.MajorUint:
		if arg >= uint64(len(d.sources)) {
			return 0, "", false, fmt.Errorf("%w: source index %d, the table holds %d", cborx.ErrMalformed, arg, len(d.sources))
		}
		return int(arg), "", false, nil
	case cborx.MajorText:
		if len(d.sources) >= d.max {
			return 0, "", false, fmt.Errorf("%w: a new source past the table's %d (%w)", cborx.ErrMalformed, d.max, scuttlebutt.ErrTooManySources)
		}
		b, err := r.Take(arg)
		if err != nil {
			return 0, "", false, fmt.Errorf("source: %w", err)
		}
		if _, dup := d.index[string(b)]; dup {
			return 0, "", false, fmt.Errorf("%w: source %.32q added to the table twice", cborx.ErrMalformed, b)
		}
		src = string(b)
		if err := scuttlebutt.ValidID(src); err != nil {
			return 0, "", false, fmt.Errorf("%w: source: %w", scuttlebutt.ErrInvalidUpdate, err)
		}
		return 0, src, true, nil
	}
	return 0, "", false, fmt.Errorf("%w: source of major type %d, want an index or a text", cborx.ErrMalformed, major>>5)
}
