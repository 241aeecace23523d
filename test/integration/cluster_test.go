package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestClusterModeIssuance: "kacme controller" and "kacme server" against a real
// API server; lego obtains a certificate over http-01, and the account, order,
// challenge and certificate exist as custom resources.
func TestClusterModeIssuance(t *testing.T) {
	if _, err := exec.LookPath("lego"); err != nil {
		if os.Getenv("KACME_INTEROP") == "required" {
			t.Fatal("lego is not installed")
		}
		t.Skip("lego is not installed")
	}
	_, c, kubeconfig := kenvtest.StartWithKubeconfig(t)
	ctx := context.Background()
	const ns = "kacme-system"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	bin := buildKacme(t)
	env := []string{"KUBECONFIG=" + kubeconfig}
	serverURL := fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
	httpPort := freePort(t)
	startProcess(t, env, bin, "controller", "--namespace", ns, "--external-url", serverURL)
	for _, o := range []client.Object{
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root",
			Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"localhost"}},
			Validation:  v1alpha1.ValidationSpec{HTTP01Port: httpPort}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	kenvtest.WaitFor(t, "the profile to become ready", func() bool {
		var p v1alpha1.AcmeProfile
		return c.Get(ctx, client.ObjectKey{Name: "default"}, &p) == nil && meta.IsStatusConditionTrue(p.Status.Conditions, "Ready")
	})
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "root-ca"}, &sec); err != nil {
		t.Fatal(err)
	}
	rootPath := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(rootPath, sec.Data["ca.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, env, bin, "server", "--namespace", ns, "--listen", serverURL[len("https://"):], "--external-url", serverURL)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(sec.Data["ca.crt"])
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	kenvtest.WaitFor(t, "the ACME server", func() bool {
		r, err := hc.Get(serverURL + "/acme/directory")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	lego := exec.Command("lego", "--server", serverURL+"/acme/directory", "--accept-tos", "--email", "ops@example.org",
		"--path", t.TempDir(), "--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", httpPort), "--domains", "web.localhost", "run")
	lego.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+rootPath)
	if out, err := lego.CombinedOutput(); err != nil {
		t.Fatalf("lego: %v\n%s", err, out)
	}
	// The ACME state is custom resources in the namespace.
	var accounts v1alpha1.AcmeAccountList
	var orders v1alpha1.AcmeOrderList
	var challenges v1alpha1.AcmeChallengeList
	var certs v1alpha1.AcmeCertificateList
	for _, l := range []client.ObjectList{&accounts, &orders, &challenges, &certs} {
		if err := c.List(ctx, l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	if len(accounts.Items) != 1 || len(orders.Items) != 1 || len(challenges.Items) != 1 || len(certs.Items) != 1 {
		t.Fatalf("custom resources: %d accounts, %d orders, %d challenges, %d certificates",
			len(accounts.Items), len(orders.Items), len(challenges.Items), len(certs.Items))
	}
	o := orders.Items[0]
	if o.Status.Status != "valid" || o.Status.Certificate != certs.Items[0].Name || challenges.Items[0].Status.Status != "valid" ||
		accounts.Items[0].Status.Status != "valid" {
		t.Fatalf("order %s (certificate %s), challenge %s, account %s", o.Status.Status, o.Status.Certificate,
			challenges.Items[0].Status.Status, accounts.Items[0].Status.Status)
	}
}
