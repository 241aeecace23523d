package integration

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

// TestControllerProcess runs "kacme controller" as a process against a real
// API server: a root, an intermediate and a profile become ready.
func TestControllerProcess(t *testing.T) {
	_, c, kc := kenvtest.StartWithKubeconfig(t)
	ctx := context.Background()
	const ns = kenvtest.OperatorNamespace
	bin := harness.BuildKacme(t)
	proc := harness.Start(t, []string{"KUBECONFIG=" + kc.Controller}, bin, "controller", "--namespace", ns, "--external-url", "https://acme.example.test", "--leader-elect")
	for _, o := range []client.Object{
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
			Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{KeyAlgorithm: v1alpha1.KeyECDSAP384}}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "issuing"},
			Spec: v1alpha1.CertificateAuthoritySpec{Intermediate: &v1alpha1.IntermediateCA{Issuer: "root"}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "issuing"}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	var p v1alpha1.AcmeProfile
	kenvtest.WaitFor(t, "the profile to become ready", func() bool {
		if err := c.Get(ctx, client.ObjectKey{Name: "default"}, &p); err != nil {
			return false
		}
		return meta.IsStatusConditionTrue(p.Status.Conditions, "Ready")
	})
	if p.Status.DirectoryURL != "https://acme.example.test/acme/default/directory" {
		t.Fatalf("directory URL %q", p.Status.DirectoryURL)
	}
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "issuing-ca"}, &sec); err != nil {
		t.Fatalf("intermediate secret: %v", err)
	}
	// Issue 14: leader election records its core Event (the RBAC allowed only
	// events.k8s.io), and an install logs no error: two reconciles racing to
	// write a status is not one (it logged "Reconciler error" for each).
	kenvtest.WaitFor(t, "the LeaderElection Event", func() bool {
		var evs corev1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return false
		}
		for _, e := range evs.Items {
			if e.Reason == "LeaderElection" {
				return true
			}
		}
		return false
	})
	for _, line := range strings.Split(proc.Output(), "\n") {
		if strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, "forbidden") || strings.HasPrefix(line, "E") && strings.Contains(line, "]") {
			t.Errorf("the controller logged an error on a clean install: %s", line)
		}
	}
}
