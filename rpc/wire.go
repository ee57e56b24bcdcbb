package rpc

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/internal/value"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/stream"
)

// The frame header is package stream's: one byte of kind, then the body
// length as a big-endian uint32. Frames are read with a
// stream.FrameReader; this side writes them.
const (
	sizeOfKind   = 1
	sizeOfLength = 4
	headerSize   = sizeOfKind + sizeOfLength
)

// header is a frame header with accessors.
type header []byte

func (h header) Kind() kind     { return kind(h[0]) }
func (h header) Length() uint32 { return binary.BigEndian.Uint32(h[sizeOfKind:headerSize]) }

func (h header) encode(k kind, n int) {
	h[0] = byte(k)
	binary.BigEndian.PutUint32(h[sizeOfKind:headerSize], uint32(n))
}

// kind is a frame's kind. The numbers are on the wire: only ever append.
// They are apart from package stream's (1 to 9, 0x40 and 0x41), so that
// an rpc peer pointed at a replication stream, or the other way round,
// fails at the first frame.
type kind byte

const (
	kindCall   kind = 0x50 // client -> server: [id, name, args] or [id, name, args, timeout]
	kindResult kind = 0x51 // server -> client: [id, result]
	kindError  kind = 0x52 // server -> client: [id, code, message]
	kindCancel kind = 0x53 // client -> server: [id]

	kindFirst = kindCall   // the lowest kind, for the dispatch tables
	numKinds  = 4          // kinds from kindFirst on
	kindLast  = kindCancel // the highest kind
)

func (k kind) String() string {
	switch k {
	case kindCall:
		return "call"
	case kindResult:
		return "result"
	case kindError:
		return "error"
	case kindCancel:
		return "cancel"
	}
	return fmt.Sprintf("kind(%#x)", byte(k))
}

// code says why a call failed, in an error frame. The numbers are on the
// wire: only ever append. A client takes a code it does not know as
// codeRemote.
type code uint64

const (
	codeRemote  code = 1 // the handler returned an error, panicked, or returned no value
	codeUnknown code = 2 // no handler of that name
	codeBusy    code = 3 // MaxInflight calls running on the connection
	codeTimeout code = 4 // the handler's deadline passed and it returned the context's error
)

// Bounds of what crosses the wire besides the frame size.
const (
	// MaxNameLen is the longest method name in bytes.
	MaxNameLen = 256
	// MaxMessageLen is the longest error message a server sends, in
	// bytes; a longer one is cut at a character boundary and ends in
	// "...".
	MaxMessageLen = 4096
	// maxDepth is how deeply arrays and maps may nest in one argument or
	// result: as in a model.Model value.
	maxDepth = scuttlebutt.MaxNesting - 1
	// maxTimeoutMillis bounds the timeout field, so that it converts to a
	// time.Duration without overflow (about 292 years in nanoseconds).
	maxTimeoutMillis = math.MaxInt64 / 1_000_000
)

// appendFrame appends a frame of kind k whose body is produced by body,
// which appends to its argument. It returns an error wrapping
// stream.ErrFrameTooLarge, and dst as it was, if the body exceeds max.
func appendFrame(dst []byte, k kind, max int, body func([]byte) ([]byte, error)) ([]byte, error) {
	start := len(dst)
	dst = append(dst, make([]byte, headerSize)...)
	dst, err := body(dst)
	if err != nil {
		return dst[:start], err
	}
	n := len(dst) - start - headerSize
	if n > max {
		return dst[:start], fmt.Errorf("%w: %s frame of %d bytes, the limit is %d", stream.ErrFrameTooLarge, k, n, max)
	}
	header(dst[start:]).encode(k, n)
	return dst, nil
}

// call is a call frame's body.
type call struct {
	id      uint64
	name    string
	args    []byte // the CBOR array of arguments
	timeout uint64 // milliseconds; 0 with hasTimeout false for none
	// hasTimeout says the frame has a timeout field.
	hasTimeout bool
}

// appendCall appends a call's body; c.args is the encoded array.
func appendCall(b []byte, c call) []byte {
	b = appendCallHead(b, c)
	b = append(b, c.args...)
	return appendCallTail(b, c)
}

// appendCallHead appends a call's body up to its arguments.
func appendCallHead(b []byte, c call) []byte {
	n := uint64(3)
	if c.hasTimeout {
		n = 4
	}
	b = cborx.AppendHead(b, cborx.MajorArray, n)
	b = cborx.AppendHead(b, cborx.MajorUint, c.id)
	b = cborx.AppendHead(b, cborx.MajorText, uint64(len(c.name)))
	return append(b, c.name...)
}

// appendCallTail appends what of a call's body follows its arguments.
func appendCallTail(b []byte, c call) []byte {
	if c.hasTimeout {
		b = cborx.AppendHead(b, cborx.MajorUint, c.timeout)
	}
	return b
}

