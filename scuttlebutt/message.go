package scuttlebutt

import (
	"fmt"

	"github.com/scuttle-go/scuttle/vclock"
)

// ProtocolVersion is the version of the replication protocol this package
// speaks; a Hello with another version is refused.
const ProtocolVersion = 1

// MessageKind says what a Message carries. The numbers are on the wire:
// only ever append.
type MessageKind uint8

// The message kinds, in the order a session sends them.
const (
	// MsgHello opens a session: protocol version, id, clock, meta.
	MsgHello MessageKind = 1
	// MsgUpdates carries updates, per source in timestamp order.
	MsgUpdates MessageKind = 2
	// MsgSync ends the history and carries the clock it brings the peer up
	// to.
	MsgSync MessageKind = 3
	// MsgClock carries clock advances that came without updates (a peer's
	// sync merged elsewhere); the receiver merges it like a sync's clock.
	MsgClock MessageKind = 4
)

// String returns the kind's name.
func (k MessageKind) String() string {
	switch k {
	case MsgHello:
		return "hello"
	case MsgUpdates:
		return "updates"
	case MsgSync:
		return "sync"
	case MsgClock:
		return "clock"
	}
	return fmt.Sprintf("MessageKind(%d)", uint8(k))
}

// Hello is the first message of each side of a session.
type Hello struct {
	// Version is the protocol version, ProtocolVersion.
	Version int
	// ID is the sender's source id: its replica id and incarnation
	// (see Scuttlebutt.Source), or a JavaScript peer's id.
	ID string
	// Clock is the sender's clock: the peer sends what is newer.
	Clock vclock.Clock
	// Meta is optional application data, nil if none.
	Meta any
}

// Message is one unit of the protocol, free of any encoding: package stream
// frames and encodes it. Exactly the field of its Kind is set.
type Message struct {
	Kind    MessageKind
	Hello   *Hello       // MsgHello
	Updates []Update     // MsgUpdates
	Clock   vclock.Clock // MsgSync (may be empty) and MsgClock

	// More, on MsgUpdates, says that the updates go on in the next
	// message: the receiver holds them and applies them with the first
	// MsgUpdates without More, or the next MsgSync or MsgClock, as one
	// batch. A link sends a batch it received from another peer, or a
	// history it recomputed after its live queue overflowed, as one unit,
	// split over messages marked More when it outgrows MaxBatchBytes: such
	// a batch leaves out updates superseded on the replica it came from,
	// and a prefix of it could advance a clock entry past an update the
	// receiver holds neither itself nor in what superseded it. The
	// history before a sync is one unit already and is never marked.
	More bool
}

// String describes m for traces.
func (m Message) String() string {
	switch m.Kind {
	case MsgHello:
		if m.Hello == nil {
			return "hello(nil)"
		}
		return fmt.Sprintf("hello(v%d %s %s)", m.Hello.Version, m.Hello.ID, m.Hello.Clock)
	case MsgUpdates:
		more := ""
		if m.More {
			more = ", more"
		}
		if len(m.Updates) == 1 {
			return fmt.Sprintf("updates(%s%s)", m.Updates[0], more)
		}
		return fmt.Sprintf("updates(%d%s)", len(m.Updates), more)
	case MsgSync, MsgClock:
		return fmt.Sprintf("%s(%s)", m.Kind, m.Clock)
	}
	return m.Kind.String()
}
