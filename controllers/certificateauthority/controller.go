// Package certificateauthority reconciles CertificateAuthority objects: it
// generates self-signed and intermediate CAs into Secrets in the operator's
// namespace, imports existing ones, renews generated certificates before they
// expire, and reports the CA in status.
package certificateauthority

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Event reasons.
const (
	ReasonReady          = "Ready"
	ReasonGenerated      = "Generated"
	ReasonRenewed        = "Renewed"
	ReasonRotated        = "Rotated" // renewed with a new key (rotationPolicy Always)
	ReasonInvalidSecret  = "InvalidSecret"
	ReasonIssuerNotReady = "IssuerNotReady"
	ReasonInvalidSpec    = "InvalidSpec"
	ReasonError          = "Error"
)

// Reconciler reconciles CertificateAuthority objects.
type Reconciler struct {
	Client client.Client
	// Namespace holds the CA Secrets (the operator's namespace).
	Namespace string
	Recorder  events.EventRecorder
	// Now is the clock (tests).
	Now func() time.Time
}

// +kubebuilder:rbac:groups=acme.kacme.io,resources=certificateauthorities,verbs=get;list;watch
// +kubebuilder:rbac:groups=acme.kacme.io,resources=certificateauthorities/status,verbs=get;update;patch
// CA keys live in the operator's namespace only:
// +kubebuilder:rbac:groups="",namespace=kacme-system,resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the controller: CAs, their Secrets, and the
// intermediates of a CA whenever the CA changes.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("certificateauthority").
		For(&v1alpha1.CertificateAuthority{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.forSecret)).
		Watches(&v1alpha1.CertificateAuthority{}, handler.EnqueueRequestsFromMapFunc(r.intermediatesOf)).
		Complete(r)
}

// forSecret maps a Secret to the CAs that keep or import it.
func (r *Reconciler) forSecret(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() != r.Namespace {
		return nil
	}
	var list v1alpha1.CertificateAuthorityList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		c := &list.Items[i]
		if c.KeySecretName() == o.GetName() || (c.Spec.SecretRef != nil && c.Spec.SecretRef.Name == o.GetName()) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: c.Name}})
		}
	}
	return out
}

// intermediatesOf maps a CA to the intermediates it signs.
func (r *Reconciler) intermediatesOf(ctx context.Context, o client.Object) []reconcile.Request {
	var list v1alpha1.CertificateAuthorityList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if in := list.Items[i].Spec.Intermediate; in != nil && in.Issuer == o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: list.Items[i].Name}})
		}
	}
	return out
}
