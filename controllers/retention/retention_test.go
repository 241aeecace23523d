package retention_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/retention"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// TestSweeper: in the cluster, a profile's shortened retention deletes its
// expired orders and their authorizations, and its shortened certificate
// retention the certificates expired for longer, and nothing else: orders
// and certificates within their retention, and accounts (deactivated too),
// stay.
func TestSweeper(t *testing.T) {
	cfg, c := kenvtest.Start(t)
	ctx := context.Background()
	const ns = "team-a"
	if err := c.Create(ctx, &v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "short"},
		Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root", Retention: &metav1.Duration{Duration: time.Hour},
			CertificateRetention: &metav1.Duration{Duration: 2 * time.Hour}}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	mk := func(name string, expired time.Duration) {
		t.Helper()
		exp := metav1.NewTime(now.Add(-expired))
		az := &v1alpha1.AcmeChallenge{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-az",
			Labels: map[string]string{v1alpha1.LabelOrder: name, v1alpha1.LabelAccount: "a", v1alpha1.LabelProfile: "short"}},
			Spec:   v1alpha1.AcmeChallengeSpec{Account: "a", Order: name, Profile: "short", Identifier: v1alpha1.Identifier{Type: "dns", Value: "a.example"}},
			Status: v1alpha1.AcmeChallengeStatus{Status: "valid", Expires: exp, Challenges: []v1alpha1.AcmeChallengeState{}}}
		o := &v1alpha1.AcmeOrder{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{v1alpha1.LabelProfile: "short", v1alpha1.LabelAccount: "a"}},
			Spec: v1alpha1.AcmeOrderSpec{Account: "a", Profile: "short", IssuanceProfile: "default",
				Identifiers: []v1alpha1.Identifier{{Type: "dns", Value: "a.example"}}},
			Status: v1alpha1.AcmeOrderStatus{Status: "valid", Expires: exp, Authorizations: []string{az.Name}}}
		for _, obj := range []client.Object{az, o} {
			if err := c.Create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
	}
	mkCert := func(name string, notAfter time.Duration) {
		t.Helper()
		cert := &v1alpha1.AcmeCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{v1alpha1.LabelProfile: "short", v1alpha1.LabelAccount: "a", v1alpha1.LabelOrder: "expired-long-ago"}},
			Spec: v1alpha1.AcmeCertificateSpec{Account: "a", Order: "expired-long-ago", Profile: "short", IssuanceProfile: "default",
				CertificateAuthority: "root", Serial: name, Names: []string{"a.example"}, Chain: "-",
				NotBefore: metav1.NewTime(now.Add(-90 * 24 * time.Hour)), NotAfter: metav1.NewTime(now.Add(notAfter))}}
		if err := c.Create(ctx, cert); err != nil {
			t.Fatal(err)
		}
	}
	mkPre := func(name string, expired time.Duration) { // a pre-authorization (newAuthz): no order
		t.Helper()
		az := &v1alpha1.AcmeChallenge{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{v1alpha1.LabelOrder: "", v1alpha1.LabelAccount: "a", v1alpha1.LabelProfile: "short"}},
			Spec:   v1alpha1.AcmeChallengeSpec{Account: "a", Profile: "short", Identifier: v1alpha1.Identifier{Type: "dns", Value: "a.example"}},
			Status: v1alpha1.AcmeChallengeStatus{Status: "valid", Expires: metav1.NewTime(now.Add(-expired)), Challenges: []v1alpha1.AcmeChallengeState{}}}
		if err := c.Create(ctx, az); err != nil {
			t.Fatal(err)
		}
	}
	kenvtest.StartManager(t, cfg, c, ns, func(mgr ctrl.Manager) error {
		mk("expired-long-ago", 3*time.Hour)
		mkPre("pre-long-ago", 3*time.Hour)
		mkPre("pre-recently", 10*time.Minute)
		mk("expired-recently", 10*time.Minute)
		mkCert("0a", 24*time.Hour) // valid
		mkCert("0b", -time.Hour)   // expired within the certificate retention
		mkCert("0c", -3*time.Hour) // expired beyond it
		if err := c.Create(ctx, &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a",
			Labels: map[string]string{v1alpha1.LabelProfile: "short"}}, Spec: v1alpha1.AcmeAccountSpec{Profile: "short", Deactivated: true}}); err != nil {
			return err
		}
		return mgr.Add(&retention.Sweeper{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Interval: 200 * time.Millisecond})
	})
	gone := func(obj client.Object, name string) bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj) != nil
	}
	kenvtest.WaitFor(t, "the long-expired order, its authorization and the long-expired certificate to be deleted", func() bool {
		return gone(&v1alpha1.AcmeOrder{}, "expired-long-ago") && gone(&v1alpha1.AcmeChallenge{}, "expired-long-ago-az") &&
			gone(&v1alpha1.AcmeCertificate{}, "0c") && gone(&v1alpha1.AcmeChallenge{}, "pre-long-ago")
	})
	time.Sleep(500 * time.Millisecond) // a few more sweeps
	if gone(&v1alpha1.AcmeOrder{}, "expired-recently") || gone(&v1alpha1.AcmeChallenge{}, "expired-recently-az") ||
		gone(&v1alpha1.AcmeChallenge{}, "pre-recently") {
		t.Fatal("an order within its retention was deleted")
	}
	if gone(&v1alpha1.AcmeCertificate{}, "0a") || gone(&v1alpha1.AcmeCertificate{}, "0b") {
		t.Fatal("a certificate within its retention was deleted")
	}
	if gone(&v1alpha1.AcmeAccount{}, "a") {
		t.Fatal("the deactivated account was deleted")
	}
}
