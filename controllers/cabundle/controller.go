// Package cabundle injects kacme's trust bundle into cert-manager issuers: an
// Issuer or ClusterIssuer annotated with acme.kacme.io/inject-ca-from-profile
// gets spec.acme.caBundle set to the root of that profile's
// CertificateAuthority and, when the controller keeps the ACME server's HTTPS
// certificate (--serving-ca), the root of that CA; kept current when the CAs
// change, so cert-manager verifies kacme's directory without skipTLSVerify.
package cabundle

import (
	"bytes"
	"context"
	"fmt"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kacme/kacme/acmeserver/ca/kubeca"
	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/trustbundle"
)

// Event reasons (on the issuer).
const (
	ReasonInjected        = "CABundleInjected"
	ReasonNotACME         = "NotAnACMEIssuer"
	ReasonProfileNotFound = "ProfileNotFound"
	ReasonCANotReady      = "CertificateAuthorityNotReady"
)

// Reconciler keeps spec.acme.caBundle of annotated issuers of one kind
// (cert-manager's Issuer or ClusterIssuer).
type Reconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Cluster selects ClusterIssuers; otherwise namespaced Issuers.
	Cluster bool
	// ServingCA is the CertificateAuthority that issues the ACME server's
	// HTTPS certificate (controller --serving-ca); its root joins the bundle.
	ServingCA string
}

// +kubebuilder:rbac:groups=cert-manager.io,resources=issuers;clusterissuers,verbs=get;list;watch;patch

// Installed reports whether cert-manager's issuer kinds are served by the
// API server (the controllers run only then).
func Installed(mgr ctrl.Manager) bool {
	_, err := mgr.GetRESTMapper().RESTMapping(cmapi.SchemeGroupVersion.WithKind(cmapi.IssuerKind).GroupKind(), cmapi.SchemeGroupVersion.Version)
	return err == nil
}

// SetupWhenInstalled registers the Issuer and ClusterIssuer reconcilers
// with the manager now if cert-manager's CRDs are served, or else as soon as
// they are (checked every interval while the manager runs): cert-manager may
// be installed after kacme.
func SetupWhenInstalled(mgr ctrl.Manager, base Reconciler, interval time.Duration, log logr.Logger) error {
	setup := func() error {
		for _, cluster := range []bool{false, true} {
			r := base
			r.Cluster = cluster
			if err := r.SetupWithManager(mgr); err != nil {
				return err
			}
		}
		return nil
	}
	if Installed(mgr) {
		return setup()
	}
	log.Info("cert-manager's Issuer kind is not served yet; caBundle injection starts when it is", "annotation", v1alpha1.AnnotationInjectCAFromProfile)
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if Installed(mgr) {
					log.Info("cert-manager's Issuer kind is served; caBundle injection starts")
					return setup()
				}
			}
		}
	}))
}

func (r *Reconciler) newIssuer() cmapi.GenericIssuer {
	if r.Cluster {
		return &cmapi.ClusterIssuer{}
	}
	return &cmapi.Issuer{}
}

// SetupWithManager registers the controller. The scheme must know
// cert-manager's types (storage.KubeScheme does).
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	name := "cabundle-issuer"
	if r.Cluster {
		name = "cabundle-clusterissuer"
	}
	annotated := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetAnnotations()[v1alpha1.AnnotationInjectCAFromProfile] != ""
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named(name).
		For(r.newIssuer(), builder.WithPredicates(annotated)).
		Watches(&v1alpha1.AcmeProfile{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return r.issuersOf(ctx, func(profile string) bool { return profile == o.GetName() })
		})).
		Watches(&v1alpha1.CertificateAuthority{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var profiles v1alpha1.AcmeProfileList
			if err := r.Client.List(ctx, &profiles); err != nil {
				return nil
			}
			if o.GetName() == r.ServingCA {
				return r.issuersOf(ctx, func(string) bool { return true })
			}
			uses := map[string]bool{}
			for _, p := range profiles.Items {
				if p.Spec.CertificateAuthority == o.GetName() {
					uses[p.Name] = true
				}
			}
			return r.issuersOf(ctx, func(profile string) bool { return uses[profile] })
		})).
		Complete(r)
}

