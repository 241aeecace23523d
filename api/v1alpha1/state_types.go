package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The state kinds below are written whole by the ACME server (no status
// subresource) so that every ACME state change costs exactly one API write.

// Identifier is an ACME identifier (RFC 8555 §7.1.4, RFC 8738).
type Identifier struct {
	// Type is "dns" or "ip".
	// +kubebuilder:validation:Enum=dns;ip
	Type string `json:"type"`
	// Value in certificate form: a lowercase A-label name (maybe "*."-prefixed) or a canonical IP.
	// +kubebuilder:validation:MaxLength=253
	Value string `json:"value"`
}

// Problem is a stored RFC 7807 problem document.
type Problem struct {
	// Type URN, e.g. urn:ietf:params:acme:error:incorrectResponse.
	// +kubebuilder:validation:MaxLength=256
	Type string `json:"type"`
	// Detail for humans (MaxProblemDetail bytes at most; the server cuts longer ones).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Detail string `json:"detail,omitempty"`
	// Status is the HTTP status the problem maps to.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=599
	Status int `json:"status,omitempty"`
}

// ExternalAccountKey points to the MAC key of a pre-provisioned account.
type ExternalAccountKey struct {
	// KeyID clients send as the EAB "kid".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	KeyID string `json:"keyID"`
	// SecretName holds the base64url HMAC key under SecretKey.
	// +required
	SecretName string `json:"secretName"`
	// SecretKey within the secret. Default "key".
	// +optional
	SecretKey string `json:"secretKey,omitempty"`
}

// AcmeAccountSpec is what the account was created with. A platform team may
// pre-provision an account with an ExternalAccountBinding key; the first ACME
// client to register with that key binds it.
// +kubebuilder:validation:XValidation:rule="self.profile == oldSelf.profile",message="profile is immutable"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.state) || oldSelf.state == 'valid' || (has(self.state) && self.state == oldSelf.state)",message="a deactivated or revoked account stays so"
type AcmeAccountSpec struct {
	// Profile is the AcmeProfile (directory) the account belongs to.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Profile string `json:"profile"`
	// Contact URLs (mailto:).
	// +optional
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=1024
	Contact []string `json:"contact,omitempty"`
	// ExternalAccountBinding key for a pre-provisioned account.
	// +optional
	ExternalAccountBinding *ExternalAccountKey `json:"externalAccountBinding,omitempty"`
	// AllowedIdentifiers limits what the account may order, on top of the
	// profile's policy: a DNS name (exact), "*.example.com" (every name below
	// example.com, wildcards included), an IP address or a CIDR. Empty allows
	// whatever the profile allows.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=253
	AllowedIdentifiers []string `json:"allowedIdentifiers,omitempty"`
	// Deactivated set by an administrator deactivates the account: every
	// further ACME request signed by it fails with unauthorized (RFC 8555 §7.3.6).
	// +optional
	Deactivated bool `json:"deactivated,omitempty"`

	// The fields below are written by the ACME server. They are in spec,
	// not status, because nothing can recompute them: a restore that drops
	// status (Velero's default, GitOps tools) keeps the account.

	// State is the ACME account status (RFC 8555 §7.1.2): valid,
	// deactivated (by its client) or revoked; empty while a pre-provisioned
	// account is unbound.
	// +optional
	// +kubebuilder:validation:Enum=valid;deactivated;revoked
	State string `json:"state,omitempty"`
	// Key is the account's public JWK (JSON).
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Key string `json:"key,omitempty"`
	// KeyThumbprint is the RFC 7638 SHA-256 thumbprint (base64url) of Key.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	KeyThumbprint string `json:"keyThumbprint,omitempty"`
	// TermsOfServiceAgreed as sent by the client.
	// +optional
	TermsOfServiceAgreed bool `json:"termsOfServiceAgreed,omitempty"`
	// Binding is the verified externalAccountBinding JWS, echoed to the client (RFC 8555 §7.3.4).
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Binding string `json:"binding,omitempty"`
	// BoundAt is when a client bound a pre-provisioned account.
	// +optional
	BoundAt *metav1.Time `json:"boundAt,omitempty"`
	// CreatedAt is when the ACME account came into being.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`
}

// AcmeAccountStatus is what the controller derives for an account.
type AcmeAccountStatus struct {
	// Legacy* are where kacme kept the server's fields before they moved to
	// spec. They are read once (MoveLegacyFields) and never written.
	// +optional
	LegacyStatus string `json:"status,omitempty"`
	// +optional
	LegacyKey string `json:"key,omitempty"`
	// +optional
	LegacyTermsOfServiceAgreed bool `json:"termsOfServiceAgreed,omitempty"`
	// +optional
	LegacyBinding string `json:"binding,omitempty"`
	// +optional
	LegacyBoundAt *metav1.Time `json:"boundAt,omitempty"`
	// +optional
	LegacyCreatedAt *metav1.Time `json:"createdAt,omitempty"`
	// +optional
	LegacyKeyThumbprint string `json:"keyThumbprint,omitempty"`
	// Orders is how many orders the account has (counted by the controller).
	// +optional
	Orders int `json:"orders,omitempty"`
	// Certificates is how many certificates were issued to the account (counted by the controller).
	// +optional
	Certificates int `json:"certificates,omitempty"`
	// Conditions: Ready says whether the account can be used, and why not
	// (AwaitingBinding, Deactivated, EABSecretInvalid).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AcmeAccount is an ACME account (RFC 8555 §7.1.2).
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=aacct,categories=acme
// +kubebuilder:printcolumn:name="Profile",type=string,JSONPath=`.spec.profile`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.spec.state`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Orders",type=integer,JSONPath=`.status.orders`
// +kubebuilder:printcolumn:name="Certificates",type=integer,JSONPath=`.status.certificates`
// +kubebuilder:printcolumn:name="Contact",type=string,JSONPath=`.spec.contact[0]`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AcmeAccount struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AcmeAccountSpec   `json:"spec,omitempty"`
	Status AcmeAccountStatus `json:"status,omitempty"`
}

// AcmeAccountList is a list of AcmeAccount.
// +kubebuilder:object:root=true
type AcmeAccountList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AcmeAccount `json:"items"`
}

