package signer

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/api/v1alpha1"
)

// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=certificatesigningrequests/status;certificatesigningrequests/approval,verbs=update

// CSRs signs approved CertificateSigningRequests for kacme's signer names
// whose KubernetesSigner enables it, and approves or denies them in
// approver mode. Requests for a signer that does not enable CSRs are left
// untouched.
type CSRs struct{ *Signer }

// SetupWithManager registers the reconciler.
func (r CSRs) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("certificatesigningrequest").
		For(&certv1.CertificateSigningRequest{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			csr, ok := o.(*certv1.CertificateSigningRequest)
			return ok && kacmeSigner(csr.Spec.SignerName) && len(csr.Status.Certificate) == 0
		}))).
		Complete(r)
}

func csrCondition(csr *certv1.CertificateSigningRequest, t certv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// Reconcile signs an approved request (or fails it with the reason), and
// in approver mode approves or denies a pending one.
func (r CSRs) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var csr certv1.CertificateSigningRequest
	if err := r.Client.Get(ctx, req.NamespacedName, &csr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !kacmeSigner(csr.Spec.SignerName) || len(csr.Status.Certificate) > 0 ||
		csrCondition(&csr, certv1.CertificateDenied) || csrCondition(&csr, certv1.CertificateFailed) {
		return ctrl.Result{}, nil
	}
	s, d, err := r.signerFor(ctx, csr.Spec.SignerName)
	if err != nil || d != nil || !s.Spec.CertificateSigningRequests.Enabled {
		return ctrl.Result{}, err // not ours to decide: leave it to whoever serves that name
	}
	approved := csrCondition(&csr, certv1.CertificateApproved)
	if !approved && !s.Spec.CertificateSigningRequests.Approve {
		return ctrl.Result{}, nil // waiting for an approver
	}
	id, pub, d, err := r.decideCSR(ctx, s, &csr)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !approved {
		return ctrl.Result{}, r.approve(ctx, s, &csr, d)
	}
	if d != nil {
		return ctrl.Result{}, r.finishCSR(ctx, &csr, s, certv1.CertificateFailed, d.reason, d.message, nil)
	}
	var maxSeconds int32
	if csr.Spec.ExpirationSeconds != nil {
		maxSeconds = *csr.Spec.ExpirationSeconds
	}
	nb, na, _, d := validity(s, r.now(), maxSeconds)
	if d != nil {
		return ctrl.Result{}, r.finishCSR(ctx, &csr, s, certv1.CertificateFailed, d.reason, d.message, nil)
	}
	issued, err := r.issue(ctx, s, pub, id, nb, na)
	var notReady *caNotReady
	switch {
	case errors.As(err, &notReady):
		r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, ReasonCertificateAuthority, "Sign", "%s", notReady.Error())
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	case errors.Is(err, ca.ErrPolicy):
		return ctrl.Result{}, r.finishCSR(ctx, &csr, s, certv1.CertificateFailed, "SigningFailed", err.Error(), nil)
	case err != nil:
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, r.finishCSR(ctx, &csr, s, "", ReasonIssued, "", issued)
}

// decideCSR checks the requester and the request against the policy: the
// requester must be a ServiceAccount the policy allows; the CSR may ask for
// the SPIFFE ID the policy gives it and for the DNS names of Services in its
// namespace (with serviceDNSNames), and for no other name or usage.
func (r CSRs) decideCSR(ctx context.Context, s *v1alpha1.KubernetesSigner, csr *certv1.CertificateSigningRequest) (identity, any, *denial, error) {
	var id identity
	nsName, sa, ok := strings.Cut(strings.TrimPrefix(csr.Spec.Username, serviceAccountUsernamPrefix), ":")
	if !strings.HasPrefix(csr.Spec.Username, serviceAccountUsernamPrefix) || !ok {
		return id, nil, deny(ReasonRequesterNotAllowed, "KubernetesSigner %s signs CertificateSigningRequests of ServiceAccounts only, not of %q", s.Name, csr.Spec.Username), nil
	}
	var ns corev1.Namespace
	if err := r.Client.Get(ctx, client.ObjectKey{Name: nsName}, &ns); err != nil {
		return id, nil, deny(ReasonNamespaceNotAllowed, "namespace %s: %v", nsName, err), client.IgnoreNotFound(err)
	}
	if d := allowedNamespace(s, &ns, sa); d != nil {
		return id, nil, d, nil
	}
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return id, nil, deny(ReasonIdentityNotAllowed, "spec.request holds no PEM CERTIFICATE REQUEST"), nil
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err == nil {
		err = req.CheckSignature()
	}
	if err != nil {
		return id, nil, deny(ReasonIdentityNotAllowed, "spec.request: %v", err), nil
	}
	if d := allowedKey(s, req.PublicKey); d != nil {
		return id, nil, d, nil
	}
	if d := allowedUsages(s, csr.Spec.Usages); d != nil {
		return id, nil, d, nil
	}
	id, d := r.csrIdentity(ctx, s, req, nsName, sa)
	return id, req.PublicKey, d, nil
}

// csrIdentity admits the names a CSR asks for that the policy gives its
// ServiceAccount, and refuses the request if it asks for any other.
func (r CSRs) csrIdentity(ctx context.Context, s *v1alpha1.KubernetesSigner, req *x509.CertificateRequest, ns, sa string) (identity, *denial) {
	var id identity
	if len(req.EmailAddresses)+len(req.IPAddresses) > 0 {
		return id, deny(ReasonIdentityNotAllowed, "KubernetesSigner %s issues no e-mail or IP names", s.Name)
	}
	want := spiffeID(s, ns, sa)
	for _, u := range req.URIs {
		if want == nil || u.String() != want.String() {
			return id, deny(ReasonIdentityNotAllowed, "URI %s is not this ServiceAccount's SPIFFE ID under KubernetesSigner %s", u, s.Name)
		}
		id.uris = append(id.uris, u)
	}
	if len(req.DNSNames) > 0 {
		var services corev1.ServiceList
		if err := r.Client.List(ctx, &services, client.InNamespace(ns)); err != nil {
			return id, deny(ReasonIdentityNotAllowed, "list Services of %s: %v", ns, err)
		}
		var names []string
		if s.Spec.Identities.ServiceDNSNames {
			for i := range services.Items { // any Service of the namespace, with a selector or not
				names = append(names, serviceDNSNames(s, &services.Items[i])...)
			}
		}
		for _, n := range req.DNSNames {
			if !slices.Contains(names, strings.ToLower(n)) {
				return id, deny(ReasonIdentityNotAllowed, "DNS name %s is not a Service of namespace %s that KubernetesSigner %s gives names to", n, ns, s.Name)
			}
			id.dnsNames = append(id.dnsNames, strings.ToLower(n))
		}
	}
	if len(id.dnsNames)+len(id.uris) == 0 {
		return id, deny(ReasonNoIdentity, "the request asks for no name this signer issues")
	}
	return id, nil
}

// allowedUsages refuses key usages the policy does not give.
func allowedUsages(s *v1alpha1.KubernetesSigner, us []certv1.KeyUsage) *denial {
	serverAuth, clientAuth := usages(s)
	for _, u := range us {
		switch u {
		case certv1.UsageDigitalSignature, certv1.UsageKeyEncipherment:
		case certv1.UsageServerAuth:
			if !serverAuth {
				return deny(ReasonUsageNotAllowed, "KubernetesSigner %s does not issue server auth certificates", s.Name)
			}
		case certv1.UsageClientAuth:
			if !clientAuth {
				return deny(ReasonUsageNotAllowed, "KubernetesSigner %s does not issue client auth certificates", s.Name)
			}
		default:
			return deny(ReasonUsageNotAllowed, "usage %q is not issued by KubernetesSigner %s", u, s.Name)
		}
	}
	return nil
}

// approve records the approver's decision through the approval subresource.
func (r CSRs) approve(ctx context.Context, s *v1alpha1.KubernetesSigner, csr *certv1.CertificateSigningRequest, d *denial) error {
	cond := certv1.CertificateSigningRequestCondition{Type: certv1.CertificateApproved, Status: corev1.ConditionTrue,
		Reason: "KacmePolicy", Message: fmt.Sprintf("within KubernetesSigner %s's policy", s.Name), LastUpdateTime: metav1.Now()}
	result := "Approved"
	if d != nil {
		cond.Type, cond.Reason, cond.Message, result = certv1.CertificateDenied, d.reason, d.message, "Denied"
	}
	csr.Status.Conditions = append(csr.Status.Conditions, cond)
	if err := r.Client.SubResource("approval").Update(ctx, csr); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.record(ctx, "csr", s, csr.Spec.SignerName, "", csr.Name, result, cond.Reason, nil)
	return nil
}

// finishCSR writes the certificate (or the Failed condition) through the
// status subresource and records it.
func (r CSRs) finishCSR(ctx context.Context, csr *certv1.CertificateSigningRequest, s *v1alpha1.KubernetesSigner,
	failed certv1.RequestConditionType, reason, message string, issued *issuedCert) error {
	result := "Issued"
	if issued != nil {
		csr.Status.Certificate = []byte(issued.chain)
	} else {
		result = string(failed)
		csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{Type: failed,
			Status: corev1.ConditionTrue, Reason: reason, Message: message, LastUpdateTime: metav1.Now()})
	}
	if err := r.Client.Status().Update(ctx, csr); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.record(ctx, "csr", s, csr.Spec.SignerName, "", csr.Name, result, reason, issued)
	return nil
}
