// Package e2e runs cert-manager's own controllers (from its Go module, in
// this test process) against kacme in cluster mode on a real kube-apiserver
// and etcd. It is its own Go module so that cert-manager's DNS provider SDKs
// stay out of kacme's.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

const (
	operatorNS = kenvtest.OperatorNamespace
	cmNS       = "cert-manager" // cert-manager's cluster resource namespace
	zone       = "internal.example"
	// inClusterURL is the directory host the docs' manifests use (the chart's
	// Service); the test serves on loopback instead.
	inClusterURL = "https://kacme.kacme-system.svc"
)

// TestCertManager: cert-manager v1.21.2's controllers obtain, from kacme
// running in cluster mode, a certificate through a ClusterIssuer whose
// caBundle kacme injected (dns-01 via cert-manager's rfc2136 solver into
// CoreDNS, which kacme's validation queries), a wildcard + apex certificate,
// a certificate through a namespaced Issuer bound with the EAB key an
// AcmeAccount minted (its ACME objects in that namespace), and a renewal.
// Every chain verifies against the trust-bundle ConfigMap of its namespace.
// The manifests are docs/cert-manager/*.yaml, the ones docs/cert-manager.md
// shows; the test changes only the in-cluster addresses (see localize).
func TestCertManager(t *testing.T) {
	_, c, kc := kenvtest.StartWithKubeconfig(t, kenvtest.CertManagerCRDs(t))
	ctx := context.Background()
	dns := harness.StartCoreDNS(t, t.TempDir(), zone)
	serverURL := fmt.Sprintf("https://127.0.0.1:%d", harness.FreePort(t))
	bin := harness.BuildKacme(t)
	// As the Helm chart runs it: the controller keeps the server's HTTPS
	// certificate, from a CA of its own, in a Secret the server serves.
	harness.Start(t, []string{"KUBECONFIG=" + kc.Controller}, bin, "controller", "--namespace", operatorNS, "--external-url", serverURL,
		"--serving-secret", "kacme-serving-tls", "--serving-ca", "kacme-serving")
	must(t, c.Create(ctx, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "kacme-serving"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}}))

	l := localizer{server: serverURL, dns: dns.Resolver()}
	apply(t, c, l, "kacme.yaml")
	for _, name := range []string{"default", "teams"} {
		kenvtest.WaitFor(t, "AcmeProfile "+name+" to become ready", func() bool {
			var p v1alpha1.AcmeProfile
			return c.Get(ctx, client.ObjectKey{Name: name}, &p) == nil && meta.IsStatusConditionTrue(p.Status.Conditions, "Ready")
		})
	}
	harness.Start(t, []string{"KUBECONFIG=" + kc.Server}, bin, "server", "--namespace", operatorNS,
		"--listen", strings.TrimPrefix(serverURL, "https://"), "--external-url", serverURL, "--tls-secret", "kacme-serving-tls")
	var servingCA v1alpha1.CertificateAuthority
	kenvtest.WaitFor(t, "the serving CA", func() bool {
		return c.Get(ctx, client.ObjectKey{Name: "kacme-serving"}, &servingCA) == nil && servingCA.Status.Chain != ""
	})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(servingCA.Status.Chain))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	kenvtest.WaitFor(t, "kacme's directory", func() bool {
		r, err := hc.Get(serverURL + "/acme/default/directory")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})

	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cmNS}}))
	startCertManager(t, kc.Admin, dns.Resolver())
	apply(t, c, l, "clusterissuer.yaml")
	apply(t, c, l, "certificates.yaml")
	apply(t, c, l, "team-a.yaml")
	// The TSIG key the rfc2136 solver signs with, where each issuer reads it.
	for _, ns := range []string{cmNS, "team-a"} {
		must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "kacme-tsig"},
			StringData: map[string]string{"secret": harness.TSIGSecret}}))
	}

	// a. The ClusterIssuer carries the injected roots (the profile's CA and
	// the serving certificate's), and a Certificate becomes Ready.
	root := waitBundle(t, c, "apps")
	var ci cmapi.ClusterIssuer
	must(t, c.Get(ctx, client.ObjectKey{Name: "kacme"}, &ci))
	if want := append(append([]byte{}, root...), servingCA.Status.Chain...); !bytes.Equal(ci.Spec.ACME.CABundle, want) || ci.Spec.ACME.SkipTLSVerify {
		t.Fatalf("ClusterIssuer caBundle is not kacme's roots (skipTLSVerify %v):\n%s", ci.Spec.ACME.SkipTLSVerify, ci.Spec.ACME.CABundle)
	}
	web := waitIssued(t, c, "apps", "web", nil)
	verify(t, web, root, "web.internal.example")
	// d. Renewal, as "cmctl renew" triggers it (checked last: a new certificate in the Secret).
	// cert-manager's self-check sleeps 60 s per challenge after it sees the
	// record, so the renewal runs while the next certificates finish.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var crt cmapi.Certificate
		if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "web"}, &crt); err != nil {
			return err
		}
		crt.Status.Conditions = setCondition(crt.Status.Conditions, cmapi.CertificateCondition{Type: cmapi.CertificateConditionIssuing,
			Status: cmmeta.ConditionTrue, Reason: "ManuallyTriggered", Message: "Certificate re-issuance manually triggered",
			LastTransitionTime: &metav1.Time{Time: time.Now()}, ObservedGeneration: crt.Generation})
		return c.Status().Update(ctx, &crt)
	})
	must(t, err)

	// b. Wildcard + apex.
	wild := waitIssued(t, c, "apps", "apps-wildcard", nil)
	verify(t, wild, root, "apps.internal.example", "*.apps.internal.example")

	// c. The team's Issuer, bound with the AcmeAccount's EAB key; its objects are in team-a.
	teamRoot := waitBundle(t, c, "team-a")
	api := waitIssued(t, c, "team-a", "api", nil)
	verify(t, api, teamRoot, "api.payments.internal.example")
	var acct v1alpha1.AcmeAccount
	must(t, c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "payments"}, &acct))
	if acct.Spec.State != "valid" {
		t.Fatalf("AcmeAccount team-a/payments is %q, want valid (bound by cert-manager's Issuer)", acct.Spec.State)
	}
	var certs v1alpha1.AcmeCertificateList
	must(t, c.List(ctx, &certs, client.InNamespace("team-a")))
	found := false
	for _, ac := range certs.Items {
		found = found || ac.Spec.Serial == fmt.Sprintf("%x", api[0].SerialNumber)
	}
	if !found {
		t.Fatalf("no AcmeCertificate with serial %x in team-a (%d there)", api[0].SerialNumber, len(certs.Items))
	}
	for _, list := range []client.ObjectList{&v1alpha1.AcmeOrderList{}, &v1alpha1.AcmeChallengeList{}} {
		must(t, c.List(ctx, list, client.InNamespace("team-a"), client.MatchingLabels{v1alpha1.LabelAccount: acct.Name}))
		if meta.LenList(list) == 0 {
			t.Fatalf("no %T of account payments in team-a", list)
		}
	}

	renewed := waitIssued(t, c, "apps", "web", web)
	verify(t, renewed, root, "web.internal.example")
}