// AcmeOrderSpec is what the client asked for; immutable once created.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an order's spec is immutable"
type AcmeOrderSpec struct {
	// Account that placed the order.
	// +kubebuilder:validation:MaxLength=253
	Account string `json:"account"`
	// Profile (AcmeProfile) the order was placed on.
	// +kubebuilder:validation:MaxLength=253
	Profile string `json:"profile"`
	// IssuanceProfile selected with the order's "profile" field.
	// +kubebuilder:validation:MaxLength=63
	IssuanceProfile string `json:"issuanceProfile"`
	// Identifiers ordered, normalised and de-duplicated.
	// +kubebuilder:validation:MaxItems=1000
	Identifiers []Identifier `json:"identifiers"`
	// NotBefore requested by the client.
	// +optional
	NotBefore *metav1.Time `json:"notBefore,omitempty"`
	// NotAfter requested by the client.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
	// Replaces is the ARI certID of the certificate this order replaces (RFC 9773 §5).
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Replaces string `json:"replaces,omitempty"`
}

// ChallengeData is what a client must deploy for a challenge, prepared by
// the server when the order is created (RFC 8555 §8.3, §8.4; RFC 8737 §3).
type ChallengeData struct {
	// Path the http-01 file is fetched from on port 80.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Path string `json:"path,omitempty"`
	// Content of the http-01 file: the key authorization.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Content string `json:"content,omitempty"`
	// RecordName of the dns-01 TXT record.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	RecordName string `json:"recordName,omitempty"`
	// RecordValue of the dns-01 TXT record: base64url(SHA-256(key authorization)).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	RecordValue string `json:"recordValue,omitempty"`
	// Digest is the tls-alpn-01 acmeIdentifier extension value: hex SHA-256 of the key authorization.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Digest string `json:"digest,omitempty"`
}

