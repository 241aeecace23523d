package kubeca_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/ca/kubeca"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestCacheParsesOncePerSecretVersion: the cache hands out the same parsed
// CA while its Secret is unchanged, and the new key at once after the Secret
// changes (a rotation).
func TestCacheParsesOncePerSecretVersion(t *testing.T) {
	ctx := context.Background()
	secretData := func() map[string][]byte {
		key, chain, err := ca.GenerateSelfSigned("root", v1alpha1.SelfSignedCA{})
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, chainPEM, err := ca.EncodePEM(key, chain)
		if err != nil {
			t.Fatal(err)
		}
		return map[string][]byte{corev1.TLSPrivateKeyKey: keyPEM, corev1.TLSCertKey: chainPEM}
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kacme", Name: "root-ca"}, Data: secretData()}
	c := fake.NewClientBuilder().WithScheme(storage.KubeScheme()).WithObjects(sec).Build()
	obj := &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"}}
	var cache kubeca.Cache
	a1, err := cache.Load(ctx, c, "kacme", obj)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := cache.Load(ctx, c, "kacme", obj)
	if err != nil || a2 != a1 {
		t.Fatalf("second load: %p %v, want the first one (%p)", a2, err, a1)
	}
	sec.Data = secretData()
	if err := c.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	a3, err := cache.Load(ctx, c, "kacme", obj)
	if err != nil || a3 == a1 || a3.Cert.Equal(a1.Cert) {
		t.Fatalf("after the Secret changed: %v, same CA %v", err, a3 == a1)
	}
	obj.Spec.RotationPolicy = v1alpha1.RotationAlways
	if a4, err := cache.Load(ctx, c, "kacme", obj); err != nil || a4 == a3 || !a4.CRLPerKey {
		t.Fatalf("after the rotation policy changed: %v, CRLPerKey %v", err, a4 != nil && a4.CRLPerKey)
	}
}
