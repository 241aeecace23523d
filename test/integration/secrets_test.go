package integration

import (
	"context"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/go-logr/logr"

	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/acmeaccount"
	"github.com/kacme/kacme/controllers/setup"
	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

// startController runs the controller's manager, as built by "kacme
// controller" (setup.NewManager), in this process under cfg's identity, and
// returns it so that the test can look into its cache.
func startController(t *testing.T, cfg *rest.Config, eabNamespaces []string) client.Reader {
	t.Helper()
	return startControllerWith(t, cfg, setup.Options{Namespace: clusterNS, ExternalURL: "https://acme.example.test",
		EABNamespaces: eabNamespaces})
}

// startControllerWith runs the controller's manager in the test process.
func startControllerWith(t *testing.T, cfg *rest.Config, o setup.Options) client.Reader {
	t.Helper()
	o.Log, o.SkipNameValidation = logr.Discard(), true
	mgr, err := setup.NewManager(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller manager: %v", err)
		}
	})
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("the controller's cache did not sync")
	}
	return mgr.GetCache()
}

func createAll(t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func eabAccount(ns, name, secret string) *v1alpha1.AcmeAccount {
	return &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.AcmeAccountSpec{Profile: "teams", ExternalAccountBinding: &v1alpha1.ExternalAccountKey{KeyID: name, SecretName: secret}}}
}

func waitAccountReason(t *testing.T, c client.Client, ns, name, reason string) {
	t.Helper()
	kenvtest.WaitFor(t, ns+"/"+name+" Ready reason "+reason, func() bool {
		var a v1alpha1.AcmeAccount
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &a); err != nil {
			return false
		}
		cond := meta.FindStatusCondition(a.Status.Conditions, acmeaccount.ConditionReady)
		return cond != nil && cond.Reason == reason
	})
}

func waitSecret(t *testing.T, c client.Client, ns, name string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	kenvtest.WaitFor(t, "Secret "+ns+"/"+name, func() bool {
		return c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s) == nil
	})
	return &s
}

// TestControllerSecretCache (issue 13, finding 3): the controller under its
// generated RBAC (no update or delete on Secrets outside its namespace)
// still mints EAB Secrets, reads a team's own unlabelled one and mirrors
// both, and keeps CA keys in its namespace; no unlabelled Secret of another
// namespace ever enters its cache.
func TestControllerSecretCache(t *testing.T) {
	_, c, kc := kenvtest.StartWithKubeconfig(t)
	cfg := restConfig(t, kc.Controller)
	key := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	createAll(t, c, namespace("team-a"),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "database-password"}, StringData: map[string]string{"password": "hunter2"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "given-eab"}, StringData: map[string]string{"key": key}})
	cache := startController(t, cfg, nil)
	createAll(t, c, eabAccount("team-a", "minted", "minted-eab"), eabAccount("team-a", "supplied", "given-eab"),
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"}, Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}})
	waitAccountReason(t, c, "team-a", "minted", acmeaccount.ReasonAwaitingBinding)
	waitAccountReason(t, c, "team-a", "supplied", acmeaccount.ReasonAwaitingBinding)
	minted := waitSecret(t, c, "team-a", "minted-eab")
	if minted.Labels[v1alpha1.LabelEABSecret] == "" {
		t.Fatalf("the minted Secret is not labelled %s: %v", v1alpha1.LabelEABSecret, minted.Labels)
	}
	mirror := waitSecret(t, c, clusterNS, v1alpha1.EABMirrorSecretName("team-a", "supplied"))
	if string(mirror.Data[v1alpha1.EABMirrorDataKey]) != key {
		t.Fatal("the mirror of the supplied key differs from it")
	}
	waitSecret(t, c, clusterNS, v1alpha1.EABMirrorSecretName("team-a", "minted"))
	waitSecret(t, c, clusterNS, "root-ca")

	var all corev1.SecretList
	if err := cache.List(context.Background(), &all); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range all.Items {
		names = append(names, s.Namespace+"/"+s.Name)
		if s.Namespace != clusterNS && s.Labels[v1alpha1.LabelEABSecret] == "" {
			t.Errorf("the controller caches %s/%s, an unlabelled Secret of another namespace", s.Namespace, s.Name)
		}
	}
	if !strings.Contains(strings.Join(names, " "), "team-a/minted-eab") {
		t.Errorf("the minted Secret is not in the cache: %v", names)
	}
	var s corev1.Secret
	if err := cache.Get(context.Background(), client.ObjectKey{Namespace: "team-a", Name: "database-password"}, &s); !apierrors.IsNotFound(err) {
		t.Fatalf("cache Get of an unlabelled team Secret: %v, want not found", err)
	}
}