// issuersOf requests the annotated issuers whose profile matches.
func (r *Reconciler) issuersOf(ctx context.Context, match func(profile string) bool) []reconcile.Request {
	var items []client.Object
	if r.Cluster {
		var list cmapi.ClusterIssuerList
		if err := r.Client.List(ctx, &list); err != nil {
			return nil
		}
		for i := range list.Items {
			items = append(items, &list.Items[i])
		}
	} else {
		var list cmapi.IssuerList
		if err := r.Client.List(ctx, &list); err != nil {
			return nil
		}
		for i := range list.Items {
			items = append(items, &list.Items[i])
		}
	}
	var out []reconcile.Request
	for _, o := range items {
		if p := o.GetAnnotations()[v1alpha1.AnnotationInjectCAFromProfile]; p != "" && match(p) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
		}
	}
	return out
}

// Reconcile sets the issuer's caBundle to the root of its profile's CA.
// Problems are Warning Events on the issuer: cert-manager reports the
// issuer's own readiness, kacme does not write cert-manager's status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	iss := r.newIssuer()
	if err := r.Client.Get(ctx, req.NamespacedName, iss); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	profileName := iss.GetAnnotations()[v1alpha1.AnnotationInjectCAFromProfile]
	if profileName == "" {
		return ctrl.Result{}, nil // the annotation was removed: the caBundle is the user's now
	}
	if iss.GetSpec().ACME == nil {
		r.warn(iss, ReasonNotACME, "%s is set but the issuer has no spec.acme", v1alpha1.AnnotationInjectCAFromProfile)
		return ctrl.Result{}, nil
	}
	var profile v1alpha1.AcmeProfile
	if err := r.Client.Get(ctx, client.ObjectKey{Name: profileName}, &profile); err != nil {
		if apierrors.IsNotFound(err) {
			r.warn(iss, ReasonProfileNotFound, "AcmeProfile %q (annotation %s) does not exist", profileName, v1alpha1.AnnotationInjectCAFromProfile)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	var bundle []byte
	for _, name := range []string{profile.Spec.CertificateAuthority, r.ServingCA} {
		if name == "" {
			continue
		}
		var ca v1alpha1.CertificateAuthority
		err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &ca)
		if client.IgnoreNotFound(err) != nil {
			return ctrl.Result{}, err
		}
		if err != nil || ca.Status.Chain == "" || !kubeca.Ready(&ca) {
			r.warn(iss, ReasonCANotReady, "CertificateAuthority %q (of AcmeProfile %q or the server's HTTPS certificate) is not ready", name, profileName)
			return ctrl.Result{}, nil
		}
		if root := trustbundle.Root(ca.Status.Chain); !bytes.Contains(bundle, root) {
			bundle = append(bundle, root...)
		}
	}
	if bytes.Equal(iss.GetSpec().ACME.CABundle, bundle) {
		return ctrl.Result{}, nil
	}
	base := iss.DeepCopyObject().(client.Object)
	iss.GetSpec().ACME.CABundle = bundle
	if err := r.Client.Patch(ctx, iss, client.MergeFrom(base)); err != nil { // merge patch: only caBundle is sent
		return ctrl.Result{}, fmt.Errorf("set spec.acme.caBundle: %w", err)
	}
	r.Recorder.Eventf(iss, nil, corev1.EventTypeNormal, ReasonInjected, "Reconcile",
		"spec.acme.caBundle set to the root of AcmeProfile %q's CertificateAuthority %q%s", profileName, profile.Spec.CertificateAuthority, servingNote(r.ServingCA))
	return ctrl.Result{}, nil
}

func (r *Reconciler) warn(iss cmapi.GenericIssuer, reason, format string, args ...any) {
	r.Recorder.Eventf(iss, nil, corev1.EventTypeWarning, reason, "Reconcile", format, args...)
}

func servingNote(servingCA string) string {
	if servingCA == "" {
		return ""
	}
	return fmt.Sprintf(" and of %q (the ACME server's HTTPS certificate)", servingCA)
}
