package certificateauthority

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/ca/kubeca"
	"github.com/kacme/kacme/api/v1alpha1"
)

// outcome is what a sync decided: the CA (when usable), the Ready condition,
// and when to look again.
type outcome struct {
	auth    *ca.Authority
	status  metav1.ConditionStatus
	reason  string
	message string
	requeue time.Duration
	event   string // reason of an event to emit (a change happened)
}

func notReady(reason, format string, args ...any) outcome {
	return outcome{status: metav1.ConditionFalse, reason: reason, message: fmt.Sprintf(format, args...), requeue: 30 * time.Second}
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var obj v1alpha1.CertificateAuthority
	if err := r.Client.Get(ctx, req.NamespacedName, &obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	out, err := r.sync(ctx, &obj)
	if err != nil {
		return ctrl.Result{}, err // transient: retried with backoff
	}
	if out.event != "" {
		r.Recorder.Eventf(&obj, nil, corev1.EventTypeNormal, out.event, "Reconcile", "%s", out.message)
	} else if out.status == metav1.ConditionFalse && readyReason(&obj) != out.reason {
		r.Recorder.Eventf(&obj, nil, corev1.EventTypeWarning, out.reason, "Reconcile", "%s", out.message)
	}
	if err := r.updateStatus(ctx, &obj, out); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: out.requeue}, nil
}

func (r *Reconciler) sync(ctx context.Context, obj *v1alpha1.CertificateAuthority) (outcome, error) {
	s := obj.Spec
	if !s.HasOneSource() {
		return notReady(ReasonInvalidSpec, v1alpha1.ErrSourceCount), nil
	}
	if s.SecretRef != nil {
		var sec corev1.Secret
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: s.SecretRef.Name}, &sec)
		if apierrors.IsNotFound(err) {
			return notReady(ReasonInvalidSecret, "secret %s/%s does not exist", r.Namespace, s.SecretRef.Name), nil
		} else if err != nil {
			return outcome{}, err
		}
		auth, err := ca.FromTLSSecret(obj.Name, sec.Data)
		if err != nil {
			return notReady(ReasonInvalidSecret, "secret %s/%s: %v", r.Namespace, s.SecretRef.Name, err), nil
		}
		return r.ready(obj, auth, ""), nil
	}
	var issuer *ca.Authority
	if s.Intermediate != nil {
		var err error
		issuer, err = r.issuer(ctx, s.Intermediate.Issuer)
		if err != nil {
			return notReady(ReasonIssuerNotReady, "issuer %s: %v", s.Intermediate.Issuer, err), nil
		}
	}
	var sec corev1.Secret
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: obj.KeySecretName()}, &sec)
	switch {
	case apierrors.IsNotFound(err):
		auth, err := r.generate(ctx, obj, issuer)
		if err != nil {
			return outcome{}, err
		}
		return r.ready(obj, auth, ReasonGenerated), nil
	case err != nil:
		return outcome{}, err
	}
	auth, err := ca.FromTLSSecret(obj.Name, sec.Data)
	if err != nil {
		return notReady(ReasonInvalidSecret, "secret %s/%s: %v", r.Namespace, sec.Name, err), nil
	}
	if life := auth.Cert.NotAfter.Sub(auth.Cert.NotBefore); renewBefore(obj) >= life-time.Minute {
		// A new certificate (valid from a minute ago) would be due at once:
		// a renewal loop.
		return notReady(ReasonInvalidSpec, "renewBefore (%s) must be shorter than the certificate's validity (%s) minus a minute", renewBefore(obj), life), nil
	}
	if r.now().Add(renewBefore(obj)).After(auth.Cert.NotAfter) {
		if auth, err = r.renew(ctx, obj, &sec, auth, issuer); err != nil {
			return outcome{}, err
		}
		if obj.Spec.RotationPolicy == v1alpha1.RotationAlways {
			return r.ready(obj, auth, ReasonRotated), nil
		}
		return r.ready(obj, auth, ReasonRenewed), nil
	}
	return r.ready(obj, auth, ""), nil
}

func (r *Reconciler) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

func renewBefore(obj *v1alpha1.CertificateAuthority) time.Duration {
	if obj.Spec.RenewBefore != nil && obj.Spec.RenewBefore.Duration > 0 {
		return obj.Spec.RenewBefore.Duration
	}
	return 30 * 24 * time.Hour
}

func (r *Reconciler) ready(obj *v1alpha1.CertificateAuthority, auth *ca.Authority, event string) outcome {
	out := outcome{auth: auth, status: metav1.ConditionTrue, reason: ReasonReady, event: event,
		message: fmt.Sprintf("CA %s is valid until %s", auth.Cert.Subject, auth.Cert.NotAfter.UTC().Format(time.RFC3339))}
	if obj.Spec.SecretRef == nil { // generated: look again when renewal is due
		out.requeue = max(auth.Cert.NotAfter.Add(-renewBefore(obj)).Sub(r.now()), time.Minute)
	}
	return out
}

