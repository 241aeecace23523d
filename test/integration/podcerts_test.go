package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// TestDashboardPodCertificates (issue 16): kacme controller (as its
// RBAC-bound identity) issues a pod's certificate, and the dashboard of
// kacme server (as its identity) lists it with its names and serial to a
// user who may list KubernetesSigners, and to nobody else.
func TestDashboardPodCertificates(t *testing.T) {
	e := newClusterEnv(t, false)
	e.startServer(t)
	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "web"}}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "web-0"},
		Spec: corev1.PodSpec{NodeName: "node-1", ServiceAccountName: "web", Containers: []corev1.Container{{Name: "c", Image: "example/web:1"}}}}
	createAll(t, e.c, node, sa, pod,
		&v1alpha1.KubernetesSigner{ObjectMeta: metav1.ObjectMeta{Name: "pods"}, Spec: v1alpha1.KubernetesSignerSpec{CertificateAuthority: "root",
			NamespaceSelector: &metav1.LabelSelector{}, Identities: v1alpha1.SignerIdentities{SPIFFETrustDomain: "cluster.local"}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "signer-viewer"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "order-viewer"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "kacme-signer-view"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"acme.kacme.io"}, Resources: []string{"kubernetessigners"}, Verbs: []string{"list"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "signer-viewer"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "kacme-signer-view"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "signer-viewer", Namespace: teamNS}}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "kacme-order-view"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"acme.kacme.io"}, Resources: []string{"acmeorders"}, Verbs: []string{"list"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "order-viewer"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "kacme-order-view"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "order-viewer", Namespace: teamNS}}})
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stub, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	pcr := &certv1.PodCertificateRequest{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "web-0-cert"},
		Spec: certv1.PodCertificateRequestSpec{SignerName: "acme.kacme.io/pods", PodName: pod.Name, PodUID: pod.UID,
			ServiceAccountName: "web", ServiceAccountUID: sa.UID, NodeName: "node-1", NodeUID: node.UID, StubPKCS10Request: stub}}
	createAll(t, e.c, pcr)
	kenvtest.WaitFor(t, "the pod certificate issued", func() bool {
		return e.c.Get(ctx, client.ObjectKeyFromObject(pcr), pcr) == nil && meta.IsStatusConditionTrue(pcr.Status.Conditions, "Issued")
	})
	cfg, err := clientcmd.BuildConfigFromFlags("", e.kc.Admin)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	page := func(sa string) (int, string) {
		tr, err := cs.CoreV1().ServiceAccounts(teamNS).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		jar, _ := cookiejar.New(nil)
		hc := &http.Client{Jar: jar, Transport: e.httpClient().Transport}
		r, err := hc.PostForm(e.serverURL+"/dashboard/login", url.Values{"token": {tr.Status.Token}})
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		r, err = hc.Get(e.serverURL + "/dashboard/pod-certificates")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	if code, body := page("order-viewer"); code != http.StatusForbidden || strings.Contains(body, "web-0") {
		t.Fatalf("a user who may not list KubernetesSigners: %d\n%s", code, body)
	}
	leaf, err := x509.ParseCertificate(pemBlock(t, pcr.Status.CertificateChain))
	if err != nil {
		t.Fatal(err)
	}
	code, body := page("signer-viewer")
	for _, want := range []string{"web-0", "acme.kacme.io/pods", "Issued", "spiffe://cluster.local/ns/" + teamNS + "/sa/web", leaf.SerialNumber.Text(16)} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("the pod certificates page (%d) lacks %q:\n%s", code, want, body)
		}
	}
}

// pemBlock is the DER of the first PEM block of s.
func pemBlock(t *testing.T, s string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatalf("no PEM block in %q", s)
	}
	return b.Bytes
}
