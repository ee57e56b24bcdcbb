package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "scuttle test API"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "api.pem"), filepath.Join(dir, "api-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// TestAPITokenAndTLS serves the API over HTTPS with a bearer token: a
// request without the token is 401 with a JSON error, the client
// commands send the token from -token-file or $SCUTTLE_TOKEN and verify
// the server with -ca-file.
func TestAPITokenAndTLS(t *testing.T) {
	dir := t.TempDir()
	const token = "tok-0123456789"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := selfSigned(t, dir)
	addr := serveInProcessWith(t, func(o *serveOptions) {
		o.httpTokenFile, o.httpCert, o.httpKey = tokenFile, certFile, keyFile
	})
	base := "https://" + addr

	// Raw HTTPS, without the token.
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(b)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(base + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || body.Error == "" {
		t.Errorf("GET /v1/status without the token: %s, error %q; want 401 with a JSON error", resp.Status, body.Error)
	}

	cli := func(env string, args ...string) (code int, stdout, stderr string) {
		t.Helper()
		t.Setenv("SCUTTLE_TOKEN", env)
		var out, errOut strings.Builder
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		code = run(ctx, args, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	common := []string{"-addr", base, "-ca-file", certFile}
	if code, _, stderr := cli("", append([]string{"set"}, append(common, "users", "ada", "1")...)...); code != exitFail || !strings.Contains(stderr, "401") {
		t.Errorf("set without a token: exit %d, stderr %q; want 1 and a 401", code, stderr)
	}
	if code, _, stderr := cli("wrong", append([]string{"set"}, append(common, "users", "ada", "1")...)...); code != exitFail || !strings.Contains(stderr, "invalid bearer token") {
		t.Errorf("set with a wrong token: exit %d, stderr %q; want 1 and invalid bearer token", code, stderr)
	}
	if code, _, stderr := cli("", append([]string{"set"}, append(common, "-token-file", tokenFile, "users", "ada", "1")...)...); code != exitOK {
		t.Errorf("set with -token-file: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, stderr := cli(token, append([]string{"get"}, append(common, "users", "ada")...)...); code != exitOK || strings.TrimSpace(stdout) != "1" {
		t.Errorf("get with $SCUTTLE_TOKEN: exit %d, stdout %q, stderr %q; want 1", code, stdout, stderr)
	}
	if code, _, stderr := cli(token, "get", "-addr", base, "users", "ada"); code != exitFail || !strings.Contains(stderr, "certificate") {
		t.Errorf("get without -ca-file from a self-signed API: exit %d, stderr %q; want a certificate error", code, stderr)
	}
}
