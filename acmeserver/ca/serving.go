package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"time"
)

// ServingCertificate issues the HTTPS certificate from the default CA for
// localhost, loopback and the external host; it lives only in memory.
func ServingCertificate(auth *Authority, external string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	req := IssueRequest{PublicKey: key.Public(), DNSNames: []string{"localhost"},
		IPs: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, NotBefore: time.Now().Add(-time.Minute),
		NotAfter: time.Now().Add(30 * 24 * time.Hour)}
	if u, err := url.Parse(external); err == nil {
		if ip := net.ParseIP(u.Hostname()); ip != nil {
			req.IPs = append(req.IPs, ip)
		} else if u.Hostname() != "" && u.Hostname() != "localhost" {
			req.DNSNames = append(req.DNSNames, u.Hostname())
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
