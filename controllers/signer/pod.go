package signer

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/ca/kubeca"
	"github.com/kacme/kacme/api/v1alpha1"
)

// RBAC of the signer: read the requests, write their status, and sign for
// (and approve, and attest ClusterTrustBundles of) kacme's signer names
// only; read what a pod request names (pods, nodes, ServiceAccounts) and
// the Services whose names go into certificates.
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=podcertificaterequests,verbs=get;list;watch
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=podcertificaterequests/status,verbs=update
// +kubebuilder:rbac:groups=certificates.k8s.io,resources=signers,resourceNames=acme.kacme.io/*,verbs=sign;approve;attest
// +kubebuilder:rbac:groups="",resources=pods;nodes;serviceaccounts,verbs=get
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=acme.kacme.io,resources=kubernetessigners,verbs=get;list;watch
// +kubebuilder:rbac:groups=acme.kacme.io,resources=kubernetessigners/status,verbs=update;patch

// Signer holds what the pod and CSR reconcilers share.
type Signer struct {
	Client client.Client
	// APIReader reads pods, nodes and ServiceAccounts (not cached: a
	// cluster's pods are many, and a request needs three reads once).
	APIReader client.Reader
	// Namespace is the operator's namespace (CA Secrets).
	Namespace string
	Recorder  events.EventRecorder
	Audit     *audit.Logger
	// Now is the clock (tests).
	Now func() time.Time
	// cas keeps each CA parsed until its Secret changes.
	cas kubeca.Cache
}

// PodCertificates issues the certificates of podCertificate volumes.
type PodCertificates struct{ *Signer }

// kacmeSigner filters requests to kacme's signer names.
func kacmeSigner(name string) bool { return strings.HasPrefix(name, v1alpha1.SignerNamePrefix) }

// SetupWithManager registers the reconciler.
func (r PodCertificates) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("podcertificaterequest").
		For(&certv1.PodCertificateRequest{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			pcr, ok := o.(*certv1.PodCertificateRequest)
			return ok && kacmeSigner(pcr.Spec.SignerName) && !finished(pcr.Status.Conditions)
		}))).
		Complete(r)
}

// finished reports whether a request already has its one terminal condition.
func finished(conds []metav1.Condition) bool {
	for _, t := range []string{certv1.PodCertificateRequestConditionTypeIssued, certv1.PodCertificateRequestConditionTypeDenied,
		certv1.PodCertificateRequestConditionTypeFailed} {
		if meta.IsStatusConditionTrue(conds, t) {
			return true
		}
	}
	return false
}

// Reconcile decides one PodCertificateRequest: issued, denied (with the
// reason), or failed; a CA that is not ready yet is retried.
func (r PodCertificates) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pcr certv1.PodCertificateRequest
	if err := r.Client.Get(ctx, req.NamespacedName, &pcr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !kacmeSigner(pcr.Spec.SignerName) || finished(pcr.Status.Conditions) {
		return ctrl.Result{}, nil
	}
	s, d, err := r.signerFor(ctx, pcr.Spec.SignerName)
	if err != nil {
		return ctrl.Result{}, err
	}
	var issued *issuedCert
	if d == nil {
		issued, d, err = r.decidePod(ctx, s, &pcr)
		if err != nil {
			return r.retryOrFail(ctx, s, &pcr, err)
		}
	}
	if d != nil {
		return ctrl.Result{}, r.finishPod(ctx, &pcr, s, certv1.PodCertificateRequestConditionTypeDenied, d.reason, d.message, nil)
	}
	return ctrl.Result{}, r.finishPod(ctx, &pcr, s, certv1.PodCertificateRequestConditionTypeIssued, ReasonIssued,
		fmt.Sprintf("issued by KubernetesSigner %s from CertificateAuthority %s", s.Name, s.Spec.CertificateAuthority), issued)
}

// signerFor is the KubernetesSigner of a signer name, or a denial.
func (r *Signer) signerFor(ctx context.Context, signerName string) (*v1alpha1.KubernetesSigner, *denial, error) {
	var s v1alpha1.KubernetesSigner
	name := strings.TrimPrefix(signerName, v1alpha1.SignerNamePrefix)
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 { // "acme.kacme.io/a/b": no object can have that name
		return nil, deny(ReasonUnknownSigner, "%s names no KubernetesSigner: %s", signerName, strings.Join(errs, "; ")), nil
	}
	err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return nil, deny(ReasonUnknownSigner, "no KubernetesSigner %s serves signer name %s", strings.TrimPrefix(signerName, v1alpha1.SignerNamePrefix), signerName), nil
	}
	if err != nil {
		return nil, nil, err
	}
	return &s, nil, nil
}