// TestControllerNamespacedSecretMode (issue 13, finding 3): the chart with
// controller.eabNamespaces=[team-a] gives the controller's ServiceAccount no
// cluster-wide Secret rights: reading a Secret in team-b is 403, listing
// Secrets everywhere is 403; in team-a it mints and mirrors as before, and an
// AcmeAccount in team-b says why it gets no key.
func TestControllerNamespacedSecretMode(t *testing.T) {
	helm := harness.Tool(t, "KACME_HELM", "helm")
	cfg, c := kenvtest.Start(t)
	createAll(t, c, namespace(clusterNS), namespace("team-a"), namespace("team-b"),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "database-password"}, StringData: map[string]string{"password": "hunter2"}})
	cmd := exec.Command(helm, "template", "kacme", "charts/kacme", "--namespace", clusterNS, "--set", "controller.eabNamespaces={team-a}")
	cmd.Dir = kenvtest.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	objs, err := kenvtest.DecodeManifests(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			if o.GetNamespace() == "" && (o.GetKind() == "ServiceAccount" || o.GetKind() == "Role" || o.GetKind() == "RoleBinding") {
				o.SetNamespace(clusterNS)
			}
			if err := c.Create(context.Background(), o); err != nil {
				t.Fatalf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
	}
	sa := rest.CopyConfig(cfg)
	sa.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + clusterNS + ":kacme-controller",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + clusterNS, "system:authenticated"}}
	as, err := client.New(sa, client.Options{Scheme: kenvtest.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	var s corev1.Secret
	if err := as.Get(context.Background(), client.ObjectKey{Namespace: "team-b", Name: "database-password"}, &s); !apierrors.IsForbidden(err) {
		t.Fatalf("the controller's identity reading a Secret in an unlisted namespace: %v, want 403", err)
	}
	if err := as.List(context.Background(), &corev1.SecretList{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the controller's identity listing Secrets cluster-wide: %v, want 403", err)
	}
	if err := as.Get(context.Background(), client.ObjectKey{Namespace: "team-a", Name: "nope"}, &s); !apierrors.IsNotFound(err) {
		t.Fatalf("the controller's identity reading in a listed namespace: %v, want 404 (allowed)", err)
	}

	startController(t, sa, []string{"team-a"})
	createAll(t, c, eabAccount("team-a", "listed", "listed-eab"), eabAccount("team-b", "unlisted", "unlisted-eab"),
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"}, Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}})
	waitAccountReason(t, c, "team-a", "listed", acmeaccount.ReasonAwaitingBinding)
	waitSecret(t, c, "team-a", "listed-eab")
	waitSecret(t, c, clusterNS, v1alpha1.EABMirrorSecretName("team-a", "listed"))
	waitAccountReason(t, c, "team-b", "unlisted", acmeaccount.ReasonEABNamespaceNotAllowed)
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "team-b", Name: "unlisted-eab"}, &s); !apierrors.IsNotFound(err) {
		t.Fatalf("a Secret was minted in an unlisted namespace: %v", err)
	}
	waitSecret(t, c, clusterNS, "root-ca")
}
