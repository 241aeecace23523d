// Package trustbundle publishes CertificateAuthority trust bundles: for a CA
// with spec.trustBundle, the root of its chain (and, after a rotation, the
// previous roots until they expire) goes into a ConfigMap in every namespace
// the selector matches, and leaves the namespaces it stops matching. The CA
// owns its ConfigMaps: when it is deleted (also while no controller runs,
// e.g. the chart's serving CA at helm uninstall), the garbage collector
// removes them.
package trustbundle

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Event reasons.
const (
	ReasonPublished       = "TrustBundlePublished"
	ReasonInvalidSelector = "InvalidNamespaceSelector"
	ReasonConfigMapTaken  = "TrustBundleConfigMapExists"
)

// CacheOptions limit the manager's ConfigMap cache to the bundles kacme
// manages (so the controller does not hold every ConfigMap of the cluster).
func CacheOptions() cache.ByObject {
	req, _ := labels.NewRequirement(v1alpha1.LabelTrustBundleOf, selection.Exists, nil)
	return cache.ByObject{Label: labels.NewSelector().Add(*req)}
}

// Reconciler publishes trust bundles.
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;delete

// SetupWithManager registers the controller; the manager's ConfigMap cache
// should use CacheOptions.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("trustbundle").
		For(&v1alpha1.CertificateAuthority{}).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.publishingCAs)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if ca := o.GetLabels()[v1alpha1.LabelTrustBundleOf]; ca != "" {
				return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: ca}}}
			}
			return nil
		})).
		Complete(r)
}

// publishingCAs requests every CA that publishes a bundle (a namespace came, went or was relabelled).
func (r *Reconciler) publishingCAs(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.CertificateAuthorityList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, c := range list.Items {
		if c.Spec.TrustBundle != nil {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: c.Name}})
		}
	}
	return out
}

// Reconcile makes the CA's bundle ConfigMaps exactly the selected namespaces' ones.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var ca v1alpha1.CertificateAuthority
	err := r.Client.Get(ctx, req.NamespacedName, &ca)
	if err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	want := map[string]bool{} // namespaces that get the bundle
	var current []byte
	if err == nil && ca.Spec.TrustBundle != nil && ca.Status.Chain != "" {
		current = Root(ca.Status.Chain)
		sel, err := metav1.LabelSelectorAsSelector(&ca.Spec.TrustBundle.NamespaceSelector)
		if err != nil {
			r.Recorder.Eventf(&ca, nil, corev1.EventTypeWarning, ReasonInvalidSelector, "Reconcile", "spec.trustBundle.namespaceSelector: %v", err)
			return ctrl.Result{}, nil
		}
		var nss corev1.NamespaceList
		if err := r.Client.List(ctx, &nss, client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return ctrl.Result{}, err
		}
		for _, ns := range nss.Items {
			if ns.DeletionTimestamp == nil {
				want[ns.Name] = true
			}
		}
	}
	// Remove what no longer belongs: unselected namespaces, a renamed ConfigMap, a CA gone or without a bundle.
	var have corev1.ConfigMapList
	if err := r.Client.List(ctx, &have, client.MatchingLabels{v1alpha1.LabelTrustBundleOf: req.Name}); err != nil {
		return ctrl.Result{}, err
	}
	var bundle []byte
	if current != nil {
		bundle = withPreviousRoots(current, have.Items, time.Now())
	}
	for i := range have.Items {
		cm := &have.Items[i]
		if !want[cm.Namespace] || cm.Name != ca.BundleConfigMap() {
			if err := r.Client.Delete(ctx, cm); client.IgnoreNotFound(err) != nil {
				return ctrl.Result{}, err
			}
		}
	}
	published := 0
	for ns := range want {
		changed, err := r.publish(ctx, &ca, ns, bundle)
		if err != nil {
			return ctrl.Result{}, err
		}
		if changed {
			published++
		}
	}
	if published > 0 {
		r.Recorder.Eventf(&ca, nil, corev1.EventTypeNormal, ReasonPublished, "Reconcile",
			"published the trust bundle to ConfigMap %s in %d namespace(s)", ca.BundleConfigMap(), published)
	}
	return ctrl.Result{}, nil
}

