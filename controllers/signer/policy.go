// Package signer makes kacme a Kubernetes signer. For every KubernetesSigner
// (signer name acme.kacme.io/<name>) it issues the certificates of
// podCertificate volumes (PodCertificateRequests, certificates.k8s.io/v1),
// signs approved CertificateSigningRequests when the policy enables it (and
// approves them in approver mode), and publishes every CA's root as
// ClusterTrustBundles. Each issued or refused request is one status write,
// one audit record and one metric; the certificates themselves are not
// stored as resources (the requests are the record; see docs/kubernetes.md).
package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Denial reasons (condition reasons on the request, and the "reason" of
// the audit record and metric).
const (
	ReasonUnknownSigner         = "UnknownSigner"
	ReasonNamespaceNotAllowed   = "NamespaceNotAllowed"
	ReasonServiceAccountDenied  = "ServiceAccountNotAllowed"
	ReasonUnknownAnnotation     = "UnknownUserAnnotation"
	ReasonUnsupportedKeyType    = "UnsupportedKeyType" // the API's own reason
	ReasonPodMismatch           = "PodMismatch"
	ReasonNoIdentity            = "NoIdentity"
	ReasonLifetimeTooShort      = "LifetimeTooShort"
	ReasonRequesterNotAllowed   = "RequesterNotAllowed"
	ReasonIdentityNotAllowed    = "IdentityNotAllowed"
	ReasonUsageNotAllowed       = "UsageNotAllowed"
	ReasonCertificateAuthority  = "CertificateAuthorityNotReady"
	ReasonIssued                = "Issued"
	minLifetime                 = time.Hour // the API server refuses shorter pod certificates
	refreshMargin               = 10 * time.Minute
	defaultMaxLifetime          = 24 * time.Hour
	defaultBackdate             = time.Minute
	maxBackdate                 = 4 * time.Minute
	defaultRefreshAfterPercent  = 50
	defaultClusterDomain        = "cluster.local"
	serviceAccountUsernamPrefix = "system:serviceaccount:"
)

// denial is a refusal with the reason and message the request gets.
type denial struct{ reason, message string }

func (d *denial) Error() string { return d.reason + ": " + d.message }

func deny(reason, format string, args ...any) *denial {
	return &denial{reason: reason, message: fmt.Sprintf(format, args...)}
}

// allowedNamespace checks the policy's namespace selector (empty selects
// nothing) and ServiceAccount list.
func allowedNamespace(s *v1alpha1.KubernetesSigner, ns *corev1.Namespace, serviceAccount string) *denial {
	if s.Spec.NamespaceSelector == nil {
		return deny(ReasonNamespaceNotAllowed, "KubernetesSigner %s selects no namespace (spec.namespaceSelector is empty)", s.Name)
	}
	sel, err := metav1.LabelSelectorAsSelector(s.Spec.NamespaceSelector)
	if err != nil {
		return deny(ReasonNamespaceNotAllowed, "KubernetesSigner %s: spec.namespaceSelector: %v", s.Name, err)
	}
	if !sel.Matches(labels.Set(ns.Labels)) { // {} matches every namespace, as Kubernetes' selectors do
		return deny(ReasonNamespaceNotAllowed, "namespace %s is not selected by KubernetesSigner %s's spec.namespaceSelector", ns.Name, s.Name)
	}
	if len(s.Spec.ServiceAccounts) > 0 && !slices.Contains(s.Spec.ServiceAccounts, serviceAccount) {
		return deny(ReasonServiceAccountDenied, "ServiceAccount %s/%s is not among KubernetesSigner %s's spec.serviceAccounts", ns.Name, serviceAccount, s.Name)
	}
	return nil
}

// keyType names a subject public key as podCertificate.keyType does.
func keyType(pub crypto.PublicKey) (v1alpha1.PodKeyType, bool) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ECDSAP256", true
		case elliptic.P384():
			return "ECDSAP384", true
		case elliptic.P521():
			return "ECDSAP521", true
		}
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 3072:
			return "RSA3072", true
		case 4096:
			return "RSA4096", true
		}
	case ed25519.PublicKey:
		return "ED25519", true
	}
	return "", false
}

// defaultKeyTypes are accepted when the policy names none.
var defaultKeyTypes = []v1alpha1.PodKeyType{"ECDSAP256", "ECDSAP384", "ED25519", "RSA3072", "RSA4096"}

