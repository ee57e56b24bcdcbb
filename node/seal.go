package node

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// Sealed links: what the shared secret protects after the handshake.
//
// With a Secret, every byte a link carries after the handshake travels in
// AEAD records, so that the network sees neither documents nor names and
// can change nothing undetected:
//
//	record:  length (4 bytes, big endian) | AES-256-GCM ciphertext of at most sizeOfRecordData bytes, tag included
//	nonce:   4 zero bytes | the record's number in its direction (8 bytes, big endian, from 0)
//	AD:      the length header
//	keys:    HKDF-SHA256(secret, salt = client hello | server hello, info = "scuttle node v1 seal " + direction)
//
// Each session gets its own two keys, one per direction, derived from the
// secret and the two hellos, which carry both sides' fresh nonces: no key
// is ever used on two connections, so a record's number is a safe nonce,
// and a record replayed, dropped, reordered or moved to the other
// direction fails authentication. A record that fails ends the link with
// ErrSealBroken; nothing of it reaches the session.
//
// Why not TLS keyed from the secret: TLS 1.3 with an external pre-shared
// key is what that would be, and crypto/tls has no API for it (only
// resumption PSKs); certificates generated from the secret would need a
// deterministic key generation and still authenticate the secret only
// through them. The record layer is about 150 lines over crypto/cipher and
// crypto/hkdf, both standard, with the handshake that already proves the
// secret. With TLS configured as well, records run inside TLS.
const (
	sizeOfRecordHeader = 4
	sizeOfRecordData   = 16 << 10 // the most plaintext in one record
	sizeOfSealKey      = 32       // AES-256
	sealLabel          = "scuttle node v1 seal "
)

// sealKeys derives the keys of a session from the secret and the two
// hellos: out is the key of what this side writes, in of what it reads.
func sealKeys(secret, transcript []byte, dialer bool) (out, in []byte, err error) {
	c2s, err := hkdf.Key(sha256.New, secret, transcript, sealLabel+"client to server", sizeOfSealKey)
	if err != nil {
		return nil, nil, err
	}
	s2c, err := hkdf.Key(sha256.New, secret, transcript, sealLabel+"server to client", sizeOfSealKey)
	if err != nil {
		return nil, nil, err
	}
	if dialer {
		return c2s, s2c, nil
	}
	return s2c, c2s, nil
}

// sealedConn carries a session's bytes in AEAD records over a connection.
// Read and Write may be called concurrently with each other; reads are
// serialised, and so are writes. Errors are sticky.
type sealedConn struct {
	net.Conn

	rmu    sync.Mutex // guards the fields below, for Read
	open   cipher.AEAD
	rseq   uint64
	rnonce [12]byte
	rbuf   []byte // the current record: header, then ciphertext
	plain  []byte // what is left of the last record's plaintext
	rerr   error
	wmu    sync.Mutex // guards the fields below, for Write
	seal   cipher.AEAD
	wseq   uint64
	wnonce [12]byte
	wbuf   []byte
	werr   error
	broken atomic.Pointer[error] // why a record failed, once one did
}

func newSealedConn(c net.Conn, outKey, inKey []byte) (*sealedConn, error) {
	seal, err := newGCM(outKey)
	if err != nil {
		return nil, err
	}
	open, err := newGCM(inKey)
	if err != nil {
		return nil, err
	}
	return &sealedConn{
		Conn: c,
		open: open,
		seal: seal,
		rbuf: make([]byte, sizeOfRecordHeader+sizeOfRecordData+open.Overhead()),
		wbuf: make([]byte, 0, sizeOfRecordHeader+sizeOfRecordData+seal.Overhead()),
	}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// recordNonce writes the nonce of record seq into n (12 bytes, the first
// 4 zero) and returns it.
func recordNonce(n *[12]byte, seq uint64) []byte {
	binary.BigEndian.PutUint64(n[4:], seq)
	return n[:]
}

// Write seals p in records of at most sizeOfRecordData bytes and writes
// them.
func (c *sealedConn) Write(p []byte) (written int, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, c.werr
	}
	for len(p) > 0 {
		chunk := p[:min(len(p), sizeOfRecordData)]
		if c.wseq == ^uint64(0) {
			c.werr = fmt.Errorf("%w: record numbers exhausted", ErrSealBroken)
			return written, c.werr
		}
		b := binary.BigEndian.AppendUint32(c.wbuf[:0], uint32(len(chunk)+c.seal.Overhead()))
		b = c.seal.Seal(b, recordNonce(&c.wnonce, c.wseq), chunk, b[:sizeOfRecordHeader])
		c.wseq++
		if _, err := c.Conn.Write(b); err != nil {
			c.werr = err
			return written, err
		}
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}

// Read returns plaintext of the records read, opening one more record
// when none is left.
func (c *sealedConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.plain) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		c.rerr = c.readRecord()
	}
	n := copy(p, c.plain)
	c.plain = c.plain[n:]
	return n, nil
}

// readRecord reads and opens the next record into c.plain.
func (c *sealedConn) readRecord() error {
	h := c.rbuf[:sizeOfRecordHeader]
	if _, err := io.ReadFull(c.Conn, h); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(h)
	if size < uint32(c.open.Overhead()) || size > uint32(sizeOfRecordData+c.open.Overhead()) {
		return c.fail(fmt.Errorf("%w: record of %d bytes (at most %d)", ErrSealBroken, size, sizeOfRecordData+c.open.Overhead()))
	}
	body := c.rbuf[sizeOfRecordHeader : sizeOfRecordHeader+int(size)]
	if _, err := io.ReadFull(c.Conn, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	plain, err := c.open.Open(body[:0], recordNonce(&c.rnonce, c.rseq), body, h)
	if err != nil {
		return c.fail(fmt.Errorf("%w: record %d does not authenticate: altered on the way, or not sent by the peer", ErrSealBroken, c.rseq))
	}
	c.rseq++
	c.plain = plain
	return nil
}

func (c *sealedConn) fail(err error) error {
	c.broken.Store(&err)
	return err
}

// sealError returns the error that broke the seal of c, if c is sealed
// and one did.
func sealError(c net.Conn) error {
	s, ok := c.(*sealedConn)
	if !ok {
		return nil
	}
	if err := s.broken.Load(); err != nil {
		return *err
	}
	return nil
}
