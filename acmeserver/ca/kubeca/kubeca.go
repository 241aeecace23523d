// Package kubeca loads a CertificateAuthority's key and chain from its
// Secret in the operator's namespace. The ACME server (cluster mode) and the
// controllers that sign with a CA (serving certificate) or check a profile
// against it load CAs here, and only here.
package kubeca

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Ready reports whether the CertificateAuthority controller has said the CA
// can sign (its Ready condition is True).
func Ready(obj *v1alpha1.CertificateAuthority) bool {
	return meta.IsStatusConditionTrue(obj.Status.Conditions, v1alpha1.ConditionReady)
}

// Load reads a CA's key and chain from its Secret in namespace: the one the
// controller generated (KeySecretName) or the imported spec.secretRef. The
// caller configures the URLs issued certificates carry (ConfigureURLs).
func Load(ctx context.Context, c client.Reader, namespace string, obj *v1alpha1.CertificateAuthority) (*ca.Authority, error) {
	sec, err := secretOf(ctx, c, namespace, obj)
	if err != nil {
		return nil, err
	}
	return fromSecret(obj, sec)
}

func secretOf(ctx context.Context, c client.Reader, namespace string, obj *v1alpha1.CertificateAuthority) (*corev1.Secret, error) {
	name := obj.KeySecretName()
	if obj.Spec.SecretRef != nil {
		name = obj.Spec.SecretRef.Name
	}
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &sec); err != nil {
		return nil, err
	}
	return &sec, nil
}

func fromSecret(obj *v1alpha1.CertificateAuthority, sec *corev1.Secret) (*ca.Authority, error) {
	a, err := ca.FromTLSSecret(obj.Name, sec.Data)
	if err != nil {
		return nil, err
	}
	a.CRLPerKey = obj.Spec.RotationPolicy == v1alpha1.RotationAlways && obj.Spec.SecretRef == nil
	return a, nil
}

// Cache is Load for callers that sign often (the Kubernetes signer): it
// parses a CA's Secret again only when the Secret (its resourceVersion) or
// what Load takes from the CertificateAuthority changed, instead of per
// issuance. The Secret is still read each time, from the caller's client
// (an informer cache), so a rotation is seen at once. The returned
// Authority is shared: callers must not change it.
type Cache struct {
	mu sync.Mutex
	m  map[string]cachedCA
}

type cachedCA struct {
	secretUID, secretRV string
	rotation            v1alpha1.RotationPolicy
	auth                *ca.Authority
}

// Load is kubeca.Load through the cache.
func (c *Cache) Load(ctx context.Context, r client.Reader, namespace string, obj *v1alpha1.CertificateAuthority) (*ca.Authority, error) {
	sec, err := secretOf(ctx, r, namespace, obj)
	if err != nil {
		return nil, err
	}
	key := obj.Name + "\x00" + sec.Namespace + "/" + sec.Name
	c.mu.Lock()
	hit, ok := c.m[key]
	c.mu.Unlock()
	if ok && hit.secretUID == string(sec.UID) && hit.secretRV == sec.ResourceVersion && sec.ResourceVersion != "" && hit.rotation == obj.Spec.RotationPolicy {
		return hit.auth, nil
	}
	a, err := fromSecret(obj, sec)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedCA{}
	}
	c.m[key] = cachedCA{secretUID: string(sec.UID), secretRV: sec.ResourceVersion, rotation: obj.Spec.RotationPolicy, auth: a}
	c.mu.Unlock()
	return a, nil
}
