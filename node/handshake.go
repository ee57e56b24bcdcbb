package node

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"io"
)

// The connection handshake, run on every replication connection after TLS
// (if any) and before the yamux session. It names both nodes and, with a
// shared secret, authenticates both: neither side sends a byte of document
// data before it has verified the other's proof.
//
//	dialer -> acceptor  hello: magic "SCTN", version, flags, nonce, id
//	acceptor -> dialer  hello, then (secret) proof: HMAC(secret, "server" | both hellos)
//	dialer -> acceptor  (secret) proof: HMAC(secret, "client" | both hellos)
//	acceptor -> dialer  status: 0 accepted, 1 refused
//
// Each proof covers both hellos, so both fresh nonces: a recorded
// handshake replayed to either side fails, and the secret never crosses
// the wire. The two labels keep one side's proof from serving as the
// other's. The acceptor proves first, so a dialer never reveals a proof to
// a node that has not shown it knows the secret. With a secret, both set
// flagSealed, and everything after the status travels in AEAD records
// keyed from the secret and both hellos (seal.go).
const (
	handshakeMagic    = "SCTN"
	handshakeVersion  = 1
	sizeOfMagic       = 4
	sizeOfNonce       = 32
	sizeOfMAC         = sha256.Size
	sizeOfHelloHeader = sizeOfMagic + 1 + 1 + sizeOfNonce + 1 // magic, version, flags, nonce, id length

	flagSecret = 1 << 0 // the sender authenticates with a shared secret
	flagSealed = 1 << 1 // the sender seals the session in records (seal.go); set with flagSecret

	tlsHandshakeRecord = 0x16 // the first byte a TLS client sends

	statusAccepted = 0
	statusRefused  = 1
)

// hello is the first message of each side, kept as its wire bytes for the
// proofs.
type hello []byte

func (h hello) version() byte { return h[sizeOfMagic] }
func (h hello) flags() byte   { return h[sizeOfMagic+1] }
func (h hello) id() string    { return string(h[sizeOfHelloHeader:]) }

func appendHello(b []byte, flags byte, nonce []byte, id string) hello {
	b = append(b, handshakeMagic...)
	b = append(b, handshakeVersion, flags)
	b = append(b, nonce...)
	b = append(b, byte(len(id)))
	return append(b, id...)
}

func readHello(r io.Reader) (hello, error) {
	h := make(hello, sizeOfHelloHeader, sizeOfHelloHeader+MaxNameSize)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, fmt.Errorf("%w: reading hello: %w", ErrHandshake, err)
	}
	if string(h[:sizeOfMagic]) != handshakeMagic {
		if h[0] == tlsHandshakeRecord {
			return nil, fmt.Errorf("%w: peer speaks TLS; this node has no TLS files", ErrAuth)
		}
		return nil, fmt.Errorf("%w: not a scuttle node (magic %q)", ErrHandshake, h[:sizeOfMagic])
	}
	if v := h.version(); v != handshakeVersion {
		return nil, fmt.Errorf("%w: handshake version %d, want %d", ErrHandshake, v, handshakeVersion)
	}
	n := int(h[sizeOfHelloHeader-1])
	if n > MaxNameSize {
		return nil, fmt.Errorf("%w: id of %d bytes", ErrHandshake, n)
	}
	h = h[:sizeOfHelloHeader+n]
	if _, err := io.ReadFull(r, h[sizeOfHelloHeader:]); err != nil {
		return nil, fmt.Errorf("%w: reading hello: %w", ErrHandshake, err)
	}
	if err := checkName(h.id()); err != nil {
		return nil, fmt.Errorf("%w: peer id: %w", ErrHandshake, err)
	}
	return h, nil
}

func proof(secret []byte, label string, client, server hello) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("scuttle node v1 " + label))
	m.Write(client)
	m.Write(server)
	return m.Sum(nil)
}

func flagsFor(secret []byte) byte {
	if len(secret) > 0 {
		return flagSecret | flagSealed
	}
	return 0
}

func checkFlags(ours, theirs byte) error {
	if ours&flagSecret != theirs&flagSecret {
		if ours&flagSecret != 0 {
			return fmt.Errorf("%w: peer has no shared secret", ErrAuth)
		}
		return fmt.Errorf("%w: peer requires a shared secret", ErrAuth)
	}
	if ours&flagSealed != theirs&flagSealed {
		return fmt.Errorf("%w: peer does not seal links with the secret (an older scuttle?)", ErrAuth)
	}
	return nil
}

