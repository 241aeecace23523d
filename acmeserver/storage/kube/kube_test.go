package kube_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/kube"
	"github.com/kacme/kacme/acmeserver/storage/storagetest"
	"github.com/kacme/kacme/api/v1alpha1"
)

// startAPIServer starts kube-apiserver and etcd (built by hack/envtest.sh)
// with the kacme CRDs installed.
func startAPIServer(t *testing.T) (client.Client, cache.Cache) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if os.Getenv("KACME_ENVTEST") == "required" {
			t.Fatal("KUBEBUILDER_ASSETS is not set (make test sets it from hack/envtest.sh)")
		}
		t.Skip("KUBEBUILDER_ASSETS is not set; run hack/envtest.sh or make test")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	cfg.QPS, cfg.Burst = 500, 1000
	scheme := runtime.NewScheme()
	_ = v1alpha1.AddToScheme(scheme)
	_ = corev1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := cache.New(cfg, cache.Options{Scheme: scheme})
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
		if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
		return store, ns
	})
}
