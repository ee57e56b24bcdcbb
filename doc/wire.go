package doc

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
	"unsafe"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/value"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Limits of a document and of a patch.
const (
	// MaxDepth is how deep a document goes: a path has at most MaxDepth
	// segments, and a value Set at a path of n segments nests at most
	// MaxDepth-n arrays and objects (MaxDepth-n-1 for a value pushed
	// into an array there). It keeps every update within
	// scuttlebutt.MaxNesting.
	MaxDepth = scuttlebutt.MaxNesting - 2
	// MaxOps is the most ops one patch may hold.
	MaxOps = 1024
)

// The op codes of the wire form; they are on the wire: only ever append.
const (
	opSet   = 0
	opUnset = 1
	opInc   = 2
	opPush  = 3
	opPull  = 4
)

// maxExactInt is the largest integer a float64 holds exactly: totals up to
// it go on the wire as CBOR integers.
const maxExactInt = 1 << 53

// wirePayload is an update's payload split into its parts. Strings and
// encoded values alias the payload, which is immutable.
type wirePayload struct {
	sources []string // the source table: ids that seen entries and element ids name
	ops     []wireOp
}

// wireOp is one op of a payload.
type wireOp struct {
	code byte
	path []string
	val  []byte     // Set: the encoded value
	vals [][]byte   // Push: the encoded values
	seen []wireSeen // Set, Unset: the counter totals the writer had seen below path
	p, n float64    // Inc: the writer's cumulative totals of increments and decrements
	ids  []wireID   // Pull: the elements removed
}

// wireSeen is one counter total a reset had seen: of source src at path
// plus rel.
type wireSeen struct {
	rel  []string
	src  int // index in the source table
	p, n float64
}

// wireID is an element id as a Pull names it.
type wireID struct {
	ts    vclock.Timestamp
	src   int // index in the source table
	op, k uint32
}

// parsePayload splits and checks a payload (see "Wire form" in the package
// doc). It depends on nothing but data, so it is the Validator too: a
// payload it accepts applies without error on every replica. Errors wrap
// ErrInvalidValue, ErrInvalidPath, ErrTooDeep, ErrTooLarge or ErrNotObject.
func parsePayload(data []byte) (*wirePayload, error) {
	r := cborx.NewReader(data)
	n, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrInvalidValue, err)
	}
	if n < 2 {
		return nil, fmt.Errorf("%w: payload has no op", ErrInvalidValue)
	}
	if n-1 > MaxOps {
		return nil, fmt.Errorf("%w: %d ops, the limit is %d", ErrTooLarge, n-1, MaxOps)
	}
	if n > uint64(r.Len()) {
		return nil, fmt.Errorf("%w: payload of %d items cannot fit", ErrInvalidValue, n)
	}
	p := &wirePayload{}
	ns, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return nil, fmt.Errorf("%w: source table: %v", ErrInvalidValue, err)
	}
	if ns > uint64(r.Len()) {
		return nil, fmt.Errorf("%w: source table of %d cannot fit", ErrInvalidValue, ns)
	}
	p.sources = make([]string, ns)
	for i := range p.sources {
		s, err := text(&r)
		if err != nil {
			return nil, fmt.Errorf("%w: source table: %v", ErrInvalidValue, err)
		}
		if err := scuttlebutt.ValidID(s); err != nil {
			return nil, fmt.Errorf("%w: source table: %v", ErrInvalidValue, err)
		}
		p.sources[i] = s
	}
	p.ops = make([]wireOp, n-1)
	for i := range p.ops {
		if err := parseOp(&r, &p.ops[i], len(p.sources)); err != nil {
			return nil, fmt.Errorf("op %d: %w", i, err)
		}
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the payload", ErrInvalidValue, r.Len())
	}
	return p, nil
}

