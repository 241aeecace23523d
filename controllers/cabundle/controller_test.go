package cabundle_test

import (
	"context"
	"testing"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/cabundle"
	"github.com/kacme/kacme/controllers/certificateauthority"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

const operatorNS = "kacme-system"

func acmeSpec() cmapi.IssuerSpec {
	return cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{ACME: &cmacme.ACMEIssuer{
		Server:                      "https://kacme.kacme-system.svc/acme/default/directory",
		PrivateKey:                  cmmeta.SecretKeySelector{LocalObjectReference: cmmeta.LocalObjectReference{Name: "acme-key"}},
		Solvers:                     []cmacme.ACMEChallengeSolver{},
		DisableAccountKeyGeneration: false,
	}}}
}

// TestInjectCABundle: annotated Issuers and ClusterIssuers get the root of
// their profile's CA, plus the root of the CA of the server's HTTPS
// certificate, as spec.acme.caBundle and follow a change of the profile's CA; an issuer without the annotation is left alone; a missing
// profile is a Warning Event on the issuer.
func TestInjectCABundle(t *testing.T) {
	cfg, c := kenvtest.Start(t, kenvtest.CertManagerCRDs(t))
	ctx := context.Background()
	kenvtest.StartManager(t, cfg, c, operatorNS, func(mgr ctrl.Manager) error {
		if !cabundle.Installed(mgr) {
			t.Error("cabundle.Installed: cert-manager's CRDs are installed but not seen")
		}
		rec := mgr.GetEventRecorder("kacme-controller")
		if err := (&certificateauthority.Reconciler{Client: mgr.GetClient(), Namespace: operatorNS, Recorder: rec}).SetupWithManager(mgr); err != nil {
			return err
		}
		return cabundle.SetupWhenInstalled(mgr, cabundle.Reconciler{Client: mgr.GetClient(), Recorder: rec, ServingCA: "serving"}, time.Hour, logr.Discard())
	})
	annotated := func(profile string) map[string]string {
		return map[string]string{v1alpha1.AnnotationInjectCAFromProfile: profile}
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "issuing"},
			Spec: v1alpha1.CertificateAuthoritySpec{Intermediate: &v1alpha1.IntermediateCA{Issuer: "root"}}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "other-root"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "serving"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"},
			Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "issuing"}},
		&cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "kacme", Annotations: annotated("default")}, Spec: acmeSpec()},
		&cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "kacme", Annotations: annotated("default")}, Spec: acmeSpec()},
		&cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "plain"}, Spec: acmeSpec()},
		&cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "typo", Annotations: annotated("nope")}, Spec: acmeSpec()},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	secretCert := func(name string) string {
		var s corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: name}, &s); err != nil {
			return ""
		}
		return string(s.Data["tls.crt"])
	}
	bundles := func() (cluster, namespaced, plain string) {
		var ci cmapi.ClusterIssuer
		var is, ps cmapi.Issuer
		if c.Get(ctx, client.ObjectKey{Name: "kacme"}, &ci) != nil ||
			c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "kacme"}, &is) != nil ||
			c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "plain"}, &ps) != nil {
			return "", "", ""
		}
		return string(ci.Spec.ACME.CABundle), string(is.Spec.ACME.CABundle), string(ps.Spec.ACME.CABundle)
	}
	kenvtest.WaitFor(t, "both annotated issuers to carry the root of the profile's CA and the serving CA's", func() bool {
		want := secretCert("root-ca") + secretCert("serving-ca")
		ci, is, _ := bundles()
		return secretCert("root-ca") != "" && secretCert("serving-ca") != "" && ci == want && is == want
	})
	if _, _, plain := bundles(); plain != "" {
		t.Fatalf("an issuer without the annotation got a caBundle:\n%s", plain)
	}
	kenvtest.WaitFor(t, "a ProfileNotFound Warning on the issuer naming a missing profile", func() bool {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace("team-a")); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "typo" && e.Reason == cabundle.ReasonProfileNotFound && e.Type == corev1.EventTypeWarning {
				return true
			}
		}
		return false
	})
	// The profile moves to another CA: the bundles follow.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var p v1alpha1.AcmeProfile
		if err := c.Get(ctx, client.ObjectKey{Name: "default"}, &p); err != nil {
			return err
		}
		p.Spec.CertificateAuthority = "other-root"
		return c.Update(ctx, &p)
	})
	if err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the issuers to follow the profile's new CA", func() bool {
		want := secretCert("other-root-ca") + secretCert("serving-ca")
		ci, is, _ := bundles()
		return secretCert("other-root-ca") != "" && ci == want && is == want
	})
}

// TestInjectAfterCertManagerInstalled: cert-manager's CRDs arrive after the
// controller started; injection starts by itself.
func TestInjectAfterCertManagerInstalled(t *testing.T) {
	cfg, c := kenvtest.Start(t)
	ctx := context.Background()
	kenvtest.StartManager(t, cfg, c, operatorNS, func(mgr ctrl.Manager) error {
		rec := mgr.GetEventRecorder("kacme-controller")
		if err := (&certificateauthority.Reconciler{Client: mgr.GetClient(), Namespace: operatorNS, Recorder: rec}).SetupWithManager(mgr); err != nil {
			return err
		}
		if cabundle.Installed(mgr) {
			t.Error("cabundle.Installed before cert-manager's CRDs are")
		}
		return cabundle.SetupWhenInstalled(mgr, cabundle.Reconciler{Client: mgr.GetClient(), Recorder: rec}, 200*time.Millisecond, logr.Discard())
	})
	for _, o := range []client.Object{
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"},
			Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root"}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // the controller has looked (and not found cert-manager) a few times
	if _, err := crenvtest.InstallCRDs(cfg, crenvtest.CRDInstallOptions{Paths: []string{kenvtest.CertManagerCRDs(t)}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &cmapi.ClusterIssuer{ObjectMeta: metav1.ObjectMeta{Name: "kacme",
		Annotations: map[string]string{v1alpha1.AnnotationInjectCAFromProfile: "default"}}, Spec: acmeSpec()}); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the ClusterIssuer to get the root", func() bool {
		var ci cmapi.ClusterIssuer
		var sec corev1.Secret
		return c.Get(ctx, client.ObjectKey{Name: "kacme"}, &ci) == nil &&
			c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: "root-ca"}, &sec) == nil &&
			len(ci.Spec.ACME.CABundle) > 0 && string(ci.Spec.ACME.CABundle) == string(sec.Data["tls.crt"])
	})
}
