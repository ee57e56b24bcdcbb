package stream

import (
	"context"
	"fmt"
	"io"
	"sync"
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
}

// Stats counts what a Conn has carried so far.
type Stats struct {
	BytesIn, BytesOut     int64 // bytes read and written, framing included
	UpdatesIn, UpdatesOut int64 // updates received and sent
	FramesIn, FramesOut   int64
}

// Conn serves a replica to one peer over an io.ReadWriter: it drives a
// scuttlebutt.Link with one reader and one writer goroutine. Create it with
// NewConn and call Run once.
type Conn struct {
	link *scuttlebutt.Link
	rw   io.ReadWriter
	opts Options
	enc  encoder
	dec  decoder

	mu     sync.Mutex // guards link
	kick   chan struct{}
	synced chan struct{}
	once   sync.Once

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
		enc:    o.Codec.newEncoder(d, o.MaxFrameSize),
		dec:    o.Codec.newDecoder(d, rw, o.MaxFrameSize),
		kick:   make(chan struct{}, 1),
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
// When Run returns it closes rw if rw is an io.Closer, which also stops the
// reader goroutine; Run waits for it. It also closes such an rw as soon as
// ctx ends, so that a Write blocked on a peer that reads nothing returns.
// With an rw that cannot be closed, the reader goroutine ends when its
// pending Read returns, and Run when its pending Write does.
func (c *Conn) Run(ctx context.Context) error {
	defer c.closeLink()
	done := make(chan struct{})
	readDone := make(chan struct{})
	var readErr error
	go func() {
		defer close(readDone)
		readErr = c.readLoop(done)
	}()

	closer, closable := c.rw.(io.Closer)
	var cancelled atomic.Bool
	if closable {
		// A Write to a peer that reads nothing returns only when rw is
		// closed: close it as soon as ctx ends.
		stop := context.AfterFunc(ctx, func() {
			cancelled.Store(true)
			closer.Close()
		})
		defer stop()
	}
	err := c.writeLoop(ctx, readDone, &readErr)
	close(done)
	if closable {
		closer.Close()
		<-readDone
	}
	if cancelled.Load() {
		return nil // the errors of the close are ours, not the peer's
	}
	return err
}

func (c *Conn) closeLink() {
	c.mu.Lock()
	c.link.Close()
	c.mu.Unlock()
}

// writeLoop sends what the link has ready until the session is over, and
// returns its result. readErr is valid once readDone is closed.
func (c *Conn) writeLoop(ctx context.Context, readDone <-chan struct{}, readErr *error) error {
	var buf []byte
	wake := c.link.Wake()
	// readEnded returns the session's result once the reader has ended,
	// from the link's state now: the last frames may have synced it since
	// the loop last looked. more means to keep writing instead: a one-shot
	// send-only session (a dump, with PeerClock) needs nothing from the
	// peer, so a peer that reads nothing and says nothing does not end it.
	readEnded := func() (more bool, err error) {
		c.mu.Lock()
		synced := c.link.Synced()
		c.mu.Unlock()
		if synced {
			c.markSynced()
		}
		if *readErr == nil && c.opts.OneShot && !synced {
			if c.opts.Mode == scuttlebutt.SendOnly {
				return true, nil
			}
			return false, ErrNotSynced
		}
		return false, *readErr
	}
	for {
		c.mu.Lock()
		msgs := c.link.Ready()
		synced, done := c.link.Synced(), c.link.Done()
		c.mu.Unlock()
		if len(msgs) > 0 {
			var err error
			if buf, err = c.write(buf[:0], msgs); err != nil {
				// A peer that hung up makes our write fail; what the reader
				// saw (a clean end, or the peer's fault) is the better answer.
				select {
				case <-readDone:
					if more, err := readEnded(); !more {
						return err
					}
				default:
				}
				return err
			}
			if cap(buf) > 4*c.opts.MaxFrameSize {
				buf = nil
			}
		}
		if synced {
			c.markSynced()
		}
		if done {
			return nil
		}
		select {
		case <-readDone:
			if more, err := readEnded(); !more {
				return err
			}
			readDone = nil // a dump: write on until done
		default:
		}
		if len(msgs) > 0 {
			continue // more may be ready
		}
		select {
		case <-ctx.Done():
			return nil
		case <-readDone:
			if more, err := readEnded(); !more {
				return err
			}
			readDone = nil
		case <-wake:
		case <-c.kick:
		}
	}
}

func (c *Conn) write(buf []byte, msgs []scuttlebutt.Message) ([]byte, error) {
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

// readLoop reads frames and steps the link until the stream ends (nil at a
// clean end between frames) or fails.
func (c *Conn) readLoop(done <-chan struct{}) error {
	for {
		m, err := c.dec.readMessage()
		c.bytesIn.Store(c.dec.bytesRead())
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-done:
			return nil // the session is over; apply nothing more
		default:
		}
		c.mu.Lock()
		err = c.link.Step(m)
		if m.Kind == scuttlebutt.MsgHello && err == nil {
			c.peer.Store(m.Hello)
		}
		c.mu.Unlock()
		if err != nil {
			return fmt.Errorf("stream: from peer: %w", err)
		}
		c.framesIn.Add(1)
		c.updatesIn.Add(int64(len(m.Updates)))
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

func (c *Conn) markSynced() { c.once.Do(func() { close(c.synced) }) }