var errNotReady = errors.New("not ready")

// issuer loads a Ready issuer CA.
func (r *Reconciler) issuer(ctx context.Context, name string) (*ca.Authority, error) {
	var iss v1alpha1.CertificateAuthority
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &iss); err != nil {
		return nil, err
	}
	if readyReason(&iss) != ReasonReady {
		return nil, errNotReady
	}
	return kubeca.Load(ctx, r.Client, r.Namespace, &iss)
}

// newKey generates a key and certificate per spec: a root, or an
// intermediate issuer signs; the chain is the certificate and its issuers.
func newKey(obj *v1alpha1.CertificateAuthority, issuer *ca.Authority) (crypto.Signer, []*x509.Certificate, error) {
	if issuer == nil {
		return ca.GenerateSelfSigned(obj.Name, *obj.Spec.SelfSigned)
	}
	return ca.GenerateIntermediate(obj.Name, *obj.Spec.Intermediate, issuer)
}

func (r *Reconciler) generate(ctx context.Context, obj *v1alpha1.CertificateAuthority, issuer *ca.Authority) (*ca.Authority, error) {
	key, chain, err := newKey(obj, issuer)
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	sec, err := tlsSecret(r.Namespace, obj.KeySecretName(), key, chain)
	if err != nil {
		return nil, err
	}
	if err := controllerutil.SetControllerReference(obj, sec, r.Client.Scheme()); err != nil {
		return nil, err
	}
	if err := r.Client.Create(ctx, sec); err != nil {
		return nil, fmt.Errorf("create secret: %w", err)
	}
	return ca.New(obj.Name, chain[0], key, chain[1:])
}

func (r *Reconciler) renew(ctx context.Context, obj *v1alpha1.CertificateAuthority, sec *corev1.Secret, auth *ca.Authority, issuer *ca.Authority) (*ca.Authority, error) {
	validity := 10 * 365 * 24 * time.Hour
	if v := obj.Spec.SelfSigned; v != nil && v.Validity != nil {
		validity = v.Validity.Duration
	}
	if v := obj.Spec.Intermediate; v != nil {
		validity = 5 * 365 * 24 * time.Hour
		if v.Validity != nil {
			validity = v.Validity.Duration
		}
	}
	key := auth.Signer
	var chain []*x509.Certificate
	if obj.Spec.RotationPolicy == v1alpha1.RotationAlways {
		// A new key, hence a new certificate (a new root for a self-signed
		// CA); the old pair stays to sign CRLs for the leaves it issued.
		var err error
		if key, chain, err = newKey(obj, issuer); err != nil {
			return nil, fmt.Errorf("rotate: %w", err)
		}
	} else {
		cert, err := ca.Renew(auth.Signer, auth.Cert, r.now(), validity, issuer)
		if err != nil {
			return nil, fmt.Errorf("renew: %w", err)
		}
		chain = []*x509.Certificate{cert}
		if issuer != nil {
			chain = append(chain, issuer.Cert)
			chain = append(chain, issuer.Parents...)
		}
	}
	fresh, err := tlsSecret(sec.Namespace, sec.Name, key, chain)
	if err != nil {
		return nil, err
	}
	if key != auth.Signer {
		fresh.Data[ca.PreviousCertKey] = sec.Data[corev1.TLSCertKey]
		fresh.Data[ca.PreviousKeyKey] = sec.Data[corev1.TLSPrivateKeyKey]
	} else if prev := sec.Data[ca.PreviousCertKey]; len(prev) > 0 { // renewed with the same key: keep what an earlier rotation left
		fresh.Data[ca.PreviousCertKey], fresh.Data[ca.PreviousKeyKey] = prev, sec.Data[ca.PreviousKeyKey]
	}
	sec.Data = fresh.Data
	if err := r.Client.Update(ctx, sec); err != nil {
		return nil, fmt.Errorf("update secret: %w", err)
	}
	out, err := ca.FromTLSSecret(obj.Name, sec.Data)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func tlsSecret(ns, name string, key crypto.Signer, chain []*x509.Certificate) (*corev1.Secret, error) {
	keyPEM, crtPEM, err := ca.EncodePEM(key, chain)
	if err != nil {
		return nil, err
	}
	_, rootPEM, _ := ca.EncodePEM(key, chain[len(chain)-1:])
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "kacme"}},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: crtPEM, corev1.TLSPrivateKeyKey: keyPEM, "ca.crt": rootPEM},
	}, nil
}
