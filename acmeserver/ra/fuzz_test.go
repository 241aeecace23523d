package ra

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/api/v1alpha1"
)

func fuzzProfile() *profile.Profile {
	return &profile.Profile{Name: "p", MinRSABits: 2048}
}

func fuzzOrder() *v1alpha1.AcmeOrder {
	return &v1alpha1.AcmeOrder{Spec: v1alpha1.AcmeOrderSpec{Identifiers: []v1alpha1.Identifier{
		{Type: "dns", Value: "a.example"}, {Type: "ip", Value: "192.0.2.1"}}}}
}

// FuzzParseCSR: arbitrary DER never panics, and an accepted CSR names
// exactly the order's identifiers with a key that is not the account's.
func FuzzParseCSR(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	acct, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		DNSNames: []string{"a.example"}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}}, k)
	cn, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "a.example"}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}}, k)
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	weak, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"a.example"}}, rk)
	f.Add(good)
	f.Add(cn)
	f.Add(weak)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		c, p := ParseCSR(der, fuzzProfile(), fuzzOrder(), acct.Public())
		if (c == nil) == (p == nil) {
			t.Fatalf("ParseCSR returned %v and %v", c, p)
		}
		if p != nil {
			if p.Type != acme.BadCSR {
				t.Fatalf("problem type %s, want badCSR", p.Type)
			}
			return
		}
		if len(c.DNSNames) != 1 || c.DNSNames[0] != "a.example" || len(c.IPs) != 1 {
			t.Fatalf("accepted CSR with identifiers %v %v", c.DNSNames, c.IPs)
		}
	})
}

func TestParseCSRSeeds(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		DNSNames: []string{"a.example"}, IPAddresses: []net.IP{net.ParseIP("192.0.2.1")}}, k)
	if _, p := ParseCSR(good, fuzzProfile(), fuzzOrder(), nil); p != nil {
		t.Fatalf("good CSR refused: %v", p)
	}
	if _, p := ParseCSR(good, fuzzProfile(), fuzzOrder(), k.Public()); p == nil {
		t.Fatal("CSR with the account key accepted")
	}
}