// callBody returns the frame body writer of call c with args, as
// appendFrame takes it: an argument that is not a value is
// ErrInvalidValue naming the method.
func callBody(c call, args []any) func([]byte) ([]byte, error) {
	return func(b []byte) ([]byte, error) {
		b, err := appendArgs(appendCallHead(b, c), args)
		if err != nil {
			return b, fmt.Errorf("%w: %s: %v", ErrInvalidValue, c.name, err)
		}
		return appendCallTail(b, c), nil
	}
}

// appendArgs appends the array of args, or returns why one is not a
// value (value.Check).
func appendArgs(b []byte, args []any) ([]byte, error) {
	b = cborx.AppendHead(b, cborx.MajorArray, uint64(len(args)))
	for i, a := range args {
		var err error
		if b, err = appendValue(b, a); err != nil {
			return b, fmt.Errorf("argument %d: %v", i, err)
		}
	}
	return b, nil
}

// appendValue appends v encoded as a Model encodes its values, or returns
// why v is not a value (value.Check).
func appendValue(b []byte, v any) ([]byte, error) {
	if err := value.Check(v, maxDepth); err != nil {
		return b, err
	}
	switch v := v.(type) { // the common cases, without the encoder
	case nil:
		return append(b, 0xf6), nil
	case bool:
		if v {
			return append(b, 0xf5), nil
		}
		return append(b, 0xf4), nil
	case string:
		return append(cborx.AppendHead(b, cborx.MajorText, uint64(len(v))), v...), nil
	case []byte:
		return append(cborx.AppendHead(b, cborx.MajorBytes, uint64(len(v))), v...), nil
	case int:
		return appendInt(b, int64(v)), nil
	case int64:
		return appendInt(b, v), nil
	}
	enc, err := value.Enc.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, enc...), nil
}

func appendInt(b []byte, i int64) []byte {
	if i < 0 {
		return cborx.AppendHead(b, cborx.MajorNeg, uint64(-1-i))
	}
	return cborx.AppendHead(b, cborx.MajorUint, uint64(i))
}

// parseCall parses a call's body. The arguments are checked: an array of
// values, each as model.Model checks a value from a peer.
func parseCall(body []byte) (c call, err error) {
	r := cborx.NewReader(body)
	n, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return c, malformed(kindCall, err)
	}
	if n != 3 && n != 4 {
		return c, malformed(kindCall, fmt.Errorf("an array of %d elements, not 3 or 4", n))
	}
	if c.id, err = readID(&r); err != nil {
		return c, malformed(kindCall, err)
	}
	name, err := r.Text()
	if err != nil {
		return c, malformed(kindCall, fmt.Errorf("name: %w", err))
	}
	if err := checkName(name); err != nil {
		return c, malformed(kindCall, err)
	}
	c.name = string(name)
	start := r.Off()
	if err := skipValues(&r); err != nil {
		return c, malformed(kindCall, fmt.Errorf("arguments: %w", err))
	}
	c.args = body[start:r.Off()]
	if n == 4 {
		c.hasTimeout = true
		if c.timeout, err = r.HeadOf(cborx.MajorUint); err != nil {
			return c, malformed(kindCall, fmt.Errorf("timeout: %w", err))
		}
	}
	if r.Len() != 0 {
		return c, malformed(kindCall, fmt.Errorf("%d bytes after the body", r.Len()))
	}
	return c, nil
}

// readID reads a call id: an unsigned integer, not 0.
func readID(r *cborx.Reader) (uint64, error) {
	id, err := r.HeadOf(cborx.MajorUint)
	if err != nil {
		return 0, fmt.Errorf("id: %w", err)
	}
	if id == 0 {
		return 0, fmt.Errorf("id 0")
	}
	return id, nil
}

// checkName reports why name cannot be a method's.
func checkName[S ~string | ~[]byte](name S) error {
	switch {
	case len(name) == 0:
		return fmt.Errorf("empty method name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("method name of %d bytes, the limit is %d", len(name), MaxNameLen)
	case !utf8.Valid([]byte(name)):
		return fmt.Errorf("method name %q is not UTF-8", name)
	}
	return nil
}

// skipValues reads an array of values at r, checking each.
func skipValues(r *cborx.Reader) error {
	n, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return err
	}
	if n > uint64(r.Len()) {
		return fmt.Errorf("%d arguments cannot fit in %d bytes", n, r.Len())
	}
	for i := range n {
		if _, err := readValue(r); err != nil {
			return fmt.Errorf("argument %d: %w", i, err)
		}
	}
	return nil
}

// readValue reads one value at r and checks it as model.Model checks a
// value from a peer.
func readValue(r *cborx.Reader) ([]byte, error) {
	v, err := r.Item(maxDepth)
	if err != nil {
		return nil, err
	}
	if err := value.CheckEncoded(v, maxDepth); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return v, nil
}

