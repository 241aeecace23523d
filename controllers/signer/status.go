package signer

import (
	"context"
	"fmt"
	"strings"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kacme/kacme/acmeserver/ca/kubeca"
	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/trustbundle"
)

// +kubebuilder:rbac:groups=certificates.k8s.io,resources=clustertrustbundles,verbs=get;list;watch;create;update;delete

// Condition types and reasons on a KubernetesSigner.
const (
	ConditionPodCertificates = "PodCertificateRequests"
	ReasonAPINotServed       = "APINotServed"
	ReasonServed             = "Served"
	ReasonPolicyInvalid      = "PolicyInvalid"
	ReasonReady              = "Ready"
)

// Signers keeps each KubernetesSigner's status and the ClusterTrustBundles
// of the CAs: one unlinked bundle per Ready CA (kacme-<ca>, for general
// trust) and one linked to each signer's name (acme.kacme.io:<signer>:<ca>,
// which pods select with a clusterTrustBundle projection by signerName).
// Old roots stay in a bundle until they expire, through CA rotation.
type Signers struct {
	*Signer
	// PodAPI and BundleAPI say whether the cluster serves
	// PodCertificateRequests and ClusterTrustBundles (certificates.k8s.io/v1).
	PodAPI, BundleAPI bool
}

// SetupWithManager registers the reconciler (keyed by CertificateAuthority
// name for bundles, and by signer for status).
func (r Signers) SetupWithManager(mgr ctrl.Manager) error {
	b := ctrl.NewControllerManagedBy(mgr).Named("kubernetessigner").
		For(&v1alpha1.KubernetesSigner{}).
		Watches(&v1alpha1.CertificateAuthority{}, handler.EnqueueRequestsFromMapFunc(r.signersOf))
	if r.BundleAPI {
		b = b.Watches(&certv1.ClusterTrustBundle{}, handler.EnqueueRequestsFromMapFunc(bundleOwner))
	}
	return b.Complete(r)
}

// signersOf requests every signer that signs with the CA (and the CA's own
// unlinked bundle, under the CA's name prefixed with "ca:").
func (r Signers) signersOf(ctx context.Context, o client.Object) []reconcile.Request {
	out := []reconcile.Request{{NamespacedName: client.ObjectKey{Name: caKey + o.GetName()}}}
	var list v1alpha1.KubernetesSignerList
	if err := r.Client.List(ctx, &list); err != nil {
		return out
	}
	for _, s := range list.Items {
		if s.Spec.CertificateAuthority == o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: s.Name}})
		}
	}
	return out
}

// bundleOwner requests the reconcile of a bundle's owner (a changed or
// deleted bundle is put back).
func bundleOwner(_ context.Context, o client.Object) []reconcile.Request {
	for _, ref := range o.GetOwnerReferences() {
		switch ref.Kind {
		case "CertificateAuthority":
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: caKey + ref.Name}}}
		case "KubernetesSigner":
			return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: ref.Name}}}
		}
	}
	return nil
}

// caKey marks a request for a CA's unlinked bundle ("ca:<name>" is not a
// valid KubernetesSigner name, so the two never collide).
const caKey = "ca:"

// Reconcile keeps a signer's status and linked bundle, or a CA's unlinked bundle.
func (r Signers) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if name, ok := strings.CutPrefix(req.Name, caKey); ok {
		return ctrl.Result{}, r.caBundle(ctx, name)
	}
	var s v1alpha1.KubernetesSigner
	if err := r.Client.Get(ctx, req.NamespacedName, &s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	var caObj v1alpha1.CertificateAuthority
	err := r.Client.Get(ctx, client.ObjectKey{Name: s.Spec.CertificateAuthority}, &caObj)
	if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	caReady := err == nil && kubeca.Ready(&caObj) && caObj.Status.Chain != ""
	if caReady && r.BundleAPI {
		name := strings.ReplaceAll(s.SignerName(), "/", ":") + ":" + caObj.Name
		if err := r.publish(ctx, &s, name, s.SignerName(), trustbundle.Root(caObj.Status.Chain)); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, r.writeStatus(ctx, &s, caReady)
}

// caBundle publishes a Ready CA's unlinked ClusterTrustBundle.
func (r Signers) caBundle(ctx context.Context, name string) error {
	if !r.BundleAPI {
		return nil
	}
	var caObj v1alpha1.CertificateAuthority
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &caObj); err != nil {
		return client.IgnoreNotFound(err) // deleted: its bundle goes with it (owner reference)
	}
	if !kubeca.Ready(&caObj) || caObj.Status.Chain == "" {
		return nil
	}
	return r.publish(ctx, &caObj, "kacme-"+caObj.Name, "", trustbundle.Root(caObj.Status.Chain))
}

