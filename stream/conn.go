package stream

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"github.com/scuttle-go/scuttle/scuttlebutt"
	"github.com/scuttle-go/scuttle/vclock"
)

// Options configures a Conn. A nil *Options means the zero value: a duplex
// session that keeps streaming live updates, with default limits. NewConn
// copies it.
type Options struct {
	// Mode is scuttlebutt.Duplex (the default), SendOnly or ReceiveOnly.
	Mode scuttlebutt.Mode
	// OneShot ends the session after the sync, like JavaScript's
	// tail:false: Run returns nil once both histories have been exchanged.
	OneShot bool
	// Meta is sent in the hello for the peer's application; nil for none.
	Meta any
	// PeerClock, if not nil, is assumed to be the peer's clock, so history
	// is sent without waiting for a hello: for writing a replica to a file.
	PeerClock vclock.Clock
	// MaxFrameSize bounds one frame's body in bytes, read or written. A
	// larger incoming frame ends the session with ErrFrameTooLarge before its
	// body is read. 0 means DefaultMaxFrameSize (4 MiB). It must exceed the
	// replica's MaxUpdateSize by a margin, or large updates cannot be sent.
	// A clock larger than a frame is sent in several (clock parts, SPEC.md)
	// by the CBOR codec; the JSON-lines codec cannot split it.
	MaxFrameSize int
	// MaxQueueBytes and MaxBatchBytes are scuttlebutt.LinkOptions' limits:
	// the live queue of a slow peer, and one batch of updates.
	MaxQueueBytes int
	MaxBatchBytes int
	// Codec is the wire encoding; nil means CBOR, the native one.
	Codec Codec
	// Version is the newest version of the CBOR codec's wire protocol to
	// speak: 0 means the newest, Version2, whose compact updates take
	// about one byte an update beyond the data, against 28 in version 1
	// with 17-byte source ids (SPEC.md, "Versions and features"); Version1
	// speaks as a peer that predates version 2 does. Either works with a
	// peer of either: version 2 is offered in the hello and used in a
	// direction only once the peer's hello offers it too. Out of range,
	// Run returns ErrInvalidOptions. The JSON-lines codec ignores it.
	Version int
	// Compress offers zstd compression of large frames (bodies of 1 KiB
	// or more: history dumps, large batches) in the hello; frames are
	// compressed in a direction only when both hellos offer it, and a
	// frame that does not shrink goes as it is. Off by default: it trades
	// CPU (about 60 ns an update to compress, 20 to decompress) for bytes,
	// which pays on a slow link, not on a fast one. The JSON-lines codec
	// ignores it.
	Compress bool
}

// Stats counts what a Conn has carried so far.
//
// Its JSON keys are snake_case, as every key of node's Status.
type Stats struct {
	BytesIn    int64 `json:"bytes_in"` // bytes read, framing included
	BytesOut   int64 `json:"bytes_out"`
	UpdatesIn  int64 `json:"updates_in"` // updates received
	UpdatesOut int64 `json:"updates_out"`
	FramesIn   int64 `json:"frames_in"`
	FramesOut  int64 `json:"frames_out"`
}

// Conn serves a replica to one peer over an io.ReadWriter. Create it with
// NewConn and call Run once; Synced, Peer and Stats are safe to call from
// any goroutine at any time. Run's goroutine is the only one that touches
// the session's scuttlebutt.Link; a reader and a writer goroutine do the
// I/O (see the package doc).
type Conn struct {
	link *scuttlebutt.Link // touched only by Run's goroutine
	rw   io.ReadWriter
	opts Options
	bad  error   // an Options field out of range: Run returns it
	enc  encoder // the writer's
	dec  decoder // the reader's

	synced chan struct{}

	bytesIn, bytesOut     atomic.Int64
	updatesIn, updatesOut atomic.Int64
	framesIn, framesOut   atomic.Int64
	peer                  atomic.Pointer[scuttlebutt.Hello]
}

// NewConn prepares a session of d (a *model.Model, or any type that embeds
// *scuttlebutt.Scuttlebutt) with the peer at the other end of rw. nil opts
// means the defaults. Nothing is sent until Run.
func NewConn(d scuttlebutt.Document, rw io.ReadWriter, opts *Options) *Conn {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.MaxFrameSize <= 0 {
		o.MaxFrameSize = DefaultMaxFrameSize
	}
	if o.Codec == nil {
		o.Codec = CBOR
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = min(scuttlebutt.DefaultMaxBatchBytes, o.MaxFrameSize/2)
	}
	var bad error
	switch o.Version {
	case 0:
		o.Version = Version2
	case Version1, Version2:
	default:
		bad = fmt.Errorf("%w: Version %d, want %d or %d", ErrInvalidOptions, o.Version, Version1, Version2)
	}
	neg := newNegotiation(o.Version, o.Compress)
	l := d.Base().NewLink(&scuttlebutt.LinkOptions{
		Mode:          o.Mode,
		OneShot:       o.OneShot,
		Meta:          o.Meta,
		PeerClock:     o.PeerClock,
		MaxQueueBytes: o.MaxQueueBytes,
		MaxBatchBytes: o.MaxBatchBytes,
	})
	return &Conn{
		link:   l,
		rw:     rw,
		opts:   o,
		bad:    bad,
		enc:    o.Codec.newEncoder(d, o.MaxFrameSize, neg),
		dec:    o.Codec.newDecoder(d, rw, o.MaxFrameSize, neg),
		synced: make(chan struct{}),
	}
}

