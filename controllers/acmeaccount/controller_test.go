package acmeaccount_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/acmeaccount"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

const (
	operatorNS = "kacme-system"
	teamNS     = "team-a"
)

func start(t *testing.T) client.Client {
	t.Helper()
	cfg, c := kenvtest.Start(t)
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: teamNS}}); err != nil {
		t.Fatal(err)
	}
	kenvtest.StartManager(t, cfg, c, operatorNS, func(mgr ctrl.Manager) error {
		return (&acmeaccount.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("kacme-controller"),
			Namespace: operatorNS}).SetupWithManager(mgr)
	}, func(o *ctrl.Options) { // what kacme controller's cache keeps (controllers/setup)
		o.Cache.ByObject = acmeaccount.CacheOptions(cache.TransformStripManagedFields())
	})
	return c
}

func ready(c client.Client, name string) *metav1.Condition {
	var a v1alpha1.AcmeAccount
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: teamNS, Name: name}, &a); err != nil {
		return nil
	}
	return meta.FindStatusCondition(a.Status.Conditions, acmeaccount.ConditionReady)
}

func waitReason(t *testing.T, c client.Client, name, reason string) {
	t.Helper()
	kenvtest.WaitFor(t, name+" Ready reason "+reason, func() bool {
		cond := ready(c, name)
		return cond != nil && cond.Reason == reason
	})
}

// update changes an account as another writer would: retrying on conflict
// with the controller.
func update(t *testing.T, c client.Client, name string, fn func(*v1alpha1.AcmeAccount)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var a v1alpha1.AcmeAccount
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: teamNS, Name: name}, &a); err != nil {
			return err
		}
		fn(&a)
		return c.Update(context.Background(), &a)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPreRegistration(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	// A Secret that exists is left alone.
	given := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "given"},
		StringData: map[string]string{"key": given}}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*v1alpha1.AcmeAccount{
		{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "minted"}, Spec: v1alpha1.AcmeAccountSpec{Profile: "default",
			ExternalAccountBinding: &v1alpha1.ExternalAccountKey{KeyID: "team-a", SecretName: "team-a-eab"}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "given"}, Spec: v1alpha1.AcmeAccountSpec{Profile: "default",
			ExternalAccountBinding: &v1alpha1.ExternalAccountKey{KeyID: "given", SecretName: "given"}}},
	} {
		if err := c.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	var sec corev1.Secret
	kenvtest.WaitFor(t, "the minted EAB secret", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: teamNS, Name: "team-a-eab"}, &sec) == nil
	})
	mac, err := base64.RawURLEncoding.DecodeString(string(sec.Data["key"]))
	if err != nil || len(mac) < 32 || string(sec.Data["keyID"]) != "team-a" || len(sec.OwnerReferences) != 1 {
		t.Fatalf("minted secret: %d-byte key, keyID %q, owners %v (%v)", len(mac), sec.Data["keyID"], sec.OwnerReferences, err)
	}
	// The server's copy of each key, in the operator's namespace.
	for name, want := range map[string]string{"minted": string(sec.Data["key"]), "given": given} {
		var m corev1.Secret
		kenvtest.WaitFor(t, "the server's copy of "+name+"'s key", func() bool {
			return c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: v1alpha1.EABMirrorSecretName(teamNS, name)}, &m) == nil
		})
		if string(m.Data[v1alpha1.EABMirrorDataKey]) != want {
			t.Fatalf("copy of %s's key = %q, want %q", name, m.Data[v1alpha1.EABMirrorDataKey], want)
		}
		waitReason(t, c, name, acmeaccount.ReasonAwaitingBinding)
	}
	var g corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: teamNS, Name: "given"}, &g); err != nil || string(g.Data["key"]) != given || len(g.OwnerReferences) != 0 {
		t.Fatalf("an existing secret was changed: %q owners %v %v", g.Data["key"], g.OwnerReferences, err)
	}
	var a v1alpha1.AcmeAccount
	kenvtest.WaitFor(t, "the pre-registration labels", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: teamNS, Name: "minted"}, &a) == nil && a.Labels[v1alpha1.LabelEABKeyID] != ""
	})
	if a.Labels[v1alpha1.LabelEABKeyID] != v1alpha1.EABKeyLabel("team-a") || a.Labels[v1alpha1.LabelProfile] != "default" {
		t.Fatalf("pre-registration labels = %v", a.Labels)
	}

	// The server binds the account (as RA.bindAccount does): the copy of
	// the used key goes away and the account becomes Ready.
	update(t, c, "minted", func(a *v1alpha1.AcmeAccount) { a.Spec.State, a.Spec.Key = "valid", `{"kty":"EC"}` })
	waitReason(t, c, "minted", acmeaccount.ReasonValid)
	kenvtest.WaitFor(t, "the used key's copy to be deleted", func() bool {
		var m corev1.Secret
		return c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: v1alpha1.EABMirrorSecretName(teamNS, "minted")}, &m) != nil
	})

	// Deleting an unbound pre-registration deletes its copy too.
	if err := c.Delete(ctx, &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "given"}}); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the deleted account's key copy to be deleted", func() bool {
		var m corev1.Secret
		return c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: v1alpha1.EABMirrorSecretName(teamNS, "given")}, &m) != nil
	})
}

