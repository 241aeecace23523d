package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KeyAlgorithm names a CA or generated key type.
// +kubebuilder:validation:Enum=ECDSAP256;ECDSAP384;RSA2048;RSA3072;RSA4096;Ed25519
type KeyAlgorithm string

// Key algorithms a CertificateAuthority can be generated with.
const (
	KeyECDSAP256 KeyAlgorithm = "ECDSAP256"
	KeyECDSAP384 KeyAlgorithm = "ECDSAP384"
	KeyRSA2048   KeyAlgorithm = "RSA2048"
	KeyRSA3072   KeyAlgorithm = "RSA3072"
	KeyRSA4096   KeyAlgorithm = "RSA4096"
	KeyEd25519   KeyAlgorithm = "Ed25519"
)

// CertificateAuthoritySpec declares a signing CA: exactly one of selfSigned,
// secretRef or intermediate.
// +kubebuilder:validation:XValidation:rule="(has(self.selfSigned) ? 1 : 0) + (has(self.secretRef) ? 1 : 0) + (has(self.intermediate) ? 1 : 0) == 1",message="exactly one of selfSigned, secretRef or intermediate is required"
type CertificateAuthoritySpec struct {
	// SelfSigned generates a root CA.
	// +optional
	SelfSigned *SelfSignedCA `json:"selfSigned,omitempty"`
	// SecretRef imports an existing CA from a Secret with tls.crt (the CA
	// certificate first, then its issuers), tls.key and optionally ca.crt (the root).
	// +optional
	SecretRef *CASecretReference `json:"secretRef,omitempty"`
	// Intermediate generates a CA signed by another CertificateAuthority.
	// +optional
	Intermediate *IntermediateCA `json:"intermediate,omitempty"`

	// SecretName is where kacme keeps a generated key and chain (selfSigned,
	// intermediate): a kubernetes.io/tls Secret in the operator's namespace; in
	// standalone mode the directory <data-dir>/ca/<secretName>/. Default "<name>-ca".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`

	// RenewBefore renews a generated CA certificate this long before it
	// expires (by the controller). Default 720h.
	// +optional
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// RotationPolicy says whether renewing a generated CA keeps its key
	// (Never, the default: leaves keep chaining to the renewed certificate)
	// or generates a new one (Always: a new root or intermediate; the old
	// certificate and key are kept in the Secret as previous.crt/previous.key
	// to sign CRLs for the leaves they issued, trust bundles carry the old
	// root until it expires, and ARI asks holders of those leaves to renew
	// early). With Always, issued certificates name their CA key in the CRL
	// distribution point URL (?key=<subject key ID>). Ignored for secretRef.
	// +optional
	// +kubebuilder:validation:Enum=Never;Always
	RotationPolicy RotationPolicy `json:"rotationPolicy,omitempty"`

	// CRL publishes a certificate revocation list and embeds its URL in issued
	// certificates as the CRL distribution point.
	// +optional
	CRL *CRLSpec `json:"crl,omitempty"`

	// OCSP runs an OCSP responder (RFC 6960) for the certificates this CA
	// issues, at <pki-url>/ocsp/<ca-name> on every server replica (GET and
	// POST). Profiles with includeOCSPURL write its URL into certificates.
	// +optional
	OCSP *OCSPSpec `json:"ocsp,omitempty"`

	// TrustBundle publishes the CA's root certificate as a ConfigMap in every
	// namespace its selector matches, for workloads and issuers to trust.
	// +optional
	TrustBundle *TrustBundleSpec `json:"trustBundle,omitempty"`
}

// RotationPolicy of a generated CA's key at renewal.
type RotationPolicy string

// Rotation policies.
const (
	RotationNever  RotationPolicy = "Never"
	RotationAlways RotationPolicy = "Always"
)

