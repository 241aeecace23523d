package retention_test

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/retention"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/embedded"
	"github.com/kacme/kacme/acmeserver/storage/embedded/embeddedtest"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestSweep: retention deletes exactly the orders (with their
// authorizations) that expired, order and authorizations alike, before the
// cutoff, and the certificates that expired before the certificate cutoff;
// it keeps younger ones, other profiles' and accounts (deactivated too).
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
	ret := profile.Retention{Orders: 24 * time.Hour, Certificates: 72 * time.Hour}
	mk("ns1", "old", "p", at(-48*time.Hour), at(-47*time.Hour), at(-30*time.Hour)) // deleted
	mk("ns2", "old-other-ns", "p", at(-48*time.Hour), at(-47*time.Hour))           // deleted
	mk("ns1", "young", "p", at(-2*time.Hour), at(-2*time.Hour))                    // kept: expired within retention
	mk("ns1", "authz-young", "p", at(-48*time.Hour), at(-12*time.Hour))            // kept: an authorization is young
	mk("ns1", "other-profile", "q", at(-48*time.Hour), at(-48*time.Hour))          // kept: another profile
	mkCert := func(name, profile string, notAfter metav1.Time, revoked bool) {
		t.Helper()
		c := &v1alpha1.AcmeCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: name,
			Labels: map[string]string{v1alpha1.LabelOrder: "old", v1alpha1.LabelProfile: profile}},
			Spec: v1alpha1.AcmeCertificateSpec{Order: "old", NotAfter: notAfter}}
		if revoked {
			c.Spec.Revocation = &v1alpha1.Revocation{RevokedAt: at(-100 * time.Hour)}
		}
		if err := store.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	mkCert("0a", "p", at(30*24*time.Hour), false) // kept: valid (its order is gone, it is not)
	mkCert("0b", "p", at(-24*time.Hour), true)    // kept: expired, within the certificate retention
	mkCert("0c", "p", at(-96*time.Hour), true)    // deleted: expired beyond it (revoked: off the CRL too)
	mkCert("0d", "p", at(-96*time.Hour), false)   // deleted
	mkCert("0e", "q", at(-96*time.Hour), false)   // kept: another profile
	// Pre-authorizations (newAuthz): no order, an empty order label.
	mkPre := func(name string, expires metav1.Time) {
		t.Helper()
		az := &v1alpha1.AcmeChallenge{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: name, Labels: map[string]string{
			v1alpha1.LabelAccount: "a", v1alpha1.LabelProfile: "p", v1alpha1.LabelOrder: ""}},
			Spec: v1alpha1.AcmeChallengeSpec{Account: "a", Profile: "p"}, Status: v1alpha1.AcmeChallengeStatus{Status: "valid", Expires: expires}}
		if err := store.Create(ctx, az); err != nil {
			t.Fatal(err)
		}
	}
	mkPre("pre-old", at(-96*time.Hour))  // deleted
	mkPre("pre-young", at(-1*time.Hour)) // kept
	acct := &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "a",
		Labels: map[string]string{v1alpha1.LabelProfile: "p"}}, Spec: v1alpha1.AcmeAccountSpec{Deactivated: true}}
	if err := store.Create(ctx, acct); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	aud := audit.New(slog.New(slog.NewJSONHandler(&logged, nil)))
	orders, certs, err := retention.Sweep(ctx, store, "p", ret, now, aud)
	if err != nil || orders != 2 || certs != 2 {
		t.Fatalf("Sweep = %d orders, %d certificates, %v; want 2 and 2", orders, certs, err)
	}
	// One audit record for the sweep, with the counts.
	if rec := aud.Recent(10); len(rec) != 1 || rec[0].Event != audit.RetentionSwept ||
		!strings.Contains(logged.String(), `"orders":2,"certificates":2,"preAuthorizations":1`) {
		t.Fatalf("audit after a sweep that deleted: %v\n%s", rec, logged.String())
	}
	var ol v1alpha1.AcmeOrderList
	var azs v1alpha1.AcmeChallengeList
	var cl v1alpha1.AcmeCertificateList
	var al v1alpha1.AcmeAccountList
	for _, l := range []storage.ObjectList{&ol, &azs, &cl, &al} {
		if err := store.List(ctx, storage.AllNamespaces, l, storage.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	left := map[string]bool{}
	for _, o := range ol.Items {
		left[o.Name] = true
	}
	if len(ol.Items) != 3 || !left["young"] || !left["authz-young"] || !left["other-profile"] {
		t.Fatalf("orders left: %v", left)
	}
	var azLeft []string
	for _, az := range azs.Items {
		azLeft = append(azLeft, az.Name)
	}
	if len(azs.Items) != 4 || !slices.Contains(azLeft, "pre-young") {
		t.Fatalf("authorizations left: %v, want the 3 of the kept orders and pre-young", azLeft)
	}
	var certsLeft []string
	for _, c := range cl.Items {
		certsLeft = append(certsLeft, c.Name)
	}
	sort.Strings(certsLeft) // List has no order
	if strings.Join(certsLeft, ",") != "0a,0b,0e" {
		t.Fatalf("certificates left: %v, want 0a,0b,0e", certsLeft)
	}
	if len(al.Items) != 1 {
		t.Fatal("the deactivated account was deleted")
	}
	if orders, certs, err := retention.Sweep(ctx, store, "p", ret, now, aud); err != nil || orders+certs != 0 {
		t.Fatalf("second sweep = %d, %d, %v; want nothing left to delete", orders, certs, err)
	}
	if n := len(aud.Recent(10)); n != 1 {
		t.Fatalf("a sweep that deleted nothing wrote an audit record (%d)", n)
	}
}

func openStore(t *testing.T) *embedded.Store { return embeddedtest.Open(t, embedded.Options{}) }