// Synced returns a channel that is closed once the histories have been
// exchanged: ours sent and the peer's received (only the one that applies in
// a one-way mode). From then on the replica holds everything the peer held
// when it received our hello.
func (c *Conn) Synced() <-chan struct{} { return c.synced }

// Peer returns the peer's hello (id, clock at connect, meta), or nil before
// it has arrived.
func (c *Conn) Peer() *scuttlebutt.Hello { return c.peer.Load() }

// Stats returns what the Conn has carried so far. It is safe to call at any
// time, concurrently with Run.
func (c *Conn) Stats() Stats {
	return Stats{
		BytesIn: c.bytesIn.Load(), BytesOut: c.bytesOut.Load(),
		UpdatesIn: c.updatesIn.Load(), UpdatesOut: c.updatesOut.Load(),
		FramesIn: c.framesIn.Load(), FramesOut: c.framesOut.Load(),
	}
}

// Run runs the session until ctx ends, the peer closes the stream, a
// one-shot sync completes, or an error occurs. It returns nil in the first
// three cases. A peer that breaks the protocol or sends an invalid update
// ends the session with an error that wraps the cause (ErrFrameTooLarge,
// ErrMalformed, scuttlebutt.ErrInvalidUpdate, ...), and nothing of the bad
// frame is applied.
//
// A Step that waits for the replica's storage (see the package doc)
// delays Run's return, but neither the reader nor the close of rw.
//
// When Run returns it closes rw if rw is an io.Closer, which also stops the
// reader and writer goroutines; Run waits for them. It also closes such an
// rw as soon as ctx ends, so that a Write blocked on a peer that reads
// nothing returns. With an rw that cannot be closed, Run waits for a
// pending Write, and the reader goroutine ends when its pending Read
// returns.
func (c *Conn) Run(ctx context.Context) error {
	if c.bad != nil {
		c.link.Close()
		return c.bad
	}
	closer, closable := c.rw.(io.Closer)
	var cancelled atomic.Bool
	if closable {
		stop := context.AfterFunc(ctx, func() {
			cancelled.Store(true)
			closer.Close()
		})
		defer stop()
	}
	lp := &loop{
		c:      c,
		in:     make(chan received, inboxLen),
		out:    make(chan []scuttlebutt.Message, 1),
		wrote:  make(chan error, 1),
		syncAt: -1,
	}
	done := make(chan struct{})
	readDone, writeDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readDone)
		c.readLoop(lp.in, done)
	}()
	go func() {
		defer close(writeDone)
		c.writeLoop(lp.out, lp.wrote)
	}()

	err := lp.run(ctx)
	close(done)
	if closable {
		closer.Close() // a pending Read or Write returns
	}
	close(lp.out)
	<-writeDone
	lp.settle()
	if closable {
		<-readDone
	}
	c.link.Close()
	if cancelled.Load() {
		return nil // the errors of the close are ours, not the peer's
	}
	return err
}

// inboxLen bounds the messages the reader decodes ahead of the loop.
const inboxLen = 4

// received is what the reader hands the loop: a message, or the error
// that ended the reader (io.EOF at a clean end between frames).
type received struct {
	m   scuttlebutt.Message
	err error
}

// loop is Run's own goroutine: the only one that touches the Link. It
// steps what the reader hands it, and hands the writer what Ready returns,
// one batch at a time.
//
// It never waits on the peer, and that keeps two Conns that write to each
// other at once from deadlocking, even over a net.Pipe, which buffers
// nothing: the loop hands a batch to the writer only when the writer has
// finished the last one (so the send never blocks), and otherwise waits in
// a select that always receives from the reader. A writer blocked on a
// peer that is not reading therefore never stops the reader: it keeps
// reading, and the peer's writer, and then its reader, move on. Memory
// stays bounded meanwhile: the reader decodes at most inboxLen messages
// ahead (each at most MaxFrameSize), the writer holds one batch (at most
// about 4 × MaxBatchBytes of updates), and what waits in the Link is
// bounded by MaxQueueBytes (past it the Link falls back to History).
type loop struct {
	c     *Conn
	in    chan received              // from the reader
	out   chan []scuttlebutt.Message // to the writer; at most one batch in flight
	wrote chan error                 // from the writer: the result of each batch

	busy            bool                  // the writer has a batch
	sent            []scuttlebutt.Message // the writer's batch, handed back to the Link once written
	handed, written int                   // batches handed to the writer, and written
	syncAt          int                   // batches to be written before Synced; -1 until the Link is synced
	synced          bool                  // c.synced has been closed
}

