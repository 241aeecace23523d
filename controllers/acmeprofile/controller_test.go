package acmeprofile_test

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/acmeprofile"
	"github.com/kacme/kacme/controllers/certificateauthority"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

const ns = "kacme-system"

func waitReason(t *testing.T, c client.Client, name, reason string) *v1alpha1.AcmeProfile {
	t.Helper()
	var obj v1alpha1.AcmeProfile
	kenvtest.WaitFor(t, name+" "+reason, func() bool {
		if err := c.Get(context.Background(), client.ObjectKey{Name: name}, &obj); err != nil {
			return false
		}
		cond := meta.FindStatusCondition(obj.Status.Conditions, acmeprofile.ConditionReady)
		return cond != nil && cond.Reason == reason
	})
	return &obj
}

func TestController(t *testing.T) {
	cfg, c := kenvtest.Start(t)
	ctx := context.Background()
	kenvtest.StartManager(t, cfg, c, ns, func(mgr ctrl.Manager) error {
		rec := mgr.GetEventRecorder("kacme-controller")
		if err := (&certificateauthority.Reconciler{Client: mgr.GetClient(), Namespace: ns, Recorder: rec}).SetupWithManager(mgr); err != nil {
			return err
		}
		return (&acmeprofile.Reconciler{Client: mgr.GetClient(), Namespace: ns, Recorder: rec,
			ExternalURL: "https://acme.kacme-system.svc"}).SetupWithManager(mgr)
	})

	create := func(obj client.Object) {
		t.Helper()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	// A profile whose CA does not exist yet is not ready; it becomes ready with the CA.
	create(&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "issuing"}})
	waitReason(t, c, "default", acmeprofile.ReasonCertificateAuthorityMissing)
	create(&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "issuing"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}})
	p := waitReason(t, c, "default", acmeprofile.ReasonReady)
	if p.Status.DirectoryURL != "https://acme.kacme-system.svc/acme/default/directory" {
		t.Fatalf("directory URL %q", p.Status.DirectoryURL)
	}
	// A spec the schema accepts but the server would refuse is reported, not retried.
	create(&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "badcidr"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "issuing",
		Identifiers: v1alpha1.IdentifierPolicy{AllowedCIDRs: []string{"10.0.0.0/33"}}}})
	bad := waitReason(t, c, "badcidr", acmeprofile.ReasonInvalidSpec)
	if cond := meta.FindStatusCondition(bad.Status.Conditions, acmeprofile.ConditionReady); cond.Status != metav1.ConditionFalse || bad.Status.DirectoryURL != "" {
		t.Fatalf("invalid profile status: %+v", bad.Status)
	}
	// spec.directoryPath names the directory; a path another profile serves is refused until it is free.
	create(&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "internal-v2"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "issuing",
		DirectoryPath: "internal"}})
	v2 := waitReason(t, c, "internal-v2", acmeprofile.ReasonReady)
	if v2.Status.DirectoryURL != "https://acme.kacme-system.svc/acme/internal/directory" {
		t.Fatalf("directory URL with directoryPath: %q", v2.Status.DirectoryURL)
	}
	create(&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "internal-v3"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "issuing",
		DirectoryPath: "internal"}})
	v3 := waitReason(t, c, "internal-v3", acmeprofile.ReasonInvalidSpec)
	if cond := meta.FindStatusCondition(v3.Status.Conditions, acmeprofile.ConditionReady); cond.Message != `spec.directoryPath: "internal" is already served by AcmeProfile "internal-v2"` {
		t.Fatalf("path conflict message: %q", cond.Message)
	}
	if err := c.Delete(ctx, v2); err != nil {
		t.Fatal(err)
	}
	waitReason(t, c, "internal-v3", acmeprofile.ReasonReady)
}
