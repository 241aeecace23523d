// Package serving keeps the ACME server's HTTPS certificate: issued by the
// controller from a CertificateAuthority into a kubernetes.io/tls Secret in
// the operator's namespace ("kacme server --tls-secret" serves it), issued
// again after two thirds of its life, when the CA's certificate changed, or
// when the wanted names changed.
package serving

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/ca/kubeca"
	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/trustbundle"
)

// Event reasons (on the CertificateAuthority).
const (
	ReasonIssued     = "ServingCertificateIssued"
	ReasonIssueError = "ServingCertificateFailed"
)

// Reconciler issues the serving certificate of CAName into
// Namespace/SecretName for the external URL's host and DNSNames.
type Reconciler struct {
	Client      client.Client
	Recorder    events.EventRecorder
	Namespace   string
	SecretName  string
	CAName      string
	ExternalURL string
	DNSNames    []string
	// Now is the clock (tests).
	Now func() time.Time
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	req := []reconcile.Request{{NamespacedName: client.ObjectKey{Name: r.CAName}}}
	return ctrl.NewControllerManagedBy(mgr).
		Named("serving").
		For(&v1alpha1.CertificateAuthority{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return o.GetName() == r.CAName
		}))).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if o.GetNamespace() == r.Namespace && o.GetName() == r.SecretName {
				return req
			}
			return nil
		})).
		Complete(r)
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile issues the certificate when the Secret's is missing, due, from
// another CA certificate, or for other names; otherwise it comes back when
// the certificate is due.
func (r *Reconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	var caObj v1alpha1.CertificateAuthority
	if err := r.Client.Get(ctx, client.ObjectKey{Name: r.CAName}, &caObj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // created later: the watch brings it
	}
	if caObj.Status.Chain == "" || !kubeca.Ready(&caObj) {
		return ctrl.Result{}, nil
	}
	auth, err := kubeca.Load(ctx, r.Client, r.Namespace, &caObj) // generated or imported (secretRef)
	if err != nil {
		r.Recorder.Eventf(&caObj, nil, corev1.EventTypeWarning, ReasonIssueError, "Reconcile", "CA key: %v", err)
		return ctrl.Result{}, nil
	}
	var sec corev1.Secret
	err = r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.SecretName}, &sec)
	if client.IgnoreNotFound(err) != nil {
		return ctrl.Result{}, err
	}
	exists := err == nil
	if exists {
		if due, ok := r.current(sec.Data[corev1.TLSCertKey], auth); ok {
			if !ownedBy(&sec, &caObj) { // written before kacme set owners
				if err := r.own(&caObj, &sec); err != nil {
					return ctrl.Result{}, err
				}
				if err := r.Client.Update(ctx, &sec); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
					return ctrl.Result{}, err
				}
			}
			return ctrl.Result{RequeueAfter: due.Sub(r.now()) + time.Second}, nil
		}
	}
	cert, err := ca.ServingCertificate(auth, r.ExternalURL, r.DNSNames...)
	if err != nil {
		r.Recorder.Eventf(&caObj, nil, corev1.EventTypeWarning, ReasonIssueError, "Reconcile", "%v", err)
		return ctrl.Result{}, nil
	}
	keyPEM, chainPEM, err := ca.EncodePEM(cert.PrivateKey.(crypto.Signer), append([]*x509.Certificate{cert.Leaf}, auth.Chains()[0]...))
	if err != nil {
		return ctrl.Result{}, err
	}
	data := map[string][]byte{
		corev1.TLSCertKey:       chainPEM,
		corev1.TLSPrivateKeyKey: keyPEM,
		"ca.crt":                trustbundle.Root(caObj.Status.Chain),
	}
	if !exists {
		sec = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.SecretName,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "kacme"}}, Type: corev1.SecretTypeTLS}
	}
	sec.Data = data
	if err := r.own(&caObj, &sec); err != nil {
		return ctrl.Result{}, err
	}
	if exists {
		err = r.Client.Update(ctx, &sec)
	} else {
		err = r.Client.Create(ctx, &sec)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return ctrl.Result{RequeueAfter: time.Second}, nil // someone else wrote it meanwhile: look again
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("write serving certificate Secret %s/%s: %w", r.Namespace, r.SecretName, err)
	}
	r.Recorder.Eventf(&caObj, nil, corev1.EventTypeNormal, ReasonIssued, "Reconcile",
		"issued the ACME server's HTTPS certificate into Secret %s/%s (valid until %s)", r.Namespace, r.SecretName,
		cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	return ctrl.Result{RequeueAfter: ca.RenewAt(cert.Leaf).Sub(r.now()) + time.Second}, nil
}

// own makes the CA an owner of the Secret: when the CA goes (the chart's
// serving CA, at helm uninstall), the garbage collector removes the Secret.
func (r *Reconciler) own(caObj *v1alpha1.CertificateAuthority, sec *corev1.Secret) error {
	return controllerutil.SetOwnerReference(caObj, sec, r.Client.Scheme())
}

func ownedBy(o metav1.Object, owner metav1.Object) bool {
	for _, ref := range o.GetOwnerReferences() {
		if ref.UID == owner.GetUID() {
			return true
		}
	}
	return false
}

// current reports whether the PEM chain's leaf was signed by auth's
// certificate, names what is wanted, and is not yet due; and when it is due.
func (r *Reconciler) current(chainPEM []byte, auth *ca.Authority) (time.Time, bool) {
	b, _ := pem.Decode(chainPEM)
	if b == nil {
		return time.Time{}, false
	}
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil || !bytes.Equal(leaf.RawIssuer, auth.Cert.RawSubject) || leaf.CheckSignatureFrom(auth.Cert) != nil {
		return time.Time{}, false
	}
	want, err := ca.ServingNames(r.ExternalURL, r.DNSNames...)
	if err != nil {
		return time.Time{}, false
	}
	got := slices.Clone(leaf.DNSNames)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return time.Time{}, false
	}
	due := ca.RenewAt(leaf)
	return due, r.now().Before(due)
}

// EnsureInternalKey creates Secret namespace/name with a random 256-bit key
// (data key "key") unless it exists: the HMAC key ACME server replicas
// authenticate each other's nonce redemptions with. An existing Secret is
// never changed.
func EnsureInternalKey(ctx context.Context, c client.Client, namespace, name string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "kacme"}}, Data: map[string][]byte{"key": key}}
	for {
		err := c.Create(ctx, sec)
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		select { // the API server may not be reachable yet
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}
