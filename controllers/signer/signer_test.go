package signer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/certificateauthority"
	"github.com/kacme/kacme/controllers/signer"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

const ns = kenvtest.OperatorNamespace

// env is an API server with the CA and signer controllers running as the
// controller's identity (bound to the generated RBAC: signing for
// acme.kacme.io/* must be granted there), a Ready root CA, a node, and the
// namespaces "apps" (selected) and "other" (not).
type env struct {
	t     *testing.T
	c     client.Client
	admin *rest.Config
	ctx   context.Context
	// node is the test's node; pods are bound to it.
	node *corev1.Node
}

func start(t *testing.T) *env {
	t.Helper()
	admin, c, kc := kenvtest.StartWithKubeconfig(t)
	ctx := context.Background()
	cfg, err := clientcmd.BuildConfigFromFlags("", kc.Controller)
	if err != nil {
		t.Fatal(err)
	}
	skip := true
	ctrl.SetLogger(logr.Discard())
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: kenvtest.Scheme(), Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: &skip}})
	if err != nil {
		t.Fatal(err)
	}
	rec := mgr.GetEventRecorder("kacme-controller")
	if err := (&certificateauthority.Reconciler{Client: mgr.GetClient(), Namespace: ns, Recorder: rec}).SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	if err := signer.Setup(mgr, &signer.Signer{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: ns, Recorder: rec}, logr.Discard()); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go func() { _ = mgr.Start(mctx) }()
	e := &env{t: t, c: c, admin: admin, ctx: ctx}
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps", Labels: map[string]string{"certs": "yes"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}})
	e.node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	e.create(e.node)
	kenvtest.WaitFor(t, "the root CA", func() bool {
		var ca v1alpha1.CertificateAuthority
		return c.Get(ctx, client.ObjectKey{Name: "root"}, &ca) == nil && ca.Status.Chain != ""
	})
	return e
}

func (e *env) create(objs ...client.Object) {
	e.t.Helper()
	for _, o := range objs {
		if err := e.c.Create(e.ctx, o); err != nil {
			e.t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

// policy is a signer the tests use: namespace label certs=yes,
// ServiceAccount "web" only, SPIFFE IDs and Service names, at most 2 h.
func policy(name string, mod func(*v1alpha1.KubernetesSignerSpec)) *v1alpha1.KubernetesSigner {
	s := &v1alpha1.KubernetesSigner{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.KubernetesSignerSpec{
		CertificateAuthority:       "root",
		NamespaceSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{"certs": "yes"}},
		ServiceAccounts:            []string{"web"},
		Identities:                 v1alpha1.SignerIdentities{SPIFFETrustDomain: "cluster.example", ServiceDNSNames: true},
		MaxLifetime:                &metav1.Duration{Duration: 2 * time.Hour},
		KeyTypes:                   []v1alpha1.PodKeyType{"ECDSAP256"},
		CertificateSigningRequests: v1alpha1.CSRSignerPolicy{Enabled: true},
	}}
	if mod != nil {
		mod(&s.Spec)
	}
	return s
}

// pod creates a ServiceAccount, a pod bound to the node (labelled app=web)
// and a Service selecting it, in namespace.
func (e *env) pod(namespace, serviceAccount, name string) *corev1.Pod {
	e.t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: serviceAccount}}
	if err := e.c.Create(e.ctx, sa); err != nil && !strings.Contains(err.Error(), "already exists") {
		e.t.Fatal(err)
	}
	_ = e.c.Get(e.ctx, client.ObjectKeyFromObject(sa), sa)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: e.node.Name, ServiceAccountName: serviceAccount,
			Containers: []corev1.Container{{Name: "c", Image: "example/web:1"}}}}
	e.create(p)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 443}}}}
	if err := e.c.Create(e.ctx, svc); err != nil && !strings.Contains(err.Error(), "already exists") {
		e.t.Fatal(err)
	}
	return p
}

