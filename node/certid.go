package node

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
)

// A certificate names a node by a subject alternative name: a DNS name
// equal to the node's id ("web1"), or a URI "scuttle://ID"
// ("scuttle://web1"). Both sides of a mutual-TLS link check, after the
// node handshake and before the session, that the peer's certificate
// names the id the peer claimed, so that a certificate the CA signed for
// one node cannot serve as another's.
const certURIScheme = "scuttle"

// certNames returns the node ids a certificate names.
func certNames(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, u := range c.URIs {
		if u.Scheme == certURIScheme && u.Host != "" {
			names = append(names, u.Host)
		}
	}
	return names
}

// checkCertID returns an error wrapping ErrAuth unless c names the node
// id.
func checkCertID(c *x509.Certificate, id string) error {
	names := certNames(c)
	for _, n := range names {
		if n == id {
			return nil
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("%w: the certificate of node %s (subject %q) names no node id: it needs a SAN DNS name %q or URI %s://%s", ErrAuth, id, c.Subject.CommonName, id, certURIScheme, id)
	}
	return fmt.Errorf("%w: the certificate of node %s names %s, not %s: a certificate serves only the node it names (SAN DNS %q or URI %s://%s)", ErrAuth, id, strings.Join(names, ", "), id, id, certURIScheme, id)
}

// checkPeerCert checks that the certificate the peer presented on c (a
// *tls.Conn, possibly under a sealed connection) names peer.
func checkPeerCert(c net.Conn, peer string) error {
	if s, ok := c.(*sealedConn); ok {
		c = s.Conn
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return fmt.Errorf("%w: peer presented no certificate", ErrAuth)
	}
	return checkCertID(certs[0], peer)
}

// checkOwnCert checks that this node's own certificate names its id, so
// that a certificate every peer would refuse fails at start, not on
// every link.
func checkOwnCert(conf *tls.Config, id string) error {
	if conf == nil || len(conf.Certificates) == 0 {
		return nil
	}
	c := conf.Certificates[0].Leaf
	if c == nil {
		var err error
		if c, err = x509.ParseCertificate(conf.Certificates[0].Certificate[0]); err != nil {
			return fmt.Errorf("%w: CertFile: %w", ErrInvalidConfig, err)
		}
	}
	if err := checkCertID(c, id); err != nil {
		return fmt.Errorf("%w: CertFile: %w", ErrInvalidConfig, err)
	}
	return nil
}
