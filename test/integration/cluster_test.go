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
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

// clusterEnv is a real API server with "kacme controller" running under
// its generated RBAC, a root CA, and two ready profiles: "default" (http-01
// on httpPort, dns-01 through BIND when started with DNS) and "teams" (EAB
// required).
type clusterEnv struct {
	c         client.Client
	kc        kenvtest.Kubeconfigs
	bin       string
	serverURL string
	httpPort  int
	rootPath  string
	pool      *x509.CertPool
	dns       *harness.DNS
}

const (
	clusterNS = kenvtest.OperatorNamespace
	teamNS    = "team-a"
	zone      = "kacme.test"
)

func newClusterEnv(t *testing.T, withDNS bool) *clusterEnv {
	t.Helper()
	_, c, kc := kenvtest.StartWithKubeconfig(t)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamNS}}); err != nil {
		t.Fatal(err)
	}
	e := &clusterEnv{c: c, kc: kc, bin: harness.BuildKacme(t),
		serverURL: fmt.Sprintf("https://127.0.0.1:%d", harness.FreePort(t)), httpPort: harness.FreePort(t)}
	validation := v1alpha1.ValidationSpec{HTTP01Port: e.httpPort}
	if withDNS {
		e.dns = harness.StartBIND(t, t.TempDir(), zone)
		validation.Resolvers = []string{e.dns.Resolver()}
	}
	e.startController(t)
	ids := v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"localhost", zone, "svc.cluster.local"}}
	for _, o := range []client.Object{
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root",
			Identifiers: ids, Validation: validation}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "teams"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root",
			Identifiers: ids, Validation: validation, ExternalAccountBinding: &v1alpha1.ExternalAccountBindingPolicy{Required: true}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	e.waitProfiles(t, "default", "teams")
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

// startController runs "kacme controller" under its generated RBAC.
func (e *clusterEnv) startController(t *testing.T) *harness.Process {
	t.Helper()
	return harness.Start(t, []string{"KUBECONFIG=" + e.kc.Controller}, e.bin, "controller", "--namespace", clusterNS, "--external-url", e.serverURL)
}

// waitProfiles waits until each named AcmeProfile is Ready.
func (e *clusterEnv) waitProfiles(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		kenvtest.WaitFor(t, "profile "+name+" to become ready", func() bool {
			var p v1alpha1.AcmeProfile
			return e.c.Get(context.Background(), client.ObjectKey{Name: name}, &p) == nil && meta.IsStatusConditionTrue(p.Status.Conditions, "Ready")
		})
	}
}

func (e *clusterEnv) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool}}}
}

// startServer runs "kacme server" under its generated RBAC and waits for its directory.
func (e *clusterEnv) startServer(t *testing.T) *harness.Process {
	t.Helper()
	p := harness.Start(t, []string{"KUBECONFIG=" + e.kc.Server}, e.bin, "server", "--namespace", clusterNS,
		"--listen", e.serverURL[len("https://"):], "--external-url", e.serverURL)
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

// responder answers http-01 on a loopback port for the Go ACME client and
// remembers the Host of the last request.
type responder struct {
	keys sync.Map
	host atomic.Value
}

func startResponder(t *testing.T, port int) *responder {
	t.Helper()
	r := &responder{}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.host.Store(req.Host)
		if v, ok := r.keys.Load(strings.TrimPrefix(req.URL.Path, "/.well-known/acme-challenge/")); ok {
			_, _ = w.Write([]byte(v.(string)))
		}
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return r
}

// client registers a new account with the Go ACME client.
func (e *clusterEnv) client(t *testing.T) *xacme.Client {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &xacme.Client{Key: key, DirectoryURL: e.serverURL + "/acme/directory", HTTPClient: e.httpClient()}
	if _, err := cl.Register(context.Background(), &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	return cl
}

// authorizeHTTP01 orders name and answers its http-01 challenge through resp.
func authorizeHTTP01(ctx context.Context, cl *xacme.Client, resp *responder, name string) (*xacme.Order, error) {
	o, err := cl.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: name}})
	if err != nil {
		return nil, err
	}
	z, err := cl.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		return nil, err
	}
	for _, ch := range z.Challenges {
		if ch.Type == "http-01" {
			ka, _ := cl.HTTP01ChallengeResponse(ch.Token)
			resp.keys.Store(ch.Token, ka)
			if _, err := cl.Accept(ctx, ch); err != nil {
				return nil, err
			}
		}
	}
	_, err = cl.WaitAuthorization(ctx, o.AuthzURLs[0])
	return o, err
}

