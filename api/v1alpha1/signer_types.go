package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SignerNamePrefix is the domain of the Kubernetes signer names kacme
// serves: a KubernetesSigner named <name> signs for "acme.kacme.io/<name>".
const SignerNamePrefix = "acme.kacme.io/"

// SignerName is the Kubernetes signer name of a KubernetesSigner.
func (s *KubernetesSigner) SignerName() string { return SignerNamePrefix + s.Name }

// CertificateUsage is an extended key usage a signer puts into certificates.
// +kubebuilder:validation:Enum=serverAuth;clientAuth
type CertificateUsage string

// Usages.
const (
	UsageServerAuth CertificateUsage = "serverAuth"
	UsageClientAuth CertificateUsage = "clientAuth"
)

// PodKeyType is a subject key type a kubelet may generate
// (podCertificate.keyType).
// +kubebuilder:validation:Enum=RSA3072;RSA4096;ECDSAP256;ECDSAP384;ECDSAP521;ED25519
type PodKeyType string

// KubernetesSignerSpec is the policy of one signer name: which pods (and
// CertificateSigningRequest users) get which certificate from which CA.
type KubernetesSignerSpec struct {
	// CertificateAuthority signs (a Ready CertificateAuthority).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	CertificateAuthority string `json:"certificateAuthority"`
	// NamespaceSelector selects the namespaces whose pods (and ServiceAccounts)
	// may use the signer. Unset selects none (list what you trust); {}
	// selects every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// ServiceAccounts limits the ServiceAccounts (by name, in any selected
	// namespace) whose pods may use the signer. Empty: any.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
	// Identities go into the certificate's subject alternative names.
	// +optional
	Identities SignerIdentities `json:"identities,omitempty"`
	// Usages are the extended key usages of issued certificates. Default:
	// serverAuth and clientAuth.
	// +optional
	// +kubebuilder:validation:MaxItems=2
	Usages []CertificateUsage `json:"usages,omitempty"`
	// KeyTypes the signer accepts for the subject key. Default: ECDSAP256,
	// ECDSAP384, ED25519, RSA3072, RSA4096. A request with another key type is
	// denied with reason UnsupportedKeyType.
	// +optional
	// +kubebuilder:validation:MaxItems=6
	KeyTypes []PodKeyType `json:"keyTypes,omitempty"`
	// MaxLifetime bounds the certificate's lifetime; a request allowing
	// longer (spec.maxExpirationSeconds) gets this lifetime. Default 24h;
	// at least 1h (the API server refuses shorter certificates).
	// +optional
	MaxLifetime *metav1.Duration `json:"maxLifetime,omitempty"`
	// RefreshAfterPercent is the share of the lifetime after which the kubelet
	// should start renewing (status.beginRefreshAt), in percent. Default 50;
	// the API server requires beginRefreshAt at least 10 minutes after
	// notBefore and 10 minutes before notAfter, and kacme clamps into that.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=99
	RefreshAfterPercent *int32 `json:"refreshAfterPercent,omitempty"`
	// Backdate sets notBefore this far before the time of signing, for
	// relying parties whose clocks are behind. Default 1m; at most 4m (the API
	// server requires notBefore within 5 minutes of its clock).
	// +optional
	Backdate *metav1.Duration `json:"backdate,omitempty"`
	// CertificateSigningRequests configures the signer for
	// certificates.k8s.io/v1 CertificateSigningRequests under the same name.
	// +optional
	CertificateSigningRequests CSRSignerPolicy `json:"certificateSigningRequests,omitempty"`
}

// SignerIdentities says which names a certificate carries.
type SignerIdentities struct {
	// SPIFFETrustDomain, when set, adds the URI SAN
	// spiffe://<trust domain>/ns/<namespace>/sa/<serviceaccount>.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$`
	SPIFFETrustDomain string `json:"spiffeTrustDomain,omitempty"`
	// ServiceDNSNames adds, for each Service in the pod's namespace whose
	// selector matches the pod, <svc>.<ns>.svc and
	// <svc>.<ns>.svc.<cluster domain>.
	// +optional
	ServiceDNSNames bool `json:"serviceDNSNames,omitempty"`
	// ClusterDomain of the Services' DNS names. Default cluster.local.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ClusterDomain string `json:"clusterDomain,omitempty"`
}

// CSRSignerPolicy is how the signer treats CertificateSigningRequests.
type CSRSignerPolicy struct {
	// Enabled makes kacme sign approved CertificateSigningRequests for this
	// signer name, from ServiceAccounts the policy allows
	// (system:serviceaccount:<ns>:<name>), with the identities the policy
	// gives that ServiceAccount: the SPIFFE ID, and with serviceDNSNames the
	// names of Services in its namespace the CSR asks for.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// Approve makes kacme also approve the requests it would sign (and deny
	// the others). Off by default: Kubernetes expects approval to be a
	// separate decision (a human, or an approver you run).
	// +optional
	Approve bool `json:"approve,omitempty"`
}

// KubernetesSignerStatus reports the signer's state.
type KubernetesSignerStatus struct {
	// Conditions: Ready says whether the signer issues, and why not.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// SignerName is the name pods and CSRs ask for.
	// +optional
	SignerName string `json:"signerName,omitempty"`
}

// KubernetesSigner makes kacme a Kubernetes signer: it issues the
// certificates of podCertificate volumes (PodCertificateRequests) and, when
// enabled, of CertificateSigningRequests, under the signer name
// acme.kacme.io/<name>, from a CertificateAuthority, within this policy.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ksigner,categories=acme
// +kubebuilder:printcolumn:name="Signer",type=string,JSONPath=`.status.signerName`
// +kubebuilder:printcolumn:name="CA",type=string,JSONPath=`.spec.certificateAuthority`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KubernetesSigner struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   KubernetesSignerSpec   `json:"spec,omitempty"`
	Status KubernetesSignerStatus `json:"status,omitempty"`
}

// KubernetesSignerList is a list of KubernetesSigner.
// +kubebuilder:object:root=true
type KubernetesSignerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KubernetesSigner `json:"items"`
}