func stubCSR(t *testing.T, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// request creates the PodCertificateRequest a kubelet would for pod.
func (e *env) request(p *corev1.Pod, signerName string, key crypto.Signer, maxSeconds int32, annotations map[string]string) *certv1.PodCertificateRequest {
	e.t.Helper()
	var sa corev1.ServiceAccount
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: p.Namespace, Name: p.Spec.ServiceAccountName}, &sa); err != nil {
		e.t.Fatal(err)
	}
	pcr := &certv1.PodCertificateRequest{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, GenerateName: p.Name + "-"},
		Spec: certv1.PodCertificateRequestSpec{SignerName: signerName, PodName: p.Name, PodUID: p.UID,
			ServiceAccountName: sa.Name, ServiceAccountUID: sa.UID, NodeName: "node-1", NodeUID: e.node.UID,
			MaxExpirationSeconds: ptr.To(maxSeconds), StubPKCS10Request: stubCSR(e.t, key), UnverifiedUserAnnotations: annotations}}
	e.create(pcr)
	return pcr
}

// decided waits for the request's terminal condition.
func (e *env) decided(pcr *certv1.PodCertificateRequest) (*certv1.PodCertificateRequest, metav1.Condition) {
	e.t.Helper()
	var got certv1.PodCertificateRequest
	var cond metav1.Condition
	kenvtest.WaitFor(e.t, "a decision on "+pcr.Name, func() bool {
		if e.c.Get(e.ctx, client.ObjectKeyFromObject(pcr), &got) != nil {
			return false
		}
		for _, c := range got.Status.Conditions {
			if c.Status == metav1.ConditionTrue && (c.Type == "Issued" || c.Type == "Denied" || c.Type == "Failed") {
				cond = c
				return true
			}
		}
		return false
	})
	return &got, cond
}

func leafOf(t *testing.T, chain string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode([]byte(chain))
	if b == nil {
		t.Fatalf("no certificate in %q", chain)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPodCertificateIssued: a pod in a selected namespace, as an allowed
// ServiceAccount, behind a Service, gets a certificate for its key naming
// the Service and its SPIFFE ID, with the lifetime clamped to the policy and
// a refresh point inside the API server's window; the signer is Ready and
// publishes a ClusterTrustBundle linked to its name.
func TestPodCertificateIssued(t *testing.T) {
	e := start(t)
	e.create(policy("web", nil))
	p := e.pod("apps", "web", "web-0")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pcr, cond := e.decided(e.request(p, "acme.kacme.io/web", key, 86400, nil))
	if cond.Type != "Issued" {
		t.Fatalf("condition %+v, want Issued", cond)
	}
	leaf := leafOf(t, pcr.Status.CertificateChain)
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatal("certificate for another key")
	}
	wantDNS := []string{"web.apps.svc", "web.apps.svc.cluster.local"}
	if !slices.Equal(leaf.DNSNames, wantDNS) || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.example/ns/apps/sa/web" {
		t.Fatalf("names %v %v, want %v and the SPIFFE ID", leaf.DNSNames, leaf.URIs, wantDNS)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life != 2*time.Hour {
		t.Fatalf("lifetime %s, want the policy's 2h (the request allowed 24h)", life)
	}
	if r := pcr.Status.BeginRefreshAt.Time; r.Before(leaf.NotBefore.Add(10*time.Minute)) || r.After(leaf.NotAfter.Add(-10*time.Minute)) {
		t.Fatalf("beginRefreshAt %s outside the API server's window", r)
	}
	var ca v1alpha1.CertificateAuthority
	if err := e.c.Get(e.ctx, client.ObjectKey{Name: "root"}, &ca); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM([]byte(ca.Status.Chain))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "web.apps.svc", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("the certificate does not verify against the CA: %v", err)
	}
	kenvtest.WaitFor(t, "the signer Ready and its linked ClusterTrustBundle", func() bool {
		var s v1alpha1.KubernetesSigner
		var ctb certv1.ClusterTrustBundle
		return e.c.Get(e.ctx, client.ObjectKey{Name: "web"}, &s) == nil && meta.IsStatusConditionTrue(s.Status.Conditions, "Ready") &&
			s.Status.SignerName == "acme.kacme.io/web" &&
			e.c.Get(e.ctx, client.ObjectKey{Name: "acme.kacme.io:web:root"}, &ctb) == nil && ctb.Spec.SignerName == "acme.kacme.io/web" &&
			strings.Contains(ca.Status.Chain, strings.TrimSpace(ctb.Spec.TrustBundle))
	})
}