// clientHandshake runs the dialer's side over rw: it introduces itself as
// id and expects the node want (any, if ""). It returns the peer's id, or
// an error wrapping ErrAuth or ErrHandshake. nonce must be fresh random
// bytes of sizeOfNonce.
func clientHandshake(rw io.ReadWriter, id, want string, secret, nonce []byte) (peer string, err error) {
	peer, _, err = clientHandshakeTranscript(rw, id, want, secret, nonce)
	return peer, err
}

// clientHandshakeTranscript is clientHandshake that also returns the two
// hellos, client's first, from which the session's keys are derived.
func clientHandshakeTranscript(rw io.ReadWriter, id, want string, secret, nonce []byte) (peer string, transcript []byte, err error) {
	ch := appendHello(nil, flagsFor(secret), nonce, id)
	if _, err := rw.Write(ch); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	sh, err := readHello(rw)
	if err != nil {
		return "", nil, err
	}
	if err := checkFlags(ch.flags(), sh.flags()); err != nil {
		return "", nil, err
	}
	if want != "" && sh.id() != want {
		return "", nil, fmt.Errorf("%w: dialled %s, reached %s", ErrHandshake, want, sh.id())
	}
	if sh.id() == id {
		return "", nil, fmt.Errorf("%w: peer has this node's id %s", ErrHandshake, id)
	}
	if len(secret) > 0 {
		got := make([]byte, sizeOfMAC)
		if _, err := io.ReadFull(rw, got); err != nil {
			return "", nil, fmt.Errorf("%w: reading proof: %w", ErrHandshake, err)
		}
		if !hmac.Equal(got, proof(secret, "server", ch, sh)) {
			return "", nil, fmt.Errorf("%w: %s's proof of the secret is wrong", ErrAuth, sh.id())
		}
		if _, err := rw.Write(proof(secret, "client", ch, sh)); err != nil {
			return "", nil, fmt.Errorf("%w: %w", ErrHandshake, err)
		}
	}
	var status [1]byte
	if _, err := io.ReadFull(rw, status[:]); err != nil {
		return "", nil, fmt.Errorf("%w: reading status: %w", ErrHandshake, err)
	}
	switch status[0] {
	case statusAccepted:
		return sh.id(), append(ch[:len(ch):len(ch)], sh...), nil
	case statusRefused:
		return "", nil, fmt.Errorf("%w: %s refused us: a wrong secret, or a certificate that does not name this node (see its log)", ErrAuth, sh.id())
	}
	return "", nil, fmt.Errorf("%w: status %d", ErrHandshake, status[0])
}

// serverHandshake runs the acceptor's side over rw and returns the
// dialer's id, or an error wrapping ErrAuth or ErrHandshake. nonce must be
// fresh random bytes of sizeOfNonce.
func serverHandshake(rw io.ReadWriter, id string, secret, nonce []byte) (peer string, err error) {
	peer, _, err = serverHandshakeTranscript(rw, id, secret, nonce, nil)
	return peer, err
}

// serverHandshakeTranscript is serverHandshake that also returns the two
// hellos, client's first, from which the session's keys are derived. If
// check is not nil, it vets the authenticated peer id before the status:
// an error refuses the peer.
func serverHandshakeTranscript(rw io.ReadWriter, id string, secret, nonce []byte, check func(peer string) error) (peer string, transcript []byte, err error) {
	ch, err := readHello(rw)
	if err != nil {
		return "", nil, err
	}
	sh := appendHello(nil, flagsFor(secret), nonce, id)
	msg := sh
	if ferr := checkFlags(sh.flags(), ch.flags()); ferr == nil && len(secret) > 0 {
		msg = append(msg[:len(msg):len(msg)], proof(secret, "server", ch, sh)...)
	}
	if _, err := rw.Write(msg); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	if err := checkFlags(sh.flags(), ch.flags()); err != nil {
		return "", nil, err
	}
	if ch.id() == id {
		return "", nil, fmt.Errorf("%w: peer has this node's id %s", ErrHandshake, id)
	}
	if len(secret) > 0 {
		got := make([]byte, sizeOfMAC)
		if _, err := io.ReadFull(rw, got); err != nil {
			return "", nil, fmt.Errorf("%w: reading proof: %w", ErrHandshake, err)
		}
		if !hmac.Equal(got, proof(secret, "client", ch, sh)) {
			rw.Write([]byte{statusRefused})
			return "", nil, fmt.Errorf("%w: %s's proof of the secret is wrong", ErrAuth, ch.id())
		}
	}
	if check != nil {
		if err := check(ch.id()); err != nil {
			rw.Write([]byte{statusRefused})
			return "", nil, err
		}
	}
	if _, err := rw.Write([]byte{statusAccepted}); err != nil {
		return "", nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return ch.id(), append(ch[:len(ch):len(ch)], sh...), nil
}