// AcmeChallengeState is one challenge of an authorization as the client sees it.
type AcmeChallengeState struct {
	// Type of the challenge.
	Type ChallengeType `json:"type"`
	// Token chosen by the server (≥128 bits).
	// +kubebuilder:validation:MaxLength=128
	Token string `json:"token"`
	// Status: pending, processing, valid or invalid.
	// +kubebuilder:validation:Enum=pending;processing;valid;invalid
	Status string `json:"status"`
	// Data the client must deploy.
	Data ChallengeData `json:"data"`
	// Validated is when it became valid.
	// +optional
	Validated *metav1.Time `json:"validated,omitempty"`
	// Error when invalid.
	// +optional
	Error *Problem `json:"error,omitempty"`
}

// OfferedAuthorization is what a pending authorization that is not stored
// yet is derived from.
type OfferedAuthorization struct {
	// Name of the authorization (the AcmeChallenge it is stored as): the
	// order's name, "-", and the authorization's index in the order.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Identifier to validate (without "*." for wildcards).
	Identifier Identifier `json:"identifier"`
	// Wildcard is true when the order asked for "*." + identifier.
	// +optional
	Wildcard bool `json:"wildcard,omitempty"`
	// Challenges offered, in the order the client sees them.
	// +kubebuilder:validation:MaxItems=8
	Challenges []OfferedChallenge `json:"challenges"`
}

// OfferedChallenge is a challenge's type and token.
type OfferedChallenge struct {
	// Type of the challenge.
	Type ChallengeType `json:"type"`
	// Token chosen by the server (≥128 bits).
	// +kubebuilder:validation:MaxLength=128
	Token string `json:"token"`
}

// AcmeOrderStatus is the server-owned state of an order.
type AcmeOrderStatus struct {
	// Status as stored: pending, valid or invalid. "ready" is not written:
	// the server derives it from the order's AcmeChallenges (RFC 8555 §7.1.6),
	// which saves one API write per issuance.
	// +kubebuilder:validation:Enum=pending;ready;processing;valid;invalid
	Status string `json:"status"`
	// Expires is when the order stops being usable.
	Expires metav1.Time `json:"expires"`
	// Authorizations of the order, one per identifier: the names of their
	// AcmeChallenge objects (the ACME authorization IDs).
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=253
	Authorizations []string `json:"authorizations"`
	// Offered lists, per authorization, the challenges it offers (type and
	// token). An authorization is stored as an AcmeChallenge only when one of
	// its challenges is answered or it is deactivated, with that outcome;
	// until then the server derives the pending authorization from the order
	// (this entry, the order's account and expiry), which saves one API write
	// per identifier. Empty for orders whose authorizations were all stored
	// when the order was created.
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	Offered []OfferedAuthorization `json:"offered,omitempty"`
	// Certificate is the name (serial) of the issued AcmeCertificate.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Certificate string `json:"certificate,omitempty"`
	// Error explains why the order is invalid.
	// +optional
	Error *Problem `json:"error,omitempty"`
}

// AcmeOrder is an ACME order with its authorizations (RFC 8555 §7.1.3).
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=aord,categories=acme
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.spec.account`
// +kubebuilder:printcolumn:name="Identifiers",type=string,JSONPath=`.spec.identifiers[*].value`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.status`
// +kubebuilder:printcolumn:name="Certificate",type=string,JSONPath=`.status.certificate`
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.error.detail`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AcmeOrder struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AcmeOrderSpec   `json:"spec,omitempty"`
	Status AcmeOrderStatus `json:"status,omitempty"`
}

// AcmeOrderList is a list of AcmeOrder.
// +kubebuilder:object:root=true
type AcmeOrderList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AcmeOrder `json:"items"`
}

// ValidationRecord is what a validator saw (audit trail).
type ValidationRecord struct {
	// URL fetched (http-01).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url,omitempty"`
	// Hostname or address validated.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Hostname string `json:"hostname,omitempty"`
	// Port connected to.
	// +optional
	// +kubebuilder:validation:MaxLength=5
	Port string `json:"port,omitempty"`
	// AddressesResolved for the hostname (MaxRecordAddresses at most; the server keeps the first).
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=64
	AddressesResolved []string `json:"addressesResolved,omitempty"`
	// AddressUsed for the connection.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	AddressUsed string `json:"addressUsed,omitempty"`
	// Query made (dns-01), e.g. "TXT _acme-challenge.example.com.".
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Query string `json:"query,omitempty"`
	// Resolver asked.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Resolver string `json:"resolver,omitempty"`
}

