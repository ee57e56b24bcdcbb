package bench

import (
	"context"
	"sync/atomic"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// W1Base is W1 over a replicated type that keeps nothing: A stamps W1's
// updates (the Model's payload, [key, value], encoded the Model's way) and
// B counts them. What it costs per update is what the base and the stream
// cost, the floor under W1 that no change of the Model can go below. Its
// Bytes are A's, as W1's.
func W1Base(ctx context.Context, opts *Options) (r Result, err error) {
	o := opts.withDefaults(DefaultKeys)
	o.Timer.StopTimer()
	defer o.Timer.StartTimer()
	r = Result{Workload: "W1 base", Transport: o.Transport, N: o.Keys}

	a, err := newCounting(ReplicaA)
	if err != nil {
		return r, err
	}
	b, err := newCounting(ReplicaB)
	if err != nil {
		return r, err
	}
	keys := Keys(o.Keys)
	fill := func() error {
		for i, k := range keys {
			if _, _, err := a.LocalUpdateChecked(appendPair(nil, k, Value("a", i))); err != nil {
				return err
			}
		}
		return nil
	}
	want := int64(o.Keys)
	err = liveFill(ctx, o, &r, a, b, fill, "B to count every update", func() bool { return b.applied.Load() == want })
	r.finish()
	return r, err
}

// counting is a replicated type that keeps nothing and counts the updates
// applied to it.
type counting struct {
	*scuttlebutt.Scuttlebutt
	applied atomic.Int64
}

func newCounting(id string) (*counting, error) {
	c := &counting{}
	sb, err := scuttlebutt.New(id, countingReplica{c}, nil)
	c.Scuttlebutt = sb
	return c, err
}

type countingReplica struct{ c *counting }

func (countingReplica) History(vclock.Clock) []scuttlebutt.Update { return nil }

func (r countingReplica) ApplyUpdate(scuttlebutt.Update) bool {
	r.c.applied.Add(1)
	return true
}

// appendPair appends the CBOR array [key, value] of two text strings to
// dst, as the Model encodes a Set of a string.
func appendPair(dst []byte, key, value string) []byte {
	if dst == nil {
		dst = make([]byte, 0, 1+9+len(key)+9+len(value))
	}
	dst = append(dst, 0x82)
	dst = appendText(dst, key)
	return appendText(dst, value)
}

// appendText appends a CBOR text string.
func appendText(dst []byte, s string) []byte {
	n := uint64(len(s))
	switch {
	case n < 24:
		dst = append(dst, 0x60|byte(n))
	case n <= 0xff:
		dst = append(dst, 0x78, byte(n))
	case n <= 0xffff:
		dst = append(dst, 0x79, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0x7a, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}