// TrustBundleSpec says where a CA's trust bundle is published.
type TrustBundleSpec struct {
	// NamespaceSelector selects the namespaces that get the ConfigMap; an
	// empty selector selects every namespace.
	NamespaceSelector metav1.LabelSelector `json:"namespaceSelector"`
	// ConfigMapName of the ConfigMap in each namespace. Default "<name>-ca-bundle".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ConfigMapName string `json:"configMapName,omitempty"`
	// Key holding the PEM bundle. Default "ca.crt".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// CASubject is the subject of a generated CA certificate.
type CASubject struct {
	// CommonName of the CA certificate.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	CommonName string `json:"commonName,omitempty"`
	// Organization of the CA certificate.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Organization string `json:"organization,omitempty"`
}

// SelfSignedCA describes a root CA kacme generates.
type SelfSignedCA struct {
	// Subject of the root certificate.
	// +optional
	Subject CASubject `json:"subject,omitempty"`
	// KeyAlgorithm of the CA key. Default ECDSAP256.
	// +optional
	KeyAlgorithm KeyAlgorithm `json:"keyAlgorithm,omitempty"`
	// Validity of the certificate. Default 87600h (10 years).
	// +optional
	Validity *metav1.Duration `json:"validity,omitempty"`
}

// IntermediateCA describes a CA kacme generates and has signed by another one.
type IntermediateCA struct {
	// Issuer is the name of the CertificateAuthority that signs this one.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Issuer string `json:"issuer"`
	// Subject of the intermediate certificate.
	// +optional
	Subject CASubject `json:"subject,omitempty"`
	// KeyAlgorithm of the CA key. Default ECDSAP256.
	// +optional
	KeyAlgorithm KeyAlgorithm `json:"keyAlgorithm,omitempty"`
	// Validity of the certificate, capped by the issuer's. Default 43800h (5 years).
	// +optional
	Validity *metav1.Duration `json:"validity,omitempty"`
}

// CASecretReference names a Secret holding an existing CA.
type CASecretReference struct {
	// Name of the Secret (operator namespace; in standalone a Secret manifest in the config directory).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// OCSPResponder says which key signs a CA's OCSP responses.
// +kubebuilder:validation:Enum=CA;Delegated
type OCSPResponder string

// OCSP responders.
const (
	// OCSPResponderCA signs responses with the CA key itself.
	OCSPResponderCA OCSPResponder = "CA"
	// OCSPResponderDelegated signs responses with a delegated responder
	// certificate (extended key usage OCSPSigning, id-pkix-ocsp-nocheck)
	// the CA issues to each server replica and replaces before it expires.
	OCSPResponderDelegated OCSPResponder = "Delegated"
)

// OCSPSpec configures the OCSP responder of a CA.
// +kubebuilder:validation:XValidation:rule="!has(self.validity) || (duration(self.validity) >= duration('5m') && duration(self.validity) <= duration('168h'))",message="validity must be between 5m and 168h"
type OCSPSpec struct {
	// ResponderURL is written into certificates of profiles with
	// includeOCSPURL (Authority Information Access, id-ad-ocsp). Default:
	// the server's PKI URL followed by /ocsp/<ca-name>, where it answers.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://`
	ResponderURL string `json:"responderURL,omitempty"`
	// Validity is the interval between a response's thisUpdate and
	// nextUpdate; a response is signed again once half of it has passed,
	// and at once when the certificate is revoked. Default 12h; between 5m
	// and 168h.
	// +optional
	Validity *metav1.Duration `json:"validity,omitempty"`
	// Responder signs the responses: CA (the CA key, the default) or
	// Delegated (a responder certificate the CA issues to each replica; an
	// Ed25519 CA always delegates, since OCSP relying parties and
	// x/crypto/ocsp sign and verify responses with RSA or ECDSA only).
	// +optional
	Responder OCSPResponder `json:"responder,omitempty"`
}

// CRLSpec configures the CRL of a CA.
type CRLSpec struct {
	// DistributionPointURL is written into issued certificates. Default: the
	// server's PKI URL (kacme standalone/server --pki-url; plain HTTP when
	// the server has --http-listen) followed by /crl/<ca-name>, where the
	// server serves it. Set it when relying parties reach the CRL elsewhere.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	DistributionPointURL string `json:"distributionPointURL,omitempty"`
	// Validity is the interval between thisUpdate and nextUpdate. Default 24h.
	// +optional
	Validity *metav1.Duration `json:"validity,omitempty"`
}

// CertificateAuthorityStatus reports the CA's state.
type CertificateAuthorityStatus struct {
	// Conditions describe the CA's readiness.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Subject of the CA certificate.
	// +optional
	Subject string `json:"subject,omitempty"`
	// SerialNumber of the CA certificate (hex).
	// +optional
	SerialNumber string `json:"serialNumber,omitempty"`
	// FingerprintSHA256 of the CA certificate (hex).
	// +optional
	FingerprintSHA256 string `json:"fingerprintSHA256,omitempty"`
	// NotBefore of the CA certificate.
	// +optional
	NotBefore *metav1.Time `json:"notBefore,omitempty"`
	// NotAfter of the CA certificate.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
	// Chain is the PEM chain: the CA certificate, then its issuers.
	// +optional
	Chain string `json:"chain,omitempty"`
}

// CertificateAuthority is a CA that AcmeProfiles issue from.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=kca,categories=acme
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Subject",type=string,JSONPath=`.status.subject`
// +kubebuilder:printcolumn:name="NotAfter",type=string,JSONPath=`.status.notAfter`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type CertificateAuthority struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CertificateAuthoritySpec   `json:"spec,omitempty"`
	Status CertificateAuthorityStatus `json:"status,omitempty"`
}

// CertificateAuthorityList is a list of CertificateAuthority.
// +kubebuilder:object:root=true
type CertificateAuthorityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []CertificateAuthority `json:"items"`
}