// AcmeChallengeSpec names the identifier an authorization is for.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an authorization's spec is immutable"
type AcmeChallengeSpec struct {
	// Account whose key authorizes the challenges.
	// +kubebuilder:validation:MaxLength=253
	Account string `json:"account"`
	// Order the authorization belongs to; empty for a pre-authorization
	// (newAuthz), which belongs to no order.
	// +kubebuilder:validation:MaxLength=253
	Order string `json:"order"`
	// Profile (AcmeProfile) whose validation settings apply.
	// +kubebuilder:validation:MaxLength=253
	Profile string `json:"profile"`
	// Identifier to validate (without "*." for wildcards).
	Identifier Identifier `json:"identifier"`
	// Wildcard is true when the order asked for "*." + identifier.
	// +optional
	Wildcard bool `json:"wildcard,omitempty"`
}

// AcmeChallengeStatus is the authorization's state and its challenges.
type AcmeChallengeStatus struct {
	// Status of the authorization: pending, valid, invalid, deactivated, expired or revoked.
	// +kubebuilder:validation:Enum=pending;valid;invalid;deactivated;expired;revoked
	Status string `json:"status"`
	// Expires is when the authorization stops being usable.
	Expires metav1.Time `json:"expires"`
	// Challenges offered, each with the data a client must deploy.
	// +kubebuilder:validation:MaxItems=8
	Challenges []AcmeChallengeState `json:"challenges"`
	// Records of what the validator queried and fetched (MaxValidationRecords at most; the server keeps the first).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Records []ValidationRecord `json:"records,omitempty"`
}

// AcmeChallenge is one ACME authorization (RFC 8555 §7.1.4) with all of its
// challenges and what a client must deploy for each. It is stored when a
// client first answers one of its challenges (with the outcome) or
// deactivates it; until then the server derives the pending authorization
// from its order (the order's status.offered). Its name is the
// authorization ID, "<order>-<index>".
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=achal,categories=acme
// +kubebuilder:printcolumn:name="Identifier",type=string,JSONPath=`.spec.identifier.value`
// +kubebuilder:printcolumn:name="Wildcard",type=boolean,JSONPath=`.spec.wildcard`,priority=1
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.status`
// +kubebuilder:printcolumn:name="Order",type=string,JSONPath=`.spec.order`
// +kubebuilder:printcolumn:name="HTTP-01 Path",type=string,JSONPath=`.status.challenges[?(@.type=="http-01")].data.path`,priority=1
// +kubebuilder:printcolumn:name="DNS-01 Record",type=string,JSONPath=`.status.challenges[?(@.type=="dns-01")].data.recordName`,priority=1
// +kubebuilder:printcolumn:name="DNS-01 Value",type=string,JSONPath=`.status.challenges[?(@.type=="dns-01")].data.recordValue`,priority=1
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expires`
type AcmeChallenge struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AcmeChallengeSpec   `json:"spec,omitempty"`
	Status AcmeChallengeStatus `json:"status,omitempty"`
}

// AcmeChallengeList is a list of AcmeChallenge.
// +kubebuilder:object:root=true
type AcmeChallengeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AcmeChallenge `json:"items"`
}

