package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	"github.com/cert-manager/cert-manager/pkg/controller/acmechallenges"
	"github.com/cert-manager/cert-manager/pkg/controller/acmeorders"
	cracme "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/acme"
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/acme" // registers the ACME issuer
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kenvtest "github.com/kacme/kacme/test/envtest"
)

// localizer points the docs' in-cluster addresses at the test's loopback
// servers: the ACME directory host of issuers, the rfc2136 nameserver, and
// the profiles' dns-01 resolvers (in a cluster: the cluster DNS, the default).
// Nothing else in the manifests changes.
type localizer struct{ server, dns string }

func (l localizer) apply(t *testing.T, o *unstructured.Unstructured) {
	t.Helper()
	switch o.GetKind() {
	case "ClusterIssuer", "Issuer":
		server, _, _ := unstructured.NestedString(o.Object, "spec", "acme", "server")
		if !strings.HasPrefix(server, inClusterURL+"/") {
			t.Fatalf("%s %s: spec.acme.server %q is not on %s", o.GetKind(), o.GetName(), server, inClusterURL)
		}
		must(t, unstructured.SetNestedField(o.Object, l.server+strings.TrimPrefix(server, inClusterURL), "spec", "acme", "server"))
		solvers, _, _ := unstructured.NestedSlice(o.Object, "spec", "acme", "solvers")
		for _, s := range solvers {
			if _, ok, _ := unstructured.NestedMap(s.(map[string]any), "dns01", "rfc2136"); ok {
				must(t, unstructured.SetNestedField(s.(map[string]any), l.dns, "dns01", "rfc2136", "nameserver"))
			}
		}
		must(t, unstructured.SetNestedSlice(o.Object, solvers, "spec", "acme", "solvers"))
	case "AcmeProfile":
		must(t, unstructured.SetNestedStringSlice(o.Object, []string{l.dns}, "spec", "validation", "resolvers"))
	}
}

// apply creates the objects of docs/cert-manager/<file>.
func apply(t *testing.T, c client.Client, l localizer, file string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(kenvtest.RepoRoot(), "docs", "cert-manager", file))
	must(t, err)
	objs, err := kenvtest.DecodeManifests(data)
	must(t, err)
	for _, o := range objs {
		l.apply(t, o)
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("%s: create %s %s: %v", file, o.GetKind(), o.GetName(), err)
		}
	}
}

// startCertManager runs the cert-manager controllers an ACME issuer needs,
// as cert-manager's controller binary does, until the test ends: dns-01
// self-checks ask only nameserver (--dns01-recursive-nameservers-only).
func startCertManager(t *testing.T, kubeconfig, nameserver string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:       kubeconfig,
		KubernetesAPIQPS: 100, KubernetesAPIBurst: 200,
		IssuerOptions: controllerpkg.IssuerOptions{ClusterResourceNamespace: cmNS},
		ACMEOptions: controllerpkg.ACMEOptions{DNS01Nameservers: []string{nameserver}, DNS01CheckAuthoritative: false,
			DNS01CheckRetryPeriod: time.Second},
		SchedulerOptions: controllerpkg.SchedulerOptions{MaxConcurrentChallenges: 60},
		CertificateOptions: controllerpkg.CertificateOptions{CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour},
	})
	if err != nil {
		cancel()
		t.Fatalf("cert-manager controller context: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, name := range []string{issuers.ControllerName, clusterissuers.ControllerName,
		trigger.ControllerName, issuing.ControllerName, keymanager.ControllerName, requestmanager.ControllerName,
		readiness.ControllerName, revisionmanager.ControllerName,
		approver.ControllerName, cracme.CRControllerName, acmeorders.ControllerName, acmechallenges.ControllerName} {
		construct, ok := controllerpkg.Known()[name]
		if !ok {
			t.Fatalf("cert-manager controller %q is not registered", name)
		}
		ctrl, err := construct(factory)
		if err != nil {
			t.Fatalf("cert-manager controller %s: %v", name, err)
		}
		wg.Go(func() {
			if err := ctrl.Run(5, ctx); err != nil { // cert-manager's default --concurrent-workers
				t.Errorf("cert-manager controller %s: %v", name, err)
			}
		})
	}
	// The constructors registered their informers; start them (the controllers wait for the sync).
	cmctx, err := factory.Build("kacme-e2e")
	must(t, err)
	cmctx.KubeSharedInformerFactory.Start(ctx.Done())
	cmctx.SharedInformerFactory.Start(ctx.Done())
	cmctx.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
}