// TestPodCertificateDenied: each thing the policy refuses is a Denied
// condition whose reason says which.
func TestPodCertificateDenied(t *testing.T) {
	e := start(t)
	e.create(policy("web", nil))
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 3072)
	inApps := e.pod("apps", "web", "web-0")
	otherSA := e.pod("apps", "batch", "batch-0")
	inOther := e.pod("other", "web", "web-0")
	for _, c := range []struct {
		name, reason string
		pcr          *certv1.PodCertificateRequest
	}{
		{"namespace not selected", signer.ReasonNamespaceNotAllowed, e.request(inOther, "acme.kacme.io/web", ec, 3600, nil)},
		{"ServiceAccount not listed", signer.ReasonServiceAccountDenied, e.request(otherSA, "acme.kacme.io/web", ec, 3600, nil)},
		{"unknown user annotation", signer.ReasonUnknownAnnotation, e.request(inApps, "acme.kacme.io/web", ec, 3600, map[string]string{"example.com/role": "admin"})},
		{"key type not allowed", signer.ReasonUnsupportedKeyType, e.request(inApps, "acme.kacme.io/web", rsaKey, 3600, nil)},
		{"no such signer", signer.ReasonUnknownSigner, e.request(inApps, "acme.kacme.io/nope", ec, 3600, nil)},
	} {
		pcr, cond := e.decided(c.pcr)
		if cond.Type != "Denied" || cond.Reason != c.reason || cond.Message == "" || pcr.Status.CertificateChain != "" {
			t.Errorf("%s: condition %+v, want Denied with reason %s", c.name, cond, c.reason)
		}
	}
	// A request naming a pod that is not the one on the node (another UID).
	forged := e.request(inApps, "acme.kacme.io/web", ec, 3600, nil)
	_ = forged
	other := &certv1.PodCertificateRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "forged"}, Spec: forged.Spec}
	other.Spec.PodUID = "00000000-0000-0000-0000-000000000000"
	e.create(other)
	if _, cond := e.decided(other); cond.Type != "Denied" || cond.Reason != signer.ReasonPodMismatch {
		t.Errorf("another pod's UID: condition %+v, want Denied PodMismatch", cond)
	}
}

