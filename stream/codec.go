package stream

import (
	"encoding/binary"
	"fmt"
	"github.com/scuttle-go/scuttle/internal/wire"
	"math"
	"reflect"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/internal/cborx"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// CBOR major types used by the hand-written update encoding.
const (
	majorBytes = cborx.MajorBytes
	majorText  = cborx.MajorText
	majorArray = cborx.MajorArray
	float64Tag = cborx.Float64
)

// Decoder limits for frame bodies, on top of the frame size limit.
const (
	maxNesting  = scuttlebutt.MaxNesting + 4 // message, update, data
	maxElements = 1 << 20                    // updates in a frame, items in a value
	maxPairs    = 1 << 20                    // clock entries, map pairs in a value
)

var (
	decMode = func() cbor.DecMode {
		dm, err := cbor.DecOptions{
			DupMapKey:        cbor.DupMapKeyEnforcedAPF,
			MaxNestedLevels:  maxNesting,
			MaxArrayElements: maxElements,
			MaxMapPairs:      maxPairs,
			IndefLength:      cbor.IndefLengthForbidden,
			TagsMd:           cbor.TagsForbidden,
			DefaultMapType:   mapType,
			IntDec:           cbor.IntDecConvertSignedOrFail,
		}.DecMode()
		if err != nil {
			panic(err) // constant options
		}
		return dm
	}()
	encMode = func() cbor.EncMode {
		em, err := cbor.EncOptions{Sort: cbor.SortBytewiseLexical}.EncMode()
		if err != nil {
			panic(err)
		}
		return em
	}()
)

// wireHello is the CBOR body of a hello frame: a map with small integer keys.
type wireHello struct {
	Version int          `cbor:"1,keyasint"`
	ID      string       `cbor:"2,keyasint"`
	Clock   vclock.Clock `cbor:"3,keyasint"`
	Meta    any          `cbor:"4,keyasint,omitempty"`
}

// appendMessage appends m as one frame.
func appendMessage(dst []byte, m scuttlebutt.Message, max int) ([]byte, error) {
	return appendFrame(dst, m.Kind, max, func(b []byte) ([]byte, error) {
		switch m.Kind {
		case scuttlebutt.MsgHello:
			h := m.Hello
			return appendCBOR(b, wireHello{h.Version, h.ID, h.Clock, h.Meta})
		case scuttlebutt.MsgUpdates:
			b = cborx.AppendHead(b, majorArray, uint64(len(m.Updates)))
			for _, u := range m.Updates {
				b = wire.AppendUpdate(b, u)
			}
			return b, nil
		case scuttlebutt.MsgSync, scuttlebutt.MsgClock:
			c := m.Clock
			if c == nil {
				c = vclock.Clock{}
			}
			return appendCBOR(b, c)
		}
		return b, fmt.Errorf("%w: %d", ErrUnknownKind, m.Kind)
	})
}

// decodeMessage decodes the body of a frame of kind k. The message shares
// nothing with body. Errors wrap ErrMalformed or ErrUnknownKind.
func decodeMessage(k scuttlebutt.MessageKind, body []byte) (scuttlebutt.Message, error) {
	m := scuttlebutt.Message{Kind: k}
	switch k {
	case scuttlebutt.MsgHello:
		var h wireHello
		if err := decMode.Unmarshal(body, &h); err != nil {
			return m, fmt.Errorf("%w: hello: %v", ErrMalformed, err)
		}
		m.Hello = &scuttlebutt.Hello{Version: h.Version, ID: h.ID, Clock: h.Clock, Meta: h.Meta}
	case scuttlebutt.MsgUpdates:
		us, err := decodeUpdates(body)
		if err != nil {
			return m, fmt.Errorf("%w: updates: %v", ErrMalformed, err)
		}
		m.Updates = us
	case scuttlebutt.MsgSync, scuttlebutt.MsgClock:
		if err := decMode.Unmarshal(body, &m.Clock); err != nil {
			return m, fmt.Errorf("%w: %s: %v", ErrMalformed, k, err)
		}
		if m.Clock == nil {
			return m, fmt.Errorf("%w: %s: no clock", ErrMalformed, k)
		}
	default:
		return m, fmt.Errorf("%w: %d", ErrUnknownKind, k)
	}
	return m, nil
}

// decodeUpdates decodes an array of updates. Heads are parsed by hand; each
// update's data is checked and copied by the CBOR decoder with its limits.
func decodeUpdates(body []byte) ([]scuttlebutt.Update, error) {
	d := cborReader{b: body}
	n, err := d.head(majorArray)
	if err != nil {
		return nil, err
	}
	// Every update takes at least 12 bytes ([, source, float64, data]), so n
	// is bounded by the body before we allocate for it.
	if n > uint64(len(body)/12) {
		return nil, fmt.Errorf("%d updates cannot fit in %d bytes", n, len(body))
	}
	us := make([]scuttlebutt.Update, n)
	var sources map[string]string // interned: a frame repeats few sources
	for i := range us {
		u := &us[i]
		fields, err := d.head(majorArray)
		if err != nil {
			return nil, fmt.Errorf("update %d: %v", i, err)
		}
		if fields < 3 || fields > 4 {
			return nil, fmt.Errorf("update %d: %d fields, want 3 or 4", i, fields)
		}
		src, err := d.text()
		if err != nil {
			return nil, fmt.Errorf("update %d: source: %v", i, err)
		}
		s, ok := sources[string(src)]
		if !ok {
			if sources == nil {
				sources = make(map[string]string)
			}
			s = string(src)
			sources[s] = s
		}
		u.Source = s
		ts, err := d.float64()
		if err != nil {
			return nil, fmt.Errorf("update %d: timestamp: %v", i, err)
		}
		u.Timestamp = vclock.Timestamp(ts)
		n, err := cborx.Item(d.b[d.off:], maxNesting)
		if err != nil {
			return nil, fmt.Errorf("update %d: data: %v", i, err)
		}
		u.Data = append([]byte(nil), d.b[d.off:d.off+n]...)
		d.off += n
		if fields == 4 {
			sig, err := d.bytes()
			if err != nil {
				return nil, fmt.Errorf("update %d: signature: %v", i, err)
			}
			u.Signature = append([]byte(nil), sig...)
		}
	}
	if d.off != len(d.b) {
		return nil, fmt.Errorf("%d bytes after the last update", len(d.b)-d.off)
	}
	return us, nil
}

// cborReader parses the few CBOR heads of the update encoding.
type cborReader struct {
	b   []byte
	off int
}

func (d *cborReader) head(major byte) (uint64, error) {
	if d.off >= len(d.b) {
		return 0, fmt.Errorf("unexpected end")
	}
	c := d.b[d.off]
	if c&0xe0 != major {
		return 0, fmt.Errorf("major type %d, want %d", c>>5, major>>5)
	}
	d.off++
	add := c & 0x1f
	var size int
	switch {
	case add < 24:
		return uint64(add), nil
	case add == 24:
		size = 1
	case add == 25:
		size = 2
	case add == 26:
		size = 4
	case add == 27:
		size = 8
	default:
		return 0, fmt.Errorf("indefinite or reserved length %d", add)
	}
	if len(d.b)-d.off < size {
		return 0, fmt.Errorf("unexpected end")
	}
	var n uint64
	for _, x := range d.b[d.off : d.off+size] {
		n = n<<8 | uint64(x)
	}
	d.off += size
	return n, nil
}

func (d *cborReader) text() ([]byte, error) {
	n, err := d.head(majorText)
	if err != nil {
		return nil, err
	}
	return d.take(n)
}

func (d *cborReader) bytes() ([]byte, error) {
	n, err := d.head(majorBytes)
	if err != nil {
		return nil, err
	}
	return d.take(n)
}

func (d *cborReader) take(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)-d.off) {
		return nil, fmt.Errorf("length %d past the end", n)
	}
	s := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return s, nil
}