// decidePod checks the request against what it names and the policy, then
// issues. An error is not the request's fault (the CA is not ready, the API
// server did not answer).
func (r PodCertificates) decidePod(ctx context.Context, s *v1alpha1.KubernetesSigner, pcr *certv1.PodCertificateRequest) (*issuedCert, *denial, error) {
	if d := unknownAnnotations(pcr.Spec.UnverifiedUserAnnotations); d != nil {
		return nil, d, nil
	}
	pod, d, err := r.verifyPod(ctx, pcr)
	if d != nil || err != nil {
		return nil, d, err
	}
	var ns corev1.Namespace
	if err := r.Client.Get(ctx, client.ObjectKey{Name: pcr.Namespace}, &ns); err != nil {
		return nil, nil, err
	}
	if d := allowedNamespace(s, &ns, pcr.Spec.ServiceAccountName); d != nil {
		return nil, d, nil
	}
	csr, err := x509.ParseCertificateRequest(pcr.Spec.StubPKCS10Request)
	if err != nil { // the API server checked it: not expected
		return nil, deny(ReasonUnsupportedKeyType, "spec.stubPKCS10Request does not parse: %v", err), nil
	}
	if d := allowedKey(s, csr.PublicKey); d != nil {
		return nil, d, nil
	}
	var services corev1.ServiceList
	if err := r.Client.List(ctx, &services, client.InNamespace(pcr.Namespace)); err != nil {
		return nil, nil, err
	}
	id := identity{dnsNames: serviceNames(s, services.Items, pod.Labels)}
	if u := spiffeID(s, pcr.Namespace, pcr.Spec.ServiceAccountName); u != nil {
		id.uris = append(id.uris, u)
	}
	if len(id.dnsNames)+len(id.uris) == 0 {
		return nil, deny(ReasonNoIdentity, "KubernetesSigner %s gives pod %s/%s no name: no spec.identities.spiffeTrustDomain, and no Service selects the pod",
			s.Name, pcr.Namespace, pcr.Spec.PodName), nil
	}
	var maxSeconds int32
	if pcr.Spec.MaxExpirationSeconds != nil {
		maxSeconds = *pcr.Spec.MaxExpirationSeconds
	}
	nb, na, refresh, d := validity(s, r.now(), maxSeconds)
	if d != nil {
		return nil, d, nil
	}
	issued, err := r.issue(ctx, s, csr.PublicKey, id, nb, na)
	if err != nil {
		return nil, nil, err
	}
	issued.refresh = refresh
	return issued, nil, nil
}

// unknownAnnotations refuses every unverifiedUserAnnotation: kacme defines
// none, and Kubernetes asks signers to deny keys they do not recognise.
func unknownAnnotations(a map[string]string) *denial {
	for k := range a {
		return deny(ReasonUnknownAnnotation, "kacme recognises no spec.unverifiedUserAnnotations; remove %q", k)
	}
	return nil
}

// verifyPod checks what the API server does not guarantee: the pod, its node
// and its ServiceAccount exist and are the ones the request names.
func (r PodCertificates) verifyPod(ctx context.Context, pcr *certv1.PodCertificateRequest) (*corev1.Pod, *denial, error) {
	var pod corev1.Pod
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: pcr.Namespace, Name: pcr.Spec.PodName}, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, deny(ReasonPodMismatch, "pod %s/%s does not exist", pcr.Namespace, pcr.Spec.PodName), nil
		}
		return nil, nil, err
	}
	switch {
	case pod.UID != pcr.Spec.PodUID:
		return nil, deny(ReasonPodMismatch, "pod %s/%s has UID %s, not %s", pod.Namespace, pod.Name, pod.UID, pcr.Spec.PodUID), nil
	case pod.Spec.NodeName != string(pcr.Spec.NodeName):
		return nil, deny(ReasonPodMismatch, "pod %s/%s runs on node %q, not %q", pod.Namespace, pod.Name, pod.Spec.NodeName, pcr.Spec.NodeName), nil
	case pod.Spec.ServiceAccountName != pcr.Spec.ServiceAccountName:
		return nil, deny(ReasonPodMismatch, "pod %s/%s runs as ServiceAccount %q, not %q", pod.Namespace, pod.Name, pod.Spec.ServiceAccountName, pcr.Spec.ServiceAccountName), nil
	}
	var node corev1.Node
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: string(pcr.Spec.NodeName)}, &node); client.IgnoreNotFound(err) != nil {
		return nil, nil, err
	} else if err != nil || node.UID != pcr.Spec.NodeUID {
		return nil, deny(ReasonPodMismatch, "node %s with UID %s does not exist", pcr.Spec.NodeName, pcr.Spec.NodeUID), nil
	}
	var sa corev1.ServiceAccount
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: pcr.Namespace, Name: pcr.Spec.ServiceAccountName}, &sa); client.IgnoreNotFound(err) != nil {
		return nil, nil, err
	} else if err != nil || sa.UID != pcr.Spec.ServiceAccountUID {
		return nil, deny(ReasonPodMismatch, "ServiceAccount %s/%s with UID %s does not exist", pcr.Namespace, pcr.Spec.ServiceAccountName, pcr.Spec.ServiceAccountUID), nil
	}
	return &pod, nil, nil
}

