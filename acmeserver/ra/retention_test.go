package ra_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestSweep: retention deletes exactly the orders (with their
// authorizations) that expired, order and authorizations alike, before the
// cutoff; it keeps younger ones, other profiles' and every certificate.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(d)) }
	mk := func(ns, name, profile string, orderExpires metav1.Time, authzExpires ...metav1.Time) {
		t.Helper()
		o := &v1alpha1.AcmeOrder{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			v1alpha1.LabelProfile: profile, v1alpha1.LabelAccount: "a"}},
			Spec:   v1alpha1.AcmeOrderSpec{Account: "a", Profile: profile},
			Status: v1alpha1.AcmeOrderStatus{Status: "valid", Expires: orderExpires}}
		for i, e := range authzExpires {
			az := &v1alpha1.AcmeChallenge{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-az" + string(rune('0'+i)),
				Labels: map[string]string{v1alpha1.LabelOrder: name, v1alpha1.LabelAccount: "a"}},
				Spec: v1alpha1.AcmeChallengeSpec{Account: "a", Order: name}, Status: v1alpha1.AcmeChallengeStatus{Status: "valid", Expires: e}}
			if err := store.Create(ctx, az); err != nil {
				t.Fatal(err)
			}
			o.Status.Authorizations = append(o.Status.Authorizations, az.Name)
		}
		if err := store.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	const retention = 24 * time.Hour
	mk("ns1", "old", "p", at(-48*time.Hour), at(-47*time.Hour), at(-30*time.Hour)) // deleted
	mk("ns2", "old-other-ns", "p", at(-48*time.Hour), at(-47*time.Hour))           // deleted
	mk("ns1", "young", "p", at(-2*time.Hour), at(-2*time.Hour))                    // kept: expired within retention
	mk("ns1", "authz-young", "p", at(-48*time.Hour), at(-12*time.Hour))            // kept: an authorization is young
	mk("ns1", "other-profile", "q", at(-48*time.Hour), at(-48*time.Hour))          // kept: another profile
	cert := &v1alpha1.AcmeCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "0a",
		Labels: map[string]string{v1alpha1.LabelOrder: "old", v1alpha1.LabelProfile: "p"}}, Spec: v1alpha1.AcmeCertificateSpec{Order: "old"}}
	if err := store.Create(ctx, cert); err != nil {
		t.Fatal(err)
	}
	n, err := ra.Sweep(ctx, store, "p", retention, now)
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want 2 orders", n, err)
	}
	var orders v1alpha1.AcmeOrderList
	var azs v1alpha1.AcmeChallengeList
	var certs v1alpha1.AcmeCertificateList
	for _, l := range []storage.ObjectList{&orders, &azs, &certs} {
		if err := store.List(ctx, storage.AllNamespaces, l, storage.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	left := map[string]bool{}
	for _, o := range orders.Items {
		left[o.Name] = true
	}
	if len(orders.Items) != 3 || !left["young"] || !left["authz-young"] || !left["other-profile"] {
		t.Fatalf("orders left: %v", left)
	}
	if len(azs.Items) != 3 {
		t.Fatalf("%d authorizations left, want the 3 of the kept orders", len(azs.Items))
	}
	if len(certs.Items) != 1 {
		t.Fatal("a certificate was deleted")
	}
	if n, err := ra.Sweep(ctx, store, "p", retention, now); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v; want nothing left to delete", n, err)
	}
}
