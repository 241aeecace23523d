// Package acmeaccount reconciles pre-registered AcmeAccount objects: when an
// administrator declares an account with an External Account Binding key ID
// and the named Secret does not exist, the controller mints the HMAC key into
// it (RFC 8555 §7.3.4: the CA provides the MAC key out of band). The account
// object itself is written only by the ACME server.
package acmeaccount

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Event reasons.
const (
	ReasonMinted = "EABKeyMinted"
)

// Reconciler mints EAB keys for pre-registered accounts.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=acme.kacme.io,resources=acmeaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create

// SetupWithManager registers the controller for accounts that carry an EAB key reference.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	hasEAB := predicate.NewPredicateFuncs(func(o client.Object) bool {
		a, ok := o.(*v1alpha1.AcmeAccount)
		return ok && a.Spec.ExternalAccountBinding != nil
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("acmeaccount").
		For(&v1alpha1.AcmeAccount{}, builder.WithPredicates(hasEAB)).
		Owns(&corev1.Secret{}).
		Complete(r)
}

// Reconcile creates the EAB Secret when it is missing; an existing Secret is never changed.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var a v1alpha1.AcmeAccount
	if err := r.Client.Get(ctx, req.NamespacedName, &a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	ref := a.Spec.ExternalAccountBinding
	if ref == nil || a.Status.Key != "" {
		return ctrl.Result{}, nil // nothing to mint, or already bound
	}
	key := ref.SecretKey
	if key == "" {
		key = "key"
	}
	var sec corev1.Secret
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: ref.SecretName}, &sec)
	if err == nil || !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	mac := make([]byte, 32) // 256 bits: the minimum for HS256 (RFC 7518 §3.2)
	if _, err := rand.Read(mac); err != nil {
		return ctrl.Result{}, err
	}
	sec = corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: ref.SecretName,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "kacme", v1alpha1.LabelAccount: a.Name}},
		Type:       corev1.SecretTypeOpaque,
		StringData: map[string]string{key: base64.RawURLEncoding.EncodeToString(mac), "keyID": ref.KeyID},
	}
	if err := controllerutil.SetControllerReference(&a, &sec, r.Client.Scheme()); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.Client.Create(ctx, &sec); err != nil {
		return ctrl.Result{}, fmt.Errorf("create EAB secret: %w", client.IgnoreAlreadyExists(err))
	}
	r.Recorder.Eventf(&a, nil, corev1.EventTypeNormal, ReasonMinted, "Reconcile",
		"minted the HMAC key for EAB key ID %q into secret %s", ref.KeyID, ref.SecretName)
	return ctrl.Result{}, nil
}