// run steps and writes until the session is over, and returns its result.
func (lp *loop) run(ctx context.Context) error {
	l := lp.c.link
	wake := l.Wake()
	in := lp.in // nil once the reader has ended and a dump writes on
	for {
		if !lp.busy {
			if msgs := l.Ready(); len(msgs) > 0 {
				lp.out <- msgs // never blocks: the last batch was written
				lp.busy = true
				lp.handed++
				lp.sent = msgs
			}
		}
		lp.noteSynced()
		if !lp.busy && l.Done() {
			return nil
		}
		select {
		case r := <-in:
			if r.err != nil {
				more, err := lp.readEnded(r.err)
				if !more {
					return err
				}
				in = nil
				continue
			}
			if err := lp.step(r.m); err != nil {
				return err
			}
		case err := <-lp.wrote:
			lp.busy = false
			if err != nil {
				return lp.writeFailed(err, in)
			}
			lp.written++
			l.Recycle(lp.sent) // the writer is done with them
			lp.sent = nil
		case <-wake:
		case <-ctx.Done():
			return nil
		}
	}
}

func (lp *loop) step(m scuttlebutt.Message) error {
	err := lp.c.link.Step(m)
	if m.Kind == scuttlebutt.MsgUpdates {
		lp.c.dec.recycle(m.Updates) // Step keeps no message's slice
	}
	if err != nil {
		return fmt.Errorf("stream: from peer: %w", err)
	}
	if m.Kind == scuttlebutt.MsgHello {
		lp.c.peer.Store(m.Hello)
	}
	lp.c.framesIn.Add(1)
	lp.c.updatesIn.Add(int64(len(m.Updates)))
	return nil
}

// readEnded returns the session's result once the reader has ended with
// err. more means to go on without the reader instead: a one-shot
// send-only session (a dump, with PeerClock) needs nothing from the peer,
// so a peer that reads nothing and says nothing does not end it.
func (lp *loop) readEnded(err error) (more bool, _ error) {
	if err != io.EOF {
		return false, err
	}
	if lp.c.opts.OneShot && !lp.c.link.Synced() {
		if lp.c.opts.Mode == scuttlebutt.SendOnly {
			return true, nil
		}
		return false, ErrNotSynced
	}
	return false, nil
}

// writeFailed returns the session's result after a write failed. A peer
// that hung up makes our write fail; if the reader has already seen the
// end (a clean one, or the peer's fault), that is the better answer.
func (lp *loop) writeFailed(err error, in <-chan received) error {
	for {
		select {
		case r := <-in:
			if r.err == nil {
				if err := lp.step(r.m); err != nil {
					return err
				}
				continue
			}
			if more, rerr := lp.readEnded(r.err); !more {
				return rerr
			}
			return err
		default:
			return err
		}
	}
}

// noteSynced closes c.synced once the Link is synced and every batch
// handed out until then, so our sync too, has been written.
func (lp *loop) noteSynced() {
	if lp.syncAt < 0 && lp.c.link.Synced() {
		lp.syncAt = lp.handed
	}
	if !lp.synced && lp.syncAt >= 0 && lp.written >= lp.syncAt {
		lp.synced = true
		close(lp.c.synced)
	}
}

// settle takes the result of the batch in flight when the loop ended, once
// the writer has ended: it may complete the sync.
func (lp *loop) settle() {
	select {
	case err := <-lp.wrote:
		if err == nil {
			lp.written++
			lp.noteSynced()
		}
	default:
	}
}

// readLoop reads and decodes frames and hands the messages to the loop, and
// last the error that ended it, io.EOF at a clean end between frames. It
// returns early once done is closed.
func (c *Conn) readLoop(in chan<- received, done <-chan struct{}) {
	for {
		m, err := c.dec.readMessage()
		c.bytesIn.Store(c.dec.bytesRead())
		select {
		case in <- received{m, err}:
		case <-done:
			return
		}
		if err != nil {
			return
		}
	}
}

// writeLoop writes the batches the loop hands it, in order, and answers
// each with its result, until out is closed.
func (c *Conn) writeLoop(out <-chan []scuttlebutt.Message, wrote chan<- error) {
	var buf []byte
	for msgs := range out {
		var err error
		buf, err = c.write(buf[:0], msgs)
		if cap(buf) > 4*c.opts.MaxFrameSize {
			buf = nil
		}
		wrote <- err
	}
}

func (c *Conn) write(buf []byte, msgs []scuttlebutt.Message) ([]byte, error) {
	// Room for the batch at once, so that a large one is not copied as it
	// grows: the updates' payloads, and a little for the rest.
	need := 0
	for _, m := range msgs {
		for _, u := range m.Updates {
			need += len(u.Data) + len(u.Signature) + 8
		}
	}
	buf = slices.Grow(buf[:0], need)
	var updates int
	for _, m := range msgs {
		var err error
		buf, err = c.enc.appendMessage(buf, m)
		if err != nil {
			return buf, err
		}
		updates += len(m.Updates)
	}
	n, err := c.rw.Write(buf)
	c.bytesOut.Add(int64(n))
	if err != nil {
		return buf, fmt.Errorf("stream: write: %w", err)
	}
	c.framesOut.Add(int64(len(msgs)))
	c.updatesOut.Add(int64(updates))
	return buf, nil
}
