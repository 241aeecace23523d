// Package kubeca loads a CertificateAuthority's key and chain from its
// Secret in the operator's namespace. The ACME server (cluster mode) and the
// controllers that sign with a CA (serving certificate) or check a profile
// against it load CAs here, and only here.
package kubeca

import (
	"context"

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
	name := obj.KeySecretName()
	if obj.Spec.SecretRef != nil {
		name = obj.Spec.SecretRef.Name
	}
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &sec); err != nil {
		return nil, err
	}
	a, err := ca.FromTLSSecret(obj.Name, sec.Data)
	if err != nil {
		return nil, err
	}
	a.CRLPerKey = obj.Spec.RotationPolicy == v1alpha1.RotationAlways && obj.Spec.SecretRef == nil
	return a, nil
}
