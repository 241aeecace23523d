package ra_test

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestRotatedCA (issue 5, CA rotation with a new key): after the CA "root"
// is rotated (new key, the old one kept as Previous), a new order's leaf
// chains to the new root and not to the old; the leaf issued before asks
// for renewal within a day (ARI); its revocation is listed in the CRL the
// old key signs (?key=<old key ID>, the URL in its CRL distribution point),
// not in the new key's CRL.
func TestRotatedCA(t *testing.T) {
	r, _, p, a, o := readyOrder(t)
	ctx := context.Background()
	old := p.CA
	old.CRLURL, old.CRLPerKey = "https://acme.test/crl/root", true
	done, err := r.Finalize(ctx, p, a, o.Name, csrFor(t, "www.example"))
	if err != nil || done.Status.Status != acme.StatusValid {
		t.Fatalf("finalize: %v %v", done, err)
	}
	oldLeaf := leafOf(t, r, a, done.Status.Certificate)
	if want := "https://acme.test/crl/root?key=" + hex.EncodeToString(old.Cert.SubjectKeyId); len(oldLeaf.CRLDistributionPoints) != 1 || oldLeaf.CRLDistributionPoints[0] != want {
		t.Fatalf("CRL distribution point %v, want %s", oldLeaf.CRLDistributionPoints, want)
	}

	rotated, p := rotate(t, r, old)

	// New leaves chain to the new root only.
	o2, err := r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: "www.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	if o2.Status.Status != acme.StatusReady { // the valid authorization is reused
		az, err := r.Authorization(ctx, a, o2.Status.Authorizations[0])
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.RespondChallenge(ctx, p, a, ra.ChallengeID(az.Name, 0)); err != nil {
			t.Fatal(err)
		}
	}
	done2, err := r.Finalize(ctx, p, a, o2.Name, csrFor(t, "www.example"))
	if err != nil || done2.Status.Status != acme.StatusValid {
		t.Fatalf("finalize after the rotation: %v %v", done2, err)
	}
	newLeaf := leafOf(t, r, a, done2.Status.Certificate)
	pool := func(c *x509.Certificate) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(c); return p }
	if _, err := newLeaf.Verify(x509.VerifyOptions{Roots: pool(rotated.Cert), DNSName: "www.example"}); err != nil {
		t.Fatalf("the new leaf does not chain to the new root: %v", err)
	}
	if _, err := newLeaf.Verify(x509.VerifyOptions{Roots: pool(old.Cert), DNSName: "www.example"}); err == nil {
		t.Fatal("the new leaf chains to the old root")
	}

	// ARI: the old leaf's window moved to now; the new leaf's did not.
	now := time.Now()
	w, err := r.RenewalInfo(ctx, ra.CertID(oldLeaf))
	if err != nil {
		t.Fatal(err)
	}
	if w.Start.After(now.Add(time.Minute)) || w.End.After(now.Add(25*time.Hour)) || !w.End.After(w.Start) {
		t.Fatalf("old leaf's window %v – %v, want it to start by now and end within a day", w.Start, w.End)
	}
	w2, err := r.RenewalInfo(ctx, ra.CertID(newLeaf))
	if err != nil {
		t.Fatal(err)
	}
	if !w2.Start.After(now.Add(24 * time.Hour)) {
		t.Fatalf("new leaf's window starts %v; want two thirds into its life", w2.Start)
	}

	// CRLs: each key lists the revoked leaves it signed.
	if err := r.Revoke(ctx, p, ra.Revoker{Account: a}, oldLeaf.Raw, nil); err != nil {
		t.Fatal(err)
	}
	crl := func(keyID string, signer *x509.Certificate) *x509.RevocationList {
		t.Helper()
		der, err := r.CRL(ctx, "root", keyID)
		if err != nil {
			t.Fatal(err)
		}
		l, err := x509.ParseRevocationList(der)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.CheckSignatureFrom(signer); err != nil {
			t.Fatalf("CRL for key %q: %v", keyID, err)
		}
		return l
	}
	lists := func(l *x509.RevocationList, serial *big.Int) bool {
		for _, e := range l.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(serial) == 0 {
				return true
			}
		}
		return false
	}
	oldKeyID := strings.TrimPrefix(oldLeaf.CRLDistributionPoints[0], "https://acme.test/crl/root?key=")
	if l := crl(oldKeyID, old.Cert); !lists(l, oldLeaf.SerialNumber) {
		t.Fatal("the old key's CRL does not list the revoked leaf it signed")
	}
	if l := crl("", rotated.Cert); lists(l, oldLeaf.SerialNumber) {
		t.Fatal("the new key's CRL lists a leaf the old key signed")
	}
	if _, err := r.CRL(ctx, "root", "00ff"); err == nil {
		t.Fatal("a CRL for an unknown key")
	}
}

