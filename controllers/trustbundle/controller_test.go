package trustbundle_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/certificateauthority"
	"github.com/kacme/kacme/controllers/trustbundle"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

const operatorNS = "kacme-system"

// TestTrustBundle: an intermediate CA's root reaches exactly the namespaces
// its selector matches, follows relabelling, keeps the previous root after a
// rotation, and leaves when the CA stops publishing.
func TestTrustBundle(t *testing.T) {
	cfg, c := kenvtest.Start(t)
	ctx := context.Background()
	for _, ns := range []string{"team-a", "team-b"} {
		labels := map[string]string{}
		if ns == "team-a" {
			labels["kacme.io/trust"] = "yes"
		}
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}); err != nil {
			t.Fatal(err)
		}
	}
	kenvtest.StartManager(t, cfg, c, operatorNS, func(mgr ctrl.Manager) error {
		rec := mgr.GetEventRecorder("kacme-controller")
		if err := (&certificateauthority.Reconciler{Client: mgr.GetClient(), Namespace: operatorNS, Recorder: rec}).SetupWithManager(mgr); err != nil {
			return err
		}
		return (&trustbundle.Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(mgr)
	})
	for _, o := range []client.Object{
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "issuing"},
			Spec: v1alpha1.CertificateAuthoritySpec{Intermediate: &v1alpha1.IntermediateCA{Issuer: "root"},
				TrustBundle: &v1alpha1.TrustBundleSpec{NamespaceSelector: metav1.LabelSelector{MatchLabels: map[string]string{"kacme.io/trust": "yes"}}}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	var rootSecret corev1.Secret
	kenvtest.WaitFor(t, "the root CA", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: "root-ca"}, &rootSecret) == nil
	})
	bundle := func(ns string) (string, bool) {
		var cm corev1.ConfigMap
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "issuing-ca-bundle"}, &cm); err != nil {
			return "", false
		}
		return cm.Data["ca.crt"], true
	}
	kenvtest.WaitFor(t, "the bundle in team-a", func() bool { _, ok := bundle("team-a"); return ok })
	if got, _ := bundle("team-a"); got != string(rootSecret.Data["tls.crt"]) {
		t.Fatalf("bundle in team-a is not the root certificate:\n%s\nwant\n%s", got, rootSecret.Data["tls.crt"])
	}
	if _, ok := bundle("team-b"); ok {
		t.Fatal("bundle published to an unselected namespace")
	}
	// The CA owns its bundles (the garbage collector removes them with it,
	// also when no controller runs: the chart's serving CA at uninstall).
	var issuing v1alpha1.CertificateAuthority
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Name: "issuing"}, &issuing); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "issuing-ca-bundle"}, &cm); err != nil {
		t.Fatal(err)
	}
	if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != issuing.UID || cm.OwnerReferences[0].Kind != "CertificateAuthority" {
		t.Fatalf("bundle owners = %+v, want the CertificateAuthority issuing", cm.OwnerReferences)
	}
	relabel := func(ns, value string) {
		t.Helper()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var n corev1.Namespace
			if err := c.Get(ctx, client.ObjectKey{Name: ns}, &n); err != nil {
				return err
			}
			if value == "" {
				delete(n.Labels, "kacme.io/trust")
			} else {
				n.Labels = map[string]string{"kacme.io/trust": value}
			}
			return c.Update(ctx, &n)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	relabel("team-b", "yes")
	relabel("team-a", "")
	kenvtest.WaitFor(t, "the bundle to follow the labels", func() bool {
		_, inA := bundle("team-a")
		_, inB := bundle("team-b")
		return !inA && inB
	})
	// Rotation: the root gets a new key (its Secret replaced). The bundles
	// carry the new root first and the previous one, in every namespace.
	oldRoot := string(rootSecret.Data["tls.crt"])
	if err := c.Delete(ctx, &rootSecret); err != nil {
		t.Fatal(err)
	}
	var newRoot string
	kenvtest.WaitFor(t, "a new root", func() bool {
		var sec corev1.Secret
		if c.Get(ctx, client.ObjectKey{Namespace: operatorNS, Name: "root-ca"}, &sec) != nil || string(sec.Data["tls.crt"]) == oldRoot {
			return false
		}
		newRoot = string(sec.Data["tls.crt"])
		return true
	})
	// The intermediate is re-signed by the new root when it is next
	// reconciled; deleting its Secret too makes that now.
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNS, Name: "issuing-ca"}}); err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the bundle in team-b to carry the new and the previous root", func() bool {
		got, _ := bundle("team-b")
		return got == newRoot+oldRoot
	})
	relabel("team-a", "yes")
	kenvtest.WaitFor(t, "a namespace selected after the rotation to get the same bundle", func() bool {
		got, _ := bundle("team-a")
		return got == newRoot+oldRoot
	})
	// The CA stops publishing: its ConfigMaps go.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var ca v1alpha1.CertificateAuthority
		if err := c.Get(ctx, client.ObjectKey{Name: "issuing"}, &ca); err != nil {
			return err
		}
		ca.Spec.TrustBundle = nil
		return c.Update(ctx, &ca)
	})
	if err != nil {
		t.Fatal(err)
	}
	kenvtest.WaitFor(t, "the bundle to be withdrawn", func() bool {
		_, inA := bundle("team-a")
		_, inB := bundle("team-b")
		return !inA && !inB
	})
}
