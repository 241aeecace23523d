package kube_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/kube"
	"github.com/kacme/kacme/acmeserver/storage/storagetest"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

// startAPIServer starts kube-apiserver and etcd with the kacme CRDs and an
// informer cache with the store's indexes.
func startAPIServer(t *testing.T) (client.Client, cache.Cache) {
	t.Helper()
	cfg, c := kenvtest.Start(t)
	ca, err := cache.New(cfg, cache.Options{Scheme: kenvtest.Scheme()})
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
	return c, ca
}

// TestConformance runs the storage conformance suite against the CR backend
// on a real API server: each subtest gets its own namespace.
func TestConformance(t *testing.T) {
	c, ca := startAPIServer(t)
	for name, store := range map[string]*kube.Store{"labelSelectors": kube.New(c, ca), "indexes": kube.New(c, ca).WithIndexes()} {
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
