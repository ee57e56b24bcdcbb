package node

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scuttle-go/scuttle/internal/testkit/leak"
	"github.com/scuttle-go/scuttle/internal/testkit/nettest"
)

// pipeHandshake runs both sides of the handshake over a net.Pipe.
func pipeHandshake(t *testing.T, clientSecret, serverSecret []byte) (clientPeer, serverPeer string, clientErr, serverErr error) {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		serverPeer, serverErr = serverHandshake(s, "server", serverSecret, nonce())
		s.Close()
	}()
	clientPeer, clientErr = clientHandshake(c, "client", "server", clientSecret, nonce())
	c.Close()
	<-done
	return
}

func nonce() []byte {
	b := make([]byte, sizeOfNonce)
	rand.Read(b)
	return b
}

var (
	secret1 = []byte("0123456789abcdef-one")
	secret2 = []byte("0123456789abcdef-two")
)

func TestHandshake(t *testing.T) {
	tests := []struct {
		name                 string
		client, server       []byte
		wantClient, wantServ error // nil: accepted
	}{
		{"no secrets", nil, nil, nil, nil},
		{"same secret", secret1, secret1, nil, nil},
		// The server proves first; the client refuses and hangs up.
		{"wrong secret", secret2, secret1, ErrAuth, ErrHandshake},
		{"client without secret", nil, secret1, ErrAuth, ErrAuth},
		{"server without secret", secret1, nil, ErrAuth, ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cp, sp, cerr, serr := pipeHandshake(t, tt.client, tt.server)
			check := func(side string, err, want error, peer, wantPeer string) {
				switch {
				case want == nil && err != nil:
					t.Errorf("%s: %v, want success", side, err)
				case want == nil && peer != wantPeer:
					t.Errorf("%s: peer %q, want %q", side, peer, wantPeer)
				case want != nil && !errors.Is(err, want):
					t.Errorf("%s: %v, want %v", side, err, want)
				}
			}
			check("client", cerr, tt.wantClient, cp, "server")
			check("server", serr, tt.wantServ, sp, "client")
		})
	}
}

// recorder keeps what a side wrote.
type recorder struct {
	io.ReadWriter
	out bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.out.Write(p)
	return r.ReadWriter.Write(p)
}

func TestHandshakeReplayFails(t *testing.T) {
	// Record a client's side of a successful handshake...
	c, s := net.Pipe()
	rec := &recorder{ReadWriter: c}
	go serverHandshake(s, "server", secret1, nonce())
	if _, err := clientHandshake(rec, "client", "server", secret1, nonce()); err != nil {
		t.Fatalf("recorded handshake: %v", err)
	}
	c.Close()
	s.Close()
	// ...and replay it, hello and proof, to a server with a fresh nonce.
	c, s = net.Pipe()
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		_, err := serverHandshake(s, "server", secret1, nonce())
		s.Close()
		errc <- err
	}()
	go c.Write(rec.out.Bytes())
	reply, _ := io.ReadAll(c)
	if err := <-errc; !errors.Is(err, ErrAuth) {
		t.Fatalf("replayed handshake: server says %v, want ErrAuth", err)
	}
	if last := reply[len(reply)-1]; last != statusRefused {
		t.Errorf("replayed handshake: status %d, want refused", last)
	}
}

func TestHandshakeBadInput(t *testing.T) {
	badVersion := appendHello(nil, 0, nonce(), "x")
	badVersion[sizeOfMagic] = handshakeVersion + 1
	tests := []struct {
		name  string
		input []byte
		want  error
	}{
		{"not scuttle", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + string(make([]byte, 64))), ErrHandshake},
		{"TLS client", append([]byte{tlsHandshakeRecord, 3, 1}, make([]byte, 64)...), ErrAuth},
		{"bad version", badVersion, ErrHandshake},
		{"bad id", appendHello(nil, 0, nonce(), "../x"), ErrHandshake},
		{"truncated", appendHello(nil, 0, nonce(), "x")[:20], ErrHandshake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := net.Pipe()
			defer c.Close()
			go func() { c.Write(tt.input); c.Close() }()
			_, err := serverHandshake(s, "server", nil, nonce())
			if !errors.Is(err, tt.want) {
				t.Errorf("serverHandshake: %v, want %v", err, tt.want)
			}
		})
	}
}

