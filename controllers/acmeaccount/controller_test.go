package acmeaccount_test

import (
	"context"
	"encoding/base64"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/acmeaccount"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

func TestMintsEABKey(t *testing.T) {
	cfg, c := kenvtest.Start(t)
	ctx := context.Background()
	const ns = "team-a"
	kenvtest.StartManager(t, cfg, c, ns, func(mgr ctrl.Manager) error {
		return (&acmeaccount.Reconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("kacme-controller")}).SetupWithManager(mgr)
	})
	// A Secret that exists is left alone.
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "given"},
		StringData: map[string]string{"key": "chosen-by-admin"}}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []*v1alpha1.AcmeAccount{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "minted"}, Spec: v1alpha1.AcmeAccountSpec{Profile: "default",
			ExternalAccountBinding: &v1alpha1.ExternalAccountKey{KeyID: "team-a", SecretName: "team-a-eab"}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "given"}, Spec: v1alpha1.AcmeAccountSpec{Profile: "default",
			ExternalAccountBinding: &v1alpha1.ExternalAccountKey{KeyID: "given", SecretName: "given"}}},
	} {
		if err := c.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	var sec corev1.Secret
	kenvtest.WaitFor(t, "the minted EAB secret", func() bool {
		return c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "team-a-eab"}, &sec) == nil
	})
	mac, err := base64.RawURLEncoding.DecodeString(string(sec.Data["key"]))
	if err != nil || len(mac) < 32 || string(sec.Data["keyID"]) != "team-a" || len(sec.OwnerReferences) != 1 {
		t.Fatalf("minted secret: %d-byte key, keyID %q, owners %v (%v)", len(mac), sec.Data["keyID"], sec.OwnerReferences, err)
	}
	var given corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "given"}, &given); err != nil || string(given.Data["key"]) != "chosen-by-admin" {
		t.Fatalf("an existing secret was changed: %q %v", given.Data["key"], err)
	}
}