// float64 reads a float of any width, or an unsigned integer, as float64.
func (d *cborReader) float64() (float64, error) {
	if d.off >= len(d.b) {
		return 0, fmt.Errorf("unexpected end")
	}
	switch c := d.b[d.off]; {
	case c == float64Tag:
		v, err := d.take1(9)
		if err != nil {
			return 0, err
		}
		return math.Float64frombits(binary.BigEndian.Uint64(v[1:])), nil
	case c == 0xfa:
		v, err := d.take1(5)
		if err != nil {
			return 0, err
		}
		return float64(math.Float32frombits(binary.BigEndian.Uint32(v[1:]))), nil
	case c>>5 == 0:
		n, err := d.head(0)
		return float64(n), err
	}
	return 0, fmt.Errorf("not a number (initial byte %#x)", d.b[d.off])
}

func (d *cborReader) take1(n int) ([]byte, error) {
	if len(d.b)-d.off < n {
		return nil, fmt.Errorf("unexpected end")
	}
	s := d.b[d.off : d.off+n]
	d.off += n
	return s, nil
}

// appendCBOR appends the CBOR encoding of v.
func appendCBOR(b []byte, v any) ([]byte, error) {
	e, err := encMode.Marshal(v)
	if err != nil {
		return b, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return append(b, e...), nil
}

var mapType = reflect.TypeOf(map[string]any(nil))