func parseOp(r *cborx.Reader, op *wireOp, nsrc int) error {
	m, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	if m < 2 || m > uint64(r.Len()) {
		return fmt.Errorf("%w: op of %d items", ErrInvalidValue, m)
	}
	code, err := r.HeadOf(cborx.MajorUint)
	if err != nil {
		return fmt.Errorf("%w: op code: %v", ErrInvalidValue, err)
	}
	if code > opPull {
		return fmt.Errorf("%w: unknown op code %d", ErrInvalidValue, code)
	}
	op.code = byte(code)
	if op.path, err = parsePath(r, 0); err != nil {
		return err
	}
	depth := len(op.path)
	args := m - 2
	switch op.code {
	case opSet:
		if args != 1 && args != 2 {
			return fmt.Errorf("%w: set with %d arguments", ErrInvalidValue, args)
		}
		if op.val, err = encodedValue(r, MaxDepth-depth); err != nil {
			return err
		}
		if depth == 0 && op.val[0]&0xe0 != cborx.MajorMap {
			return fmt.Errorf("%w: set of the root to a non-object", ErrNotObject)
		}
		if args == 2 {
			op.seen, err = parseSeen(r, depth, nsrc)
		}
		return err
	case opUnset:
		if args > 1 {
			return fmt.Errorf("%w: unset with %d arguments", ErrInvalidValue, args)
		}
		if args == 1 {
			op.seen, err = parseSeen(r, depth, nsrc)
		}
		return err
	}
	if depth == 0 {
		return fmt.Errorf("%w: op %d on the root", ErrInvalidValue, op.code)
	}
	switch op.code {
	case opInc:
		if args != 2 {
			return fmt.Errorf("%w: inc with %d arguments", ErrInvalidValue, args)
		}
		if op.p, err = total(r); err != nil {
			return err
		}
		op.n, err = total(r)
		return err
	case opPush:
		if depth+1 > MaxDepth {
			return fmt.Errorf("%w: push at depth %d", ErrTooDeep, depth)
		}
		op.vals = make([][]byte, args)
		for i := range op.vals {
			if op.vals[i], err = encodedValue(r, MaxDepth-depth-1); err != nil {
				return err
			}
		}
		return nil
	}
	// opPull
	op.ids = make([]wireID, args)
	for i := range op.ids {
		if op.ids[i], err = parseID(r, nsrc); err != nil {
			return err
		}
	}
	return nil
}

// parsePath reads a path, an array of text segments, under depth segments
// already taken.
func parsePath(r *cborx.Reader, depth int) ([]string, error) {
	n, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return nil, fmt.Errorf("%w: path: %v", ErrInvalidPath, err)
	}
	if n > uint64(MaxDepth-depth) {
		return nil, fmt.Errorf("%w: path of %d segments below depth %d", ErrTooDeep, n, depth)
	}
	if n == 0 {
		return nil, nil
	}
	path := make([]string, n)
	for i := range path {
		if path[i], err = text(r); err != nil {
			return nil, fmt.Errorf("%w: path: %v", ErrInvalidPath, err)
		}
	}
	return path, nil
}

// text reads UTF-8 text, aliasing the payload.
func text(r *cborx.Reader) (string, error) {
	b, err := r.Text()
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("text is not UTF-8")
	}
	if len(b) == 0 {
		return "", nil
	}
	return unsafe.String(&b[0], len(b)), nil
}

// encodedValue reads one value nested at most depth deep.
func encodedValue(r *cborx.Reader, depth int) ([]byte, error) {
	b, err := r.Item(scuttlebutt.MaxNesting)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	if err := value.CheckEncoded(b, depth); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return b, nil
}

// exactNumber reads a number as Patch writes one: a float, or an integer a
// float64 holds exactly (within ±2^53).
func exactNumber(r *cborx.Reader) (float64, error) {
	ahead := *r // a Reader is a position in a slice: a copy reads ahead
	major, _, arg, err := ahead.Head()
	if err == nil && (major == cborx.MajorUint || major == cborx.MajorNeg) && arg > maxExactInt {
		return 0, fmt.Errorf("integer %d is beyond 2^53", arg)
	}
	return r.Number()
}

