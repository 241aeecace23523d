// Package envtest starts a real kube-apiserver and etcd (built by
// hack/envtest.sh) with the kacme CRDs installed, for tests.
package envtest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/go-logr/logr"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Scheme knows the kacme and core types.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	_ = v1alpha1.AddToScheme(s)
	_ = corev1.AddToScheme(s)
	_ = eventsv1.AddToScheme(s)
	return s
}

// Start starts the control plane for t and stops it when t ends. Without
// KUBEBUILDER_ASSETS the test is skipped, or fails when KACME_ENVTEST=required.
func Start(t *testing.T) (*rest.Config, client.Client) {
	t.Helper()
	cfg, c, _ := start(t, false)
	return cfg, c
}

// StartWithKubeconfig is Start plus a kubeconfig file for an administrator,
// for processes under test.
func StartWithKubeconfig(t *testing.T) (*rest.Config, client.Client, string) {
	t.Helper()
	return start(t, true)
}

func start(t *testing.T, kubeconfig bool) (*rest.Config, client.Client, string) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if os.Getenv("KACME_ENVTEST") == "required" {
			t.Fatal("KUBEBUILDER_ASSETS is not set (make test sets it from hack/envtest.sh)")
		}
		t.Skip("KUBEBUILDER_ASSETS is not set; run hack/envtest.sh or make test")
	}
	_, here, _, _ := runtime.Caller(0)
	env := &crenvtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(filepath.Dir(here), "..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	path := ""
	if kubeconfig {
		user, err := env.AddUser(crenvtest.User{Name: "kacme-test-admin", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		data, err := user.KubeConfig()
		if err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, c, path
}

// StartManager starts a controller manager for t after setup registers its
// controllers, and creates namespace (the operator's namespace) first.
func StartManager(t *testing.T, cfg *rest.Config, c client.Client, namespace string, setup func(ctrl.Manager) error) {
	t.Helper()
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: Scheme(), Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := setup(mgr); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()
}

// WaitFor polls ok for up to 30 seconds.
func WaitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
