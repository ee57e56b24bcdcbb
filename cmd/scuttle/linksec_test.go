package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/nettest"
)

// The tests in this file check, with real serve processes, what the
// issue asked of link security: the shared secret hides every replicated
// value from whoever sits between two nodes, and a node's certificate
// must name its id.

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
			proxy := nettest.NewTap(t, n2.addr)
			n2.extra = append(n2.extra, "-advertise", proxy.Addr())
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
				found := proxy.Saw(v)
				total, conns := proxy.Forwarded()
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

// TestCertificateIDProcesses runs t1 and t2 on mutual TLS with
// certificates naming them: they link and replicate. A third process
// started as t3 with t2's certificate (which the CA signed) exits
// non-zero before joining, saying the certificate names t2, not t3; t1
// and t2 never see it.
func TestCertificateIDProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts serve processes; skipped with -short")
	}
	ca := nettest.NewCA(t, "scuttle test cluster CA")
	procs := newProcs(t, 3)
	for i, p := range procs {
		p.id = fmt.Sprintf("t%d", i+1)
	}
	procs[2].seeds = procs[:2]
	certOf := map[string][3]string{}
	for _, p := range procs[:2] {
		caFile, certFile, keyFile := ca.Files(t, p.id, &x509.Certificate{DNSNames: []string{p.id}})
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
