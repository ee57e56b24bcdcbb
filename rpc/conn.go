package rpc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/scuttle-go/scuttle/stream"
)

// maxWriteBatch is how many bytes of queued frames the writer gathers
// into one Write.
const maxWriteBatch = 64 << 10

// readBufferSize is the size of the buffer between the connection and the
// frame reader, which reads a frame's header and body separately.
const readBufferSize = 32 << 10

// outLen is how many frames wait for the writer before senders block.
const outLen = 256

// Optional methods of a connection, used when it has them (a net.Conn, a
// yamux stream, a net.Pipe end).
type (
	readDeadliner  interface{ SetReadDeadline(time.Time) error }
	writeDeadliner interface{ SetWriteDeadline(time.Time) error }
)

// conn is the I/O of one connection, the same for both roles: the role's
// reader loop reads frames with a stream.FrameReader; one writer goroutine
// writes the frames sent on out, gathering those queued into one Write.
// The first error ends the connection (fail): it closes done, which every
// waiter selects on, and closes the connection, which ends the reader's
// Read.
type conn struct {
	rwc          io.ReadWriteCloser
	fr           *stream.FrameReader
	maxFrame     int
	out          chan *frame   // frames for the writer
	done         chan struct{} // closed by fail
	writerDone   chan struct{} // closed when the writer has returned
	writeTimeout time.Duration

	once sync.Once
	err  error // why the connection ended; written before done is closed
}

func newConn(rwc io.ReadWriteCloser, maxFrame int, writeTimeout time.Duration) *conn {
	return &conn{
		rwc:          rwc,
		fr:           stream.NewFrameReader(bufio.NewReaderSize(rwc, readBufferSize), maxFrame),
		maxFrame:     maxFrame,
		out:          make(chan *frame, outLen),
		done:         make(chan struct{}),
		writerDone:   make(chan struct{}),
		writeTimeout: writeTimeout,
	}
}

// readFrame returns the next frame. The body is valid until the next
// call.
func (c *conn) readFrame() (kind, []byte, error) {
	k, body, err := c.fr.ReadFrame()
	return kind(k), body, err
}

// fail ends the connection with err, if it has not ended yet: the first
// error wins. It closes done and the connection, and makes a pending Read
// return (a yamux stream's Close only half-closes it).
func (c *conn) fail(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.done)
		if d, ok := c.rwc.(readDeadliner); ok {
			d.SetReadDeadline(time.Now())
		}
		c.rwc.Close()
	})
}

// closedErr returns the error of a call that the connection's end
// interrupted: ErrClosed, wrapping why it ended. Only after done.
func (c *conn) closedErr() error {
	switch {
	case c.err == nil || errors.Is(c.err, ErrClosed):
		return c.err
	case errors.Is(c.err, io.EOF):
		return fmt.Errorf("%w: the peer closed it", ErrClosed)
	}
	return fmt.Errorf("%w: %w", ErrClosed, c.err)
}

// frame is an encoded frame on its way to the writer, which puts it back
// in framePool once written.
type frame struct{ b []byte }

var framePool = sync.Pool{New: func() any { return &frame{b: make([]byte, 0, 512)} }}

// maxPooledFrame is the largest frame kept for reuse.
const maxPooledFrame = 256 << 10

// newFrame returns a frame of kind k whose body is produced by body, which
// appends to its argument, or an error wrapping stream.ErrFrameTooLarge if
// the body exceeds the connection's limit.
func (c *conn) newFrame(k kind, body func([]byte) ([]byte, error)) (*frame, error) {
	f := framePool.Get().(*frame)
	var err error
	if f.b, err = appendFrame(f.b[:0], k, c.maxFrame, body); err != nil {
		putFrame(f)
		return nil, err
	}
	return f, nil
}

func putFrame(f *frame) {
	if cap(f.b) <= maxPooledFrame {
		f.b = f.b[:0]
		framePool.Put(f)
	}
}

// send queues frame f for the writer. It returns false, having queued
// nothing, if the connection ends or stop is closed first.
func (c *conn) send(f *frame, stop <-chan struct{}) bool {
	select {
	case c.out <- f:
		return true
	case <-c.done:
	case <-stop:
	}
	return false
}

// writeLoop is the writer goroutine. It writes a frame alone as it is, and
// copies frames queued together into one buffer, up to maxWriteBatch
// bytes, for one Write. The write deadline is moved on only once a tenth
// of the timeout has passed, since setting it costs a timer.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	wd, deadlines := c.rwc.(writeDeadliner)
	deadlines = deadlines && c.writeTimeout > 0
	var (
		armed time.Time // when the write deadline was last set
		batch []*frame
		buf   []byte
	)
	for {
		select {
		case f := <-c.out:
			batch = append(batch[:0], f)
		case <-c.done:
			return
		}
		size := len(batch[0].b)
	gather:
		for size < maxWriteBatch {
			select {
			case f := <-c.out:
				batch = append(batch, f)
				size += len(f.b)
			default:
				break gather
			}
		}
		p := batch[0].b
		if len(batch) > 1 {
			buf = buf[:0]
			for _, f := range batch {
				buf = append(buf, f.b...)
			}
			p = buf
		}
		if deadlines {
			if now := time.Now(); now.Sub(armed) > c.writeTimeout/10 {
				armed = now
				wd.SetWriteDeadline(now.Add(c.writeTimeout))
			}
		}
		if _, err := c.rwc.Write(p); err != nil {
			c.fail(fmt.Errorf("rpc: write: %w", err))
			return
		}
		for i, f := range batch {
			putFrame(f)
			batch[i] = nil
		}
		if cap(buf) > 4*maxWriteBatch {
			buf = nil // a large frame passed; do not keep its buffer
		}
	}
}
