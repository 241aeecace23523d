package kube_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/kube"
	"github.com/kacme/kacme/acmeserver/storage/storagetest"
	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// startAPIServer starts kube-apiserver and etcd with the kacme CRDs and an
// informer cache with the store's indexes.
func startAPIServer(t *testing.T) (client.Client, cache.Cache) {
	t.Helper()
	cfg, c := kenvtest.Start(t)
	return c, startCache(t, cfg, nil)
}

// startCache starts an informer cache with the store's indexes and the
// given default transform.
func startCache(t *testing.T, cfg *rest.Config, transform toolscache.TransformFunc) cache.Cache {
	t.Helper()
	ca, err := cache.New(cfg, cache.Options{Scheme: kenvtest.Scheme(), DefaultTransform: transform})
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.RegisterIndexes(context.Background(), ca); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	return ca
}

// serverTransform is the cluster-mode server's cache transform.
func serverTransform() toolscache.TransformFunc {
	return kube.Compact(v1alpha1.WithLegacyFieldsMoved(cache.TransformStripManagedFields()))
}

// TestConformance runs the storage conformance suite against the CR backend
// on a real API server: each subtest gets its own namespace. "server" is
// the store as the cluster-mode server builds it (compacted cache, indexes,
// summaries).
func TestConformance(t *testing.T) {
	cfg, c := kenvtest.Start(t)
	ca := startCache(t, cfg, nil)
	compacted := startCache(t, cfg, serverTransform())
	server, err := kube.New(c, compacted).WithIndexes().WithSummaries(context.Background(), compacted)
	if err != nil {
		t.Fatal(err)
	}
	for name, store := range map[string]*kube.Store{"labelSelectors": kube.New(c, ca), "indexes": kube.New(c, ca).WithIndexes(),
		"server": server} {
		t.Run(name, func(t *testing.T) { runSuite(t, c, store) })
	}
}

var nsCounter atomic.Int64

func runSuite(t *testing.T, c client.Client, store *kube.Store) {
	n := &nsCounter
	storagetest.Run(t, func(t *testing.T) (storage.Store, string) {
		ns := fmt.Sprintf("conformance-%d", n.Add(1))
		for _, name := range []string{ns, ns + "-b"} {
			if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
				t.Fatal(err)
			}
		}
		return store, ns
	})
}

// blindReader is a cache that has not seen anything yet.
type blindReader struct{ client.Reader }

func (blindReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	return apierrors.NewNotFound(schema.GroupResource{Resource: "any"}, key.Name)
}

func (blindReader) List(context.Context, client.ObjectList, ...client.ListOption) error { return nil }

// TestAPIReaderFallback: an object another replica created that this
// replica's cache has not seen is found through the API reader (by name and
// namespace, and by name in any namespace), and only with one; a
// consistent read goes to the API server even when the cache has a copy.
func TestAPIReaderFallback(t *testing.T) {
	c, ca := startAPIServer(t)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fallback"}}); err != nil {
		t.Fatal(err)
	}
	other := kube.New(c, ca) // the replica that writes
	o := storagetest.Order("fallback", "o1", "acct")
	if err := other.Create(ctx, o); err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.AcmeOrder
	if err := kube.New(c, blindReader{}).Get(ctx, "fallback", "o1", &got); !storage.IsNotFound(err) {
		t.Fatalf("without an API reader a cache miss must be final: %v", err)
	}
	here := kube.New(c, blindReader{}).WithAPIReader(c)
	if err := here.Get(ctx, "fallback", "o1", &got); err != nil || got.Name != "o1" {
		t.Fatalf("Get through the API reader: %v", err)
	}
	if err := here.Get(ctx, storage.AllNamespaces, "o1", &got); err != nil || got.Namespace != "fallback" {
		t.Fatalf("Get in any namespace through the API reader: %v (namespace %q)", err, got.Namespace)
	}
	if err := here.Get(ctx, "fallback", "nope", &got); !storage.IsNotFound(err) {
		t.Fatalf("a name that exists nowhere: %v", err)
	}
	// Consistent: the cache's stale copy is not used.
	stale := kube.New(c, staleReader{Reader: c, obj: o.DeepCopy()}).WithAPIReader(c)
	o.Status.Status = "valid"
	if err := other.Update(ctx, o); err != nil {
		t.Fatal(err)
	}
	if err := stale.Get(ctx, "fallback", "o1", &got); err != nil || got.Status.Status == "valid" {
		t.Fatalf("a plain read should see the cache's (stale) copy: %v %q", err, got.Status.Status)
	}
	if err := stale.Get(storage.Consistent(ctx), "fallback", "o1", &got); err != nil || got.Status.Status != "valid" {
		t.Fatalf("a consistent read did not see the API server's copy: %v %q", err, got.Status.Status)
	}
}