// publish creates or updates a ClusterTrustBundle owned by owner: the
// current root, then the roots it held before that have not expired.
func (r Signers) publish(ctx context.Context, owner client.Object, name, signerName string, root []byte) error {
	var cur certv1.ClusterTrustBundle
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &cur)
	if client.IgnoreNotFound(err) != nil {
		return err
	}
	if apierrors.IsNotFound(err) {
		ctb := &certv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: certv1.ClusterTrustBundleSpec{SignerName: signerName, TrustBundle: string(root)}}
		if err := controllerutil.SetControllerReference(owner, ctb, r.Client.Scheme()); err != nil {
			return err
		}
		return client.IgnoreAlreadyExists(r.Client.Create(ctx, ctb))
	}
	bundle := string(trustbundle.WithPreviousRoots(root, [][]byte{[]byte(cur.Spec.TrustBundle)}, r.now()))
	if cur.Spec.TrustBundle == bundle {
		return nil
	}
	cur.Spec.TrustBundle = bundle
	if err := r.Client.Update(ctx, &cur); apierrors.IsConflict(err) {
		return nil // changed meanwhile: that event reconciles again
	} else if err != nil {
		return err
	}
	return nil
}

// writeStatus sets the signer name and the Ready and PodCertificateRequests
// conditions (an Event when one changes to False).
func (r Signers) writeStatus(ctx context.Context, s *v1alpha1.KubernetesSigner, caReady bool) error {
	want := s.DeepCopy()
	want.Status.SignerName = s.SignerName()
	ready := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonReady,
		Message: fmt.Sprintf("signs for %s with CertificateAuthority %s", s.SignerName(), s.Spec.CertificateAuthority), ObservedGeneration: s.Generation}
	if msg := policyProblem(s); msg != "" {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, ReasonPolicyInvalid, msg
	} else if !caReady {
		ready.Status, ready.Reason = metav1.ConditionFalse, ReasonCertificateAuthority
		ready.Message = fmt.Sprintf("CertificateAuthority %s does not exist or is not Ready", s.Spec.CertificateAuthority)
	}
	pods := metav1.Condition{Type: ConditionPodCertificates, Status: metav1.ConditionTrue, Reason: ReasonServed,
		Message: "the cluster serves PodCertificateRequests (certificates.k8s.io/v1): podCertificate volumes work", ObservedGeneration: s.Generation}
	if !r.PodAPI {
		pods.Status, pods.Reason = metav1.ConditionFalse, ReasonAPINotServed
		pods.Message = "the cluster does not serve certificates.k8s.io/v1 PodCertificateRequests (Kubernetes 1.37 or later; the PodCertificateRequest feature gate): " +
			"podCertificate volumes cannot use this signer; CertificateSigningRequests still can"
	}
	for _, c := range []metav1.Condition{ready, pods} {
		if prev := meta.FindStatusCondition(s.Status.Conditions, c.Type); c.Status == metav1.ConditionFalse && (prev == nil || prev.Reason != c.Reason) {
			r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, c.Reason, "Reconcile", "%s", c.Message)
		}
		meta.SetStatusCondition(&want.Status.Conditions, c)
	}
	if equalStatus(s.Status, want.Status) {
		return nil
	}
	if err := r.Client.Status().Update(ctx, want); apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	return nil
}

func equalStatus(a, b v1alpha1.KubernetesSignerStatus) bool {
	if a.SignerName != b.SignerName || len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for _, c := range b.Conditions {
		p := meta.FindStatusCondition(a.Conditions, c.Type)
		if p == nil || p.Status != c.Status || p.Reason != c.Reason || p.Message != c.Message || p.ObservedGeneration != c.ObservedGeneration {
			return false
		}
	}
	return true
}

// policyProblem says what is wrong with a policy ("" when nothing).
func policyProblem(s *v1alpha1.KubernetesSigner) string {
	if s.Spec.NamespaceSelector != nil {
		if _, err := metav1.LabelSelectorAsSelector(s.Spec.NamespaceSelector); err != nil {
			return "spec.namespaceSelector: " + err.Error()
		}
	}
	if s.Spec.MaxLifetime != nil && s.Spec.MaxLifetime.Duration < minLifetime {
		return fmt.Sprintf("spec.maxLifetime: %s is shorter than the %s Kubernetes requires", s.Spec.MaxLifetime.Duration, minLifetime)
	}
	if s.Spec.Backdate != nil && (s.Spec.Backdate.Duration < 0 || s.Spec.Backdate.Duration > maxBackdate) {
		return fmt.Sprintf("spec.backdate: %s is outside 0 to %s (the API server requires notBefore within 5 minutes of its clock)", s.Spec.Backdate.Duration, maxBackdate)
	}
	return ""
}