// waitFor polls ok for up to three minutes (issuance through cert-manager
// takes several reconcile rounds) and fails with what describe says.
func waitFor(t *testing.T, what string, ok func() bool, describe func() string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s\n%s", what, describe())
}

// waitBundle returns the trust bundle kacme published in ns.
func waitBundle(t *testing.T, c client.Client, ns string) []byte {
	t.Helper()
	var cm corev1.ConfigMap
	waitFor(t, "the trust bundle ConfigMap in "+ns, func() bool {
		return c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "internal-ca-bundle"}, &cm) == nil && cm.Data["ca.crt"] != ""
	}, func() string { return "" })
	return []byte(cm.Data["ca.crt"])
}

// waitIssued waits until Certificate ns/name is Ready with a certificate in
// its Secret other than previous, and returns the certificate's chain.
func waitIssued(t *testing.T, c client.Client, ns, name string, previous []*x509.Certificate) []*x509.Certificate {
	t.Helper()
	ctx := context.Background()
	var chain []*x509.Certificate
	var crt cmapi.Certificate
	waitFor(t, "Certificate "+ns+"/"+name+" to be issued", func() bool {
		if c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &crt) != nil || !ready(crt.Status.Conditions) {
			return false
		}
		var sec corev1.Secret
		if c.Get(ctx, client.ObjectKey{Namespace: ns, Name: crt.Spec.SecretName}, &sec) != nil {
			return false
		}
		chain = parseChain(sec.Data[corev1.TLSCertKey])
		return len(chain) > 0 && (previous == nil || !chain[0].Equal(previous[0]))
	}, func() string { return describe(c, ns) })
	return chain
}

func ready(conds []cmapi.CertificateCondition) bool {
	for _, c := range conds {
		if c.Type == cmapi.CertificateConditionReady && c.Status == cmmeta.ConditionTrue {
			return true
		}
	}
	return false
}

// setCondition replaces or adds cond (cert-manager's condition type).
func setCondition(conds []cmapi.CertificateCondition, cond cmapi.CertificateCondition) []cmapi.CertificateCondition {
	conds = slices.DeleteFunc(conds, func(c cmapi.CertificateCondition) bool { return c.Type == cond.Type })
	return append(conds, cond)
}

// describe summarizes cert-manager's and kacme's objects in ns for a failure message.
func describe(c client.Client, ns string) string {
	ctx := context.Background()
	var b strings.Builder
	var crts cmapi.CertificateList
	_ = c.List(ctx, &crts, client.InNamespace(ns))
	for _, x := range crts.Items {
		for _, cond := range x.Status.Conditions {
			b.WriteString("Certificate " + x.Name + " " + string(cond.Type) + "=" + string(cond.Status) + " " + cond.Reason + ": " + cond.Message + "\n")
		}
	}
	var crs cmapi.CertificateRequestList
	_ = c.List(ctx, &crs, client.InNamespace(ns))
	for _, x := range crs.Items {
		for _, cond := range x.Status.Conditions {
			b.WriteString("CertificateRequest " + x.Name + " " + string(cond.Type) + "=" + string(cond.Status) + " " + cond.Reason + ": " + cond.Message + "\n")
		}
	}
	var evs corev1.EventList
	_ = c.List(ctx, &evs)
	for _, e := range evs.Items {
		if e.Type == corev1.EventTypeWarning {
			b.WriteString("Event " + e.Namespace + "/" + e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name + " " + e.Reason + ": " + e.Message + "\n")
		}
	}
	return b.String()
}

func parseChain(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		if c, err := x509.ParseCertificate(b.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

// verify checks that chain (leaf first) verifies for serverAuth against the
// bundle's roots and names exactly names.
func verify(t *testing.T, chain []*x509.Certificate, bundle []byte, names ...string) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(bundle) {
		t.Fatal("trust bundle holds no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("certificate for %v does not verify against the trust bundle: %v", names, err)
	}
	got := slices.Clone(chain[0].DNSNames)
	slices.Sort(got)
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("certificate names %v, want %v", got, want)
	}
	if bytes.Equal(chain[0].RawIssuer, chain[0].RawSubject) {
		t.Fatal("leaf is self-signed")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
