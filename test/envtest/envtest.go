// Package envtest starts a real kube-apiserver and etcd (built by
// hack/envtest.sh) with the kacme CRDs installed, for tests.
package envtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/go-logr/logr"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Scheme knows the kacme, core and cert-manager types.
func Scheme() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	_ = v1alpha1.AddToScheme(s)
	_ = corev1.AddToScheme(s)
	_ = eventsv1.AddToScheme(s)
	_ = rbacv1.AddToScheme(s)
	_ = discoveryv1.AddToScheme(s)
	_ = certv1.AddToScheme(s)
	_ = cmapi.AddToScheme(s)
	_ = cmacme.AddToScheme(s)
	return s
}

// Start starts the control plane for t and stops it when t ends. Without
// KUBEBUILDER_ASSETS the test is skipped, or fails when KACME_ENVTEST=required.
// Extra CRD directories (e.g. CertManagerCRDs) are installed too.
func Start(t *testing.T, crdDirs ...string) (*rest.Config, client.Client) {
	t.Helper()
	cfg, c, _ := start(t, crdDirs...)
	return cfg, c
}

// Kubeconfigs are kubeconfig files for processes under test: an
// administrator, and one identity per kacme component bound to exactly the
// RBAC generated into config/rbac/<component> (so a component that needs a
// permission its markers do not grant fails its test).
type Kubeconfigs struct {
	Admin, Server, Controller string
}

// OperatorNamespace is the namespace config/rbac's namespaced Roles are in.
const OperatorNamespace = "kacme-system"

// StartWithKubeconfig is Start plus the operator's namespace and kubeconfig
// files for processes under test.
func StartWithKubeconfig(t *testing.T, crdDirs ...string) (*rest.Config, client.Client, Kubeconfigs) {
	t.Helper()
	cfg, c, env := start(t, crdDirs...)
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: OperatorNamespace}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(user crenvtest.User, name string) string {
		u, err := env.AddUser(user, nil)
		if err != nil {
			t.Fatal(err)
		}
		data, err := u.KubeConfig()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	k := Kubeconfigs{Admin: write(crenvtest.User{Name: "kacme-test-admin", Groups: []string{"system:masters"}}, "admin")}
	must(t, BindGeneratedRBAC(context.Background(), c, "server", "kacme-server"))
	k.Server = write(crenvtest.User{Name: "kacme-server"}, "server")
	must(t, BindGeneratedRBAC(context.Background(), c, "controller", "kacme-controller"))
	k.Controller = write(crenvtest.User{Name: "kacme-controller"}, "controller")
	return cfg, c, k
}

// BindGeneratedRBAC creates the roles in config/rbac/<component>/role.yaml
// and binds each to user.
func BindGeneratedRBAC(ctx context.Context, c client.Client, component, user string) error {
	data, err := os.ReadFile(filepath.Join(RepoRoot(), "config", "rbac", component, "role.yaml"))
	if err != nil {
		return err
	}
	roles, err := DecodeManifests(data)
	if err != nil {
		return fmt.Errorf("config/rbac/%s: %w", component, err)
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	for _, role := range roles {
		ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: role.GetKind(), Name: role.GetName()}
		var binding client.Object
		switch role.GetKind() {
		case "ClusterRole":
			binding = &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.GetName()}, Subjects: subject, RoleRef: ref}
		case "Role":
			binding = &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: role.GetNamespace(), Name: role.GetName()}, Subjects: subject, RoleRef: ref}
		default:
			return fmt.Errorf("config/rbac/%s: unexpected kind %q", component, role.GetKind())
		}
		for _, o := range []client.Object{role, binding} {
			if err := c.Create(ctx, o); err != nil {
				return fmt.Errorf("config/rbac/%s: %w", component, err)
			}
		}
	}
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// RepoRoot is the kacme checkout this package was built from.
func RepoRoot() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..")
}

// CertManagerCRDs is deploy/crds of the cert-manager module kacme requires
// (its Issuer, ClusterIssuer, Certificate, ... CRDs as plain YAML).
func CertManagerCRDs(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager")
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("locate the cert-manager module (go list -m): %v", err)
	}
	return filepath.Join(string(bytes.TrimSpace(out)), "deploy", "crds")
}

// StartWithAPIServerFlags is Start with kube-apiserver flags set (e.g.
// runtime-config to switch an API off).
func StartWithAPIServerFlags(t *testing.T, flags map[string]string) (*rest.Config, client.Client) {
	t.Helper()
	cfg, c, _ := startWith(t, flags)
	return cfg, c
}

func start(t *testing.T, crdDirs ...string) (*rest.Config, client.Client, *crenvtest.Environment) {
	t.Helper()
	return startWith(t, nil, crdDirs...)
}

func startWith(t *testing.T, flags map[string]string, crdDirs ...string) (*rest.Config, client.Client, *crenvtest.Environment) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if os.Getenv("KACME_ENVTEST") == "required" {
			t.Fatal("KUBEBUILDER_ASSETS is not set (make test sets it from hack/envtest.sh)")
		}
		t.Skip("KUBEBUILDER_ASSETS is not set; run hack/envtest.sh or make test")
	}
	env := &crenvtest.Environment{
		CRDDirectoryPaths:     append([]string{filepath.Join(RepoRoot(), "config", "crd", "bases")}, crdDirs...),
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	for k, v := range flags {
		env.ControlPlane.GetAPIServer().Configure().Set(k, v)
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
	return cfg, c, env
}

// StartManager starts a controller manager for t after setup registers its
// controllers, and creates namespace (the operator's namespace) first.
// opts change the manager's options (a cache transform, say) before it is built.
func StartManager(t *testing.T, cfg *rest.Config, c client.Client, namespace string, setup func(ctrl.Manager) error, opts ...func(*ctrl.Options)) {
	t.Helper()
	ctrl.SetLogger(logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	skip := true // tests start a manager each; controller names repeat
	o := ctrl.Options{Scheme: Scheme(), Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: &skip}}
	for _, f := range opts {
		f(&o)
	}
	mgr, err := ctrl.NewManager(cfg, o)
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

// DecodeManifests splits multi-document YAML (or JSON) into objects,
// skipping empty documents.
func DecodeManifests(data []byte) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(u.Object) > 0 {
			out = append(out, &u)
		}
	}
}
