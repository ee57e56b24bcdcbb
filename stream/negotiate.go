package stream

import (
	"math/bits"
	"sync/atomic"
)

// Versions of the wire protocol a Conn can speak (Options.Version). The
// hello's version field stays scuttlebutt.ProtocolVersion, 1, whatever a
// side speaks, because a version-1 peer refuses a hello of another
// version: version 2 is offered in the hello's features instead (SPEC.md,
// "Versions and features").
const (
	// Version1 is the protocol as the first release spoke it: updates as
	// CBOR arrays, each with its source and a float64 timestamp.
	Version1 = 1
	// Version2 adds the compact encoding of updates (kinds 7 and 8): each
	// source once per session, timestamps as steps.
	Version2 = 2
)

// features is a set of the features a hello offers: bit n is the feature
// whose wire number is n.
type features uint64

// Feature wire numbers, listed in a hello's key 5. Only ever append.
const (
	// featureCompact is protocol version 2's compact updates: kinds 7
	// and 8.
	featureCompact = 2
	// featureZstd is zstd-compressed frames: kind 9.
	featureZstd = 3
)

// maxFeatures bounds the features a hello may list: more is malformed.
const maxFeatures = 64

func (f features) has(n int) bool { return f&(1<<n) != 0 }

// list returns f's wire numbers, in increasing order; nil for none.
func (f features) list() []uint64 {
	var l []uint64
	for f != 0 {
		n := bits.TrailingZeros64(uint64(f))
		l = append(l, uint64(n))
		f &^= 1 << n
	}
	return l
}

// featuresOf returns the set of the wire numbers l lists. Numbers this
// version does not know (from a newer peer) are left out.
func featuresOf(l []uint64) features {
	var f features
	for _, n := range l {
		if n == featureCompact || n == featureZstd {
			f |= 1 << n
		}
	}
	return f
}

// negotiation is what one session's encoder and decoder share: the
// features this side offers in its hello, fixed, and those the peer's
// hello offered, which the decoder stores when it reads the hello and the
// encoder loads before each message. The encoder uses a feature once both
// hellos offer it: until the peer's hello is read, nothing but version 1
// goes out, and since each feature has its own frame kinds the receiver
// needs no word of the switch. The peer's set is atomic because the
// reader and the writer are different goroutines. A nil *negotiation
// offers nothing and agrees to nothing.
type negotiation struct {
	offer features
	peer  atomic.Uint64
}

// newNegotiation returns the negotiation of a side that speaks version
// (Version1 or Version2) and offers compression if compress is set.
func newNegotiation(version int, compress bool) *negotiation {
	n := &negotiation{}
	if version >= Version2 {
		n.offer |= 1 << featureCompact
	}
	if compress {
		n.offer |= 1 << featureZstd
	}
	return n
}

// offered returns what this side offers.
func (n *negotiation) offered() features {
	if n == nil {
		return 0
	}
	return n.offer
}

// agreed returns the features both sides offer, as far as the peer's hello
// has been read.
func (n *negotiation) agreed() features {
	if n == nil {
		return 0
	}
	return n.offer & features(n.peer.Load())
}

// peerSaid records the features of the peer's hello.
func (n *negotiation) peerSaid(f features) {
	if n != nil {
		n.peer.Store(uint64(f))
	}
}
