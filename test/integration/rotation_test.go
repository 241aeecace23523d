package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// TestClusterModeCARotation (issue 5, Done #4): a self-signed CA with
// rotationPolicy Always that "kacme controller" renews with a new key (its
// certificate, backdated a minute, is due for renewal a minute after it is
// made, so the controller rotates it every minute). After the rotation: the trust-bundle ConfigMap carries the new
// and the old root; a new certificate from "kacme server" chains to the new
// root and not to the old; the certificate issued before asks for renewal
// now (ARI); its revocation is listed in the CRL at its own distribution
// point, signed by the old key.
func TestClusterModeCARotation(t *testing.T) {
	e := newClusterEnv(t, false)
	ctx := context.Background()
	for _, o := range []client.Object{
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "rotating"}, Spec: v1alpha1.CertificateAuthoritySpec{
			SelfSigned:     &v1alpha1.SelfSignedCA{Validity: &metav1.Duration{Duration: 10 * time.Minute}},
			RenewBefore:    &metav1.Duration{Duration: 8 * time.Minute},
			RotationPolicy: v1alpha1.RotationAlways,
			CRL:            &v1alpha1.CRLSpec{DistributionPointURL: e.serverURL + "/crl/rotating"},
			TrustBundle:    &v1alpha1.TrustBundleSpec{}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "rot"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "rotating",
			Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"localhost"}}, Validation: v1alpha1.ValidationSpec{HTTP01Port: e.httpPort}}},
	} {
		if err := e.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	rootOf := func() *x509.Certificate {
		var sec corev1.Secret
		if e.c.Get(ctx, client.ObjectKey{Namespace: clusterNS, Name: "rotating-ca"}, &sec) != nil {
			return nil
		}
		b, _ := pem.Decode(sec.Data["ca.crt"])
		if b == nil {
			return nil
		}
		c, _ := x509.ParseCertificate(b.Bytes)
		return c
	}
	var oldRoot *x509.Certificate
	kenvtest.WaitFor(t, "the rotating CA", func() bool { oldRoot = rootOf(); return oldRoot != nil })
	e.startServer(t)
	resp := startResponder(t, e.httpPort)
	hc := e.httpClient()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &xacme.Client{Key: key, DirectoryURL: e.serverURL + "/acme/rot/directory", HTTPClient: hc}
	if _, err := cl.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	issue := func(name string) *x509.Certificate { return issueHTTP01(ctx, t, cl, resp, name) }
	chainsTo := func(leaf, root *x509.Certificate) bool {
		pool := x509.NewCertPool()
		pool.AddCert(root)
		_, err := leaf.Verify(x509.VerifyOptions{Roots: pool})
		return err == nil
	}
	before := issue("before.localhost")
	if !chainsTo(before, oldRoot) {
		t.Fatal("the first certificate does not chain to the CA's root")
	}

	// The controller rotates the key about a minute after creating the CA.
	var newRoot *x509.Certificate
	deadline := time.Now().Add(100 * time.Second)
	for newRoot == nil {
		if time.Now().After(deadline) {
			t.Fatal("the CA was not rotated")
		}
		if r := rootOf(); r != nil && string(r.SubjectKeyId) != string(oldRoot.SubjectKeyId) {
			newRoot = r
		}
		time.Sleep(250 * time.Millisecond)
	}
	rotatedAt := time.Now()
	kenvtest.WaitFor(t, "the trust bundle to carry the new root, then the old one", func() bool {
		var cm corev1.ConfigMap
		if e.c.Get(ctx, client.ObjectKey{Namespace: teamNS, Name: "rotating-ca-bundle"}, &cm) != nil {
			return false
		}
		var got []*x509.Certificate
		rest := []byte(cm.Data["ca.crt"])
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			c, _ := x509.ParseCertificate(b.Bytes)
			got = append(got, c)
		}
		return len(got) == 2 && got[0].Equal(newRoot) && got[1].Equal(oldRoot)
	})
	// The server reloads on the Secret change; a new certificate chains to the new root only.
	var after *x509.Certificate
	kenvtest.WaitFor(t, "a certificate from the new key", func() bool {
		after = issue("after.localhost")
		return chainsTo(after, newRoot)
	})
	if chainsTo(after, oldRoot) {
		t.Fatal("the new certificate chains to the old root")
	}

	// ARI: the certificate from the old key is due now.
	r, err := hc.Get(e.serverURL + "/acme/rot/renewal-info/" + ra.CertID(before))
	if err != nil {
		t.Fatal(err)
	}
	var ari struct {
		SuggestedWindow struct{ Start, End time.Time } `json:"suggestedWindow"`
	}
	err = json.NewDecoder(r.Body).Decode(&ari)
	r.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	normalStart := before.NotBefore.Add(before.NotAfter.Sub(before.NotBefore) * 2 / 3)
	if !ari.SuggestedWindow.Start.Before(normalStart) || ari.SuggestedWindow.Start.After(time.Now()) {
		t.Fatalf("ARI window of the old key's certificate starts %v; want by now, before %v", ari.SuggestedWindow.Start, normalStart)
	}

	// Revocation of the old key's certificate is in the CRL its distribution point names, signed by the old key.
	if err := cl.RevokeCert(ctx, nil, before.Raw, xacme.CRLReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	if len(before.CRLDistributionPoints) != 1 {
		t.Fatalf("CRL distribution points %v", before.CRLDistributionPoints)
	}
	cr, err := hc.Get(before.CRLDistributionPoints[0])
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(cr.Body)
	cr.Body.Close()
	if cr.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", before.CRLDistributionPoints[0], cr.StatusCode)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(oldRoot); err != nil {
		t.Fatalf("the CRL at the old certificate's distribution point is not signed by the old key: %v", err)
	}
	listed := false
	for _, e := range crl.RevokedCertificateEntries {
		listed = listed || e.SerialNumber.Cmp(before.SerialNumber) == 0
	}
	if !listed {
		t.Fatal("the old key's CRL does not list the revoked certificate")
	}
	if time.Since(rotatedAt) > 50*time.Second {
		t.Logf("checks took %s after the rotation; the controller rotates again a minute after it", time.Since(rotatedAt))
	}
}
