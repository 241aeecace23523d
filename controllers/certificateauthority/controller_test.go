package certificateauthority_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/ca/kubeca"
	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/certificateauthority"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

const ns = "kacme-system"

func ready(t *testing.T, c client.Client, name string) (*v1alpha1.CertificateAuthority, *metav1.Condition) {
	t.Helper()
	var obj v1alpha1.CertificateAuthority
	if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &obj); err != nil {
		return nil, nil
	}
	return &obj, meta.FindStatusCondition(obj.Status.Conditions, certificateauthority.ConditionReady)
}

func waitReady(t *testing.T, c client.Client, name string, status metav1.ConditionStatus, reason string) *v1alpha1.CertificateAuthority {
	t.Helper()
	var obj *v1alpha1.CertificateAuthority
	kenvtest.WaitFor(t, name+" "+reason, func() bool {
		o, cond := ready(t, c, name)
		obj = o
		return cond != nil && cond.Status == status && cond.Reason == reason && cond.ObservedGeneration == o.Generation
	})
	return obj
}

// TestController runs the controller in a manager against a real API server.
func TestController(t *testing.T) {
	cfg, c := kenvtest.Start(t)
	ctx := context.Background()
	kenvtest.StartManager(t, cfg, c, ns, func(mgr ctrl.Manager) error {
		r := &certificateauthority.Reconciler{Client: mgr.GetClient(), Namespace: ns, Recorder: mgr.GetEventRecorder("kacme-controller")}
		return r.SetupWithManager(mgr)
	})

	// An intermediate whose issuer does not exist yet is not ready, with an Event.
	must(t, c.Create(ctx, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "issuing"},
		Spec: v1alpha1.CertificateAuthoritySpec{Intermediate: &v1alpha1.IntermediateCA{Issuer: "root"}}}))
	waitReady(t, c, "issuing", metav1.ConditionFalse, certificateauthority.ReasonIssuerNotReady)
	kenvtest.WaitFor(t, "IssuerNotReady event", func() bool {
		var evs eventsv1.EventList
		_ = c.List(ctx, &evs)
		for _, e := range evs.Items {
			if e.Reason == certificateauthority.ReasonIssuerNotReady && e.Regarding.Name == "issuing" {
				return true
			}
		}
		return false
	})
	// Creating the root makes both ready; the root's Secret holds its key and chain.
	must(t, c.Create(ctx, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{Subject: v1alpha1.CASubject{CommonName: "Test Root"}}}}))
	root := waitReady(t, c, "root", metav1.ConditionTrue, certificateauthority.ReasonReady)
	if root.Status.Subject != "CN=Test Root,O=kacme" || len(root.Status.FingerprintSHA256) != 64 || root.Status.NotAfter == nil {
		t.Fatalf("root status: %+v", root.Status)
	}
	var sec corev1.Secret
	must(t, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "root-ca"}, &sec))
	if sec.Type != corev1.SecretTypeTLS || len(sec.Data["tls.key"]) == 0 || len(sec.OwnerReferences) != 1 {
		t.Fatalf("root secret: type %s, owners %v", sec.Type, sec.OwnerReferences)
	}
	issuing := waitReady(t, c, "issuing", metav1.ConditionTrue, certificateauthority.ReasonReady)
	chain := parseChain(t, issuing.Status.Chain)
	if len(chain) != 2 || chain[0].CheckSignatureFrom(chain[1]) != nil || !strings.Contains(chain[1].Subject.String(), "Test Root") {
		t.Fatalf("intermediate chain: %d certificates", len(chain))
	}
	// An imported CA waits for its Secret, then becomes ready from it.
	must(t, c.Create(ctx, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "imported"},
		Spec: v1alpha1.CertificateAuthoritySpec{SecretRef: &v1alpha1.CASecretReference{Name: "ext"}}}))
	waitReady(t, c, "imported", metav1.ConditionFalse, certificateauthority.ReasonInvalidSecret)
	key, ext, _ := ca.GenerateSelfSigned("ext", v1alpha1.SelfSignedCA{})
	keyPEM, crtPEM, _ := ca.EncodePEM(key, ext)
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ext"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"tls.crt": crtPEM, "tls.key": keyPEM}}))
	imported := waitReady(t, c, "imported", metav1.ConditionTrue, certificateauthority.ReasonReady)
	if imported.Status.SerialNumber == "" {
		t.Fatalf("imported status: %+v", imported.Status)
	}
	// A Secret that is not a CA is reported, not crash-looped on.
	must(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "junk"},
		Data: map[string][]byte{"tls.crt": []byte("nope"), "tls.key": []byte("nope")}}))
	must(t, c.Create(ctx, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "junk"},
		Spec: v1alpha1.CertificateAuthoritySpec{SecretRef: &v1alpha1.CASecretReference{Name: "junk"}}}))
	// The cache may not have the Secret at the first reconcile ("does not exist"); the Secret's event requeues it.
	kenvtest.WaitFor(t, "the junk secret to be reported as not a CA", func() bool {
		_, cond := ready(t, c, "junk")
		return cond != nil && cond.Reason == certificateauthority.ReasonInvalidSecret && strings.Contains(cond.Message, "no PEM key")
	})
}

