// Package acmeprofile reconciles AcmeProfile objects: it checks a profile
// against its CertificateAuthority and the rules the API schema cannot
// express, and reports readiness and the directory URL in status.
package acmeprofile

import (
	"context"

	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Condition type and reasons.
const (
	ConditionReady                     = "Ready"
	ReasonReady                        = "Ready"
	ReasonCertificateAuthorityMissing  = "CertificateAuthorityMissing"
	ReasonCertificateAuthorityNotReady = "CertificateAuthorityNotReady"
	ReasonInvalidSpec                  = "InvalidSpec"
)

// Reconciler reconciles AcmeProfile objects.
type Reconciler struct {
	Client client.Client
	// Namespace holds the CA Secrets (the operator's namespace).
	Namespace string
	// ExternalURL is the ACME server's base URL (https://host[:port]).
	ExternalURL string
	Recorder    events.EventRecorder
}

// +kubebuilder:rbac:groups=acme.kacme.io,resources=acmeprofiles,verbs=get;list;watch
// +kubebuilder:rbac:groups=acme.kacme.io,resources=acmeprofiles/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=acme.kacme.io,resources=certificateauthorities,verbs=get;list;watch

// SetupWithManager registers the controller; a CA change requeues the profiles that use it.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("acmeprofile").
		For(&v1alpha1.AcmeProfile{}).
		Watches(&v1alpha1.CertificateAuthority{}, handler.EnqueueRequestsFromMapFunc(r.profilesOf)).
		// Any profile's change may settle another's directory path conflict; profiles are few.
		Watches(&v1alpha1.AcmeProfile{}, handler.EnqueueRequestsFromMapFunc(r.allProfiles)).
		Complete(r)
}

// allProfiles requests every other profile (a directory path may have been freed or taken).
func (r *Reconciler) allProfiles(ctx context.Context, o client.Object) []reconcile.Request {
	return r.profilesWhere(ctx, func(p *v1alpha1.AcmeProfile) bool { return p.Name != o.GetName() })
}

// profilesOf requests the profiles signed by CertificateAuthority o.
func (r *Reconciler) profilesOf(ctx context.Context, o client.Object) []reconcile.Request {
	return r.profilesWhere(ctx, func(p *v1alpha1.AcmeProfile) bool { return p.Spec.CertificateAuthority == o.GetName() })
}

func (r *Reconciler) profilesWhere(ctx context.Context, keep func(*v1alpha1.AcmeProfile) bool) []reconcile.Request {
	var list v1alpha1.AcmeProfileList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if keep(&list.Items[i]) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: list.Items[i].Name}})
		}
	}
	return out
}
