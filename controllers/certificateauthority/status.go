package certificateauthority

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/api/v1alpha1"
)

// ConditionReady is the condition type that says a CA can sign (kubeca.Ready reads it).
const ConditionReady = v1alpha1.ConditionReady

func readyReason(obj *v1alpha1.CertificateAuthority) string {
	if c := meta.FindStatusCondition(obj.Status.Conditions, ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
		return ReasonReady
	} else if c != nil {
		return c.Reason
	}
	return ""
}

// updateStatus writes the status once, and only when it changed.
func (r *Reconciler) updateStatus(ctx context.Context, obj *v1alpha1.CertificateAuthority, out outcome) error {
	st := obj.Status.DeepCopy()
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: ConditionReady, Status: out.status, Reason: out.reason,
		Message: out.message, ObservedGeneration: obj.Generation})
	if a := out.auth; a != nil {
		sum := sha256.Sum256(a.Cert.Raw)
		nb, na := metav1.NewTime(a.Cert.NotBefore), metav1.NewTime(a.Cert.NotAfter)
		st.Subject, st.SerialNumber, st.FingerprintSHA256 = a.Cert.Subject.String(), fmt.Sprintf("%x", a.Cert.SerialNumber), hex.EncodeToString(sum[:])
		st.NotBefore, st.NotAfter = &nb, &na
		var chain []byte
		for _, c := range append([]*x509.Certificate{a.Cert}, a.Parents...) {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		st.Chain = string(chain)
	}
	if equality.Semantic.DeepEqual(&obj.Status, st) {
		return nil
	}
	obj.Status = *st
	// A conflict means the object changed since the cache's copy was read (a
	// second reconcile overtaking the first's write): that change is an event
	// that reconciles it again, with the fresh copy. Not an error to log.
	if err := r.Client.Status().Update(ctx, obj); err != nil && !apierrors.IsConflict(err) {
		return err
	}
	return nil
}
