package lock

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/scuttle-go/scuttle/internal/wire"
	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// kind says what a lock update does. The numbers are in every update's
// payload: ONLY APPEND.
type kind uint8

const (
	// kindClaim asks for a lock: [1, name, leaseMs].
	kindClaim kind = 1
	// kindRenew extends a claim's lease to the renewal's timestamp plus
	// leaseMs: [2, name, claimTimestamp, leaseMs].
	kindRenew kind = 2
	// kindRelease withdraws a claim: [3, name, claimTimestamp].
	kindRelease kind = 3
	// kindAck acknowledges claims and renewals: [4, clock], the sender's
	// clock when it sent the acknowledgement, so that each claimant reads
	// how far the sender has applied its updates.
	kindAck kind = 4
)

// op is one decoded lock update.
type op struct {
	kind  kind
	name  string           // claim, renew, release
	lease float64          // milliseconds; claim, renew
	claim vclock.Timestamp // renew, release: the timestamp of the claim
	clock vclock.Clock     // ack
}

var (
	opEnc = func() cbor.EncMode {
		em, err := cbor.EncOptions{Sort: cbor.SortBytewiseLexical}.EncMode()
		if err != nil {
			panic(err) // constant options
		}
		return em
	}()
	// opDec decodes payloads: [kind, name, ...] or [4, clock], no deeper
	// than the ack's clock map in the array, few fields, the clock within
	// 65,536 sources.
	opDec = wire.DecMode(wire.Limits{Depth: 4, Elements: 16, Pairs: 1 << 16})
)

// errPayload is the cause of every payload decoding error; the base wraps
// it in scuttlebutt.ErrInvalidUpdate.
var errPayload = errors.New("lock: malformed update")

func leaseMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// encode returns the payload of o.
func (o op) encode() ([]byte, error) {
	var v []any
	switch o.kind {
	case kindClaim:
		v = []any{uint8(o.kind), o.name, o.lease}
	case kindRenew:
		v = []any{uint8(o.kind), o.name, float64(o.claim), o.lease}
	case kindRelease:
		v = []any{uint8(o.kind), o.name, float64(o.claim)}
	case kindAck:
		m := make(map[string]float64, len(o.clock))
		for src, t := range o.clock {
			m[src] = float64(t)
		}
		v = []any{uint8(o.kind), m}
	default:
		return nil, fmt.Errorf("%w: kind %d", errPayload, o.kind)
	}
	return opEnc.Marshal(v)
}

// decodeOp decodes and checks a payload: a known kind with the fields of
// that kind, a UTF-8 name, a positive lease of at most a day, valid
// timestamps and ids.
func decodeOp(data []byte) (op, error) {
	var raw []cbor.RawMessage
	if err := opDec.Unmarshal(data, &raw); err != nil {
		return op{}, fmt.Errorf("%w: %v", errPayload, err)
	}
	if len(raw) == 0 {
		return op{}, fmt.Errorf("%w: empty", errPayload)
	}
	var k uint8
	if err := opDec.Unmarshal(raw[0], &k); err != nil {
		return op{}, fmt.Errorf("%w: kind: %v", errPayload, err)
	}
	o := op{kind: kind(k)}
	want := map[kind]int{kindClaim: 3, kindRenew: 4, kindRelease: 3, kindAck: 2}[o.kind]
	if want == 0 {
		return op{}, fmt.Errorf("%w: unknown kind %d", errPayload, k)
	}
	if len(raw) != want {
		return op{}, fmt.Errorf("%w: kind %d has %d fields, want %d", errPayload, k, len(raw), want)
	}
	if o.kind == kindAck {
		var m map[string]float64
		if err := opDec.Unmarshal(raw[1], &m); err != nil {
			return op{}, fmt.Errorf("%w: ack clock: %v", errPayload, err)
		}
		o.clock = make(vclock.Clock, len(m))
		for src, t := range m {
			if err := scuttlebutt.ValidID(src); err != nil {
				return op{}, fmt.Errorf("%w: ack clock: %v", errPayload, err)
			}
			if !vclock.Timestamp(t).Valid() {
				return op{}, fmt.Errorf("%w: ack clock entry %v", errPayload, t)
			}
			o.clock[src] = vclock.Timestamp(t)
		}
		return o, nil
	}
	if err := opDec.Unmarshal(raw[1], &o.name); err != nil {
		return op{}, fmt.Errorf("%w: name: %v", errPayload, err)
	}
	if o.kind == kindRenew || o.kind == kindRelease {
		var ts float64
		if err := opDec.Unmarshal(raw[2], &ts); err != nil || !vclock.Timestamp(ts).Valid() {
			return op{}, fmt.Errorf("%w: claim timestamp %v: %v", errPayload, ts, err)
		}
		o.claim = vclock.Timestamp(ts)
	}
	if o.kind == kindClaim || o.kind == kindRenew {
		if err := opDec.Unmarshal(raw[len(raw)-1], &o.lease); err != nil {
			return op{}, fmt.Errorf("%w: lease: %v", errPayload, err)
		}
		if !(o.lease > 0 && o.lease <= leaseMs(maxLease)) || math.IsInf(o.lease, 0) {
			return op{}, fmt.Errorf("%w: lease %v ms is not in (0, %v]", errPayload, o.lease, maxLease)
		}
	}
	return o, nil
}