func leafOf(t *testing.T, r *ra.RA, a *v1alpha1.AcmeAccount, name string) *x509.Certificate {
	t.Helper()
	c, err := r.Certificate(context.Background(), a, name)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ra.LeafOf(c)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// rotate gives the CA "root" a new key and certificate, keeping old as its
// Previous, and serves the result; it returns the new CA and the profile.
func rotate(t *testing.T, r *ra.RA, old *ca.Authority) (*ca.Authority, *profile.Profile) {
	t.Helper()
	key, chain, err := ca.GenerateSelfSigned("root", v1alpha1.SelfSignedCA{})
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := ca.New("root", chain[0], key, chain[1:])
	if err != nil {
		t.Fatal(err)
	}
	rotated.Previous, rotated.CRLURL, rotated.CRLPerKey = old, old.CRLURL, old.CRLPerKey
	return rotated, serveCA(t, r, rotated)
}

// serveCA makes auth the CA "root" of profile "default" and returns the profile.
func serveCA(t *testing.T, r *ra.RA, auth *ca.Authority) *profile.Profile {
	t.Helper()
	cfg, errs := profile.NewConfig(map[string]*ca.Authority{"root": auth}, []v1alpha1.AcmeProfile{{ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root", Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"example"}}}}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	r.SetConfig(cfg)
	p, _ := r.Profile("default")
	return p
}

// TestRotatedIntermediateChains (issue 17): a certificate is stored as its
// leaf only, and the chains served with it are built from the CA key that
// signed it. After the intermediate CA's key is rotated (rotationPolicy
// Always), the earlier leaf's default chain (leaf, old intermediate) and its
// alternate (leaf, old intermediate, root) both verify against the root, and
// a new leaf comes with the new intermediate.
func TestRotatedIntermediateChains(t *testing.T) {
	r, store, _, a, o := readyOrder(t)
	ctx := context.Background()
	rootKey, rootChain, err := ca.GenerateSelfSigned("top", v1alpha1.SelfSignedCA{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := ca.New("top", rootChain[0], rootKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	intermediate := func() *ca.Authority {
		key, chain, err := ca.GenerateIntermediate("root", v1alpha1.IntermediateCA{Issuer: "top"}, root)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := ca.New("root", chain[0], key, chain[1:])
		if err != nil {
			t.Fatal(err)
		}
		return auth
	}
	old := intermediate()
	p := serveCA(t, r, old)
	done, err := r.Finalize(ctx, p, a, o.Name, csrFor(t, "www.example"))
	if err != nil || done.Status.Status != acme.StatusValid {
		t.Fatalf("finalize: %v %v", done, err)
	}
	stored := certificates(t, store)
	if len(stored) != 1 || stored[0].Spec.Chain != "" || strings.Count(stored[0].Spec.Certificate, "BEGIN CERTIFICATE") != 1 {
		t.Fatalf("stored %d certificates; want one holding its leaf only: %+v", len(stored), stored)
	}
	c, err := r.Certificate(ctx, a, done.Status.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root.Cert)
	verify := func(what string, chain []byte, issuer *x509.Certificate, wantLen int) {
		t.Helper()
		certs := parsePEMChain(t, chain)
		if len(certs) != wantLen || !certs[1].Equal(issuer) {
			t.Fatalf("%s: %d certificates, second %q; want %d with the issuer that signed the leaf", what, len(certs), certs[1].Subject, wantLen)
		}
		inter := x509.NewCertPool()
		for _, x := range certs[1:] {
			inter.AddCert(x)
		}
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: "www.example"}); err != nil {
			t.Fatalf("%s does not verify: %v", what, err)
		}
	}
	chains := func() [][]byte {
		t.Helper()
		out, err := r.Chains(c)
		if err != nil || len(out) != 2 {
			t.Fatalf("chains: %d, %v; want the default and an alternate with the root", len(out), err)
		}
		return out
	}
	before := chains()
	verify("default chain before the rotation", before[0], old.Cert, 2)
	verify("alternate chain before the rotation", before[1], old.Cert, 3)

	rotated := intermediate()
	rotated.Previous = old
	p = serveCA(t, r, rotated)
	after := chains()
	verify("the earlier leaf's default chain after the rotation", after[0], old.Cert, 2)
	verify("the earlier leaf's alternate chain after the rotation", after[1], old.Cert, 3)
	// The current intermediate does not verify the earlier leaf: the chain
	// must come from the key that signed it.
	leaf := parsePEMChain(t, after[0])[0]
	inter := x509.NewCertPool()
	inter.AddCert(rotated.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err == nil {
		t.Fatal("the rotated intermediate verifies the earlier leaf; the test cannot tell the chains apart")
	}

	o2, err := r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: "www.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.RespondChallenge(ctx, p, a, ra.ChallengeID(o2.Status.Authorizations[0], 0)); err != nil {
		t.Fatal(err)
	}
	done2, err := r.Finalize(ctx, p, a, o2.Name, csrFor(t, "www.example"))
	if err != nil || done2.Status.Status != acme.StatusValid {
		t.Fatalf("finalize after the rotation: %v %v", done2, err)
	}
	if c, err = r.Certificate(ctx, a, done2.Status.Certificate); err != nil {
		t.Fatal(err)
	}
	fresh := chains()
	verify("the new leaf's default chain", fresh[0], rotated.Cert, 2)
	verify("the new leaf's alternate chain", fresh[1], rotated.Cert, 3)
}

func parsePEMChain(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}