// ChallengeType is an ACME challenge type.
// +kubebuilder:validation:Enum=http-01;dns-01;tls-alpn-01;dns-account-01
type ChallengeType string

// Challenge types kacme validates.
const (
	ChallengeHTTP01    ChallengeType = "http-01"
	ChallengeDNS01     ChallengeType = "dns-01"
	ChallengeTLSALPN01 ChallengeType = "tls-alpn-01"
	// ChallengeDNSAccount01 is dns-01 at an account-scoped name
	// (draft-ietf-acme-dns-account-label-01, as Boulder and Pebble
	// implement it): _<label>._acme-challenge.<domain>, so that several
	// accounts validate one name without sharing a record. Offered only
	// when a profile lists it in validation.challengeTypes.
	ChallengeDNSAccount01 ChallengeType = "dns-account-01"
)

// IsDNS reports whether t is validated through DNS TXT records (dns-01,
// dns-account-01): the types a wildcard may use and an ip identifier may not.
func (t ChallengeType) IsDNS() bool { return t == ChallengeDNS01 || t == ChallengeDNSAccount01 }

// AcmeProfileSpec declares one ACME directory, served at /acme/<name>/directory.
// +kubebuilder:validation:XValidation:rule="!has(self.defaultIssuanceProfile) || (has(self.issuanceProfiles) && self.issuanceProfiles.exists(p, p.name == self.defaultIssuanceProfile))",message="defaultIssuanceProfile must name one of issuanceProfiles"
type AcmeProfileSpec struct {
	// CertificateAuthority names the CA that signs this profile's certificates.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	CertificateAuthority string `json:"certificateAuthority"`

	// DirectoryPath names the directory in URLs: it is served at
	// <server>/acme/<directoryPath>/directory. Default: the profile's name.
	// Two profiles cannot share one.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	DirectoryPath string `json:"directoryPath,omitempty"`

	// Description shown to humans.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`
	// TermsOfService URL; when set, new accounts must agree to it.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	TermsOfService string `json:"termsOfService,omitempty"`
	// Website URL advertised in the directory.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Website string `json:"website,omitempty"`
	// CAAIdentities advertised in the directory.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	CAAIdentities []string `json:"caaIdentities,omitempty"`

	// ExternalAccountBinding policy (RFC 8555 §7.3.4).
	// +optional
	ExternalAccountBinding *ExternalAccountBindingPolicy `json:"externalAccountBinding,omitempty"`

	// AccountNamespace is where accounts registered over ACME without a
	// pre-registration are stored, with their orders, challenges and
	// certificates. Default: the server's namespace. An account bound to a
	// pre-registered AcmeAccount keeps that AcmeAccount's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	AccountNamespace string `json:"accountNamespace,omitempty"`

	// Identifiers policy: which names and addresses may be ordered.
	// +optional
	Identifiers IdentifierPolicy `json:"identifiers,omitempty"`

	// Validation settings for challenges.
	// +optional
	Validation ValidationSpec `json:"validation,omitempty"`

	// Keys accepted in CSRs.
	// +optional
	Keys KeyPolicy `json:"keys,omitempty"`

	// IssuanceProfiles offered through the ACME "profile" order field. When
	// empty, one profile named "default" with default settings is offered.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	IssuanceProfiles []IssuanceProfile `json:"issuanceProfiles,omitempty"`
	// DefaultIssuanceProfile is used when an order names none. Default: the first.
	// +optional
	DefaultIssuanceProfile string `json:"defaultIssuanceProfile,omitempty"`

	// OrderLifetime is how long a pending order lives. Default 24h.
	// +optional
	OrderLifetime *metav1.Duration `json:"orderLifetime,omitempty"`
	// AuthorizationLifetime is how long a valid authorization may be used. Default 24h.
	// +optional
	AuthorizationLifetime *metav1.Duration `json:"authorizationLifetime,omitempty"`
	// AuthorizationReuse turns on authorization reuse: a new order of an
	// account uses that account's valid, unexpired authorization of this
	// profile for the same identifier (a wildcard only for the same
	// wildcard) if it was validated at most this long ago, instead of
	// offering a new one; the order then expires no later than the
	// authorization. Never across accounts or profiles, never a deactivated
	// or revoked authorization. With validation.checkCAA the age is capped
	// at 8h, so that a CAA answer is never older (CAA-09). Default: off.
	// +optional
	AuthorizationReuse *metav1.Duration `json:"authorizationReuse,omitempty"`
	// IncludeOCSPURL writes the OCSP responder URL of the profile's CA
	// (its spec.ocsp) into issued certificates (Authority Information
	// Access, id-ad-ocsp), so that relying parties check them over OCSP.
	// A profile with it whose CA has no spec.ocsp is not served. Default false.
	// +optional
	IncludeOCSPURL bool `json:"includeOCSPURL,omitempty"`
	// PreAuthorization offers newAuthz (RFC 8555 §7.4.1) in the directory:
	// an account may have a (non-wildcard) identifier validated ahead of any
	// order, and its next orders for that identifier use the valid
	// authorization until it expires (authorizationLifetime; at most 8h with
	// validation.checkCAA) without another validation. Default false.
	// +optional
	PreAuthorization bool `json:"preAuthorization,omitempty"`
	// Retention is how long an order and its authorizations are kept once
	// they have expired (a finished order expires too): then they are
	// deleted. Default 720h (30 days). Certificates: certificateRetention.
	// +optional
	Retention *metav1.Duration `json:"retention,omitempty"`
	// CertificateRetention is how long a certificate (AcmeCertificate) is
	// kept once it has expired: revocation state, CRL entries and renewal
	// information are served until then. Default 720h (30 days).
	// +optional
	CertificateRetention *metav1.Duration `json:"certificateRetention,omitempty"`
	// RateLimits bound what one client may do; answered with rateLimited
	// (429) and Retry-After. Unset fields take the defaults below (on by
	// default, so that an open directory cannot be used to fill the store —
	// in a cluster, etcd); 0 turns a limit off.
	// +optional
	RateLimits RateLimitSpec `json:"rateLimits,omitempty"`
}