// total reads a counter total: a finite number, zero or more.
func total(r *cborx.Reader) (float64, error) {
	f, err := exactNumber(r)
	if err != nil {
		return 0, fmt.Errorf("%w: total: %v", ErrInvalidValue, err)
	}
	if !(f >= 0) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: total %v is not finite and non-negative", ErrInvalidValue, f)
	}
	return f, nil
}

func parseSeen(r *cborx.Reader, depth, nsrc int) ([]wireSeen, error) {
	n, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return nil, fmt.Errorf("%w: seen: %v", ErrInvalidValue, err)
	}
	if n > uint64(r.Len()) {
		return nil, fmt.Errorf("%w: seen of %d cannot fit", ErrInvalidValue, n)
	}
	out := make([]wireSeen, n)
	for i := range out {
		s := &out[i]
		if m, err := r.HeadOf(cborx.MajorArray); err != nil || m != 4 {
			return nil, fmt.Errorf("%w: seen entry is not [path, source, total, total]", ErrInvalidValue)
		}
		if s.rel, err = parsePath(r, depth); err != nil {
			return nil, err
		}
		if s.src, err = sourceRef(r, nsrc); err != nil {
			return nil, err
		}
		if s.p, err = total(r); err != nil {
			return nil, err
		}
		if s.n, err = total(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sourceRef(r *cborx.Reader, nsrc int) (int, error) {
	i, err := r.HeadOf(cborx.MajorUint)
	if err != nil {
		return 0, fmt.Errorf("%w: source: %v", ErrInvalidValue, err)
	}
	if i >= uint64(nsrc) {
		return 0, fmt.Errorf("%w: source %d of a table of %d", ErrInvalidValue, i, nsrc)
	}
	return int(i), nil
}

func parseID(r *cborx.Reader, nsrc int) (id wireID, err error) {
	if m, err := r.HeadOf(cborx.MajorArray); err != nil || m != 4 {
		return id, fmt.Errorf("%w: element id is not [timestamp, source, op, index]", ErrInvalidValue)
	}
	ts, err := exactNumber(r)
	if err != nil {
		return id, fmt.Errorf("%w: element id: %v", ErrInvalidValue, err)
	}
	if id.ts = vclock.Timestamp(ts); !id.ts.Valid() {
		return id, fmt.Errorf("%w: element id timestamp %v", ErrInvalidValue, ts)
	}
	if id.src, err = sourceRef(r, nsrc); err != nil {
		return id, err
	}
	op, err := r.HeadOf(cborx.MajorUint)
	if err != nil || op >= MaxOps {
		return id, fmt.Errorf("%w: element id op", ErrInvalidValue)
	}
	k, err := r.HeadOf(cborx.MajorUint)
	if err != nil || k > math.MaxUint32 {
		return id, fmt.Errorf("%w: element id index", ErrInvalidValue)
	}
	id.op, id.k = uint32(op), uint32(k)
	return id, nil
}

// Encoding, for the patch builder.

func appendText(b []byte, s string) []byte {
	return append(cborx.AppendHead(b, cborx.MajorText, uint64(len(s))), s...)
}

func appendPath(b []byte, path []string) []byte {
	b = cborx.AppendHead(b, cborx.MajorArray, uint64(len(path)))
	for _, s := range path {
		b = appendText(b, s)
	}
	return b
}

func appendFloat64(b []byte, f float64) []byte {
	return binary.BigEndian.AppendUint64(append(b, cborx.Float64), math.Float64bits(f))
}

// appendTotal appends a total, as an integer when it is one exactly.
func appendTotal(b []byte, f float64) []byte {
	if f >= 0 && f <= maxExactInt && f == math.Trunc(f) {
		return cborx.AppendHead(b, cborx.MajorUint, uint64(f))
	}
	return appendFloat64(b, f)
}