// TestSecretRefusedBeforeData dials a node with a wrong proof and checks
// that it answers nothing but its hello, proof and a refusal, and counts
// the refusal.
func TestSecretRefusedBeforeData(t *testing.T) {
	leak.Check(t)
	cfg := testConfig(t, "a")
	cfg.Secret = secret1
	a := start(t, cfg)
	mustModel(t, a, "doc").Set("secret", "data")

	c, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitTimeout))
	ch := appendHello(nil, flagSecret|flagSealed, nonce(), "mallory")
	c.Write(ch)
	sh, err := readHello(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, sizeOfMAC)); err != nil {
		t.Fatal(err)
	}
	c.Write(proof(secret2, "client", ch, sh)) // the wrong secret
	rest, _ := io.ReadAll(c)
	if !bytes.Equal(rest, []byte{statusRefused}) {
		t.Errorf("after a wrong proof the node sent %q, want only the refusal", rest)
	}
	waitFor(t, "a counts the refusal", func() bool { return a.Status().Counters.AuthFailures == 1 })
}

// refusedCluster checks that c, configured apart by tweakC, is refused
// by a and b (configured by tweakAB) and gets none of their data, while a
// and b replicate. If cCounts, c is the side that notices the failure
// (a peer that cannot authenticate at all just hangs up); else a and b
// are.
func refusedCluster(t *testing.T, tweakAB, tweakC func(*Config), cCounts bool) {
	t.Helper()
	nodes := cluster(t, []string{"a", "b"}, tweakAB)
	a, b := nodes[0], nodes[1]
	cfg := testConfig(t, "c")
	cfg.Join = []string{a.GossipAddr()}
	tweakC(cfg)
	c := start(t, cfg)
	mustModel(t, c, "doc").Set("c", "mine")
	mustModel(t, a, "doc").Set("a", "secret")
	waitConverged(t, "doc", map[string]any{"a": "secret"}, a, b)
	for _, n := range []*Node{a, b} {
		waitFor(t, n.ID()+" sees c in membership", func() bool { return slices.Contains(n.Members(), "c") })
		if !cCounts {
			waitFor(t, n.ID()+" counts c's refusal", func() bool { return n.Status().Counters.AuthFailures > 0 })
		}
		if slices.Contains(linkPeers(n), "c") {
			t.Errorf("%s has a link to c", n.ID())
		}
	}
	if cCounts {
		waitFor(t, "c counts its refusals", func() bool { return c.Status().Counters.AuthFailures >= 2 })
	}
	if got := linkPeers(c); len(got) != 0 {
		t.Errorf("c has links to %v", got)
	}
	if got := mustModel(t, c, "doc").Snapshot(); !slices.Equal(sortedKeys(got), []string{"c"}) {
		t.Errorf("c got data: %v", got)
	}
	if docs := c.Documents(); len(docs) != 1 {
		t.Errorf("c learned of documents: %v", docs)
	}
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestSecret(t *testing.T) {
	t.Run("accepted", func(t *testing.T) {
		leak.Check(t)
		nodes := cluster(t, []string{"a", "b"}, func(c *Config) { c.Secret = secret1 })
		mustModel(t, nodes[0], "doc").Set("k", "v")
		waitConverged(t, "doc", map[string]any{"k": "v"}, nodes...)
	})
	t.Run("no secret", func(t *testing.T) {
		leak.Check(t)
		refusedCluster(t,
			func(c *Config) { c.Secret = secret1 },
			func(c *Config) { c.GossipKey = gossipKey(secret1) }, false)
	})
	t.Run("refused", func(t *testing.T) {
		leak.Check(t)
		refusedCluster(t,
			func(c *Config) { c.Secret = secret1 },
			// c shares the gossip key (so it joins the membership) but not
			// the secret of the links.
			func(c *Config) { c.Secret, c.GossipKey = secret2, gossipKey(secret1) }, false)
	})
	t.Run("gossip key keeps strangers out", func(t *testing.T) {
		leak.Check(t)
		a := start(t, func() *Config { c := testConfig(t, "a"); c.Secret = secret1; return c }())
		cfg := testConfig(t, "c")
		cfg.Secret = secret2
		c := start(t, cfg)
		if _, err := c.Join(a.GossipAddr()); err == nil {
			t.Errorf("c joined a cluster with another gossip key")
		}
		if got := a.Members(); !slices.Equal(got, []string{"a"}) {
			t.Errorf("a's members: %v", got)
		}
	})
}

// testCA is a certificate authority for tests that points node
// Configs at the files of the certificates it signs.
type testCA struct{ *nettest.CA }

func newCA(t *testing.T, name string) *testCA { return &testCA{nettest.NewCA(t, name)} }

// files writes a certificate for node cfg.ID (a SAN DNS name), signed by
// ca, and ca's certificate, and points cfg at them.
func (ca *testCA) files(t *testing.T, cfg *Config) {
	t.Helper()
	ca.filesNaming(t, cfg, &x509.Certificate{DNSNames: []string{cfg.ID}})
}

// filesNaming is files with the certificate's names taken from names.
func (ca *testCA) filesNaming(t *testing.T, cfg *Config, names *x509.Certificate) {
	t.Helper()
	cfg.CAFile, cfg.CertFile, cfg.KeyFile = ca.Files(t, cfg.ID, names)
}

func TestMutualTLS(t *testing.T) {
	ca, other := newCA(t, "cluster CA"), newCA(t, "another CA")
	t.Run("accepted", func(t *testing.T) {
		leak.Check(t)
		nodes := cluster(t, []string{"a", "b"}, func(c *Config) { ca.files(t, c) })
		mustModel(t, nodes[0], "doc").Set("k", "v")
		waitConverged(t, "doc", map[string]any{"k": "v"}, nodes...)
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		leak.Check(t)
		refusedCluster(t,
			func(c *Config) { ca.files(t, c) },
			func(c *Config) {
				other.files(t, c)
				c.CAFile = func() string { d := &Config{ID: "x"}; ca.files(t, d); return d.CAFile }() // trusts the cluster's CA
			}, false)
	})
	t.Run("no certificate", func(t *testing.T) {
		leak.Check(t)
		refusedCluster(t, func(c *Config) { ca.files(t, c) }, func(c *Config) {}, true)
	})
}

// TestCertificateNamesID checks that a certificate serves only the node
// it names: a URI SAN works as a DNS one, a node refuses to start with a
// certificate that names another id, and a peer presenting another
// node's certificate is refused with a message that says so.
func TestCertificateNamesID(t *testing.T) {
	ca := newCA(t, "cluster CA")
	t.Run("URI SAN", func(t *testing.T) {
		leak.Check(t)
		nodes := cluster(t, []string{"a", "b"}, func(c *Config) {
			ca.filesNaming(t, c, &x509.Certificate{URIs: []*url.URL{{Scheme: "scuttle", Host: c.ID}}})
		})
		mustModel(t, nodes[0], "doc").Set("k", "v")
		waitConverged(t, "doc", map[string]any{"k": "v"}, nodes...)
	})
	t.Run("own certificate names another id", func(t *testing.T) {
		cfg := testConfig(t, "t3")
		ca.filesNaming(t, cfg, &x509.Certificate{DNSNames: []string{"t2"}})
		n, err := New(cfg)
		if err == nil {
			n.Close()
			t.Fatal("New accepted a certificate naming t2 for node t3")
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "names t2, not t3") {
			t.Errorf("New: %v, want ErrInvalidConfig saying the certificate names t2, not t3", err)
		}
	})
	t.Run("peer presents another node's certificate", func(t *testing.T) {
		leak.Check(t)
		var logs syncBuffer
		cfg := testConfig(t, "t1")
		ca.files(t, cfg)
		cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testLogWriter(t)), nil))
		a := start(t, cfg)
		// t3 dials with t2's certificate, which the CA signed.
		certPEM, keyPEM := ca.Pair(t, "t2", &x509.Certificate{DNSNames: []string{"t2"}})
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.Dial("tcp", a.Addr(), &tls.Config{Certificates: []tls.Certificate{pair}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(waitTimeout))
		if _, err := clientHandshake(c, "t3", "t1", nil, nonce()); !errors.Is(err, ErrAuth) {
			t.Errorf("t3 with t2's certificate: %v, want refused with ErrAuth", err)
		}
		waitFor(t, "t1 counts the refusal", func() bool { return a.Status().Counters.AuthFailures == 1 })
		// The count comes just before the log line.
		const want = "the certificate of node t3 names t2, not t3"
		waitFor(t, "t1 logs "+want, func() bool { return strings.Contains(logs.String(), want) })
	})
}