// Default rate limits: far above what one cert-manager Issuer or certbot
// host does, low enough that one client cannot flood the store.
const (
	DefaultNewAccountsPerIP                = 100
	DefaultNewOrdersPerAccount             = 1000
	DefaultPendingAuthorizationsPerAccount = 1000
)

// RateLimitSpec are the per-profile limits. Per-hour limits are sliding
// windows over the stored objects, so they hold across replicas and
// restarts.
type RateLimitSpec struct {
	// NewOrdersPerAccount: orders an account may create per hour. Default 1000.
	// +optional
	// +kubebuilder:validation:Minimum=0
	NewOrdersPerAccount *int32 `json:"newOrdersPerAccount,omitempty"`
	// PendingAuthorizationsPerAccount: authorizations of an account that may
	// be pending (neither validated, failed, deactivated nor expired) at
	// once; a new order that would pass it is refused. Default 1000.
	// +optional
	// +kubebuilder:validation:Minimum=0
	PendingAuthorizationsPerAccount *int32 `json:"pendingAuthorizationsPerAccount,omitempty"`
	// FailedValidationsPerAccount: once this many of an account's
	// authorizations created in the last hour have failed, its new orders are
	// refused until the oldest of them is an hour old. Default 0 (off).
	// +optional
	// +kubebuilder:validation:Minimum=0
	FailedValidationsPerAccount *int32 `json:"failedValidationsPerAccount,omitempty"`
	// NewAccountsPerIP: accounts one client address (the peer address the
	// server sees) may register per hour. Default 100. Accounts bound to a
	// pre-registration (EAB) do not count.
	// +optional
	// +kubebuilder:validation:Minimum=0
	NewAccountsPerIP *int32 `json:"newAccountsPerIP,omitempty"`
}

