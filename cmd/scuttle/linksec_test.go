package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The tests in this file check, with real serve processes, what the
// issue asked of link security: the shared secret hides every replicated
// value from whoever sits between two nodes, and a node's certificate
// must name its id.

// tap is a TCP proxy in front of one address that keeps every byte it
// forwards, both ways.
type tap struct {
	ln     net.Listener
	target string

	mu   sync.Mutex
	seen bytes.Buffer
	n    int // connections forwarded
}

func newTap(t *testing.T, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tap{ln: ln, target: target}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
	return p
}

func (p *tap) forward(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			k, err := src.Read(buf)
			if k > 0 {
				p.mu.Lock()
				p.seen.Write(buf[:k])
				p.mu.Unlock()
				if _, werr := dst.Write(buf[:k]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		done <- struct{}{}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done
	<-done
}

// saw reports whether the proxy forwarded s, and how many bytes and
// connections it forwarded in all.
func (p *tap) saw(s string) (found bool, total, conns int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.seen.Bytes(), []byte(s)), p.seen.Len(), p.n
}

// TestSealedLinkProcesses runs n1 and n2 with a shared secret, n2
// advertising its replication address through a proxy that keeps every
// byte (n1, the smaller id, dials). Values written on either side arrive
// on the other, and no value crosses the proxy in clear. Without the
// secret the same proxy reads them: the test does watch the link.
func TestSealedLinkProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts serve processes; skipped with -short")
	}
	for _, sealed := range []bool{true, false} {
		t.Run(fmt.Sprintf("secret=%v", sealed), func(t *testing.T) {
			procs := newProcs(t, 2)
			n1, n2 := procs[0], procs[1]
			proxy := newTap(t, n2.addr)
			n2.extra = append(n2.extra, "-advertise", proxy.ln.Addr().String())
			if sealed {
				secret := filepath.Join(t.TempDir(), "secret")
				if err := os.WriteFile(secret, []byte("a shared secret of the test, 32 bytes+"), 0o600); err != nil {
					t.Fatal(err)
				}
				for _, p := range procs {
					p.extra = append(p.extra, "-secret-file", secret)
				}
			}
			n1.start()
			n2.start()
			waitMembers(t, procs, []string{"n1", "n2"})

			v1, v2 := "plaintext-from-n1-7f3a9c", "plaintext-from-n2-52e1bd"
			n1.mustCall("PUT", "/v1/models/m/keys/a", fmt.Sprintf("%q", v1))
			n2.mustCall("PUT", "/v1/models/m/keys/b", fmt.Sprintf("%q", v2))
			waitConvergedModel(t, procs, "m", func(m map[string]any) bool { return m["a"] == v1 && m["b"] == v2 })

			for _, v := range []string{v1, v2} {
				found, total, conns := proxy.saw(v)
				if conns == 0 || total == 0 {
					t.Fatalf("the proxy forwarded %d bytes on %d connections: the link did not go through it", total, conns)
				}
				if found == sealed {
					t.Errorf("secret=%v: the proxy saw %q: %v (%d bytes on %d connections)", sealed, v, found, total, conns)
				}
			}
		})
	}
}

// testCA is a certificate authority for the mutual-TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scuttle test cluster CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		IsCA:     true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue writes the CA, and a certificate naming id (SAN DNS) with its
// key, into dir, and returns the three paths.
func (ca *testCA) issue(t *testing.T, dir, id string) (caFile, certFile, keyFile string) {
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
		SerialNumber: serial, Subject: pkix.Name{CommonName: id},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames:    []string{id},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, id+".pem")
	keyFile = filepath.Join(dir, id+"-key.pem")
	for path, b := range map[string][]byte{
		caFile:   ca.pem,
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// TestCertificateIDProcesses runs t1 and t2 on mutual TLS with
// certificates naming them: they link and replicate. A third process
// started as t3 with t2's certificate (which the CA signed) exits
// non-zero before joining, saying the certificate names t2, not t3; t1
// and t2 never see it.
func TestCertificateIDProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts serve processes; skipped with -short")
	}
	ca := newTestCA(t)
	dir := t.TempDir()
	procs := newProcs(t, 3)
	for i, p := range procs {
		p.id = fmt.Sprintf("t%d", i+1)
	}
	procs[2].seeds = procs[:2]
	certOf := map[string][3]string{}
	for _, p := range procs[:2] {
		caFile, certFile, keyFile := ca.issue(t, dir, p.id)
		certOf[p.id] = [3]string{caFile, certFile, keyFile}
		p.extra = append(p.extra, "-tls-ca", caFile, "-tls-cert", certFile, "-tls-key", keyFile)
	}
	t1, t2, t3 := procs[0], procs[1], procs[2]
	t1.start()
	t2.start()
	waitMembers(t, procs[:2], []string{"t1", "t2"})
	t1.mustCall("PUT", "/v1/models/m/keys/k", `"over mutual TLS"`)
	waitConvergedModel(t, procs[:2], "m", func(m map[string]any) bool { return m["k"] == "over mutual TLS" })

	c := certOf["t2"]
	t3.extra = append(t3.extra, "-tls-ca", c[0], "-tls-cert", c[1], "-tls-key", c[2])
	err := t3.tryStart()
	if err == nil {
		t.Fatal("t3 started with t2's certificate")
	}
	if code := t3.waitExit(30 * time.Second); code == 0 {
		t.Fatalf("t3 with t2's certificate exited 0")
	}
	const want = "names t2, not t3"
	if logs := t3.log(); !strings.Contains(logs, want) {
		t.Errorf("t3's log does not say the certificate %s:\n%s", want, tail([]byte(logs), 2<<10))
	}
	for _, p := range procs[:2] {
		got, err := p.liveMembers()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fmt.Sprint(got), "t3") {
			t.Errorf("%s sees t3 as a member: %v", p.id, got)
		}
	}
}