// allowedKey checks the subject key type against the policy.
func allowedKey(s *v1alpha1.KubernetesSigner, pub crypto.PublicKey) *denial {
	allowed := s.Spec.KeyTypes
	if len(allowed) == 0 {
		allowed = defaultKeyTypes
	}
	names := make([]string, len(allowed))
	for i, t := range allowed {
		names[i] = string(t)
	}
	t, ok := keyType(pub)
	if !ok || !slices.Contains(allowed, t) {
		return deny(ReasonUnsupportedKeyType, "KubernetesSigner %s accepts key types %s", s.Name, strings.Join(names, ", "))
	}
	return nil
}

// spiffeID is the pod's SPIFFE ID under the policy's trust domain (nil without one).
func spiffeID(s *v1alpha1.KubernetesSigner, ns, serviceAccount string) *url.URL {
	if s.Spec.Identities.SPIFFETrustDomain == "" {
		return nil
	}
	return &url.URL{Scheme: "spiffe", Host: s.Spec.Identities.SPIFFETrustDomain, Path: "/ns/" + ns + "/sa/" + serviceAccount}
}

// serviceNames are <svc>.<ns>.svc and <svc>.<ns>.svc.<cluster domain> of
// each Service whose selector matches podLabels (a Service without a
// selector matches no pod).
func serviceNames(s *v1alpha1.KubernetesSigner, services []corev1.Service, podLabels map[string]string) []string {
	if !s.Spec.Identities.ServiceDNSNames {
		return nil
	}
	var out []string
	for i := range services {
		svc := &services[i]
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(podLabels)) {
			continue
		}
		out = append(out, serviceDNSNames(s, svc)...)
	}
	sort.Strings(out)
	return out
}

// serviceDNSNames are a Service's <svc>.<ns>.svc and <svc>.<ns>.svc.<cluster domain>.
func serviceDNSNames(s *v1alpha1.KubernetesSigner, svc *corev1.Service) []string {
	domain := s.Spec.Identities.ClusterDomain
	if domain == "" {
		domain = defaultClusterDomain
	}
	base := svc.Name + "." + svc.Namespace + ".svc"
	return []string{base, base + "." + domain}
}

// usages are the policy's extended key usages (default both).
func usages(s *v1alpha1.KubernetesSigner) (serverAuth, clientAuth bool) {
	if len(s.Spec.Usages) == 0 {
		return true, true
	}
	return slices.Contains(s.Spec.Usages, v1alpha1.UsageServerAuth), slices.Contains(s.Spec.Usages, v1alpha1.UsageClientAuth)
}

// validity is the certificate's notBefore, notAfter and the point the
// kubelet should start refreshing it: at most the policy's maximum lifetime
// and the request's (maxSeconds, 0 = none), backdated by the policy, with
// the refresh point at the policy's share of the lifetime, clamped to the
// API server's window (10 minutes after notBefore to 10 minutes before
// notAfter).
func validity(s *v1alpha1.KubernetesSigner, now time.Time, maxSeconds int32) (nb, na, refresh time.Time, d *denial) {
	lifetime := defaultMaxLifetime
	if s.Spec.MaxLifetime != nil && s.Spec.MaxLifetime.Duration > 0 {
		lifetime = s.Spec.MaxLifetime.Duration
	}
	if maxSeconds > 0 {
		lifetime = min(lifetime, time.Duration(maxSeconds)*time.Second)
	}
	if lifetime < minLifetime {
		return nb, na, refresh, deny(ReasonLifetimeTooShort, "the certificate would live %s; Kubernetes requires at least %s (KubernetesSigner %s spec.maxLifetime)",
			lifetime, minLifetime, s.Name)
	}
	backdate := defaultBackdate
	if s.Spec.Backdate != nil {
		backdate = min(max(s.Spec.Backdate.Duration, 0), maxBackdate)
	}
	nb = now.Add(-backdate).Truncate(time.Second)
	na = nb.Add(lifetime)
	pct := int64(defaultRefreshAfterPercent)
	if s.Spec.RefreshAfterPercent != nil {
		pct = int64(*s.Spec.RefreshAfterPercent)
	}
	refresh = nb.Add(time.Duration(int64(lifetime) * pct / 100))
	if earliest := nb.Add(refreshMargin); refresh.Before(earliest) {
		refresh = earliest
	}
	if latest := na.Add(-refreshMargin); refresh.After(latest) {
		refresh = latest
	}
	return nb, na, refresh.Truncate(time.Second), nil
}