// AcmeCertificateSpec records an issued certificate. What was issued is
// immutable; only the revocation fields change, and a revocation is final.
// +kubebuilder:validation:XValidation:rule="self.account == oldSelf.account && self.order == oldSelf.order && self.serial == oldSelf.serial && self.certificateAuthority == oldSelf.certificateAuthority && self.notBefore == oldSelf.notBefore && self.notAfter == oldSelf.notAfter",message="an issued certificate's fields are immutable"
// +kubebuilder:validation:XValidation:rule="has(self.certificate) == has(oldSelf.certificate) && (!has(self.certificate) || self.certificate == oldSelf.certificate)",message="certificate is immutable"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.revocation) || (has(self.revocation) && self.revocation == oldSelf.revocation)",message="a revocation is final"
type AcmeCertificateSpec struct {
	// Account that ordered it.
	// +kubebuilder:validation:MaxLength=253
	Account string `json:"account"`
	// Order it was issued for.
	// +kubebuilder:validation:MaxLength=253
	Order string `json:"order"`
	// Profile (AcmeProfile) and IssuanceProfile it was issued under.
	// +kubebuilder:validation:MaxLength=253
	Profile string `json:"profile"`
	// +kubebuilder:validation:MaxLength=63
	IssuanceProfile string `json:"issuanceProfile,omitempty"`
	// CertificateAuthority that signed it.
	// +kubebuilder:validation:MaxLength=253
	CertificateAuthority string `json:"certificateAuthority"`
	// Serial in lowercase hex.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[0-9a-f]+$`
	Serial string `json:"serial"`
	// Names in the certificate: its DNS names, then its IP addresses.
	// +optional
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=253
	Names []string `json:"names,omitempty"`
	// Certificate is the issued leaf certificate (PEM). The chains served
	// with it are built when it is downloaded, from the CA key that signed it.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Certificate string `json:"certificate,omitempty"`
	// Chain is what kacme stored before it kept the leaf only: the PEM chain,
	// leaf first. It is read (its first certificate) when Certificate is
	// empty and never written.
	// +optional
	// +kubebuilder:validation:MaxLength=131072
	Chain string `json:"chain,omitempty"`
	// NotBefore and NotAfter of the leaf.
	NotBefore metav1.Time `json:"notBefore"`
	NotAfter  metav1.Time `json:"notAfter"`
	// RevocationReason, set by an administrator (kubectl edit, GitOps),
	// revokes the certificate with this RFC 5280 reason code: 0 unspecified,
	// 1 keyCompromise, 3 affiliationChanged, 4 superseded, 5
	// cessationOfOperation. The server records spec.revocation, an audit
	// record and an Event; the CRL lists it and ARI asks for renewal now.
	// +optional
	// +kubebuilder:validation:Enum=0;1;3;4;5
	RevocationReason *int `json:"revocationReason,omitempty"`
	// Revocation is written by the server once the certificate is revoked
	// (in spec: a restore that drops status must not un-revoke it).
	// +optional
	Revocation *Revocation `json:"revocation,omitempty"`
}

// Revocation records a revoked certificate.
type Revocation struct {
	// Reason is the RFC 5280 CRLReason code; 0 is written as no reason.
	// +kubebuilder:validation:Enum=0;1;3;4;5
	Reason int `json:"reason"`
	// RevokedAt is when the revocation happened.
	RevokedAt metav1.Time `json:"revokedAt"`
}

// AcmeCertificateStatus holds nothing kacme writes today.
type AcmeCertificateStatus struct {
	// LegacyRevocation is where kacme recorded a revocation before it moved
	// to spec; it is read once (MoveLegacyFields) and never written.
	// +optional
	LegacyRevocation *Revocation `json:"revocation,omitempty"`
}

// AcmeCertificate is an issued certificate. Its name is the serial in hex.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=acert,categories=acme
// +kubebuilder:printcolumn:name="Account",type=string,JSONPath=`.spec.account`
// +kubebuilder:printcolumn:name="Names",type=string,JSONPath=`.spec.names`
// +kubebuilder:printcolumn:name="NotAfter",type=string,JSONPath=`.spec.notAfter`
// +kubebuilder:printcolumn:name="Revoked",type=string,JSONPath=`.spec.revocation.revokedAt`
// +kubebuilder:printcolumn:name="Reason",type=integer,JSONPath=`.spec.revocation.reason`,priority=1
// +kubebuilder:printcolumn:name="Order",type=string,JSONPath=`.spec.order`,priority=1
type AcmeCertificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AcmeCertificateSpec   `json:"spec,omitempty"`
	Status AcmeCertificateStatus `json:"status,omitempty"`
}

// AcmeCertificateList is a list of AcmeCertificate.
// +kubebuilder:object:root=true
type AcmeCertificateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AcmeCertificate `json:"items"`
}
