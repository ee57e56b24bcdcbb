package scuttlebutt

import (
	"fmt"
	"slices"
	"unsafe"

	"github.com/scuttle-go/scuttle/vclock"
)

// Mode says which way a link replicates.
type Mode int

// The link modes; the zero value is Duplex. The one-way modes are those of
// JavaScript scuttlebutt's createStream({writable:false}) and
// ({readable:false}).
const (
	// Duplex sends our updates and applies the peer's.
	Duplex Mode = iota
	// SendOnly sends our updates and ignores what the peer sends, but its
	// hello and sync.
	SendOnly
	// ReceiveOnly applies the peer's updates and sends only a hello (so the
	// peer can send a delta) and an empty sync.
	ReceiveOnly
)

// String returns the mode's name.
func (m Mode) String() string {
	switch m {
	case Duplex:
		return "duplex"
	case SendOnly:
		return "send-only"
	case ReceiveOnly:
		return "receive-only"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// LinkOptions configures a Link. The zero value is a duplex link that keeps
// streaming live updates after the sync, with default limits.
type LinkOptions struct {
	// Mode is Duplex, SendOnly or ReceiveOnly.
	Mode Mode
	// OneShot ends the link after the sync (JavaScript's tail:false): no
	// live updates are sent, and Done reports true once the history has gone
	// out and, unless SendOnly, the peer's sync has come in.
	OneShot bool
	// Meta is sent in the hello; nil for none.
	Meta any
	// PeerClock, if not nil, is taken as the peer's clock instead of waiting
	// for its hello: the history newer than it is sent at once. Use it to
	// write a replica to a file, where nobody answers (an empty clock writes
	// everything).
	PeerClock vclock.Clock
	// MaxQueueBytes bounds the live updates queued for a peer that reads
	// slower than we write, in approximate wire bytes. Past it the queue is
	// dropped and the peer's delta is recomputed from History once it catches
	// up: memory stays bounded and nothing is lost, at the cost of one
	// History call. 0 means 4 MiB.
	MaxQueueBytes int
	// MaxBatchBytes bounds one MsgUpdates message, in approximate wire bytes
	// (an update larger than that goes alone). Keep it well under the
	// transport's frame limit. 0 means 256 KiB.
	MaxBatchBytes int
	// MaxHistoryBytes bounds the peer's history a link holds, in
	// approximate wire bytes, before applying it: the history is applied
	// whole when the peer's sync arrives, and so is a unit of updates the
	// peer marked Message.More at its end, so that a session cut in the
	// middle of either leaves no gap (a clock entry past an update neither
	// held nor superseded by one held). A longer one is applied as it
	// comes once past the bound, and a cut inside it can leave such a gap
	// until the updates that superseded the missing ones arrive; so does a
	// link with PeerClock, which has no hello and applies a history as it
	// reads. 0 means 64 MiB.
	MaxHistoryBytes int
}

// Default limits of LinkOptions.
const (
	DefaultMaxQueueBytes   = 4 << 20
	DefaultMaxBatchBytes   = 256 << 10
	DefaultMaxHistoryBytes = 64 << 20
)

// Link is the protocol state of one session with one peer: the handshake,
// the history exchange, the sync, and the live updates after it. It does no
// network I/O and starts no goroutine. A driver (package stream's Conn, or a
// test) feeds it every message the peer sends with Step and sends what Ready
// returns, in order:
//
//	l := doc.Base().NewLink(nil)
//	defer l.Close()
//	for {
//		for _, m := range l.Ready() {
//			send(m)
//		}
//		select {
//		case m := <-received:
//			if err := l.Step(m); err != nil {
//				return err // the session is over; state is untouched
//			}
//		case <-l.Wake(): // live updates queued
//		}
//	}
//
// Step is where a Link waits: it applies the peer's updates to the replica,
// so with a Storage attached it returns only once Storage.Sync has made them
// durable, and it runs the replica's AfterApply before it returns, on the
// driver's goroutine. Ready, Wake, Synced, Done, Peer and Close never wait on
// the storage or the network. "Driving a Link" in the package doc says how a
// driver keeps reading and writing meanwhile.
//
// A Link is not safe for concurrent use: one goroutine, the driver's loop,
// calls Step, Ready and the other methods. Updates written to the replica
// concurrently reach the link through its own queue, and Wake signals them.
type Link struct {
	s    *Scuttlebutt
	opts LinkOptions
	sub  *subscription

	out       []Message    // control messages to send first
	hist      []Update     // history still to send
	histSeq   uint64       // storage sequence that must be durable first
	syncClock vclock.Clock // clock to send after hist; nil when none is due
	resync    bool         // the pending clock is a MsgClock, not the MsgSync
	held      []item       // live items waiting for the storage to sync

	// stash holds the peer's history, checked but not applied, until its
	// sync: a history leaves out superseded updates, so a prefix of it can
	// advance a clock entry past an update the receiver holds neither in
	// itself nor in what superseded it (a1 superseded by a3, history
	// [a2, a3], cut after a2: the entry of a covers a1). Applied whole at
	// the sync, a history cut short changes nothing. After the sync it
	// holds a unit the peer marked More (see Message.More) until its end.
	stash      []Update
	stashBytes int
	open       bool // the last updates sent were marked More

	peer      *Hello
	known     vclock.Clock // what the peer is known to hold
	helloRecv bool
	syncSent  bool
	syncRecv  bool
	closed    bool
	buf       []item

	// made holds the update slices appendLive made in the last Ready
	// call, and spare the ones of them the driver has handed back with
	// Recycle, for appendLive to fill again.
	made, spare [][]Update
}

// maxSpareBatches and maxSpareUpdates bound what a Link keeps for reuse
// (see Recycle), however small its updates and whatever MaxBatchBytes: no
// more than the driver held of the last Ready's messages, and nothing
// once a Ready has nothing to send.
const (
	maxSpareBatches = 8
	maxSpareUpdates = 4096
)

// NewLink starts a session of this replica with one peer; nil opts means
// the defaults. The hello is ready to send at once. Call Close when the
// session ends.
func (s *Scuttlebutt) NewLink(opts *LinkOptions) *Link {
	var o LinkOptions
	if opts != nil {
		o = *opts
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = DefaultMaxQueueBytes
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.MaxHistoryBytes <= 0 {
		o.MaxHistoryBytes = DefaultMaxHistoryBytes
	}
	l := &Link{s: s, opts: o, sub: newSubscription(&s.mu, o.MaxQueueBytes), known: vclock.Clock{}}
	l.out = append(l.out, Message{Kind: MsgHello, Hello: &Hello{
		Version: ProtocolVersion, ID: s.source, Clock: s.Clock(), Meta: o.Meta,
	}})
	switch {
	case o.Mode == ReceiveOnly:
		l.syncClock = vclock.Clock{}
	case o.PeerClock != nil:
		l.known = o.PeerClock.Clone()
		l.startHistory()
	}
	return l
}

// startHistory subscribes to live updates and queues the peer's delta and
// the sync (or, on a resync, the clock message) that closes it.
func (l *Link) startHistory() {
	l.hist, l.syncClock, l.histSeq = l.s.subscribe(l.sub, l.known)
	l.held = nil
	if l.opts.OneShot {
		l.s.unsubscribe(l.sub)
	}
}

// Step feeds the link one message from the peer. An error means the peer
// broke the protocol or sent an invalid update: the session must end, and
// nothing of the offending message was applied. Errors wrap ErrProtocol,
// ErrInvalidUpdate or ErrSameID.
//
// Step may block: updates it applies are appended to the replica's Storage,
// if one is attached, and Step returns only once Storage.Sync has made them
// durable (an error of the storage's is returned as is, and ends the
// session too). It also runs AfterApply (see AfterApplier) when it applied
// anything or moved the clock, before it returns.
//
// Step keeps no reference to m.Updates' array once it returns (it copies
// what it holds on), so the driver may decode the next message into it.
func (l *Link) Step(m Message) error {
	if l.closed {
		return ErrClosed
	}
	switch m.Kind {
	case MsgHello:
		return l.stepHello(m.Hello)
	case MsgUpdates:
		if !l.helloRecv && l.opts.PeerClock == nil {
			return fmt.Errorf("%w: updates before hello", ErrProtocol)
		}
		if l.opts.Mode == SendOnly {
			return nil
		}
		if err := l.s.check(m.Updates, l.peerName()); err != nil {
			return err
		}
		// The peer's history is held until its sync, and a unit marked
		// More until its end (see stash). A link without a hello
		// (PeerClock: reading a dump that may end without a sync) applies
		// a history as it reads.
		hold := m.More || (!l.syncRecv && l.opts.PeerClock == nil)
		if !hold && len(l.stash) == 0 {
			l.stash = m.Updates
			return l.applyStash()
		}
		l.stash = append(l.stash, m.Updates...)
		for _, u := range m.Updates {
			l.stashBytes += item{update: u}.size()
		}
		if hold && l.stashBytes <= l.opts.MaxHistoryBytes {
			return nil
		}
		return l.applyStash()
	case MsgSync, MsgClock:
		if !l.helloRecv && l.opts.PeerClock == nil {
			return fmt.Errorf("%w: %s before hello", ErrProtocol, m.Kind)
		}
		if m.Kind == MsgSync && l.syncRecv {
			return fmt.Errorf("%w: second sync", ErrProtocol)
		}
		if m.Kind == MsgClock && !l.syncRecv {
			return fmt.Errorf("%w: clock before sync", ErrProtocol)
		}
		if err := l.s.checkClock(m.Clock, l.peerName()); err != nil {
			return err
		}
		if err := l.applyStash(); err != nil {
			return err
		}
		if l.opts.Mode != SendOnly {
			l.s.mergeClock(m.Clock, l.sub, l.peerName())
		}
		l.learn(m.Clock)
		if m.Kind == MsgSync {
			l.syncRecv = true
		}
		return nil
	}
	return fmt.Errorf("%w: unknown message kind %d", ErrProtocol, m.Kind)
}

func (l *Link) stepHello(h *Hello) error {
	switch {
	case h == nil:
		return fmt.Errorf("%w: empty hello", ErrProtocol)
	case l.helloRecv:
		return fmt.Errorf("%w: second hello", ErrProtocol)
	case h.Version != ProtocolVersion:
		return fmt.Errorf("%w: version %d, this side speaks %d", ErrProtocol, h.Version, ProtocolVersion)
	case h.ID == l.s.source:
		return fmt.Errorf("%w: %q", ErrSameID, h.ID)
	}
	if err := ValidID(h.ID); err != nil {
		return fmt.Errorf("%w: peer id: %v", ErrProtocol, err)
	}
	if h.Clock == nil {
		return fmt.Errorf("%w: hello without a clock", ErrProtocol)
	}
	if err := l.s.checkClock(h.Clock, h.ID); err != nil {
		return err
	}
	if t := h.Clock[l.s.source]; t > 0 {
		// Only this start makes updates of its source: a peer that claims
		// more of them than it made was lied to (see forgedLocked).
		l.s.noteForged(h.ID, t)
	}
	l.s.notePeer(h.ID)
	l.helloRecv = true
	l.peer = h
	l.learn(h.Clock)
	if l.opts.Mode != ReceiveOnly && l.opts.PeerClock == nil {
		l.startHistory()
	}
	return nil
}

// learn merges c into what the peer is known to hold. A peer could name
// new made-up sources in every clock message it sends, so known stops
// taking new sources at twice the source limit (ours and the peer's): an
// entry left out only means the link may send the peer something it has.
func (l *Link) learn(c vclock.Clock) {
	limit := 2 * l.s.maxSources
	for src, t := range c {
		if _, ok := l.known[src]; ok || len(l.known) < limit {
			l.known.Advance(src, t)
		}
	}
}

// applyStash applies the updates the peer sent that are not applied yet,
// as one batch, and forgets them.
func (l *Link) applyStash() error {
	us := l.stash
	l.stash, l.stashBytes = nil, 0
	if len(us) == 0 {
		return nil
	}
	if _, err := l.s.apply(us, l.sub, l.peerName()); err != nil {
		return err
	}
	advanceRuns(l.known, us)
	return nil
}

// advanceRuns advances c past every update of us, once a run of one
// source's updates rather than once an update.
func advanceRuns(c vclock.Clock, us []Update) {
	var t vclock.Timestamp
	for i, u := range us {
		t = max(t, u.Timestamp)
		if i == len(us)-1 || us[i+1].Source != u.Source {
			c.Advance(u.Source, t)
			t = 0
		}
	}
}

// peerName names the peer in errors: its id, once its hello has come.
func (l *Link) peerName() string {
	if l.peer == nil {
		return "(no hello)"
	}
	return l.peer.ID
}

// Ready returns the messages to send now, in order, and forgets them: the
// driver must send them before the messages of the next call. It returns nil
// when there is nothing to send; Wake signals when live updates arrive.
// Each call returns at most about 4 × MaxBatchBytes of updates, so that a
// long history goes out in steps.
//
// Ready never waits for the storage or the network: what the storage has not
// made durable yet is held back, and Wake signals once it has.
func (l *Link) Ready() []Message {
	if l.closed {
		return nil
	}
	msgs := l.out
	l.out = nil
	clear(l.made) // handed back by now, or kept by the driver
	l.made = l.made[:0]
	budget := 4 * l.opts.MaxBatchBytes
	for budget > 0 {
		if (len(l.hist) > 0 || l.syncClock != nil) && !l.s.isDurable(l.histSeq) {
			break // Wake signals when the storage has synced
		}
		if len(l.hist) > 0 {
			var m Message
			m, budget = l.nextBatch(budget)
			msgs = append(msgs, m)
			continue
		}
		if l.syncClock != nil {
			kind := MsgSync
			if l.resync {
				kind = MsgClock
			}
			msgs = append(msgs, Message{Kind: kind, Clock: l.syncClock})
			l.known.Merge(l.syncClock)
			l.syncClock, l.resync, l.open = nil, false, false
			l.syncSent = true
			continue
		}
		if !l.syncSent || l.opts.OneShot || l.opts.Mode == ReceiveOnly {
			break
		}
		q, overflow := l.sub.take(l.buf)
		if overflow {
			// take gave l.buf's array to the queue; sharing it would let the
			// base overwrite items the next call is still reading.
			l.buf = nil
			l.startHistory()
			l.resync = true
			continue
		}
		if len(l.held) > 0 {
			q = append(l.held, q...)
			l.held = nil
		}
		// Send what is durable; hold the rest, in order, for the next call.
		n := 0
		for n < len(q) && l.s.isDurable(q[n].seq) {
			n++
		}
		if n < len(q) {
			l.held = append([]item(nil), q[n:]...)
		}
		if n == 0 {
			clear(q)
			l.buf = q[:0]
			break
		}
		msgs = l.appendLive(msgs, q[:n])
		clear(q)
		l.buf = q[:0]
		break
	}
	if len(msgs) == 0 {
		l.spare = nil // idle: nothing kept for the next burst
	}
	return msgs
}

// nextBatch takes the next MsgUpdates of the pending history.
func (l *Link) nextBatch(budget int) (Message, int) {
	n, size := 0, 0
	for n < len(l.hist) {
		s := item{update: l.hist[n]}.size()
		if n > 0 && size+s > l.opts.MaxBatchBytes {
			break
		}
		size += s
		l.known.Advance(l.hist[n].Source, l.hist[n].Timestamp)
		n++
	}
	// A recomputed history is one unit with the clock message that ends
	// it; the first history needs no mark: the peer holds it until the
	// sync.
	m := Message{Kind: MsgUpdates, Updates: l.hist[:n:n], More: l.resync}
	l.open = m.More
	l.hist = l.hist[n:]
	if len(l.hist) == 0 {
		l.hist = nil
	}
	return m, budget - size
}

// appendLive turns queued items into messages, dropping what the peer is
// known to hold (no echo). A unit of items (see item.more) split over
// several messages is marked More in all but its last; when what ends a
// unit is dropped, an empty message ends it.
func (l *Link) appendLive(msgs []Message, q []item) []Message {
	var batch []Update
	size := 0
	more := false // the unit of the last item seen goes on
	flush := func() {
		if len(batch) > 0 || (l.open && !more) {
			msgs = append(msgs, Message{Kind: MsgUpdates, Updates: batch, More: more})
			batch, size = nil, 0
			l.open = more
		}
	}
	known := entryCache{c: l.known}
	defer known.store()
	for i, it := range q {
		if it.clock != nil {
			known.store()
			var c vclock.Clock
			for src, t := range it.clock {
				if l.known.Advance(src, t) {
					if c == nil {
						c = vclock.Clock{}
					}
					c[src] = t
				}
			}
			if c != nil {
				flush()
				msgs = append(msgs, Message{Kind: MsgClock, Clock: c})
				l.open = false // a clock message ends a unit too
			}
			continue
		}
		u := it.update
		if !known.advance(u.Source, u.Timestamp) ||
			(l.peer != nil && u.Source == l.peer.ID) {
			// Known to the peer, or made by it during this session, so it
			// holds it: it reached us by another route. (Updates it made
			// before and lost are below its hello clock and go out with the
			// history.)
			more = it.more
			continue
		}
		s := it.size()
		if len(batch) > 0 && size+s > l.opts.MaxBatchBytes {
			flush()
		}
		if batch == nil {
			// Room for a batch of items of this one's size, so that a
			// batch is not copied as it grows: this runs for every update
			// sent.
			batch = l.batchOf(min(len(q)-i, l.opts.MaxBatchBytes/s+1))
		}
		batch = append(batch, u)
		size += s
		more = it.more
	}
	flush()
	return msgs
}

// batchOf returns an empty slice with room for n updates: a spare one if
// it has the room, else a new one. Either is noted in made, for Recycle.
func (l *Link) batchOf(n int) []Update {
	var b []Update
	for i := len(l.spare) - 1; i >= 0 && b == nil; i-- {
		if cap(l.spare[i]) >= n {
			b = l.spare[i][:0]
			l.spare = slices.Delete(l.spare, i, i+1)
		}
	}
	if b == nil {
		b = make([]Update, 0, n)
	}
	if len(l.made) < maxSpareBatches {
		l.made = append(l.made, b)
	}
	return b
}

// Recycle hands back messages that the last call of Ready returned, once
// the driver is done with them (sent, or encoded into its own buffer), so
// that the next calls of Ready may fill the update slices the Link made
// for them again rather than make new ones: on a live session, 72 bytes
// an update sent. Call it before the next call of Ready, and keep nothing
// of msgs' Updates slices after it; the updates themselves are immutable
// and may be kept. Slices the Link did not make (a history's, which
// belongs to the replica's History) are left alone, and so is everything
// after the next call of Ready. A driver that never calls it loses
// nothing but the reuse.
func (l *Link) Recycle(msgs []Message) {
	for _, m := range msgs {
		if cap(m.Updates) == 0 {
			continue
		}
		for i, b := range l.made {
			if unsafe.SliceData(b) == unsafe.SliceData(m.Updates) {
				if len(l.spare) < maxSpareBatches && cap(b) <= maxSpareUpdates {
					clear(m.Updates) // keep the array, not the updates' payloads
					l.spare = append(l.spare, b)
				}
				l.made[i] = nil // handed back once
				break
			}
		}
	}
}

// entryCache is one entry of a clock, read once and written back once,
// for a run of updates of one source: appendLive advances what the peer is
// known to hold for every update it sends.
type entryCache struct {
	c     vclock.Clock
	src   string
	t     vclock.Timestamp
	read  bool // src and t hold c's entry, maybe advanced
	dirty bool // t has moved past c[src]
}

// advance is c.Advance(src, t), through the cache.
func (e *entryCache) advance(src string, t vclock.Timestamp) bool {
	if !e.read || src != e.src {
		e.store()
		e.src, e.t, e.read = src, e.c[src], true
	}
	if t <= e.t {
		return false
	}
	e.t, e.dirty = t, true
	return true
}

// store writes the cached entry back to c, and forgets it.
func (e *entryCache) store() {
	if e.dirty {
		e.c[e.src] = e.t
	}
	e.read, e.dirty = false, false
}

// Wake returns a channel that receives a value when live updates are queued
// for the peer; wakeups coalesce.
func (l *Link) Wake() <-chan struct{} { return l.sub.wake }

// Synced reports whether the history exchange is complete: our sync has
// been sent (by Ready) and the peer's received, or just the one that applies
// in a one-way mode.
func (l *Link) Synced() bool {
	switch l.opts.Mode {
	case SendOnly:
		return l.syncSent
	case ReceiveOnly:
		return l.syncRecv
	}
	return l.syncSent && l.syncRecv
}

// Done reports whether a OneShot link has finished: synced, with nothing
// left to send. A live link is never done.
func (l *Link) Done() bool {
	return l.opts.OneShot && l.Synced() && len(l.out) == 0 && len(l.hist) == 0 && l.syncClock == nil
}

// Peer returns the peer's hello, or nil before it has arrived.
func (l *Link) Peer() *Hello { return l.peer }

// Close ends the session: the link stops receiving live updates and Step and
// Ready do nothing more. Close is idempotent.
func (l *Link) Close() {
	if !l.closed {
		l.closed = true
		l.s.unsubscribe(l.sub)
	}
}