// issueHTTP01 obtains a certificate for name with cl (http-01 through resp).
func issueHTTP01(ctx context.Context, t *testing.T, cl *xacme.Client, resp *responder, name string) *x509.Certificate {
	t.Helper()
	leaf, err := x509.ParseCertificate(issueChainHTTP01(ctx, t, cl, resp, name)[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// issueChainHTTP01 is issueHTTP01 returning the whole chain (DER, leaf first).
func issueChainHTTP01(ctx context.Context, t *testing.T, cl *xacme.Client, resp *responder, name string) [][]byte {
	t.Helper()
	o, err := authorizeHTTP01(ctx, cl, resp, name)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	ders, _, err := cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		t.Fatal(err)
	}
	return ders
}

// lego runs lego against profile with its own state directory dir; it
// returns the output and whether lego succeeded.
func (e *clusterEnv) lego(t *testing.T, dir, profile string, args ...string) (string, error) {
	t.Helper()
	base := []string{"--server", e.serverURL + "/acme/" + profile + "/directory", "--accept-tos", "--email", "ops@example.org", "--path", dir}
	cmd := exec.Command("lego", append(base, args...)...)
	cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+e.rootPath)
	if e.dns != nil {
		cmd.Env = append(cmd.Env, e.dns.LegoEnv()...)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// list reads the ACME state kinds in ns.
func (e *clusterEnv) list(t *testing.T, ns string) (v1alpha1.AcmeAccountList, v1alpha1.AcmeOrderList, v1alpha1.AcmeChallengeList, v1alpha1.AcmeCertificateList) {
	t.Helper()
	var accounts v1alpha1.AcmeAccountList
	var orders v1alpha1.AcmeOrderList
	var challenges v1alpha1.AcmeChallengeList
	var certs v1alpha1.AcmeCertificateList
	for _, l := range []client.ObjectList{&accounts, &orders, &challenges, &certs} {
		if err := e.c.List(context.Background(), l, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
	}
	return accounts, orders, challenges, certs
}

// TestClusterModeIssuance: "kacme controller" and "kacme server" against a
// real API server, each with only its generated RBAC. lego obtains
// certificates over http-01 and dns-01 (BIND on loopback, queried by the
// server); a team's pre-registered AcmeAccount's EAB Secret works with lego
// and its allowedIdentifiers refuse another name. The API then shows the
// accounts, orders, authorizations (AcmeChallenges, with the data the client
// deployed) and certificates as custom resources in each account's namespace.
func TestClusterModeIssuance(t *testing.T) {
	harness.Need(t, "lego", "named", "nsupdate", "dig")
	e := newClusterEnv(t, true)
	c, ctx := e.c, context.Background()
	e.startServer(t)
	dir := t.TempDir()
	if out, err := e.lego(t, dir, "default", "--http", "--http.port", fmt.Sprintf("127.0.0.1:%d", e.httpPort), "--domains", "web.localhost", "run"); err != nil {
		t.Fatalf("lego http-01: %v\n%s", err, out)
	}
	if out, err := e.lego(t, dir, "default", append(e.dns.LegoArgs(), "--domains", "dns."+zone, "run")...); err != nil {
		t.Fatalf("lego dns-01: %v\n%s", err, out)
	}

	// A platform team pre-registers an account for its namespace.
	pre := &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "builder"}, Spec: v1alpha1.AcmeAccountSpec{
		Profile: "teams", AllowedIdentifiers: []string{"*.team-a." + zone},
		ExternalAccountBinding: &v1alpha1.ExternalAccountKey{KeyID: "team-a-builder", SecretName: "builder-eab"}}}
	if err := c.Create(ctx, pre); err != nil {
		t.Fatal(err)
	}
	var eab corev1.Secret
	kenvtest.WaitFor(t, "the pre-registration to await binding", func() bool {
		var a v1alpha1.AcmeAccount
		if c.Get(ctx, client.ObjectKeyFromObject(pre), &a) != nil {
			return false
		}
		cond := meta.FindStatusCondition(a.Status.Conditions, "Ready")
		return cond != nil && cond.Reason == "AwaitingBinding" && c.Get(ctx, client.ObjectKey{Namespace: teamNS, Name: "builder-eab"}, &eab) == nil
	})
	teamDir := t.TempDir()
	eabArgs := []string{"--eab", "--kid", "team-a-builder", "--hmac", string(eab.Data["key"])}
	if out, err := e.lego(t, teamDir, "teams", append(append(eabArgs, e.dns.LegoArgs()...), "--domains", "app.team-a."+zone, "run")...); err != nil {
		t.Fatalf("lego with the pre-registered account's EAB key: %v\n%s", err, out)
	}
	out, err := e.lego(t, teamDir, "teams", append(append(eabArgs, e.dns.LegoArgs()...), "--domains", "other."+zone, "run")...)
	if err == nil || !strings.Contains(out, "rejectedIdentifier") {
		t.Fatalf("allowedIdentifiers did not refuse other.%s: %v\n%s", zone, err, out)
	}

	// The operator's namespace holds the account registered over ACME and its objects.
	accounts, orders, challenges, certs := e.list(t, clusterNS)
	if len(accounts.Items) != 1 || len(orders.Items) != 2 || len(challenges.Items) != 2 || len(certs.Items) != 2 {
		t.Fatalf("%s: %d accounts, %d orders, %d challenges, %d certificates, want 1, 2, 2, 2", clusterNS,
			len(accounts.Items), len(orders.Items), len(challenges.Items), len(certs.Items))
	}
	if a := accounts.Items[0]; a.Spec.State != "valid" || a.Spec.KeyThumbprint == "" {
		t.Fatalf("account status %q, thumbprint %q", a.Spec.State, a.Spec.KeyThumbprint)
	}
	certNames := map[string]bool{}
	for _, cert := range certs.Items {
		certNames[cert.Name] = true
	}
	for _, o := range orders.Items {
		if o.Status.Status != "valid" || !certNames[o.Status.Certificate] || len(o.Status.Authorizations) != 1 {
			t.Fatalf("order %s: %s, certificate %q, authorizations %v", o.Name, o.Status.Status, o.Status.Certificate, o.Status.Authorizations)
		}
	}
	for _, az := range challenges.Items {
		if az.Status.Status != "valid" || len(az.Status.Records) == 0 {
			t.Fatalf("authorization %s for %s: %s, records %v", az.Name, az.Spec.Identifier.Value, az.Status.Status, az.Status.Records)
		}
		for _, ch := range az.Status.Challenges {
			d := ch.Data
			ok := false
			switch ch.Type {
			case v1alpha1.ChallengeHTTP01:
				ok = d.Path == "/.well-known/acme-challenge/"+ch.Token && strings.HasPrefix(d.Content, ch.Token+".")
			case v1alpha1.ChallengeDNS01:
				ok = d.RecordName == "_acme-challenge."+az.Spec.Identifier.Value+"." && len(d.RecordValue) == 43
			case v1alpha1.ChallengeTLSALPN01:
				ok = len(d.Digest) == 64
			}
			if !ok {
				t.Fatalf("authorization %s %s challenge data %+v", az.Spec.Identifier.Value, ch.Type, d)
			}
		}
	}
	// The team's namespace holds its account and what it ordered: the
	// refused name left no order behind.
	accounts, orders, challenges, certs = e.list(t, teamNS)
	if len(accounts.Items) != 1 || len(orders.Items) != 1 || len(challenges.Items) != 1 || len(certs.Items) != 1 {
		t.Fatalf("%s: %d accounts, %d orders, %d challenges, %d certificates, want 1 each", teamNS,
			len(accounts.Items), len(orders.Items), len(challenges.Items), len(certs.Items))
	}
	if a := accounts.Items[0]; a.Name != "builder" || a.Spec.State != "valid" || a.Spec.Binding == "" {
		t.Fatalf("pre-registered account %s: status %q, binding %q", a.Name, a.Spec.State, a.Spec.Binding)
	}
	if orders.Items[0].Status.Status != "valid" || challenges.Items[0].Spec.Identifier.Value != "app.team-a."+zone {
		t.Fatalf("team order %s, authorization for %s", orders.Items[0].Status.Status, challenges.Items[0].Spec.Identifier.Value)
	}
	kenvtest.WaitFor(t, "the controller to count the team account's order and certificate", func() bool {
		var a v1alpha1.AcmeAccount
		if c.Get(ctx, client.ObjectKeyFromObject(pre), &a) != nil {
			return false
		}
		return a.Status.Orders == 1 && a.Status.Certificates == 1 && meta.IsStatusConditionTrue(a.Status.Conditions, "Ready")
	})
	kenvtest.WaitFor(t, "the controller to count the open directory's account's orders", func() bool {
		var list v1alpha1.AcmeAccountList
		return c.List(ctx, &list, client.InNamespace(clusterNS)) == nil && len(list.Items) == 1 &&
			list.Items[0].Status.Orders == 2 && list.Items[0].Status.Certificates == 2
	})

	// hack/kubectl.sh docs: show what kubectl shows (docs/kubernetes.md).
	if kubectl, out := os.Getenv("KACME_KUBECTL"), os.Getenv("KACME_KUBECTL_OUT"); kubectl != "" && out != "" {
		var doc bytes.Buffer
		for _, args := range [][]string{{"get", "acme", "-A"}, {"get", "acmechallenges", "-A", "-o", "wide"},
			{"get", "certificateauthorities,acmeprofiles", "-o", "wide"}} {
			cmd := exec.Command(kubectl, append([]string{"--kubeconfig", e.kc.Admin}, args...)...)
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
}

// TestClusterModeRestart: the server process stops after the challenge is
// validated and before finalize; a new process finishes the same order for
// the same client.
func TestClusterModeRestart(t *testing.T) {
	e := newClusterEnv(t, false)
	ctx := context.Background()
	resp := startResponder(t, e.httpPort)
	first := e.startServer(t)
	cl := e.client(t)
	o, err := authorizeHTTP01(ctx, cl, resp, "restart.localhost")
	if err != nil {
		t.Fatal(err)
	}
	first.Stop()
	second := e.startServer(t)
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
	// An administrator deactivates the account with kubectl: its next request
	// is unauthorized, its ACME status becomes deactivated, its pending order
	// is cancelled, and the audit log and an Event record it.
	pending, err := cl.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "pending.localhost"}})
	if err != nil {
		t.Fatal(err)
	}
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
	kenvtest.WaitFor(t, "status deactivated, the pending order invalid, the Event", func() bool {
		var cur v1alpha1.AcmeAccount
		var o v1alpha1.AcmeOrder
		var evs eventsv1.EventList
		if e.c.Get(ctx, client.ObjectKeyFromObject(&a), &cur) != nil || cur.Spec.State != "deactivated" ||
			e.c.Get(ctx, client.ObjectKey{Namespace: clusterNS, Name: path.Base(pending.URI)}, &o) != nil || o.Status.Status != "invalid" ||
			e.c.List(ctx, &evs, client.InNamespace(clusterNS)) != nil {
			return false
		}
		for _, ev := range evs.Items {
			if ev.Regarding.Name == a.Name && ev.Reason == "AccountDeactivated" {
				return true
			}
		}
		return false
	})
	if out := second.Output(); !strings.Contains(out, `"event":"account.deactivated"`) || !strings.Contains(out, `"by":"spec.deactivated"`) {
		t.Fatal("no account.deactivated audit record by spec.deactivated in the server's log")
	}
}

// TestClusterModeServiceEndpoints (issue 4, in-cluster http-01): the name is
// a Service's cluster DNS name, which no resolver knows; the Service has no
// selector and one EndpointSlice pointing at a responder on a port nothing
// else uses. Validation succeeds only by dialling that endpoint, with the
// name as Host.
func TestClusterModeServiceEndpoints(t *testing.T) {
	e := newClusterEnv(t, false)
	ctx := context.Background()
	const host = "web.apps.svc.cluster.local"
	respPort := harness.FreePort(t)
	resp := startResponder(t, respPort)
	portName, ready := "http", true
	port := int32(respPort)
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"}, Spec: corev1.ServiceSpec{
			Ports: []corev1.ServicePort{{Name: portName, Port: int32(e.httpPort), TargetPort: intstr.FromString(portName)}}}},
		// The API server refuses loopback IPs in EndpointSlices and tests
		// listen on loopback only, so the endpoint is an FQDN under
		// "localhost" (RFC 6761: loopback), resolved by the validator.
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
			AddressType: discoveryv1.AddressTypeFQDN,
			Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port}},
			Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"pod-1.localhost"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}},
	} {
		if err := e.c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	e.startServer(t)
	if _, err := authorizeHTTP01(ctx, e.client(t), resp, host); err != nil {
		t.Fatalf("http-01 through the Service's EndpointSlice: %v", err)
	}
	// The URL's port is the profile's http01Port (80 outside tests), so Host carries it.
	if h, _ := resp.host.Load().(string); h != fmt.Sprintf("%s:%d", host, e.httpPort) {
		t.Fatalf("the responder saw Host %q, want %s:%d", h, host, e.httpPort)
	}
	var azs v1alpha1.AcmeChallengeList
	if err := e.c.List(ctx, &azs, client.InNamespace(clusterNS)); err != nil || len(azs.Items) != 1 {
		t.Fatalf("authorizations: %d %v", len(azs.Items), err)
	}
	want, endpoint := fmt.Sprintf("127.0.0.1:%d", respPort), fmt.Sprintf("pod-1.localhost:%d", respPort)
	if rec := azs.Items[0].Status.Records; len(rec) != 1 || rec[0].AddressUsed != want || len(rec[0].AddressesResolved) != 1 || rec[0].AddressesResolved[0] != endpoint {
		t.Fatalf("validation record %+v, want the endpoint %s", rec, want)
	}
}