// TestRenewal drives Reconcile directly with a clock past the renewal point:
// the certificate is re-signed with the same key, once.
func TestRenewal(t *testing.T) {
	_, c := kenvtest.Start(t)
	ctx := context.Background()
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	now := time.Now()
	r := &certificateauthority.Reconciler{Client: c, Namespace: ns, Recorder: events.NewFakeRecorder(10), Now: func() time.Time { return now }}
	must(t, c.Create(ctx, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "short"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{Validity: &metav1.Duration{Duration: 48 * time.Hour}},
			RenewBefore: &metav1.Duration{Duration: 24 * time.Hour}}}))
	req := ctrl.Request{NamespacedName: client.ObjectKey{Name: "short"}}
	res, err := r.Reconcile(ctx, req)
	must(t, err)
	if res.RequeueAfter < 23*time.Hour || res.RequeueAfter > 24*time.Hour {
		t.Fatalf("requeue after %v, want about 24h (the renewal point)", res.RequeueAfter)
	}
	first := secretCert(t, c, "short-ca")
	_, err = r.Reconcile(ctx, req)
	must(t, err)
	if !secretCert(t, c, "short-ca").Equal(first) {
		t.Fatal("renewed before the renewal point")
	}
	now = now.Add(30 * time.Hour)
	_, err = r.Reconcile(ctx, req)
	must(t, err)
	renewed := secretCert(t, c, "short-ca")
	if renewed.Equal(first) || !renewed.NotAfter.After(first.NotAfter) || string(renewed.SubjectKeyId) != string(first.SubjectKeyId) {
		t.Fatalf("renewal: notAfter %v -> %v, same key %v", first.NotAfter, renewed.NotAfter, string(renewed.SubjectKeyId) == string(first.SubjectKeyId))
	}
	var obj v1alpha1.CertificateAuthority
	must(t, c.Get(ctx, req.NamespacedName, &obj))
	if !obj.Status.NotAfter.Time.Equal(renewed.NotAfter) {
		t.Fatalf("status notAfter %v, certificate %v", obj.Status.NotAfter, renewed.NotAfter)
	}
}

