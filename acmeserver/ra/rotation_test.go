package ra_test

import (
	"context"
	"crypto/x509"
	"encoding/hex"
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
	cfg, errs := profile.NewConfig(map[string]*ca.Authority{"root": rotated}, []v1alpha1.AcmeProfile{{ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root", Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"example"}}}}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	r.SetConfig(cfg)
	p, _ := r.Profile("default")
	return rotated, p
}
