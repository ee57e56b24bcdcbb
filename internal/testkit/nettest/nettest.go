// Package nettest holds network fixtures for tests: the two ends of a TCP
// connection over loopback, and for the link security tests of node and
// cmd/scuttle, a TCP proxy that keeps every byte it forwards (to show what
// an eavesdropper between two nodes reads) and a test certificate
// authority for mutual TLS.
package nettest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TCPPair returns the two ends of one TCP connection over loopback, the
// end that dialed and the end that was accepted; both are closed when tb
// ends.
func TCPPair(tb testing.TB) (dialed, accepted net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1) // the Accept never blocks on it
	go func() {
		c, err := ln.Accept()
		ch <- result{c, err}
	}()
	dialed, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatalf("dial: %v", err) // closing ln ends the Accept
	}
	r := <-ch
	if r.err != nil {
		dialed.Close()
		tb.Fatalf("accept: %v", r.err)
	}
	tb.Cleanup(func() {
		dialed.Close()
		r.c.Close()
	})
	return dialed, r.c
}

// Tap is a TCP proxy on a loopback port that forwards each connection to
// its target and keeps every byte it forwards, both ways.
type Tap struct {
	ln     net.Listener
	target atomic.Value // string
	tamper atomic.Bool
	conns  atomic.Int64
	mu     sync.Mutex // guards seen and open
	seen   bytes.Buffer
	open   map[net.Conn]bool // both sides of the connections forwarding
	closed bool
	wg     sync.WaitGroup
}

// NewTap starts a Tap forwarding to target ("" to set it later with
// SetTarget). When t ends it closes its listener and every connection it
// forwards, whatever else the test's cleanups still run.
func NewTap(t testing.TB, target string) *Tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Tap{ln: ln, open: make(map[net.Conn]bool)}
	p.target.Store(target)
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Go(func() { p.forward(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		p.closed = true
		for c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// track records c as open, or closes it and returns false once the Tap
// is closed.
func (p *Tap) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.open[c] = true
	return true
}

func (p *Tap) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.open, c)
	p.mu.Unlock()
	c.Close()
}

// Addr is the proxy's address, "127.0.0.1:port".
func (p *Tap) Addr() string { return p.ln.Addr().String() }

// SetTarget sets where the next connections go.
func (p *Tap) SetTarget(addr string) { p.target.Store(addr) }

// Tamper makes the proxy flip the last byte of the next chunk it forwards
// towards the target.
func (p *Tap) Tamper() { p.tamper.Store(true) }

// Saw reports whether s crossed the proxy, either way.
func (p *Tap) Saw(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.seen.Bytes(), []byte(s))
}

// Forwarded returns how many bytes and connections the proxy forwarded.
func (p *Tap) Forwarded() (bytes, conns int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen.Len(), int(p.conns.Load())
}

func (p *Tap) forward(c net.Conn) {
	if !p.track(c) {
		return
	}
	defer p.untrack(c)
	u, err := net.Dial("tcp", p.target.Load().(string))
	if err != nil || !p.track(u) {
		return
	}
	defer p.untrack(u)
	p.conns.Add(1)
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn, toTarget bool) {
		defer dst.Close()
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.mu.Lock()
				p.seen.Write(buf[:n])
				p.mu.Unlock()
				if toTarget && p.tamper.CompareAndSwap(true, false) {
					buf[n-1] ^= 0x01
				}
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	wg.Go(func() { pipe(u, c, true) })
	wg.Go(func() { pipe(c, u, false) })
	wg.Wait()
}

// CA is a certificate authority for tests: ECDSA P-256, valid for an hour
// either side of now.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA's certificate, PEM-encoded.
	PEM []byte
}

// NewCA makes a CA whose common name is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Pair returns a PEM certificate for client and server use, with common
// name cn, the DNS and URI SANs of names and the loopback IP, signed by
// ca, and its PEM key.
func (ca *CA) Pair(t testing.TB, cn string, names *x509.Certificate) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     names.DNSNames,
		URIs:         names.URIs,
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// Files writes the CA's certificate, and a certificate of Pair(cn, names)
// with its key, into a new directory of t, and returns the three paths.
func (ca *CA) Files(t testing.TB, cn string, names *x509.Certificate) (caFile, certFile, keyFile string) {
	t.Helper()
	certPEM, keyPEM := ca.Pair(t, cn, names)
	dir := t.TempDir()
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	for path, data := range map[string][]byte{caFile: ca.PEM, certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}
