package e2e

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	xacme "golang.org/x/crypto/acme"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
)

// uninstall is (e): what helm uninstall leaves, against what
// docs/kubernetes.md says it leaves.
func (e *nodeEnv) uninstall() {
	e.t.Helper()
	e.kubectl("delete", "namespace", e2eNS, "--wait=false")
	e.helmRun("uninstall", release, "--namespace", kacmeNS, "--wait", "--timeout", "3m")
	// The garbage collector removes what the chart's serving CA owned.
	e.waitFor("the garbage collector to remove what the serving CA and the server pods owned", 2*time.Minute, func() error {
		var cms corev1.ConfigMapList
		if err := e.c.List(e.ctx, &cms, client.MatchingLabels{v1alpha1.LabelTrustBundleOf: "kacme-serving"}); err != nil {
			return err
		}
		if len(cms.Items) > 0 {
			return fmt.Errorf("%d kacme-server-ca ConfigMaps left, e.g. in %s", len(cms.Items), cms.Items[0].Namespace)
		}
		for _, name := range []string{"kacme-serving-tls", "kacme-serving-ca"} {
			if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: kacmeNS, Name: name}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("Secret %s still there (%v)", name, err)
			}
		}
		var pods corev1.PodList
		if err := e.c.List(e.ctx, &pods, client.InNamespace(kacmeNS)); err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d pods left", len(pods.Items))
		}
		// The replicas' nonce Leases go with their Pods.
		var leases coordinationv1.LeaseList
		if err := e.c.List(e.ctx, &leases, client.InNamespace(kacmeNS), client.MatchingLabels{"app.kubernetes.io/component": "nonce-peer"}); err != nil {
			return err
		}
		if len(leases.Items) > 0 {
			return fmt.Errorf("%d nonce Leases left", len(leases.Items))
		}
		return nil
	})
	// Every object in the release namespace, of every kind that lists.
	left := e.everything(kacmeNS)
	var unexpected []string
	for _, o := range left {
		if !leftByUninstall(o) {
			unexpected = append(unexpected, o)
		}
	}
	if len(unexpected) > 0 {
		e.t.Fatalf("helm uninstall left what docs/kubernetes.md does not say it leaves:\n%s\n(all that is left: %v)", strings.Join(unexpected, "\n"), left)
	}
	// Cluster-wide: nothing of the release.
	for _, o := range e.everything("") {
		if strings.Contains(o, "meta.helm.sh/release-name=kacme") || strings.Contains(o, "app.kubernetes.io/instance=kacme") {
			e.t.Errorf("left after helm uninstall: %s", o)
		}
	}
	// What stays: the CRDs, the CAs and the ACME objects, the trust bundles of the user's CAs.
	var cas v1alpha1.CertificateAuthorityList
	must(e.t, e.c.List(e.ctx, &cas))
	if names := caNames(cas); !slices.Equal(names, []string{"internal", "root"}) {
		e.t.Errorf("CertificateAuthorities after uninstall: %v, want internal and root (the chart's serving CA goes)", names)
	}
	must(e.t, e.c.Get(e.ctx, client.ObjectKey{Namespace: "apps", Name: "internal-ca-bundle"}, &corev1.ConfigMap{}))
	e.step("(e) helm uninstall left only what docs/kubernetes.md lists: %v", left)
}

// leftByUninstall: what docs/kubernetes.md ("Uninstalling") says stays in
// the release namespace. o is "<Kind> <name> <labels>".
func leftByUninstall(o string) bool {
	kind, rest, _ := strings.Cut(o, " ")
	name, _, _ := strings.Cut(rest, " ")
	switch kind {
	case "Event":
		return true
	case "Secret": // the CAs' keys, the replicas' HMAC key, copies of EAB keys
		return strings.HasSuffix(name, "-ca") || name == "kacme-internal" || strings.HasPrefix(name, "kacme-eab-")
	case "ConfigMap": // Kubernetes' own root, and the user CAs' trust bundles where selected
		return name == "kube-root-ca.crt" || strings.HasSuffix(name, "-ca-bundle")
	case "ServiceAccount":
		return name == "default"
	case "Lease": // the controller's leader election
		return name == "kacme-controller.acme.kacme.io"
	case "AcmeAccount", "AcmeOrder", "AcmeChallenge", "AcmeCertificate":
		return true
	}
	return false
}

