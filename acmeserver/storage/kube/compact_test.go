package kube_test

import (
	"context"
	"maps"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/kube"
	"github.com/kacme/kacme/acmeserver/storage/storagetest"
	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// TestCompactedCache: the server's cache keeps kacme's own labels (derived
// from the spec) out of cached orders, authorizations and certificates and
// shares the strings many objects repeat, and the store hands out whole
// objects anyway: Get, List by label (through the indexes), a certificate
// by serial in any namespace, and an Update from what Get returned leaves
// the API server's labels as they were. An object with any other label
// keeps its labels in the cache; one stored without labels reads back with
// the derived ones.
func TestCompactedCache(t *testing.T) {
	cfg, c := kenvtest.Start(t)
	ca := startCache(t, cfg, serverTransform())
	ctx := context.Background()
	api := &getCounter{Reader: c}
	store, err := kube.New(c, ca).WithIndexes().WithFetches(api).WithSummaries(ctx, ca)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "compact"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	labels := func(acct, order string) map[string]string {
		l := map[string]string{v1alpha1.LabelAccount: acct, v1alpha1.LabelProfile: "default"}
		if order != "" {
			l[v1alpha1.LabelOrder] = order
		}
		return l
	}
	plain := storagetest.Order(ns, "plain", "acct")
	own := storagetest.Order(ns, "own", "acct")
	own.Labels["team"] = "blue"
	bare := storagetest.Order(ns, "bare", "acct")
	bare.Labels = nil
	expires := metav1.NewTime(time.Now().Add(time.Hour).UTC().Truncate(time.Second))
	az := &v1alpha1.AcmeChallenge{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain-0", Labels: labels("acct", "plain")},
		Spec: v1alpha1.AcmeChallengeSpec{Account: "acct", Order: "plain", Profile: "default",
			Identifier: v1alpha1.Identifier{Type: "dns", Value: "plain.example"}},
		Status: v1alpha1.AcmeChallengeStatus{Status: "valid", Expires: expires,
			Challenges: []v1alpha1.AcmeChallengeState{{Type: "http-01", Token: "tok", Status: "valid"}}}}
	cert := &v1alpha1.AcmeCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "0abc", Labels: labels("acct", "plain")},
		Spec: v1alpha1.AcmeCertificateSpec{Account: "acct", Order: "plain", Profile: "default", CertificateAuthority: "root",
			Serial: "0abc", NotBefore: expires, NotAfter: expires, Certificate: testPEM}}
	for _, obj := range []storage.Object{plain, own, bare, az, cert} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	// Written by the store: labelled with its expiry as well.
	stamped := storagetest.Order(ns, "stamped", "acct")
	if err := store.Create(ctx, stamped); err != nil {
		t.Fatal(err)
	}
	withExpiry := func(l map[string]string, o *v1alpha1.AcmeOrder) map[string]string {
		l = maps.Clone(l)
		l[v1alpha1.LabelExpires] = strconv.FormatInt(o.Status.Expires.Unix(), 10)
		return l
	}
	if want := withExpiry(labels("acct", ""), stamped); !maps.Equal(stamped.Labels, want) {
		t.Errorf("created through the store: labels %v, want %v", stamped.Labels, want)
	}
	kenvtest.WaitFor(t, "the cache to see every object", func() bool {
		return ca.Get(ctx, client.ObjectKeyFromObject(cert), &v1alpha1.AcmeCertificate{}) == nil &&
			ca.Get(ctx, client.ObjectKeyFromObject(bare), &v1alpha1.AcmeOrder{}) == nil &&
			ca.Get(ctx, client.ObjectKeyFromObject(stamped), &v1alpha1.AcmeOrder{}) == nil
	})

	// What the cache holds.
	cachedLabels := func(obj storage.Object) map[string]string {
		t.Helper()
		cp := obj.DeepCopyObject().(storage.Object)
		if err := ca.Get(ctx, client.ObjectKeyFromObject(obj), cp); err != nil {
			t.Fatal(err)
		}
		return cp.GetLabels()
	}
	for _, obj := range []storage.Object{plain, az, cert, stamped} {
		if l := cachedLabels(obj); len(l) != 0 {
			t.Errorf("cached %T %s keeps its derived labels %v", obj, obj.GetName(), l)
		}
	}
	if l := cachedLabels(own); !maps.Equal(l, own.Labels) {
		t.Errorf("cached order with a label of its own: %v, want %v", l, own.Labels)
	}
	var o1, o2 v1alpha1.AcmeOrder
	if err := ca.Get(ctx, client.ObjectKeyFromObject(plain), &o1); err != nil {
		t.Fatal(err)
	}
	if err := ca.Get(ctx, client.ObjectKeyFromObject(own), &o2); err != nil {
		t.Fatal(err)
	}
	// Copies share the cache's strings (a deep copy copies string headers).
	if unsafe.StringData(o1.Namespace) != unsafe.StringData(o2.Namespace) ||
		unsafe.StringData(o1.Spec.Profile) != unsafe.StringData(o2.Spec.Profile) {
		t.Error("two cached orders keep separate copies of their namespace and profile")
	}

	// What the store hands out.
	for _, obj := range []storage.Object{plain, own, az, cert, stamped} {
		got := obj.DeepCopyObject().(storage.Object)
		if err := store.Get(ctx, ns, obj.GetName(), got); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got.GetLabels(), obj.GetLabels()) {
			t.Errorf("Get %T %s: labels %v, want %v", obj, obj.GetName(), got.GetLabels(), obj.GetLabels())
		}
	}
	var got v1alpha1.AcmeOrder
	if err := store.Get(ctx, ns, "bare", &got); err != nil || !maps.Equal(got.Labels, withExpiry(labels("acct", ""), bare)) {
		t.Errorf("an order stored without labels reads back with %v (%v), want the derived ones", got.Labels, err)
	}
	var orders v1alpha1.AcmeOrderList
	if err := store.List(ctx, ns, &orders, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: "acct"}}); err != nil {
		t.Fatal(err)
	}
	if len(orders.Items) != 4 {
		t.Errorf("List by account: %d orders, want 4 (the index sees derived labels)", len(orders.Items))
	}
	for _, shared := range []bool{false, true} {
		var azs v1alpha1.AcmeChallengeList
		err := store.List(ctx, storage.AllNamespaces, &azs, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: "acct"}, Shared: shared})
		if err != nil || len(azs.Items) != 1 || !maps.Equal(azs.Items[0].Labels, az.Labels) {
			t.Errorf("List authorizations (shared %v): %+v %v", shared, azs.Items, err)
		}
	}
	if l := cachedLabels(az); len(l) != 0 {
		t.Errorf("a shared List wrote restored labels into the cache: %v", l)
	}
	// The certificate's PEM: not cached; Get reads it from the API server
	// (the store did not write it), List hands it out without.
	var raw v1alpha1.AcmeCertificate
	if err := ca.Get(ctx, client.ObjectKeyFromObject(cert), &raw); err != nil || raw.Spec.Certificate != "" {
		t.Errorf("cached certificate keeps its PEM (%d bytes) %v", len(raw.Spec.Certificate), err)
	}
	api.gets.Store(0)
	var byName v1alpha1.AcmeCertificate
	if err := store.Get(ctx, storage.AllNamespaces, "0abc", &byName); err != nil || byName.Namespace != ns || !maps.Equal(byName.Labels, cert.Labels) ||
		byName.Spec.Certificate != testPEM || byName.Spec.Chain != "" {
		t.Errorf("certificate by serial in any namespace: %s %v %q %q (%v)", byName.Namespace, byName.Labels, byName.Spec.Certificate, byName.Spec.Chain, err)
	}
	if n := api.gets.Load(); n != 1 {
		t.Errorf("Get of a certificate whose PEM is not cached: %d API reads, want 1", n)
	}
	// A list page needs no PEM: the cached copy, no API read.
	var listed v1alpha1.AcmeCertificate
	if err := store.Get(storage.WithoutPEM(ctx), ns, "0abc", &listed); err != nil || listed.Spec.Certificate != "" ||
		listed.Spec.Chain != "" || listed.Spec.Serial != "0abc" || !maps.Equal(listed.Labels, cert.Labels) {
		t.Errorf("Get without PEM: %+v %v", listed.Spec, err)
	}
	if n := api.gets.Load(); n != 1 {
		t.Errorf("Get without PEM read the API server (%d reads in all)", n)
	}
	var certs v1alpha1.AcmeCertificateList
	if err := store.List(ctx, ns, &certs, storage.ListOptions{}); err != nil || len(certs.Items) != 1 ||
		certs.Items[0].Spec.Certificate != "" || certs.Items[0].Spec.Chain != "" || certs.Items[0].Spec.Serial != "0abc" {
		t.Errorf("List of certificates: %+v %v, want one without PEM", certs.Items, err)
	}
	if err := kube.New(c, ca).Get(ctx, ns, "0abc", &byName); err == nil {
		t.Error("a store without WithFetches handed out a certificate whose PEM is not cached")
	}
	// One the store wrote itself is read from its own write (a download
	// right after issuance costs no API read), also once the cache has it.
	fresh := cert.DeepCopy()
	fresh.ResourceVersion, fresh.Name, fresh.Spec.Serial = "", "0abd", "0abd"
	if err := store.Create(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the cache to see the new certificate", func() bool {
		return ca.Get(ctx, client.ObjectKeyFromObject(fresh), &raw) == nil
	})
	api.gets.Store(0)
	for range 2 {
		if err := store.Get(ctx, ns, "0abd", &byName); err != nil || byName.Spec.Certificate != testPEM {
			t.Errorf("certificate the store wrote: %q %v", byName.Spec.Certificate, err)
		}
	}
	if n := api.gets.Load(); n != 0 {
		t.Errorf("reading back its own certificate took %d API reads, want 0", n)
	}
	// A revoked certificate keeps its PEM in the cache (the CRL reads it).
	if err := store.Get(ctx, ns, "0abd", &byName); err != nil {
		t.Fatal(err)
	}
	byName.Spec.Revocation = &v1alpha1.Revocation{Reason: 1, RevokedAt: expires}
	byName.Labels[v1alpha1.LabelState] = "revoked"
	if err := store.Update(ctx, &byName); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the cache to keep the revoked certificate whole", func() bool {
		return ca.Get(ctx, client.ObjectKeyFromObject(fresh), &raw) == nil && raw.Spec.Certificate == testPEM
	})

	// An Update from what Get returned keeps the API server's labels.
	if err := store.Get(ctx, ns, "plain", &got); err != nil {
		t.Fatal(err)
	}
	got.Status.Status = "valid"
	if err := store.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}
	var stored v1alpha1.AcmeOrder
	if err := c.Get(ctx, client.ObjectKeyFromObject(plain), &stored); err != nil || stored.Status.Status != "valid" || !maps.Equal(stored.Labels, withExpiry(plain.Labels, plain)) {
		t.Errorf("stored after an Update: %s %v (%v), want valid with %v and the expiry", stored.Status.Status, stored.Labels, err, plain.Labels)
	}
}

// getCounter counts the Gets that reach a reader.
type getCounter struct {
	client.Reader
	gets atomic.Int64
}

func (g *getCounter) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	g.gets.Add(1)
	return g.Reader.Get(ctx, key, obj, opts...)
}

// testPEM stands for a certificate's PEM (the API server does not parse it).
const testPEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIQ\n-----END CERTIFICATE-----\n"
