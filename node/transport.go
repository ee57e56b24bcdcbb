package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// loadTLS builds the mutual-TLS configuration from the certificate files,
// or returns nil if they are not set. Both sides present a certificate and
// both verify the other's chain against the CA here, and after the node
// handshake that the certificate names the peer's id (certid.go).
func loadTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("%w: TLS key pair: %w", ErrInvalidConfig, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("%w: CAFile: %w", ErrInvalidConfig, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: CAFile %s holds no PEM certificate", ErrInvalidConfig, caFile)
	}
	verify := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: peer presented no certificate", ErrAuth)
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots:         pool,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrAuth, err)
		}
		return nil
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{pair},
		// The standard verification checks the server's name, which a
		// node dialling an address from gossip cannot know; both sides
		// verify the chain in VerifyConnection instead.
		InsecureSkipVerify: true,
		ClientAuth:         tls.RequireAnyClientCert,
		VerifyConnection:   verify,
	}, nil
}

// countConn counts the bytes a connection carries, framing and TLS
// included: what the network sees.
type countConn struct {
	net.Conn
	in, out atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// secure runs the TLS handshake (if configured) and the node handshake on
// a new connection, within the handshake timeout and until ctx ends. want
// is the peer the dialer expects; the acceptor passes "". It returns the
// connection to carry the session and the peer's id; on error it has
// closed raw.
func (n *Node) secure(ctx context.Context, raw *countConn, dialer bool, want string) (net.Conn, string, error) {
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	raw.SetDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	var c net.Conn = raw
	if n.tls != nil {
		var tc *tls.Conn
		if dialer {
			tc = tls.Client(raw, n.tls)
		} else {
			tc = tls.Server(raw, n.tls)
		}
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			return nil, "", tlsError(err)
		}
		c = tc
	}
	nonce := make([]byte, sizeOfNonce)
	rand.Read(nonce)
	var (
		peer       string
		transcript []byte
		err        error
	)
	if dialer {
		peer, transcript, err = clientHandshakeTranscript(c, n.id, want, n.cfg.Secret, nonce)
	} else {
		var check func(string) error
		if n.tls != nil {
			check = func(peer string) error { return checkPeerCert(c, peer) }
		}
		peer, transcript, err = serverHandshakeTranscript(c, n.id, n.cfg.Secret, nonce, check)
	}
	if err == nil && len(n.cfg.Secret) > 0 {
		// Everything after the handshake is sealed with keys of this
		// session (seal.go).
		var out, in []byte
		if out, in, err = sealKeys(n.cfg.Secret, transcript, dialer); err == nil {
			c, err = newSealedConn(c, out, in)
		}
	}
	if err == nil && dialer && n.tls != nil {
		err = checkPeerCert(c, peer)
	}
	if err != nil {
		raw.Close()
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", err
	}
	if !stop() {
		raw.Close()
		return nil, "", ctx.Err()
	}
	raw.SetDeadline(time.Time{})
	return c, peer, nil
}

// tlsError classifies a failed TLS handshake: a certificate the other side
// refused, or that we refused, is an authentication failure; anything
// else (a reset, a timeout) is a handshake failure.
func tlsError(err error) error {
	var (
		alert    tls.AlertError
		verr     *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		netError net.Error
	)
	switch {
	case errors.Is(err, ErrAuth):
		return err
	case errors.As(err, &alert), errors.As(err, &verr), errors.As(err, &unknown):
		return fmt.Errorf("%w: TLS: %w", ErrAuth, err)
	case errors.As(err, &netError):
		return fmt.Errorf("%w: TLS: %w", ErrHandshake, err)
	}
	return fmt.Errorf("%w: TLS: %w", ErrAuth, err)
}
