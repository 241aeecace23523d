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
// expired orders and their authorizations, and nothing else.
func TestSweeper(t *testing.T) {
	cfg, c := kenvtest.Start(t)
	ctx := context.Background()
	const ns = "team-a"
	if err := c.Create(ctx, &v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "short"},
		Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root", Retention: &metav1.Duration{Duration: time.Hour}}}); err != nil {
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
	kenvtest.StartManager(t, cfg, c, ns, func(mgr ctrl.Manager) error {
		mk("expired-long-ago", 3*time.Hour)
		mk("expired-recently", 10*time.Minute)
		return mgr.Add(&retention.Sweeper{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Interval: 200 * time.Millisecond})
	})
	gone := func(obj client.Object, name string) bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj) != nil
	}
	kenvtest.WaitFor(t, "the long-expired order and its authorization to be deleted", func() bool {
		return gone(&v1alpha1.AcmeOrder{}, "expired-long-ago") && gone(&v1alpha1.AcmeChallenge{}, "expired-long-ago-az")
	})
	time.Sleep(500 * time.Millisecond) // a few more sweeps
	if gone(&v1alpha1.AcmeOrder{}, "expired-recently") || gone(&v1alpha1.AcmeChallenge{}, "expired-recently-az") {
		t.Fatal("an order within its retention was deleted")
	}
}
