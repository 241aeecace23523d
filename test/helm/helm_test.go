// Package helm checks the Helm chart: it lints, its CRDs are the generated
// ones, and everything it renders is accepted by a real API server
// (server-side dry run). Helm is built from its Go module (hack/tools.sh
// helm); make test passes it in KACME_HELM.
package helm

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

func helm(t *testing.T) string {
	t.Helper()
	return harness.Tool(t, "KACME_HELM", "helm")
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = kenvtest.RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s%s", filepath.Base(name), args, err, out, stderr.String())
	}
	return out
}

// TestChartCRDs: the chart installs exactly the generated CRDs.
func TestChartCRDs(t *testing.T) {
	gen, _ := filepath.Glob(filepath.Join(kenvtest.RepoRoot(), "config", "crd", "bases", "*.yaml"))
	chart, _ := filepath.Glob(filepath.Join(kenvtest.RepoRoot(), "charts", "kacme", "crds", "*.yaml"))
	if len(gen) == 0 || len(gen) != len(chart) {
		t.Fatalf("config/crd/bases has %d CRDs, the chart %d (run make manifests)", len(gen), len(chart))
	}
	for _, g := range gen {
		a, _ := os.ReadFile(g)
		b, err := os.ReadFile(filepath.Join(kenvtest.RepoRoot(), "charts", "kacme", "crds", filepath.Base(g)))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("charts/kacme/crds/%s differs from config/crd/bases (run make manifests): %v", filepath.Base(g), err)
		}
	}
}

func TestLint(t *testing.T) {
	run(t, helm(t), "lint", "--strict", "charts/kacme")
}

// TestTemplateDryRun: every object the chart renders is accepted by the API
// server (server-side dry run, with the CRDs installed as the chart's crds/).
func TestTemplateDryRun(t *testing.T) {
	h := helm(t)
	out := run(t, h, "template", "kacme", "charts/kacme", "--namespace", kenvtest.OperatorNamespace)
	_, c := kenvtest.Start(t)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kenvtest.OperatorNamespace}}); err != nil {
		t.Fatal(err)
	}
	objs, err := kenvtest.DecodeManifests(out)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, u := range objs {
		if err := c.Create(ctx, u, client.DryRunAll); err != nil {
			t.Fatalf("dry run of %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		kinds[u.GetKind()]++
	}
	want := map[string]int{"Deployment": 2, "Service": 1, "ServiceAccount": 2, "ClusterRole": 2, "ClusterRoleBinding": 2, "Role": 2, "RoleBinding": 2}
	for k, n := range want {
		if kinds[k] != n {
			t.Fatalf("rendered %v, want %v", kinds, want)
		}
	}
}

// TestKustomizeDefault: config/default (kubectl apply -k) resolves to the
// namespace, the CRDs and the chart's rendering, and the API server accepts
// all of it (server-side apply, dry run). Its kustomizations only list
// resources, so reading them here is what kustomize does.
func TestKustomizeDefault(t *testing.T) {
	_, c := kenvtest.Start(t)
	ctx := context.Background()
	objs := kustomizeResources(t, filepath.Join(kenvtest.RepoRoot(), "config", "default"))
	kinds := map[string]int{}
	for _, u := range objs {
		opts := []client.ApplyOption{client.FieldOwner("kacme-test"), client.ForceOwnership}
		if u.GetKind() != "Namespace" { // the namespace is created for real: its objects need it
			opts = append(opts, client.DryRunAll)
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...); err != nil {
			t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		kinds[u.GetKind()]++
	}
	want := map[string]int{"Namespace": 1, "CustomResourceDefinition": 7, "Deployment": 2, "Service": 1, "CertificateAuthority": 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Fatalf("config/default has %v, want at least %v", kinds, want)
		}
	}
}

func kustomizeResources(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k map[string]any
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	for key := range k {
		if key != "resources" {
			t.Fatalf("%s/kustomization.yaml uses %q; this test (and the docs) expect resources only", dir, key)
		}
	}
	var out []*unstructured.Unstructured
	for _, r := range k["resources"].([]any) {
		p := filepath.Join(dir, r.(string))
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			out = append(out, kustomizeResources(t, p)...)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := kenvtest.DecodeManifests(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, objs...)
	}
	return out
}

// TestInstallNotes (issue 14): helm install prints what to do next — the
// profile to apply, the in-cluster directory URL, where clients find the
// server's root (a ConfigMap in every namespace, published from the serving
// CA the chart creates) — instead of nothing.
func TestInstallNotes(t *testing.T) {
	h := helm(t)
	_, _, kc := kenvtest.StartWithKubeconfig(t)
	// Release "demo" (fullname demo-kacme): the test control plane already
	// holds the generated RBAC under kacme-* names.
	cmd := exec.Command(h, "install", "demo", "charts/kacme", "--namespace", kenvtest.OperatorNamespace, "--dry-run=client", "--kubeconfig", kc.Admin)
	cmd.Dir = kenvtest.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm install --dry-run: %v\n%s", err, out)
	}
	notes := string(out)
	if i := strings.Index(notes, "NOTES:"); i >= 0 {
		notes = notes[i:]
	} else {
		t.Fatalf("helm install prints no NOTES:\n%s", out)
	}
	for _, want := range []string{"kubectl apply -f config/samples/cluster/", "https://demo-kacme.kacme-system.svc/acme/<profile>/directory",
		"demo-kacme-server-ca", "acme.kacme.io/inject-ca-from-profile", "http://demo-kacme.kacme-system.svc/crl/<ca>"} {
		if !strings.Contains(notes, want) {
			t.Errorf("the NOTES do not say %q:\n%s", want, notes)
		}
	}
	objs, err := kenvtest.DecodeManifests(run(t, h, "template", "kacme", "charts/kacme", "--namespace", kenvtest.OperatorNamespace))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() == "CertificateAuthority" {
			name, _, _ := unstructured.NestedString(o.Object, "spec", "trustBundle", "configMapName")
			if name != "kacme-server-ca" {
				t.Fatalf("the serving CA publishes no trust bundle (configMapName %q)", name)
			}
		}
	}
}