// staleReader answers Get with an old copy of obj.
type staleReader struct {
	client.Reader
	obj *v1alpha1.AcmeOrder
}

func (s staleReader) Get(_ context.Context, _ client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	s.obj.DeepCopyInto(obj.(*v1alpha1.AcmeOrder))
	return nil
}

// pageCounter counts the List calls a reader gets.
type pageCounter struct {
	client.Reader
	lists int
}

func (p *pageCounter) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	p.lists++
	return p.Reader.List(ctx, list, opts...)
}

// TestPagedSummaries: WithPagedLists reads the API server in pages and
// summarizes every matching object once; ExpectMiss makes a miss final even
// with an API reader.
func TestPagedSummaries(t *testing.T) {
	c, _ := startAPIServer(t)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "paged"}}); err != nil {
		t.Fatal(err)
	}
	writer := kube.New(c, c)
	for i := range 7 {
		acct := "a"
		if i%3 == 0 {
			acct = "b"
		}
		if err := writer.Create(ctx, storagetest.Order("paged", fmt.Sprintf("o%d", i), acct)); err != nil {
			t.Fatal(err)
		}
	}
	pc := &pageCounter{Reader: c}
	paged := kube.New(c, pc).WithPagedLists(2)
	sums, err := storage.ListSummaries(ctx, paged, "paged", "AcmeOrder", map[string]string{v1alpha1.LabelAccount: "a"})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, s := range sums {
		names[s.Name] = true
	}
	if len(sums) != 4 || len(names) != 4 || names["o0"] || names["o3"] || names["o6"] {
		t.Fatalf("account a's orders in pages of 2: %v", sums)
	}
	if pc.lists < 2 || pc.lists > 3 { // the last page may be an empty one
		t.Fatalf("4 matching orders in pages of 2 took %d List calls, want 2 or 3", pc.lists)
	}
	all, err := storage.ListSummaries(ctx, paged, storage.AllNamespaces, "AcmeOrder", nil)
	if err != nil || len(all) != 7 {
		t.Fatalf("every order in pages: %d, %v", len(all), err)
	}
	var got v1alpha1.AcmeOrder
	here := kube.New(c, blindReader{}).WithAPIReader(c)
	if err := here.Get(storage.ExpectMiss(ctx), "paged", "o1", &got); !storage.IsNotFound(err) {
		t.Fatalf("ExpectMiss: a cache miss must be final: %v", err)
	}
	// In any namespace too (an OCSP request for any serial must not cost a
	// cluster-wide List at the API server); without ExpectMiss it does find it.
	if err := here.Get(storage.ExpectMiss(ctx), storage.AllNamespaces, "o1", &got); !storage.IsNotFound(err) {
		t.Fatalf("ExpectMiss in any namespace: a cache miss must be final: %v", err)
	}
	if err := here.Get(ctx, storage.AllNamespaces, "o1", &got); err != nil || got.Namespace != "paged" {
		t.Fatalf("without ExpectMiss, in any namespace: %v %q", err, got.Namespace)
	}
}