// TestRotation: with rotationPolicy Always, renewal generates a new key and
// a new root; the Secret keeps the old certificate and key as previous.crt
// and previous.key, the Event says Rotated, and the loaded CA carries the
// old one as Previous and names its key in CRL distribution points.
func TestRotation(t *testing.T) {
	_, c := kenvtest.Start(t)
	ctx := context.Background()
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	now := time.Now()
	rec := events.NewFakeRecorder(10)
	r := &certificateauthority.Reconciler{Client: c, Namespace: ns, Recorder: rec, Now: func() time.Time { return now }}
	obj := &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "rotating"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{Validity: &metav1.Duration{Duration: 48 * time.Hour}},
			RenewBefore: &metav1.Duration{Duration: 24 * time.Hour}, RotationPolicy: v1alpha1.RotationAlways,
			CRL: &v1alpha1.CRLSpec{DistributionPointURL: "https://acme.test/crl/rotating"}}}
	must(t, c.Create(ctx, obj))
	req := ctrl.Request{NamespacedName: client.ObjectKey{Name: "rotating"}}
	_, err := r.Reconcile(ctx, req)
	must(t, err)
	first := secretCert(t, c, "rotating-ca")
	now = now.Add(30 * time.Hour)
	_, err = r.Reconcile(ctx, req)
	must(t, err)
	rotated := secretCert(t, c, "rotating-ca")
	if rotated.Equal(first) || string(rotated.SubjectKeyId) == string(first.SubjectKeyId) {
		t.Fatal("renewal with rotationPolicy Always kept the key")
	}
	var sec corev1.Secret
	must(t, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rotating-ca"}, &sec))
	if prev := parseChain(t, string(sec.Data[ca.PreviousCertKey])); len(prev) == 0 || !prev[0].Equal(first) || len(sec.Data[ca.PreviousKeyKey]) == 0 {
		t.Fatal("the Secret does not keep the previous certificate and key")
	}
	if got := parseChain(t, string(sec.Data["ca.crt"])); len(got) != 1 || !got[0].Equal(rotated) {
		t.Fatal("ca.crt is not the new root")
	}
	must(t, c.Get(ctx, req.NamespacedName, obj))
	auth, err := kubeca.Load(ctx, c, ns, obj)
	must(t, err)
	if auth.Previous == nil || !auth.Previous.Cert.Equal(first) || !auth.CRLPerKey {
		t.Fatalf("loaded CA: previous %v, CRL per key %v", auth.Previous != nil, auth.CRLPerKey)
	}
	found := false
	for len(rec.Events) > 0 {
		found = found || strings.Contains(<-rec.Events, certificateauthority.ReasonRotated)
	}
	if !found {
		t.Fatal("no Rotated Event")
	}
	// A later renewal keeping the key (the policy changed) keeps previous.*.
	obj.Spec.RotationPolicy = v1alpha1.RotationNever
	must(t, c.Update(ctx, obj))
	now = now.Add(30 * time.Hour)
	_, err = r.Reconcile(ctx, req)
	must(t, err)
	must(t, c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rotating-ca"}, &sec))
	if cur := secretCert(t, c, "rotating-ca"); string(cur.SubjectKeyId) != string(rotated.SubjectKeyId) || len(sec.Data[ca.PreviousCertKey]) == 0 {
		t.Fatal("a same-key renewal changed the key or dropped previous.crt")
	}
}

// TestRenewBeforeTooLong: a renewBefore that would make every new
// certificate due at once is an invalid spec, not a renewal loop.
func TestRenewBeforeTooLong(t *testing.T) {
	_, c := kenvtest.Start(t)
	ctx := context.Background()
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	r := &certificateauthority.Reconciler{Client: c, Namespace: ns, Recorder: events.NewFakeRecorder(10)}
	must(t, c.Create(ctx, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "looping"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{Validity: &metav1.Duration{Duration: time.Hour}},
			RenewBefore: &metav1.Duration{Duration: time.Hour}, RotationPolicy: v1alpha1.RotationAlways}}))
	req := ctrl.Request{NamespacedName: client.ObjectKey{Name: "looping"}}
	for range 3 {
		_, err := r.Reconcile(ctx, req)
		must(t, err)
	}
	first := secretCert(t, c, "looping-ca")
	_, err := r.Reconcile(ctx, req)
	must(t, err)
	if !secretCert(t, c, "looping-ca").Equal(first) {
		t.Fatal("the CA was renewed again at once")
	}
	_, cond := ready(t, c, "looping")
	if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != certificateauthority.ReasonInvalidSpec ||
		!strings.Contains(cond.Message, "renewBefore") {
		t.Fatalf("Ready condition %+v, want False InvalidSpec about renewBefore", cond)
	}
}

func secretCert(t *testing.T, c client.Client, name string) *x509.Certificate {
	t.Helper()
	var sec corev1.Secret
	must(t, c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &sec))
	return parseChain(t, string(sec.Data["tls.crt"]))[0]
}

func parseChain(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		must(t, err)
		out = append(out, c)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
