package scuttlebutt_test

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"testing"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// FuzzLinkClocks steps a Link with hellos, syncs, clock messages and
// updates whose clocks and timestamps come from the fuzzer: many sources,
// the replica's own source, timestamps near, at and past the offset bound,
// invalid ones. Whatever the input, and whether Step accepts or refuses
// each message, the replica's bounds hold: its clock names at most
// MaxSources sources, no entry lies past the bound, its own entry is only
// what it wrote, and its next local write is valid, after everything it
// accepted and within the bound.
func FuzzLinkClocks(f *testing.F) {
	f.Add([]byte{1, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{3, 5, 0, 255, 255, 255, 255, 255, 255, 239, 127, 2, 1, 0, 0, 0, 0, 0, 0, 240, 63})
	f.Add([]byte{2, 4, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1, 7, 0, 0, 0, 0, 0, 0, 0, 0, 4, 200})
	const (
		limit  = 6
		bound  = 30_000 // ms, the default
		maxMsg = 16
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		a := newLogDoc(t, "a", &scuttlebutt.Config{MaxSources: limit, Logger: slog.New(slog.DiscardHandler)})
		mine := a.write(t, "a1")
		l := a.NewLink(nil)
		defer l.Close()
		l.Ready()
		r := &fuzzReader{data: data}
		for range maxMsg {
			if r.done() {
				break
			}
			m := r.message(a.Source(), mine.Timestamp)
			l.Step(m) // accepted or refused: the bounds below hold either way
			l.Ready()
		}
		c := a.Clock()
		if len(c) > limit+1 { // its own source is always admitted
			t.Fatalf("clock has %d sources, the limit is %d: %v", len(c), limit, c)
		}
		for src, ts := range c {
			if ts > today+bound {
				t.Fatalf("clock entry %s:%v past the bound %v", src, ts, vclock.Timestamp(today+bound))
			}
		}
		if got := c.Get(a.Source()); got != mine.Timestamp {
			t.Fatalf("own entry %v, want %v: a wrote nothing since", got, mine.Timestamp)
		}
		next := a.write(t, "a2")
		if !next.Timestamp.Valid() || next.Timestamp > today+bound+1 {
			t.Fatalf("next local write stamped %v", next.Timestamp)
		}
		for src, ts := range c {
			if src != a.Source() && ts >= next.Timestamp {
				t.Fatalf("next local write %v is not after accepted %s:%v", next.Timestamp, src, ts)
			}
		}
	})
}

// fuzzReader turns fuzz bytes into protocol messages.
type fuzzReader struct{ data []byte }

func (r *fuzzReader) done() bool { return len(r.data) == 0 }

func (r *fuzzReader) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

// timestamp reads a timestamp: near now, at the bound, past it, the
// replica's own last write, or raw float64 bits.
func (r *fuzzReader) timestamp(own vclock.Timestamp) vclock.Timestamp {
	switch k := r.byte() % 6; k {
	case 0:
		return vclock.Timestamp(today - int64(r.byte())*1000)
	case 1:
		return vclock.Timestamp(today + 30_000 - int64(r.byte()%3) + 1) // around the bound
	case 2:
		return own + vclock.Timestamp(r.byte())
	case 3:
		return vclock.Timestamp(today + int64(r.byte())*1_000_000)
	default:
		var b [8]byte
		for i := range b {
			b[i] = r.byte()
		}
		return vclock.Timestamp(math.Float64frombits(binary.LittleEndian.Uint64(b[:])))
	}
}

// source reads a source: the replica's own, another incarnation of it, or
// one of a few dozen others.
func (r *fuzzReader) source(own string) string {
	switch k := r.byte(); {
	case k < 16:
		return own
	case k < 32:
		return fmt.Sprintf("a~%d", k%4)
	default:
		return fmt.Sprintf("s%d", k%40)
	}
}

func (r *fuzzReader) clock(own string, ownTS vclock.Timestamp) vclock.Clock {
	c := vclock.Clock{}
	for range int(r.byte() % 12) {
		c[r.source(own)] = r.timestamp(ownTS)
	}
	return c
}

func (r *fuzzReader) message(own string, ownTS vclock.Timestamp) scuttlebutt.Message {
	switch r.byte() % 4 {
	case 0:
		return scuttlebutt.Message{Kind: scuttlebutt.MsgHello, Hello: &scuttlebutt.Hello{
			Version: scuttlebutt.ProtocolVersion, ID: r.source(own), Clock: r.clock(own, ownTS)}}
	case 1:
		var us []scuttlebutt.Update
		for i := range int(r.byte() % 8) {
			us = append(us, scuttlebutt.Update{Source: r.source(own), Timestamp: r.timestamp(ownTS), Data: txt(fmt.Sprint(i))})
		}
		return scuttlebutt.Message{Kind: scuttlebutt.MsgUpdates, Updates: us}
	case 2:
		return scuttlebutt.Message{Kind: scuttlebutt.MsgSync, Clock: r.clock(own, ownTS)}
	default:
		return scuttlebutt.Message{Kind: scuttlebutt.MsgClock, Clock: r.clock(own, ownTS)}
	}
}
