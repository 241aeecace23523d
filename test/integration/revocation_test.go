package integration

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

// TestClusterModeRevocation (issue 5, part of Done #4): a certificate revoked
// over ACME and one revoked by an administrator setting
// spec.revocationReason both appear in the served CRL, read by Go's x509
// parser (signature checked against the CA) and by openssl; the edited one
// gets spec.revocation, an Event, and an ARI window that says renew now.
func TestClusterModeRevocation(t *testing.T) {
	harness.Need(t, "openssl")
	e := newClusterEnv(t, false)
	e.startServer(t)
	resp := startResponder(t, e.httpPort)
	ctx := context.Background()
	cl := e.client(t)
	issue := func(name string) *x509.Certificate { return issueHTTP01(ctx, t, cl, resp, name) }
	byACME, byEdit := issue("acme-revoked.localhost"), issue("edit-revoked.localhost")
	if err := cl.RevokeCert(ctx, nil, byACME.Raw, xacme.CRLReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	// The administrator's edit.
	var c v1alpha1.AcmeCertificate
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: clusterNS, Name: fmt.Sprintf("%x", byEdit.SerialNumber)}, &c); err != nil {
		t.Fatal(err)
	}
	base := c.DeepCopy()
	c.Spec.RevocationReason = ptr.To(1) // keyCompromise
	if err := e.c.Patch(ctx, &c, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	var root corev1.Secret
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: clusterNS, Name: "root-ca"}, &root); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(root.Data["tls.crt"])
	caCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	hc := e.httpClient()
	var der []byte
	reasons := map[string]int{}
	kenvtest.WaitFor(t, "both revocations in the served CRL", func() bool {
		r, err := hc.Get(e.serverURL + "/crl/root")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		der, _ = io.ReadAll(r.Body)
		crl, err := x509.ParseRevocationList(der)
		if err != nil || crl.CheckSignatureFrom(caCert) != nil {
			return false
		}
		clear(reasons)
		for _, entry := range crl.RevokedCertificateEntries {
			reasons[fmt.Sprintf("%x", entry.SerialNumber)] = entry.ReasonCode
		}
		_, a := reasons[fmt.Sprintf("%x", byACME.SerialNumber)]
		_, b := reasons[fmt.Sprintf("%x", byEdit.SerialNumber)]
		return a && b
	})
	if reasons[fmt.Sprintf("%x", byEdit.SerialNumber)] != 1 || reasons[fmt.Sprintf("%x", byACME.SerialNumber)] != 4 {
		t.Fatalf("CRL reasons %v, want keyCompromise (1) for the edited one and superseded (4) for the ACME one", reasons)
	}
	// openssl reads the same CRL and lists both serials.
	path := filepath.Join(t.TempDir(), "root.crl")
	if err := os.WriteFile(path, der, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("openssl", "crl", "-inform", "DER", "-in", path, "-noout", "-text").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	for _, cert := range []*x509.Certificate{byACME, byEdit} {
		if !strings.Contains(strings.ToUpper(string(out)), strings.ToUpper(fmt.Sprintf("%X", cert.SerialNumber))) {
			t.Fatalf("openssl does not list serial %X:\n%s", cert.SerialNumber, out)
		}
	}
	if !strings.Contains(string(out), "Key Compromise") {
		t.Fatalf("openssl does not show the keyCompromise reason:\n%s", out)
	}
	// The resource, its Event, and ARI.
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(&c), &c); err != nil || c.Spec.Revocation == nil || c.Spec.Revocation.Reason != 1 {
		t.Fatalf("spec.revocation = %+v (%v)", c.Spec.Revocation, err)
	}
	kenvtest.WaitFor(t, "the Revoked Event", func() bool {
		var evs eventsv1.EventList
		if err := e.c.List(ctx, &evs, client.InNamespace(clusterNS)); err != nil {
			return false
		}
		for _, ev := range evs.Items {
			if ev.Regarding.Name == c.Name && ev.Reason == "Revoked" {
				return true
			}
		}
		return false
	})
	r, err := hc.Get(e.serverURL + "/acme/default/renewal-info/" + ra.CertID(byEdit))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var ari struct {
		SuggestedWindow struct{ Start, End time.Time } `json:"suggestedWindow"`
	}
	if err := json.NewDecoder(r.Body).Decode(&ari); err != nil || !ari.SuggestedWindow.End.Before(time.Now()) {
		t.Fatalf("ARI window %+v (%v): want one in the past (renew now)", ari.SuggestedWindow, err)
	}
}