// TestCSRSigner: a request from an allowed ServiceAccount is left alone
// until approved, then signed with the names it asked for that the policy
// gives it; one asking for another name fails; in approver mode, kacme
// approves what it would sign and denies the rest.
func TestCSRSigner(t *testing.T) {
	e := start(t)
	e.create(policy("web", nil), policy("auto", func(s *v1alpha1.KubernetesSignerSpec) { s.CertificateSigningRequests.Approve = true }))
	e.pod("apps", "web", "web-0")
	// The ServiceAccount may create CSRs; its client impersonates it.
	e.create(&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "csr-creator"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"create", "get"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "csr-creator"},
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "csr-creator"},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "apps", Name: "web"}}})
	saCfg := rest.CopyConfig(e.admin)
	saCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:apps:web"}
	asSA, err := client.New(saCfg, client.Options{Scheme: kenvtest.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spiffe, _ := url.Parse("spiffe://cluster.example/ns/apps/sa/web")
	newCSR := func(name, signerName string, dns ...string) *certv1.CertificateSigningRequest {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: dns, URIs: []*url.URL{spiffe}}, key)
		if err != nil {
			t.Fatal(err)
		}
		csr := &certv1.CertificateSigningRequest{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: certv1.CertificateSigningRequestSpec{SignerName: signerName,
				Request: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
				Usages:  []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageServerAuth}}}
		if err := asSA.Create(e.ctx, csr); err != nil {
			t.Fatal(err)
		}
		return csr
	}
	get := func(csr *certv1.CertificateSigningRequest) *certv1.CertificateSigningRequest {
		var got certv1.CertificateSigningRequest
		if err := e.c.Get(e.ctx, client.ObjectKeyFromObject(csr), &got); err != nil {
			t.Fatal(err)
		}
		return &got
	}
	condition := func(csr *certv1.CertificateSigningRequest, typ certv1.RequestConditionType) *certv1.CertificateSigningRequestCondition {
		for i, c := range csr.Status.Conditions {
			if c.Type == typ {
				return &csr.Status.Conditions[i]
			}
		}
		return nil
	}
	good := newCSR("good", "acme.kacme.io/web", "web.apps.svc")
	bad := newCSR("bad", "acme.kacme.io/web", "db.apps.svc")
	time.Sleep(2 * time.Second)
	if g := get(good); len(g.Status.Certificate) > 0 || len(g.Status.Conditions) > 0 {
		t.Fatalf("an unapproved request was touched: %+v", g.Status)
	}
	for _, csr := range []*certv1.CertificateSigningRequest{good, bad} { // a human approves both
		csr = get(csr)
		csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{Type: certv1.CertificateApproved,
			Status: corev1.ConditionTrue, Reason: "Test", Message: "approved by the test"})
		if err := e.c.SubResource("approval").Update(e.ctx, csr); err != nil {
			t.Fatal(err)
		}
	}
	kenvtest.WaitFor(t, "the approved request signed", func() bool { return len(get(good).Status.Certificate) > 0 })
	leaf := leafOf(t, string(get(good).Status.Certificate))
	if !slices.Equal(leaf.DNSNames, []string{"web.apps.svc"}) || len(leaf.URIs) != 1 || leaf.URIs[0].String() != spiffe.String() {
		t.Fatalf("signed names %v %v", leaf.DNSNames, leaf.URIs)
	}
	kenvtest.WaitFor(t, "the request for another Service's name failed", func() bool {
		c := condition(get(bad), certv1.CertificateFailed)
		return c != nil && c.Reason == signer.ReasonIdentityNotAllowed
	})
	// Approver mode (signer "auto" is policy() with approve on).
	autoGood := newCSR("auto-good", "acme.kacme.io/auto", "web.apps.svc.cluster.local")
	autoBad := newCSR("auto-bad", "acme.kacme.io/auto", "db.apps.svc")
	kenvtest.WaitFor(t, "approver mode: approved and signed within the policy, denied outside it", func() bool {
		g, b := get(autoGood), get(autoBad)
		d := condition(b, certv1.CertificateDenied)
		return condition(g, certv1.CertificateApproved) != nil && len(g.Status.Certificate) > 0 &&
			d != nil && d.Reason == signer.ReasonIdentityNotAllowed && condition(b, certv1.CertificateApproved) == nil
	})
}