// publish creates or updates the bundle in ns; it reports whether it wrote.
func (r *Reconciler) publish(ctx context.Context, ca *v1alpha1.CertificateAuthority, ns string, bundle []byte) (bool, error) {
	name, key := ca.BundleConfigMap(), ca.BundleKey()
	var cm corev1.ConfigMap
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cm)
	if apierrors.IsNotFound(err) {
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{
			v1alpha1.LabelTrustBundleOf: ca.Name, "app.kubernetes.io/managed-by": "kacme"}},
			Data: map[string]string{key: string(bundle)}}
		if err := controllerutil.SetOwnerReference(ca, &cm, r.Client.Scheme()); err != nil {
			return false, err
		}
		if err := r.Client.Create(ctx, &cm); err != nil {
			if apierrors.IsAlreadyExists(err) { // someone else's ConfigMap (outside the cache): leave it
				r.Recorder.Eventf(ca, nil, corev1.EventTypeWarning, ReasonConfigMapTaken, "Reconcile",
					"ConfigMap %s/%s exists and is not managed by kacme; the trust bundle is not published there", ns, name)
				return false, nil
			}
			return false, fmt.Errorf("create trust bundle %s/%s: %w", ns, name, err)
		}
		return true, nil
	}
	if err != nil {
		return false, err
	}
	owned := slices.ContainsFunc(cm.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == ca.UID })
	if len(cm.Data) == 1 && cm.Data[key] == string(bundle) && owned {
		return false, nil
	}
	cm.Data = map[string]string{key: string(bundle)}
	if err := controllerutil.SetOwnerReference(ca, &cm, r.Client.Scheme()); err != nil {
		return false, err
	}
	return true, r.Client.Update(ctx, &cm)
}

// withPreviousRoots is current followed by the unexpired roots the CA's
// bundles carried before (a rotated root stays trusted while leaves it
// signed may still be in use, and every namespace gets the same bundle).
func withPreviousRoots(current []byte, published []corev1.ConfigMap, now time.Time) []byte {
	var bundles [][]byte
	for _, cm := range published {
		for _, v := range cm.Data {
			bundles = append(bundles, []byte(v))
		}
	}
	return WithPreviousRoots(current, bundles, now)
}

// WithPreviousRoots is current followed by the unexpired certificates of
// the bundles published before, newest expiry first, each once: after a
// root rotation, the old root stays in the bundle until it expires. The
// ConfigMap bundles and the ClusterTrustBundles are kept this way.
func WithPreviousRoots(current []byte, published [][]byte, now time.Time) []byte {
	cur, _ := pem.Decode(current)
	if cur == nil {
		return current
	}
	out := append([]byte{}, current...)
	seen := map[string]bool{string(cur.Bytes): true}
	var previous []*x509.Certificate
	for _, bundle := range published {
		for _, b := range pemBlocks(bundle) {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil || seen[string(b.Bytes)] || !now.Before(c.NotAfter) {
				continue
			}
			seen[string(b.Bytes)] = true
			previous = append(previous, c)
		}
	}
	slices.SortFunc(previous, func(a, b *x509.Certificate) int { return b.NotAfter.Compare(a.NotAfter) })
	for _, c := range previous {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// Root returns the last certificate of a PEM chain (the root), as PEM.
func Root(chain string) []byte {
	blocks := pemBlocks([]byte(chain))
	if len(blocks) == 0 {
		return nil
	}
	return pem.EncodeToMemory(blocks[len(blocks)-1])
}

// pemBlocks are the PEM blocks in data, in order.
func pemBlocks(data []byte) []*pem.Block {
	var out []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return out
		}
		out = append(out, b)
	}
}
