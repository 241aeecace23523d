package retention_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/kube"
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
	mk := func(name string, expired time.Duration, create func(context.Context, client.Object) error) {
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
			if err := create(ctx, obj); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Through the client: as written before kacme labelled expiries.
	// Through the store: labelled with their expiry (v1alpha1.LabelExpires).
	legacy := func(ctx context.Context, obj client.Object) error { return c.Create(ctx, obj) }
	st := kube.New(c, c)
	stamped := func(ctx context.Context, obj client.Object) error { return st.Create(ctx, obj.(storage.Object)) }
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
	rec := &recorder{}
	kenvtest.StartManager(t, cfg, c, ns, func(mgr ctrl.Manager) error {
		mk("expired-long-ago", 3*time.Hour, legacy)
		mk("stamped-long-ago", 3*time.Hour, stamped)
		mkPre("pre-long-ago", 3*time.Hour)
		mkPre("pre-recently", 10*time.Minute)
		mk("expired-recently", 10*time.Minute, legacy)
		mk("stamped-recently", 10*time.Minute, stamped)
		for i := range 20 { // labelled and far from expiry: never read by a sweep
			mk(fmt.Sprintf("fresh%d", i), -time.Duration(i+1)*time.Hour, stamped)
		}
		mkCert("0a", 24*time.Hour) // valid
		mkCert("0b", -time.Hour)   // expired within the certificate retention
		mkCert("0c", -3*time.Hour) // expired beyond it
		if err := c.Create(ctx, &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "a",
			Labels: map[string]string{v1alpha1.LabelProfile: "short"}}, Spec: v1alpha1.AcmeAccountSpec{Profile: "short", Deactivated: true}}); err != nil {
			return err
		}
		return mgr.Add(&retention.Sweeper{Client: mgr.GetClient(), APIReader: rec.with(mgr.GetAPIReader()), Interval: 200 * time.Millisecond})
	})
	gone := func(obj client.Object, name string) bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj) != nil
	}
	kenvtest.WaitFor(t, "the long-expired order, its authorization and the long-expired certificate to be deleted", func() bool {
		return gone(&v1alpha1.AcmeOrder{}, "expired-long-ago") && gone(&v1alpha1.AcmeChallenge{}, "expired-long-ago-az") &&
			gone(&v1alpha1.AcmeOrder{}, "stamped-long-ago") && gone(&v1alpha1.AcmeChallenge{}, "stamped-long-ago-az") &&
			gone(&v1alpha1.AcmeCertificate{}, "0c") && gone(&v1alpha1.AcmeChallenge{}, "pre-long-ago")
	})
	time.Sleep(500 * time.Millisecond) // a few more sweeps
	if gone(&v1alpha1.AcmeOrder{}, "expired-recently") || gone(&v1alpha1.AcmeChallenge{}, "expired-recently-az") ||
		gone(&v1alpha1.AcmeOrder{}, "stamped-recently") || gone(&v1alpha1.AcmeChallenge{}, "stamped-recently-az") ||
		gone(&v1alpha1.AcmeChallenge{}, "pre-recently") {
		t.Fatal("an order within its retention was deleted")
	}
	if gone(&v1alpha1.AcmeCertificate{}, "0a") || gone(&v1alpha1.AcmeCertificate{}, "0b") {
		t.Fatal("a certificate within its retention was deleted")
	}
	if gone(&v1alpha1.AcmeAccount{}, "a") {
		t.Fatal("the deactivated account was deleted")
	}

	// The API server selected for the sweeps: the labelled orders far from
	// their expiry never reached the controller.
	if n := rec.listed("fresh"); n > 0 {
		t.Fatalf("the sweeps read %d orders or authorizations labelled to expire hours from now", n)
	}
	if rec.listed("expired-recently") == 0 {
		t.Fatal("the recorder saw nothing: the test checks nothing")
	}
}

// recorder counts, by name prefix, the objects a reader's Lists return.
type recorder struct {
	mu    sync.Mutex
	names map[string]int
}

func (r *recorder) with(rd client.Reader) client.Reader { return recordingReader{rd, r} }

func (r *recorder) listed(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for name, c := range r.names {
		if strings.HasPrefix(name, prefix) {
			n += c
		}
	}
	return n
}

type recordingReader struct {
	client.Reader
	r *recorder
}

func (rr recordingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	err := rr.Reader.List(ctx, list, opts...)
	_ = meta.EachListItem(list, func(o runtime.Object) error {
		if m, ok := o.(metav1.Object); ok {
			rr.r.mu.Lock()
			if rr.r.names == nil {
				rr.r.names = map[string]int{}
			}
			rr.r.names[m.GetName()]++
			rr.r.mu.Unlock()
		}
		return nil
	})
	return err
}
