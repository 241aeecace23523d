package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"
)

// ServingNames are the DNS names of a serving certificate: localhost, the
// external URL's host (unless an IP address) and extra, sorted, without
// repeats.
func ServingNames(external string, extra ...string) ([]string, error) {
	names := append([]string{"localhost"}, extra...)
	u, err := url.Parse(external)
	if err != nil {
		return nil, fmt.Errorf("external URL: %w", err)
	}
	if h := u.Hostname(); h != "" && net.ParseIP(h) == nil {
		names = append(names, h)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// ServingCertificate issues an HTTPS certificate from auth for
// ServingNames, loopback and the external URL's host when it is an IP
// address, valid for 30 days.
func ServingCertificate(auth *Authority, external string, extra ...string) (*tls.Certificate, error) {
	names, err := ServingNames(external, extra...)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	req := IssueRequest{PublicKey: key.Public(), DNSNames: names,
		IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(30 * 24 * time.Hour)}
	if u, err := url.Parse(external); err == nil {
		if ip := net.ParseIP(u.Hostname()); ip != nil && !ip.IsLoopback() {
			req.IPs = append(req.IPs, ip)
		}
	}
	der, _, err := auth.Issue(req)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	chain := [][]byte{der}
	for _, c := range auth.Chains()[0] {
		chain = append(chain, c.Raw)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// RenewAt is when a serving certificate is issued again: once two thirds of
// its life have passed.
func RenewAt(leaf *x509.Certificate) time.Time {
	return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)
}

// Serving hands out the HTTPS certificate: issued from the given CA, and
// issued again once two thirds of its life have passed or the CA certificate
// changed, so
// a server that runs for months keeps a valid certificate.
type Serving struct {
	External string
	// Now is the clock (tests).
	Now func() time.Time

	mu     sync.Mutex
	cert   *tls.Certificate
	issuer *Authority
}

// Get returns a current certificate from auth.
func (s *Serving) Get(auth *Authority) (*tls.Certificate, error) {
	if auth == nil {
		return nil, fmt.Errorf("no serving certificate: no profile with a ready CA")
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The same CA certificate, even in a freshly loaded Authority (cluster
	// mode rebuilds them on every configuration change), keeps the cert.
	if c := s.cert; c != nil && s.issuer != nil && bytes.Equal(s.issuer.Cert.Raw, auth.Cert.Raw) && now().Before(RenewAt(c.Leaf)) {
		return c, nil
	}
	c, err := ServingCertificate(auth, s.External)
	if err != nil {
		if s.cert != nil && now().Before(s.cert.Leaf.NotAfter) {
			return s.cert, nil // keep serving the current one; the next handshake tries again
		}
		return nil, err
	}
	s.cert, s.issuer = c, auth
	return c, nil
}
