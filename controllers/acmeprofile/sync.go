package acmeprofile

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/ca/kubeca"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var obj v1alpha1.AcmeProfile
	if err := r.Client.Get(ctx, req.NamespacedName, &obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	status, reason, message, err := r.check(ctx, &obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	st := obj.Status.DeepCopy()
	if prev := meta.FindStatusCondition(st.Conditions, ConditionReady); status == metav1.ConditionFalse && (prev == nil || prev.Reason != reason) {
		r.Recorder.Eventf(&obj, nil, corev1.EventTypeWarning, reason, "Reconcile", "%s", message)
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: ConditionReady, Status: status, Reason: reason,
		Message: message, ObservedGeneration: obj.Generation})
	st.DirectoryURL = ""
	if status == metav1.ConditionTrue {
		st.DirectoryURL = r.ExternalURL + "/acme/" + obj.Path() + "/directory"
	}
	if !equality.Semantic.DeepEqual(&obj.Status, st) {
		obj.Status = *st
		// A conflict: the object changed since this copy was read, and that
		// change reconciles it again (not an error to log).
		if err := r.Client.Status().Update(ctx, &obj); err != nil && !apierrors.IsConflict(err) {
			return ctrl.Result{}, err
		}
	}
	if status == metav1.ConditionFalse && reason != ReasonInvalidSpec {
		return ctrl.Result{RequeueAfter: 30 * time.Second}, nil
	}
	return ctrl.Result{}, nil
}

// check decides the Ready condition. Spec errors are reported, never retried in a loop.
func (r *Reconciler) check(ctx context.Context, obj *v1alpha1.AcmeProfile) (metav1.ConditionStatus, string, string, error) {
	var caObj v1alpha1.CertificateAuthority
	err := r.Client.Get(ctx, client.ObjectKey{Name: obj.Spec.CertificateAuthority}, &caObj)
	if apierrors.IsNotFound(err) {
		return metav1.ConditionFalse, ReasonCertificateAuthorityMissing,
			fmt.Sprintf("CertificateAuthority %q does not exist", obj.Spec.CertificateAuthority), nil
	} else if err != nil {
		return "", "", "", err
	}
	if !kubeca.Ready(&caObj) {
		return metav1.ConditionFalse, ReasonCertificateAuthorityNotReady,
			fmt.Sprintf("CertificateAuthority %q is not ready", obj.Spec.CertificateAuthority), nil
	}
	auth, err := kubeca.Load(ctx, r.Client, r.Namespace, &caObj)
	if err != nil {
		return metav1.ConditionFalse, ReasonCertificateAuthorityNotReady,
			fmt.Sprintf("CertificateAuthority %q cannot be loaded: %v", obj.Spec.CertificateAuthority, err), nil
	}
	// The same validation the server applies when it loads the profile.
	auth.ConfigureURLs(caObj.Spec.CRL, caObj.Spec.OCSP, "")
	if _, err := profile.NewProfile(obj, map[string]*ca.Authority{caObj.Name: auth}); err != nil {
		return metav1.ConditionFalse, ReasonInvalidSpec, err.Error(), nil
	}
	// As in profile.NewConfig: of profiles sharing a path, the first by name serves it.
	var all v1alpha1.AcmeProfileList
	if err := r.Client.List(ctx, &all); err != nil {
		return "", "", "", err
	}
	for _, other := range all.Items {
		if other.Name < obj.Name && other.Path() == obj.Path() {
			return metav1.ConditionFalse, ReasonInvalidSpec, profile.PathConflictError(obj.Path(), other.Name).Error(), nil
		}
	}
	return metav1.ConditionTrue, ReasonReady, fmt.Sprintf("serving %s/acme/%s/directory", r.ExternalURL, obj.Path()), nil
}