// ExternalAccountBindingPolicy says whether accounts must be bound to a
// pre-provisioned AcmeAccount carrying an EAB key.
type ExternalAccountBindingPolicy struct {
	// Required makes new-account without a binding fail with externalAccountRequired.
	// +optional
	Required bool `json:"required,omitempty"`
}

// IdentifierPolicy limits what may be ordered.
type IdentifierPolicy struct {
	// AllowedDNSSuffixes: a dns identifier must equal or end in one of these
	// (".example.com" style without the dot is fine). Empty allows any name.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	AllowedDNSSuffixes []string `json:"allowedDNSSuffixes,omitempty"`
	// DeniedNames are refused even when a suffix allows them; an entry with a
	// leading "*." denies the whole subtree.
	// +optional
	// +kubebuilder:validation:MaxItems=1024
	DeniedNames []string `json:"deniedNames,omitempty"`
	// AllowedCIDRs: an ip identifier must fall inside one of them. Empty refuses all ip identifiers.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	AllowedCIDRs []string `json:"allowedCIDRs,omitempty"`
	// DisallowWildcards refuses "*." names.
	// +optional
	DisallowWildcards bool `json:"disallowWildcards,omitempty"`
	// MaxIdentifiers per order. Default 100.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxIdentifiers int `json:"maxIdentifiers,omitempty"`
}

