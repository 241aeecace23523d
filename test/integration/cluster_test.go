package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

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

// clusterEnv is a real API server with "kacme controller" running, a root CA
// and a ready default profile validating http-01 on httpPort.
type clusterEnv struct {
	c          client.Client
	kubeconfig string
	env        []string
	bin        string
	serverURL  string
	httpPort   int
	rootPath   string
	pool       *x509.CertPool
}

const clusterNS = "kacme-system"

func newClusterEnv(t *testing.T) *clusterEnv {
	t.Helper()
	_, c, kubeconfig := kenvtest.StartWithKubeconfig(t)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterNS}}); err != nil {
		t.Fatal(err)
	}
	e := &clusterEnv{c: c, kubeconfig: kubeconfig, env: []string{"KUBECONFIG=" + kubeconfig}, bin: buildKacme(t),
		serverURL: fmt.Sprintf("https://127.0.0.1:%d", freePort(t)), httpPort: freePort(t)}
	startProcess(t, e.env, e.bin, "controller", "--namespace", clusterNS, "--external-url", e.serverURL)
	for _, o := range []client.Object{
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root",
			Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"localhost"}},
			Validation:  v1alpha1.ValidationSpec{HTTP01Port: e.httpPort}}},
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
	if err := c.Get(ctx, client.ObjectKey{Namespace: clusterNS, Name: "root-ca"}, &sec); err != nil {
		t.Fatal(err)
	}
	e.rootPath = filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(e.rootPath, sec.Data["ca.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	e.pool = x509.NewCertPool()
	e.pool.AppendCertsFromPEM(sec.Data["ca.crt"])
	return e
}

func (e *clusterEnv) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool}}}
}

// startServer runs "kacme server" and waits for its directory.
func (e *clusterEnv) startServer(t *testing.T) *process {
	t.Helper()
	p := startProcess(t, e.env, e.bin, "server", "--namespace", clusterNS, "--listen", e.serverURL[len("https://"):], "--external-url", e.serverURL)
	hc := e.httpClient()
	kenvtest.WaitFor(t, "the ACME server", func() bool {
		r, err := hc.Get(e.serverURL + "/acme/directory")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	return p
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
	e := newClusterEnv(t)
	c, ctx := e.c, context.Background()
	e.startServer(t)
	lego := exec.Command("lego", "--server", e.serverURL+"/acme/directory", "--accept-tos", "--email", "ops@example.org",
		"--path", t.TempDir(), "--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", e.httpPort), "--domains", "web.localhost", "run")
	lego.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+e.rootPath)
	if out, err := lego.CombinedOutput(); err != nil {
		t.Fatalf("lego: %v\n%s", err, out)
	}
	const ns = clusterNS
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
	// hack/kubectl.sh docs: show what kubectl shows (docs/kubernetes.md).
	if kubectl, out := os.Getenv("KACME_KUBECTL"), os.Getenv("KACME_KUBECTL_OUT"); kubectl != "" && out != "" {
		var doc bytes.Buffer
		for _, args := range [][]string{{"get", "acme", "-A"}, {"get", "certificateauthorities,acmeprofiles", "-o", "wide"}} {
			cmd := exec.Command(kubectl, append([]string{"--kubeconfig", e.kubeconfig}, args...)...)
			res, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("kubectl %v: %v\n%s", args, err, res)
			}
			fmt.Fprintf(&doc, "$ kubectl %s\n%s\n", strings.Join(args, " "), res)
		}
		if err := os.WriteFile(out, doc.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := orders.Items[0]
	if o.Status.Status != "valid" || o.Status.Certificate != certs.Items[0].Name || challenges.Items[0].Status.Status != "valid" ||
		accounts.Items[0].Status.Status != "valid" {
		t.Fatalf("order %s (certificate %s), challenge %s, account %s", o.Status.Status, o.Status.Certificate,
			challenges.Items[0].Status.Status, accounts.Items[0].Status.Status)
	}
}

// TestClusterModeRestart: the server process stops after the challenge is
// validated and before finalize; a new process finishes the same order for
// the same client.
func TestClusterModeRestart(t *testing.T) {
	e := newClusterEnv(t)
	ctx := context.Background()
	// http-01 responder for the Go client.
	var keys sync.Map
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", e.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := keys.Load(strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")); ok {
			_, _ = w.Write([]byte(v.(string)))
		}
	})}
	go func() { _ = hs.Serve(ln) }()
	defer func() { _ = hs.Close() }()

	first := e.startServer(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &xacme.Client{Key: key, DirectoryURL: e.serverURL + "/acme/directory", HTTPClient: e.httpClient()}
	if _, err := cl.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	o, err := cl.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "restart.localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	z, err := cl.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range z.Challenges {
		if ch.Type == "http-01" {
			ka, _ := cl.HTTP01ChallengeResponse(ch.Token)
			keys.Store(ch.Token, ka)
			if _, err := cl.Accept(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := cl.WaitAuthorization(ctx, o.AuthzURLs[0]); err != nil {
		t.Fatal(err)
	}
	first.stop()
	e.startServer(t)
	csrKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"restart.localhost"}}, csrKey)
	ders, _, err := cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		t.Fatalf("finalize on the new server process: %v", err)
	}
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "restart.localhost" {
		t.Fatalf("certificate: %v %v", leaf, err)
	}
	// An administrator deactivates the account with kubectl: its next request is unauthorized.
	var accounts v1alpha1.AcmeAccountList
	if err := e.c.List(ctx, &accounts, client.InNamespace(clusterNS)); err != nil || len(accounts.Items) != 1 {
		t.Fatalf("accounts: %d %v", len(accounts.Items), err)
	}
	a := accounts.Items[0]
	a.Spec.Deactivated = true
	if err := e.c.Update(ctx, &a); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the deactivated account to be refused", func() bool {
		_, err := cl.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "again.localhost"}})
		ae, ok := err.(*xacme.Error)
		return ok && ae.StatusCode == http.StatusUnauthorized && ae.ProblemType == "urn:ietf:params:acme:error:unauthorized"
	})
}
