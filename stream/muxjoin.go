package stream

import (
	"encoding/binary"
	"io"
	"net"
)

// yamux's frame header (hashicorp/yamux, spec.md): version, type, flags,
// stream id, length; a data frame's length is the size of the body that
// follows it.
const (
	yamuxHeaderSize = 12
	yamuxVersion    = 0
	yamuxTypeData   = 0
)

// maxJoinedBody is the largest body joinedWriter copies behind its
// header. A larger one is written on its own, after the header: the cost
// that joining saves (a record, a segment, a system call) is small next to
// such a body, and the copy buffer stays small.
const maxJoinedBody = 16 << 10

// joinedWriter is the connection a Mux hands to yamux: it writes each data
// frame's header and body in one Write of the connection. yamux writes
// them apart, two Writes per frame, so that over TCP with Nagle off (Go's
// default) every small frame took two segments and two system calls, and
// over a TLS or a sealed connection two records, each with its own header
// and tag (20 to 22 bytes more per frame).
//
// It holds back a Write that is exactly a data frame's header with a body
// to follow, and prepends it to the next Write, which yamux's one sending
// goroutine makes at once with that body. Everything else passes through
// as it comes. Reads and Close are the connection's.
type joinedWriter struct {
	io.ReadWriteCloser
	hdr  [yamuxHeaderSize]byte
	held bool   // hdr awaits its body
	buf  []byte // header and body, for the Write that joins them
}

// joinWrites returns conn as a Mux hands it to yamux: a joinedWriter, which
// keeps conn's LocalAddr and RemoteAddr if it has them (a net.Conn), since
// yamux reports its streams' addresses from its connection's.
func joinWrites(conn io.ReadWriteCloser) io.ReadWriteCloser {
	w := &joinedWriter{ReadWriteCloser: conn}
	if a, ok := conn.(addresses); ok {
		return joinedAddrWriter{w, a}
	}
	return w
}

// addresses is the part of a net.Conn that yamux asks its connection for.
type addresses interface {
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
}

// joinedAddrWriter is a joinedWriter with its connection's addresses.
type joinedAddrWriter struct {
	*joinedWriter
	addresses
}

// Write implements io.Writer. n counts p's bytes only: a held header was
// reported written when it was held.
func (w *joinedWriter) Write(p []byte) (n int, err error) {
	if !w.held {
		if isDataHeader(p) {
			copy(w.hdr[:], p)
			w.held = true
			return len(p), nil
		}
		return w.ReadWriteCloser.Write(p)
	}
	w.held = false
	if len(p) > maxJoinedBody {
		if _, err := w.ReadWriteCloser.Write(w.hdr[:]); err != nil {
			return 0, err
		}
		return w.ReadWriteCloser.Write(p)
	}
	w.buf = append(append(w.buf[:0], w.hdr[:]...), p...)
	n, err = w.ReadWriteCloser.Write(w.buf)
	return max(n-yamuxHeaderSize, 0), err
}

// isDataHeader reports whether p is exactly the header of a data frame
// with a body.
func isDataHeader(p []byte) bool {
	return len(p) == yamuxHeaderSize && p[0] == yamuxVersion && p[1] == yamuxTypeData &&
		binary.BigEndian.Uint32(p[8:12]) > 0
}