// ValidationSpec configures how challenges are validated.
type ValidationSpec struct {
	// ChallengeTypes offered. Default all three.
	// +optional
	ChallengeTypes []ChallengeType `json:"challengeTypes,omitempty"`
	// HTTP01Port is the port http-01 connects to first. Default 80 (RFC 8555 §8.3); change only for tests.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	HTTP01Port int `json:"http01Port,omitempty"`
	// TLSALPN01Port is the port tls-alpn-01 connects to. Default 443 (RFC 8737 §3).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	TLSALPN01Port int `json:"tlsALPN01Port,omitempty"`
	// Resolvers (host:port) used for every lookup during validation. Default:
	// the nameservers of the server's /etc/resolv.conf. Names under
	// "localhost" always resolve to loopback (RFC 6761 §6.3).
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Resolvers []string `json:"resolvers,omitempty"`
	// Timeout for one validation attempt. Default 10s.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// ServiceRoutes send http-01 for names under a DNS suffix to a
	// Kubernetes Service (cluster mode): the validator connects to the
	// Service's ready endpoints from its EndpointSlices, with the name as
	// Host, instead of resolving the name (no hairpin through a load
	// balancer). Names of the form <service>.<namespace>.svc[.cluster.local]
	// go to that Service without a route.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	ServiceRoutes []ServiceRoute `json:"serviceRoutes,omitempty"`
	// CheckCAA checks the CAA records of a dns identifier (RFC 8659, with
	// RFC 8657's accounturi and validationmethods parameters) once its
	// challenge has succeeded, through Resolvers: the name and then each
	// parent, CNAMEs followed; the first non-empty set must have an issue
	// (issuewild for a wildcard) property naming one of spec.caaIdentities
	// whose parameters this account and challenge type satisfy, or none at
	// all. Otherwise, or when a lookup fails, the authorization is invalid
	// with a caa problem naming the records. Requires spec.caaIdentities.
	// Default false.
	// +optional
	CheckCAA bool `json:"checkCAA,omitempty"`
}

// ServiceRoute maps names under Suffix to a Service.
type ServiceRoute struct {
	// Suffix: the name itself and every name below it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Suffix string `json:"suffix"`
	// Namespace and Name of the Service (its port 80, or the profile's
	// http01Port, gives the endpoint port).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
}

// KeyPolicy limits the keys accepted in CSRs.
type KeyPolicy struct {
	// MinRSABits default 2048.
	// +optional
	// +kubebuilder:validation:Minimum=2048
	// +kubebuilder:validation:Maximum=8192
	MinRSABits int `json:"minRSABits,omitempty"`
	// AllowEd25519 accepts Ed25519 CSR keys.
	// +optional
	AllowEd25519 bool `json:"allowEd25519,omitempty"`
	// DisallowP384 refuses P-384 keys (P-256 is always accepted).
	// +optional
	DisallowP384 bool `json:"disallowP384,omitempty"`
}

// IssuanceProfile is one selectable certificate profile (draft-ietf-acme-profiles).
type IssuanceProfile struct {
	// Name as clients select it.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9.-]{0,62}$`
	Name string `json:"name"`
	// Description shown in the directory's meta.profiles.
	// +optional
	Description string `json:"description,omitempty"`
	// CertificateLifetime of issued certificates. Default 2160h (90 days).
	// +optional
	CertificateLifetime *metav1.Duration `json:"certificateLifetime,omitempty"`
	// MaxCertificateLifetime bounds an order's notBefore..notAfter. Default CertificateLifetime.
	// +optional
	MaxCertificateLifetime *metav1.Duration `json:"maxCertificateLifetime,omitempty"`
	// ClientAuth adds the clientAuth extended key usage.
	// +optional
	ClientAuth bool `json:"clientAuth,omitempty"`
	// DisallowIP refuses ip identifiers for this profile (invalidProfile).
	// +optional
	DisallowIP bool `json:"disallowIP,omitempty"`
}

// AcmeProfileStatus reports the profile's state.
type AcmeProfileStatus struct {
	// Conditions describe readiness.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// DirectoryURL where clients find this profile.
	// +optional
	DirectoryURL string `json:"directoryURL,omitempty"`
}

// AcmeProfile is one ACME directory with its policy.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=aprof,categories=acme
// +kubebuilder:printcolumn:name="CA",type=string,JSONPath=`.spec.certificateAuthority`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Directory",type=string,JSONPath=`.status.directoryURL`
type AcmeProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AcmeProfileSpec   `json:"spec,omitempty"`
	Status AcmeProfileStatus `json:"status,omitempty"`
}

// AcmeProfileList is a list of AcmeProfile.
// +kubebuilder:object:root=true
type AcmeProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AcmeProfile `json:"items"`
}
