package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/kacme/kacme/api/v1alpha1"
)

func TestGenerateIssueCRL(t *testing.T) {
	t.Parallel()
	for _, alg := range []v1alpha1.KeyAlgorithm{v1alpha1.KeyECDSAP256, v1alpha1.KeyECDSAP384, v1alpha1.KeyRSA2048, v1alpha1.KeyEd25519} {
		for _, inter := range []bool{false, true} {
			key, chain, err := GenerateSelfSigned("root", v1alpha1.SelfSignedCA{KeyAlgorithm: alg})
			if err != nil {
				t.Fatal(err)
			}
			if inter {
				root, err := New("root", chain[0], key, nil)
				if err != nil {
					t.Fatal(err)
				}
				key, chain, err = GenerateIntermediate("t", v1alpha1.IntermediateCA{Issuer: "root", KeyAlgorithm: alg}, root)
				if err != nil {
					t.Fatal(err)
				}
			}
			a, err := New("t", chain[0], key, chain[1:])
			if err != nil {
				t.Fatal(err)
			}
			a.CRLURL = "http://crl.example/t"
			leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			_, leaf, err := a.Issue(IssueRequest{PublicKey: leafKey.Public(), DNSNames: []string{"a.example"}, IPs: []net.IP{net.ParseIP("192.0.2.1")},
				NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), ClientAuth: true})
			if err != nil {
				t.Fatalf("%s: issue: %v", alg, err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(a.Root())
			inters := x509.NewCertPool()
			for _, c := range a.Chains()[0] {
				inters.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, DNSName: "a.example",
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Fatalf("%s/%v: leaf does not verify: %v", alg, inter, err)
			}
			if wantChains := map[bool]int{false: 1, true: 2}[inter]; len(a.Chains()) != wantChains {
				t.Fatalf("%d chains, want %d", len(a.Chains()), wantChains)
			}
			if leaf.SerialNumber.BitLen() < 64 || len(leaf.SubjectKeyId) == 0 || string(leaf.AuthorityKeyId) != string(a.Cert.SubjectKeyId) {
				t.Fatalf("serial/SKI/AKI: %d %x %x", leaf.SerialNumber.BitLen(), leaf.SubjectKeyId, leaf.AuthorityKeyId)
			}
			// CRL-01/02: empty list has no entries; reason 0 is omitted.
			der, err := a.CRL(nil)
			if err != nil {
				t.Fatal(err)
			}
			crl, err := x509.ParseRevocationList(der)
			if err != nil || crl.CheckSignatureFrom(a.Cert) != nil || len(crl.RevokedCertificateEntries) != 0 || crl.Number == nil {
				t.Fatalf("empty CRL: %v", err)
			}
			der, _ = a.CRL([]RevokedEntry{{Serial: leaf.SerialNumber, RevokedAt: time.Now(), Reason: 0}})
			crl2, _ := x509.ParseRevocationList(der)
			if len(crl2.RevokedCertificateEntries) != 1 || len(crl2.RevokedCertificateEntries[0].Extensions) != 0 || crl2.Number.Cmp(crl.Number) <= 0 {
				t.Fatalf("CRL entry: %+v", crl2.RevokedCertificateEntries)
			}
		}
	}
}

func TestNewRejectsMismatchedKey(t *testing.T) {
	t.Parallel()
	_, chain, _ := GenerateSelfSigned("t", v1alpha1.SelfSignedCA{})
	other, _ := GenerateKey(v1alpha1.KeyECDSAP256)
	if _, err := New("t", chain[0], other, nil); err == nil {
		t.Fatal("a key that does not match the certificate was accepted")
	}
}

// TestServingRenews: the HTTPS certificate is issued again after two thirds
// of its life, and when the CA changes; otherwise the same one is served.
func TestServingRenews(t *testing.T) {
	mk := func(name string) *Authority {
		key, chain, err := GenerateSelfSigned(name, v1alpha1.SelfSignedCA{})
		if err != nil {
			t.Fatal(err)
		}
		a, err := New(name, chain[0], key, chain[1:])
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a, b := mk("a"), mk("b")
	now := time.Now()
	s := &Serving{External: "https://acme.example:8443", Now: func() time.Time { return now }}
	first, err := s.Get(a)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Get(a); again != first {
		t.Fatal("a fresh certificate was replaced")
	}
	// The same CA loaded again (a configuration reload) keeps it.
	reloaded, err := New("a", a.Cert, a.Signer, a.Parents)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := s.Get(reloaded); again != first {
		t.Fatal("reloading the same CA replaced the certificate")
	}
	life := first.Leaf.NotAfter.Sub(first.Leaf.NotBefore)
	now = first.Leaf.NotBefore.Add(life*2/3 + time.Minute)
	renewed, err := s.Get(a)
	if err != nil || renewed == first {
		t.Fatalf("not renewed after two thirds of its life: %v", err)
	}
	other, err := s.Get(b)
	if err != nil || other == renewed || other.Leaf.Issuer.String() != b.Cert.Subject.String() {
		t.Fatalf("not reissued by the new CA: %v", err)
	}
	if got := other.Leaf.DNSNames; len(got) != 2 || got[0] != "acme.example" || got[1] != "localhost" {
		t.Fatalf("names %v", got)
	}
}
