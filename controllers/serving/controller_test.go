package serving_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/certificateauthority"
	"github.com/kacme/kacme/controllers/serving"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

const operatorNS = "kacme-system"

// TestServingCertificate: the controller issues the server's HTTPS
// certificate from the named CA into a TLS Secret for the wanted names,
// recreates a deleted Secret, and issues again when the certificate is due
// or the names change — and not before.
func TestServingCertificate(t *testing.T) {
	cfg, c := kenvtest.Start(t)
	ctx := context.Background()
	newReconciler := func(c client.Client, secret string) *serving.Reconciler {
		return &serving.Reconciler{Client: c, Namespace: operatorNS, SecretName: secret, CAName: "serving",
			ExternalURL: "https://kacme.kacme-system.svc", DNSNames: []string{"kacme.kacme-system.svc.cluster.local"}}
	}
	var live *serving.Reconciler
	kenvtest.StartManager(t, cfg, c, operatorNS, func(mgr ctrl.Manager) error {
		rec := mgr.GetEventRecorder("kacme-controller")
		if err := (&certificateauthority.Reconciler{Client: mgr.GetClient(), Namespace: operatorNS, Recorder: rec}).SetupWithManager(mgr); err != nil {
			return err
		}
		live = newReconciler(mgr.GetClient(), "kacme-serving-tls")
		live.Recorder = rec
		return live.SetupWithManager(mgr)
	})
	if err := c.Create(ctx, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "serving"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}}); err != nil {
		t.Fatal(err)
	}
	leaf := func(name string) *x509.Certificate {
		var sec corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: name}, &sec); err != nil {
			return nil
		}
		pair, err := tls.X509KeyPair(sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			t.Fatalf("Secret holds no usable key pair: %v", err)
		}
		roots := x509.NewCertPool()
		if sec.Type != corev1.SecretTypeTLS || !roots.AppendCertsFromPEM(sec.Data["ca.crt"]) {
			t.Fatalf("Secret type %q, ca.crt %q", sec.Type, sec.Data["ca.crt"])
		}
		l, _ := x509.ParseCertificate(pair.Certificate[0])
		if _, err := l.Verify(x509.VerifyOptions{Roots: roots, DNSName: "kacme.kacme-system.svc"}); err != nil {
			t.Fatalf("serving certificate does not verify against ca.crt for the Service name: %v", err)
		}
		return l
	}
	var first *x509.Certificate
	kenvtest.WaitFor(t, "the serving certificate Secret", func() bool { first = leaf("kacme-serving-tls"); return first != nil })
	if want := []string{"kacme.kacme-system.svc", "kacme.kacme-system.svc.cluster.local", "localhost"}; !slices.Equal(first.DNSNames, want) {
		t.Fatalf("names %v, want %v", first.DNSNames, want)
	}
	// The CA owns the Secret: the garbage collector removes it with the
	// chart's serving CA at helm uninstall.
	var servingCA v1alpha1.CertificateAuthority
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Name: "serving"}, &servingCA); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: "kacme-serving-tls"}, &sec); err != nil {
		t.Fatal(err)
	}
	if len(sec.OwnerReferences) != 1 || sec.OwnerReferences[0].UID != servingCA.UID {
		t.Fatalf("serving Secret owners = %+v, want the CertificateAuthority serving", sec.OwnerReferences)
	}
	// A Secret written without an owner (by an older kacme) gets one.
	sec.OwnerReferences = nil
	if err := c.Update(ctx, &sec); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the serving Secret to get its owner back", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: "kacme-serving-tls"}, &sec) == nil && len(sec.OwnerReferences) == 1
	})

	// A second reconciler, called directly with its own clock and names, on its own Secret.
	direct := newReconciler(c, "direct-tls")
	direct.Recorder = live.Recorder
	req := ctrl.Request{NamespacedName: client.ObjectKey{Name: "serving"}}
	if _, err := direct.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	first = leaf("direct-tls")
	// Not due: a reconcile keeps it, and comes back when it is due.
	res, err := direct.Reconcile(ctx, req)
	if err != nil || !leaf("direct-tls").Equal(first) || res.RequeueAfter < 19*24*time.Hour {
		t.Fatalf("reissued before due (err %v, requeue %v)", err, res.RequeueAfter)
	}
	// Due: two thirds of its life have passed.
	direct.Now = func() time.Time { return first.NotBefore.Add(first.NotAfter.Sub(first.NotBefore)*2/3 + time.Minute) }
	if _, err := direct.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	second := leaf("direct-tls")
	if second.Equal(first) {
		t.Fatal("not reissued when due")
	}
	// Other names: reissued with them.
	direct.Now = nil
	direct.DNSNames = []string{"acme.example.com"}
	if _, err := direct.Reconcile(ctx, req); err != nil {
		t.Fatal(err)
	}
	if third := leaf("direct-tls"); third.Equal(second) || !slices.Contains(third.DNSNames, "acme.example.com") {
		t.Fatalf("not reissued for new names: %v", third.DNSNames)
	}
	// Deleted: the running controller puts it back.
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: "kacme-serving-tls"}}); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the Secret to be recreated", func() bool { return leaf("kacme-serving-tls") != nil })
}