// decodeArgs decodes the array of arguments a call's parse checked.
func decodeArgs(b []byte) ([]any, error) {
	r := cborx.NewReader(b)
	n, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return nil, err
	}
	args := make([]any, n)
	for i := range args {
		v, err := r.Item(maxDepth)
		if err != nil {
			return nil, err
		}
		if args[i], err = decodeValue(v); err != nil {
			return nil, fmt.Errorf("argument %d: %w", i, err)
		}
	}
	return args, nil
}

// decodeValue decodes a checked value into the Go types model.Model's Get
// returns.
func decodeValue(b []byte) (any, error) {
	var v any
	if err := value.Dec.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// appendResult appends a result's body; v is the encoded value.
func appendResult(b []byte, id uint64, v []byte) []byte {
	return append(appendResultHead(b, id), v...)
}

// appendResultHead appends a result's body up to its value.
func appendResultHead(b []byte, id uint64) []byte {
	b = append(b, cborx.MajorArray|2)
	return cborx.AppendHead(b, cborx.MajorUint, id)
}

// parseResult parses a result's body and checks its value.
func parseResult(body []byte) (id uint64, v []byte, err error) {
	r := cborx.NewReader(body)
	if err := readArrayOf(&r, 2); err != nil {
		return 0, nil, malformed(kindResult, err)
	}
	if id, err = readID(&r); err != nil {
		return 0, nil, malformed(kindResult, err)
	}
	if v, err = readValue(&r); err != nil {
		return 0, nil, malformed(kindResult, fmt.Errorf("result: %w", err))
	}
	if r.Len() != 0 {
		return 0, nil, malformed(kindResult, fmt.Errorf("%d bytes after the body", r.Len()))
	}
	return id, v, nil
}

// appendError appends an error's body.
func appendError(b []byte, id uint64, c code, msg string) []byte {
	b = append(b, cborx.MajorArray|3)
	b = cborx.AppendHead(b, cborx.MajorUint, id)
	b = cborx.AppendHead(b, cborx.MajorUint, uint64(c))
	b = cborx.AppendHead(b, cborx.MajorText, uint64(len(msg)))
	return append(b, msg...)
}

// parseError parses an error's body.
func parseError(body []byte) (id uint64, c code, msg string, err error) {
	r := cborx.NewReader(body)
	if err := readArrayOf(&r, 3); err != nil {
		return 0, 0, "", malformed(kindError, err)
	}
	if id, err = readID(&r); err != nil {
		return 0, 0, "", malformed(kindError, err)
	}
	n, err := r.HeadOf(cborx.MajorUint)
	if err != nil {
		return 0, 0, "", malformed(kindError, fmt.Errorf("code: %w", err))
	}
	m, err := r.Text()
	if err != nil {
		return 0, 0, "", malformed(kindError, fmt.Errorf("message: %w", err))
	}
	if !utf8.Valid(m) {
		return 0, 0, "", malformed(kindError, fmt.Errorf("message is not UTF-8"))
	}
	if r.Len() != 0 {
		return 0, 0, "", malformed(kindError, fmt.Errorf("%d bytes after the body", r.Len()))
	}
	return id, code(n), string(m), nil
}

// appendCancel appends a cancel's body.
func appendCancel(b []byte, id uint64) []byte {
	b = append(b, cborx.MajorArray|1)
	return cborx.AppendHead(b, cborx.MajorUint, id)
}

// parseCancel parses a cancel's body.
func parseCancel(body []byte) (id uint64, err error) {
	r := cborx.NewReader(body)
	if err := readArrayOf(&r, 1); err != nil {
		return 0, malformed(kindCancel, err)
	}
	if id, err = readID(&r); err != nil {
		return 0, malformed(kindCancel, err)
	}
	if r.Len() != 0 {
		return 0, malformed(kindCancel, fmt.Errorf("%d bytes after the body", r.Len()))
	}
	return id, nil
}

func readArrayOf(r *cborx.Reader, want uint64) error {
	n, err := r.HeadOf(cborx.MajorArray)
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("an array of %d elements, not %d", n, want)
	}
	return nil
}

func malformed(k kind, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, k, err)
}

// errorOverhead is the most an error frame's body takes besides its
// message's bytes: the array's head, the id, the code and the message's
// head, each at most 9 bytes.
const errorOverhead = 1 + 9 + 9 + 9

// truncateMessage makes msg valid UTF-8 and cuts it to at most limit
// bytes, at a character boundary, ending in "...".
func truncateMessage(msg string, limit int) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) <= limit {
		return msg
	}
	const ellipsis = "..."
	cut := max(limit-len(ellipsis), 0)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + ellipsis
}