// TestSummaries: WithSummaries keeps whole-kind summaries and counts from
// the informer's events: creations, updates and deletions show.
func TestSummaries(t *testing.T) {
	c, ca := startAPIServer(t)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "sums"}}); err != nil {
		t.Fatal(err)
	}
	store, err := kube.New(c, ca).WithIndexes().WithSummaries(ctx, ca)
	if err != nil {
		t.Fatal(err)
	}
	writer := kube.New(c, c)
	var orders []*v1alpha1.AcmeOrder
	for i := range 3 {
		o := storagetest.Order("sums", fmt.Sprintf("s%d", i), "acct")
		if err := writer.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		orders = append(orders, o)
	}
	orders[0].Status.Status = "valid"
	if err := writer.Update(ctx, orders[0]); err != nil {
		t.Fatal(err)
	}
	if err := writer.Delete(ctx, orders[2]); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "summaries of s0 (valid) and s1", func() bool {
		sums, err := storage.ListSummaries(ctx, store, "sums", "AcmeOrder", nil)
		if err != nil || len(sums) != 2 {
			return false
		}
		by := map[string]string{}
		for _, s := range sums {
			by[s.Name] = s.Status
		}
		return by["s0"] == "valid" && by["s1"] == "pending"
	})
	counts, err := storage.CountByNamespace(ctx, store, "AcmeOrder")
	if err != nil || counts["sums"] != 2 {
		t.Fatalf("counts %v, %v", counts, err)
	}
	if all, err := storage.ListSummaries(ctx, store, storage.AllNamespaces, "AcmeOrder", nil); err != nil || len(all) < 2 {
		t.Fatalf("every namespace: %d %v", len(all), err)
	}
}

// itemCounter counts the objects a reader's Lists hand back.
type itemCounter struct {
	client.Reader
	items int
}

func (p *itemCounter) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	err := p.Reader.List(ctx, list, opts...)
	p.items += meta.LenList(list)
	return err
}

// TestListExpired: the store labels each order, authorization and
// certificate it writes with its expiry (v1alpha1.LabelExpires, again when
// an update moves it), and a paged ListExpired has the API server select the
// candidates: the orders that ended before the cutoff (labelled, or written
// without the label), exactly — not the one ending at the cutoff — and reads
// nothing else.
func TestListExpired(t *testing.T) {
	c, _ := startAPIServer(t)
	ctx := context.Background()
	const ns = "expiry"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	cutoff := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	writer := kube.New(c, c)
	order := func(name string, expires time.Time) *v1alpha1.AcmeOrder {
		o := storagetest.Order(ns, name, "a")
		o.Status.Expires = metav1.NewTime(expires)
		return o
	}
	for _, o := range []*v1alpha1.AcmeOrder{
		order("old", cutoff.Add(-time.Hour)),
		order("just-before", cutoff.Add(-time.Second)),
		order("at-cutoff", cutoff),
		order("moved", cutoff.Add(2*time.Hour)),
	} {
		if err := writer.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if err := writer.Create(ctx, order(fmt.Sprintf("fresh%d", i), cutoff.Add(time.Duration(i+1)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	// Written without the store (before kacme set the label): swept on its expiry.
	if err := c.Create(ctx, order("legacy", cutoff.Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, order("legacy-fresh", cutoff.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.AcmeOrder
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "old"}, &got); err != nil {
		t.Fatal(err)
	}
	if want := strconv.FormatInt(cutoff.Add(-time.Hour).Unix(), 10); got.Labels[v1alpha1.LabelExpires] != want {
		t.Fatalf("stored labels %v, want %s=%s", got.Labels, v1alpha1.LabelExpires, want)
	}
	// An update that moves the expiry moves the label.
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "moved"}, &got); err != nil {
		t.Fatal(err)
	}
	got.Status.Expires = metav1.NewTime(cutoff.Add(-2 * time.Hour))
	if err := writer.Update(ctx, &got); err != nil {
		t.Fatal(err)
	}

	want := []string{"just-before", "legacy", "moved", "old"}
	ic := &itemCounter{Reader: c}
	sums, err := storage.ListExpired(ctx, kube.New(c, ic).WithPagedLists(2), storage.AllNamespaces, "AcmeOrder",
		map[string]string{v1alpha1.LabelProfile: "default"}, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if names := summaryNames(sums); !slices.Equal(names, want) {
		t.Fatalf("expired before the cutoff: %v, want %v", names, want)
	}
	// The label holds whole seconds, so the labelled selection may include
	// what ends within the cutoff's second ("at-cutoff"), and the
	// unlabelled one every unlabelled object; nothing else is read.
	if ic.items > len(want)+2 {
		t.Fatalf("the API server handed out %d orders to find %d", ic.items, len(want))
	}
	// Through a reader without paging (the server's cache): the same answer.
	sums, err = storage.ListExpired(ctx, kube.New(c, c), ns, "AcmeOrder", nil, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	if names := summaryNames(sums); !slices.Equal(names, want) {
		t.Fatalf("through the cache: %v, want %v", names, want)
	}
}

func summaryNames(sums []storage.Summary) []string {
	var names []string
	for _, s := range sums {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return names
}