// TestInvalidEABSecret: an unusable key is a False Ready condition with a
// reason and a Warning Event, and no copy for the server.
func TestInvalidEABSecret(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "short"},
		StringData: map[string]string{"key": "c2hvcnQ"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "short"},
		Spec: v1alpha1.AcmeAccountSpec{Profile: "default", ExternalAccountBinding: &v1alpha1.ExternalAccountKey{KeyID: "short", SecretName: "short"}}}); err != nil {
		t.Fatal(err)
	}
	waitReason(t, c, "short", acmeaccount.ReasonEABSecretInvalid)
	if cond := ready(c, "short"); cond.Status != metav1.ConditionFalse || cond.Message != `secret short key "key" must be a base64url HMAC key of at least 256 bits` {
		t.Fatalf("Ready = %s: %s", cond.Status, cond.Message)
	}
	kenvtest.WaitFor(t, "a Warning event", func() bool {
		var evs eventsv1.EventList
		if c.List(ctx, &evs, client.InNamespace(teamNS)) != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == "short" && e.Reason == acmeaccount.ReasonEABSecretInvalid && e.Type == corev1.EventTypeWarning {
				return true
			}
		}
		return false
	})
	var m corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: v1alpha1.EABMirrorSecretName(teamNS, "short")}, &m); err == nil {
		t.Fatal("an unusable key was copied for the server")
	}
}

// TestCounts: the account's order and certificate counts follow the objects;
// deactivation is a False Ready condition.
func TestCounts(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	a := &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "acct"},
		Spec: v1alpha1.AcmeAccountSpec{Profile: "default", State: "valid", Key: `{"kty":"EC"}`}}
	if err := c.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitReason(t, c, "acct", acmeaccount.ReasonValid)
	expires := metav1.NewTime(time.Now().Add(time.Hour).UTC().Truncate(time.Second))
	labels := map[string]string{v1alpha1.LabelAccount: "acct"}
	for _, name := range []string{"o1", "o2"} {
		o := &v1alpha1.AcmeOrder{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: name, Labels: labels},
			Spec: v1alpha1.AcmeOrderSpec{Account: "acct", Profile: "default", IssuanceProfile: "default",
				Identifiers: []v1alpha1.Identifier{{Type: "dns", Value: "a.example"}}},
			Status: v1alpha1.AcmeOrderStatus{Status: "pending", Expires: expires, Authorizations: []string{"x"}}}
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cert := &v1alpha1.AcmeCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "0a", Labels: labels},
		Spec: v1alpha1.AcmeCertificateSpec{Account: "acct", Order: "o1", Profile: "default", CertificateAuthority: "root",
			Serial: "0a", Chain: "x", NotBefore: expires, NotAfter: expires}}
	if err := c.Create(ctx, cert); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "counts 2 orders, 1 certificate", func() bool {
		var got v1alpha1.AcmeAccount
		return c.Get(ctx, client.ObjectKeyFromObject(a), &got) == nil && got.Status.Orders == 2 && got.Status.Certificates == 1
	})
	// A deletion counts too (the cache keeps slim copies: SlimMetadata).
	if err := c.Delete(ctx, &v1alpha1.AcmeOrder{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "o2"}}); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "counts 1 order after a deletion", func() bool {
		var got v1alpha1.AcmeAccount
		return c.Get(ctx, client.ObjectKeyFromObject(a), &got) == nil && got.Status.Orders == 1 && got.Status.Certificates == 1
	})
	update(t, c, "acct", func(a *v1alpha1.AcmeAccount) { a.Spec.Deactivated = true })
	waitReason(t, c, "acct", acmeaccount.ReasonDeactivated)
}

// TestCountsWrittenOncePerDelay: on an account that keeps ordering, the
// controller writes its counts at most once per CountDelay. (Its own write
// is an event that reconciles the account at once; with new orders counted
// meanwhile, that used to write again, and again: one status write per
// round trip for as long as the account was busy.)
func TestCountsWrittenOncePerDelay(t *testing.T) {
	c := start(t)
	ctx := context.Background()
	a := &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "busy"},
		Spec: v1alpha1.AcmeAccountSpec{Profile: "default", State: "valid", Key: `{"kty":"EC"}`}}
	if err := c.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	waitReason(t, c, "busy", acmeaccount.ReasonValid)
	generation := func() int64 {
		var got v1alpha1.AcmeAccount
		if err := c.Get(ctx, client.ObjectKeyFromObject(a), &got); err != nil {
			t.Fatal(err)
		}
		return got.Generation // no status subresource: every write bumps it
	}
	before := generation()
	expires := metav1.NewTime(time.Now().Add(time.Hour).UTC().Truncate(time.Second))
	busy := acmeaccount.CountDelay + acmeaccount.CountDelay/2
	n := 0
	for start := time.Now(); time.Since(start) < busy; n++ {
		o := &v1alpha1.AcmeOrder{ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: fmt.Sprintf("o%d", n),
			Labels: map[string]string{v1alpha1.LabelAccount: "busy"}},
			Spec: v1alpha1.AcmeOrderSpec{Account: "busy", Profile: "default", IssuanceProfile: "default",
				Identifiers: []v1alpha1.Identifier{{Type: "dns", Value: "a.example"}}},
			Status: v1alpha1.AcmeOrderStatus{Status: "pending", Expires: expires, Authorizations: []string{"x"}}}
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Orders came in for 1.5 × CountDelay: a write at most per CountDelay.
	if writes := generation() - before; writes > 2 {
		t.Fatalf("the controller wrote the account %d times while %d orders came in over %v, want at most 2", writes, n, busy)
	}
	kenvtest.WaitFor(t, fmt.Sprintf("counts %d orders", n), func() bool {
		var got v1alpha1.AcmeAccount
		return c.Get(ctx, client.ObjectKeyFromObject(a), &got) == nil && got.Status.Orders == n
	})
}