func TestCheckCertID(t *testing.T) {
	u := func(s string) *url.URL { v, _ := url.Parse(s); return v }
	tests := []struct {
		name    string
		cert    *x509.Certificate
		id      string
		wantErr string // "" means accepted
	}{
		{"DNS", &x509.Certificate{DNSNames: []string{"web1"}}, "web1", ""},
		{"URI", &x509.Certificate{URIs: []*url.URL{u("scuttle://web1")}}, "web1", ""},
		{"one of several", &x509.Certificate{DNSNames: []string{"web1.example.com", "web1"}}, "web1", ""},
		{"another id", &x509.Certificate{DNSNames: []string{"web2"}}, "web1", "names web2, not web1"},
		{"URI of another scheme", &x509.Certificate{URIs: []*url.URL{u("spiffe://web1")}}, "web1", "names no node id"},
		{"no SAN", &x509.Certificate{Subject: pkix.Name{CommonName: "web1"}}, "web1", `names no node id: it needs a SAN DNS name "web1" or URI scuttle://web1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCertID(tt.cert, tt.id)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("checkCertID(%s): %v, want accepted", tt.id, err)
			case tt.wantErr != "" && (!errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("checkCertID(%s): %v, want ErrAuth saying %q", tt.id, err, tt.wantErr)
			}
		})
	}
}