// retryOrFail retries a request the signer could not decide yet (its CA
// not ready: an Event on the signer says so); it fails it when the CA
// cannot sign it at all.
func (r PodCertificates) retryOrFail(ctx context.Context, s *v1alpha1.KubernetesSigner, pcr *certv1.PodCertificateRequest, err error) (ctrl.Result, error) {
	var notReady *caNotReady
	if errors.As(err, &notReady) {
		r.Recorder.Eventf(s, nil, corev1.EventTypeWarning, ReasonCertificateAuthority, "Sign", "%s", notReady.Error())
		return ctrl.Result{RequeueAfter: 10 * time.Second}, nil
	}
	if errors.Is(err, ca.ErrPolicy) {
		return ctrl.Result{}, r.finishPod(ctx, pcr, s, certv1.PodCertificateRequestConditionTypeFailed, "SigningFailed", err.Error(), nil)
	}
	return ctrl.Result{}, err
}

// finishPod writes the request's one status update and records it.
func (r PodCertificates) finishPod(ctx context.Context, pcr *certv1.PodCertificateRequest, s *v1alpha1.KubernetesSigner,
	condType, reason, message string, issued *issuedCert) error {
	meta.SetStatusCondition(&pcr.Status.Conditions, metav1.Condition{Type: condType, Status: metav1.ConditionTrue,
		Reason: reason, Message: message, ObservedGeneration: pcr.Generation})
	if issued != nil {
		pcr.Status.CertificateChain = issued.chain
		pcr.Status.NotBefore = &metav1.Time{Time: issued.leaf.NotBefore}
		pcr.Status.NotAfter = &metav1.Time{Time: issued.leaf.NotAfter}
		pcr.Status.BeginRefreshAt = &metav1.Time{Time: issued.refresh}
	}
	if err := r.Client.Status().Update(ctx, pcr); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.record(ctx, "pod", s, pcr.Spec.SignerName, pcr.Namespace, pcr.Name, condType, reason, issued,
		slog.String("pod", pcr.Spec.PodName), slog.String("serviceAccount", pcr.Spec.ServiceAccountName))
	return nil
}

func (r *Signer) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// identity is what a certificate names.
type identity struct {
	dnsNames []string
	uris     []*url.URL
}

// issuedCert is a signed certificate with its chain (PEM, leaf first).
type issuedCert struct {
	chain   string
	leaf    *x509.Certificate
	refresh time.Time
}

// caNotReady is a signer whose CA cannot sign yet.
type caNotReady struct{ signer, ca, why string }

func (e *caNotReady) Error() string {
	return fmt.Sprintf("KubernetesSigner %s: CertificateAuthority %s is not ready: %s", e.signer, e.ca, e.why)
}

// issue signs for pub with the policy's usages from the signer's CA.
func (r *Signer) issue(ctx context.Context, s *v1alpha1.KubernetesSigner, pub any, id identity, nb, na time.Time) (*issuedCert, error) {
	var caObj v1alpha1.CertificateAuthority
	if err := r.Client.Get(ctx, client.ObjectKey{Name: s.Spec.CertificateAuthority}, &caObj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &caNotReady{s.Name, s.Spec.CertificateAuthority, "it does not exist"}
		}
		return nil, err
	}
	if !kubeca.Ready(&caObj) {
		return nil, &caNotReady{s.Name, s.Spec.CertificateAuthority, "its Ready condition is not True"}
	}
	auth, err := r.cas.Load(ctx, r.Client, r.Namespace, &caObj)
	if err != nil {
		return nil, &caNotReady{s.Name, s.Spec.CertificateAuthority, err.Error()}
	}
	if auth.Cert.NotAfter.Before(na) {
		return nil, fmt.Errorf("%w: CertificateAuthority %s expires at %s, before the certificate would", ca.ErrPolicy, caObj.Name, auth.Cert.NotAfter)
	}
	serverAuth, clientAuth := usages(s)
	der, leaf, err := auth.Issue(ca.IssueRequest{PublicKey: pub, DNSNames: id.dnsNames, URIs: id.uris, NotBefore: nb, NotAfter: na,
		ClientAuth: clientAuth, NoServerAuth: !serverAuth})
	if err != nil {
		return nil, err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if len(auth.Parents) > 0 { // an intermediate CA: it and the intermediates above it, not the root
		for _, c := range auth.Chains()[0] {
			chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
	}
	return &issuedCert{chain: string(chain), leaf: leaf}, nil
}