// TestClusterTrustBundleRotation: every Ready CA has an unlinked
// ClusterTrustBundle and every signer one linked to its name; when the
// root is replaced, both carry the new root and the previous one (until it
// expires), and they are owned by the CA and the signer.
func TestClusterTrustBundleRotation(t *testing.T) {
	e := start(t)
	e.create(policy("web", nil))
	bundle := func(name string) (certv1.ClusterTrustBundle, bool) {
		var ctb certv1.ClusterTrustBundle
		return ctb, e.c.Get(e.ctx, client.ObjectKey{Name: name}, &ctb) == nil
	}
	var rootSecret corev1.Secret
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: ns, Name: "root-ca"}, &rootSecret); err != nil {
		t.Fatal(err)
	}
	oldRoot := string(rootSecret.Data["tls.crt"])
	kenvtest.WaitFor(t, "the unlinked and the linked bundle", func() bool {
		u, ok1 := bundle("kacme-root")
		l, ok2 := bundle("acme.kacme.io:web:root")
		return ok1 && ok2 && u.Spec.TrustBundle == oldRoot && l.Spec.TrustBundle == oldRoot && u.Spec.SignerName == "" &&
			l.Spec.SignerName == "acme.kacme.io/web"
	})
	u, _ := bundle("kacme-root")
	l, _ := bundle("acme.kacme.io:web:root")
	if len(u.OwnerReferences) != 1 || u.OwnerReferences[0].Kind != "CertificateAuthority" ||
		len(l.OwnerReferences) != 1 || l.OwnerReferences[0].Kind != "KubernetesSigner" {
		t.Fatalf("owners: %+v, %+v", u.OwnerReferences, l.OwnerReferences)
	}
	if err := e.c.Delete(e.ctx, &rootSecret); err != nil { // the root gets a new key
		t.Fatal(err)
	}
	var newRoot string
	kenvtest.WaitFor(t, "a new root", func() bool {
		var sec corev1.Secret
		if e.c.Get(e.ctx, client.ObjectKey{Namespace: ns, Name: "root-ca"}, &sec) != nil || string(sec.Data["tls.crt"]) == oldRoot {
			return false
		}
		newRoot = string(sec.Data["tls.crt"])
		return true
	})
	kenvtest.WaitFor(t, "both bundles to carry the new root and the previous one", func() bool {
		u, _ := bundle("kacme-root")
		l, _ := bundle("acme.kacme.io:web:root")
		return u.Spec.TrustBundle == newRoot+oldRoot && l.Spec.TrustBundle == newRoot+oldRoot
	})
}

// TestPodCertificateAPINotServed: on a cluster that does not serve
// PodCertificateRequests, the controller starts, every signer says so in
// its PodCertificateRequests condition and an Event, and the rest (Ready,
// the trust bundles) works.
func TestPodCertificateAPINotServed(t *testing.T) {
	cfg, c := kenvtest.StartWithAPIServerFlags(t, map[string]string{"runtime-config": "certificates.k8s.io/v1/podcertificaterequests=false"})
	kenvtest.StartManager(t, cfg, c, ns, func(mgr ctrl.Manager) error {
		rec := mgr.GetEventRecorder("kacme-controller")
		if err := (&certificateauthority.Reconciler{Client: mgr.GetClient(), Namespace: ns, Recorder: rec}).SetupWithManager(mgr); err != nil {
			return err
		}
		return signer.Setup(mgr, &signer.Signer{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: ns, Recorder: rec}, logr.Discard())
	})
	ctx := context.Background()
	for _, o := range []client.Object{&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}}, policy("web", nil)} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	kenvtest.WaitFor(t, "the signer to say PodCertificateRequests are not served, and be Ready", func() bool {
		var s v1alpha1.KubernetesSigner
		if c.Get(ctx, client.ObjectKey{Name: "web"}, &s) != nil {
			return false
		}
		pods := meta.FindStatusCondition(s.Status.Conditions, signer.ConditionPodCertificates)
		return pods != nil && pods.Status == metav1.ConditionFalse && pods.Reason == signer.ReasonAPINotServed &&
			meta.IsStatusConditionTrue(s.Status.Conditions, "Ready")
	})
	kenvtest.WaitFor(t, "an Event saying so", func() bool {
		var evs eventsv1.EventList
		if c.List(ctx, &evs) != nil {
			return false
		}
		for _, ev := range evs.Items {
			if ev.Regarding.Name == "web" && ev.Reason == signer.ReasonAPINotServed {
				return true
			}
		}
		return false
	})
	kenvtest.WaitFor(t, "the ClusterTrustBundles anyway", func() bool {
		return c.Get(ctx, client.ObjectKey{Name: "acme.kacme.io:web:root"}, &certv1.ClusterTrustBundle{}) == nil
	})
}