// everything lists every object of every listable kind in ns ("" for
// cluster-scoped kinds) as "<Kind> <name> <labels and release annotation>".
func (e *nodeEnv) everything(ns string) []string {
	e.t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(e.n.Config)
	must(e.t, err)
	lists, err := dc.ServerPreferredResources()
	if err != nil && !discovery.IsGroupDiscoveryFailedError(err) {
		e.t.Fatal(err)
	}
	var out []string
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") || r.Namespaced != (ns != "") {
				continue
			}
			var items unstructured.UnstructuredList
			items.SetGroupVersionKind(gv.WithKind(r.Kind + "List"))
			if err := e.c.List(e.ctx, &items, client.InNamespace(ns)); err != nil {
				continue
			}
			for _, it := range items.Items {
				desc := r.Kind + " " + it.GetName()
				var attrs []string
				for k, v := range it.GetLabels() {
					attrs = append(attrs, k+"="+v)
				}
				if rel := it.GetAnnotations()["meta.helm.sh/release-name"]; rel != "" {
					attrs = append(attrs, "meta.helm.sh/release-name="+rel)
				}
				sort.Strings(attrs)
				out = append(out, strings.TrimSpace(desc+" "+strings.Join(attrs, ",")))
			}
		}
	}
	sort.Strings(out)
	return out
}

func caNames(l v1alpha1.CertificateAuthorityList) []string {
	var out []string
	for _, c := range l.Items {
		out = append(out, c.Name)
	}
	sort.Strings(out)
	return out
}

// acmeObjects are the ACME state's objects by UID.
func (e *nodeEnv) acmeObjects() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, list := range []client.ObjectList{&v1alpha1.AcmeAccountList{}, &v1alpha1.AcmeOrderList{}, &v1alpha1.AcmeChallengeList{}, &v1alpha1.AcmeCertificateList{}} {
		must(e.t, e.c.List(e.ctx, list))
		must(e.t, meta.EachListItem(list, func(o runtime.Object) error {
			m, _ := meta.Accessor(o)
			out[string(m.GetUID())] = fmt.Sprintf("%T %s/%s", o, m.GetNamespace(), m.GetName())
			return nil
		}))
	}
	return out
}

// certManagerAccount is the ClusterIssuer's ACME account key and the URL of
// the order that issued apps/web (cert-manager's Order).
func (e *nodeEnv) certManagerAccount() (crypto.Signer, string) {
	e.t.Helper()
	var sec corev1.Secret
	must(e.t, e.c.Get(e.ctx, client.ObjectKey{Namespace: cmNS, Name: "kacme-account-key"}, &sec))
	b, _ := pem.Decode(sec.Data[corev1.TLSPrivateKeyKey])
	if b == nil {
		e.t.Fatal("cert-manager's account key Secret holds no PEM key")
	}
	var key crypto.Signer
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		key = k
	} else if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		key = k.(crypto.Signer)
	} else {
		e.t.Fatalf("cert-manager's account key (%s): %v", b.Type, err)
	}
	var orders cmacme.OrderList
	must(e.t, e.c.List(e.ctx, &orders, client.InNamespace("apps")))
	for _, o := range orders.Items {
		if o.Status.State == cmacme.Valid && strings.HasPrefix(o.Name, "web-") {
			return key, o.Status.URL
		}
	}
	e.t.Fatalf("no valid cert-manager Order for apps/web among %d", len(orders.Items))
	return nil, ""
}

// checkAccount looks the account up by its key (onlyReturnExisting), then
// fetches its order and the order's certificate.
func (e *nodeEnv) checkAccount(key crypto.Signer, orderURL string) {
	e.t.Helper()
	var cm corev1.ConfigMap
	must(e.t, e.c.Get(e.ctx, client.ObjectKey{Namespace: cmNS, Name: "kacme-server-ca"}, &cm))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(cm.Data["ca.crt"]))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig(pool)}, Timeout: 30 * time.Second}
	ac := &xacme.Client{Key: key, DirectoryURL: directory, HTTPClient: hc}
	acct, err := ac.GetReg(e.ctx, "")
	if err != nil || acct.Status != xacme.StatusValid {
		e.t.Fatalf("cert-manager's account after the upgrade: %+v, %v", acct, err)
	}
	o, err := ac.GetOrder(e.ctx, orderURL)
	if err != nil || o.Status != xacme.StatusValid || o.CertURL == "" {
		e.t.Fatalf("cert-manager's order %s after the upgrade: %+v, %v", orderURL, o, err)
	}
	ders, err := ac.FetchCert(e.ctx, o.CertURL, true)
	if err != nil {
		e.t.Fatalf("certificate %s after the upgrade: %v", o.CertURL, err)
	}
	var sec corev1.Secret
	must(e.t, e.c.Get(e.ctx, client.ObjectKey{Namespace: "apps", Name: "web-tls"}, &sec))
	if b, _ := pem.Decode(sec.Data[corev1.TLSCertKey]); b == nil || !bytes.Equal(b.Bytes, ders[0]) {
		e.t.Fatalf("the certificate kacme serves at %s is not the one in apps/web-tls", o.CertURL)
	}
}
