package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func metaAddToGroupVersion(s *runtime.Scheme) { metav1.AddToGroupVersion(s, GroupVersion) }

// Labels the server sets on stored objects so that backends can index them.
const (
	// LabelAccount names the owning AcmeAccount on orders, challenges and certificates.
	LabelAccount = "acme.kacme.io/account"
	// LabelProfile names the AcmeProfile an object belongs to.
	LabelProfile = "acme.kacme.io/profile"
	// LabelKeyThumbprint is the RFC 7638 thumbprint (base32, lowercase) of an account key.
	LabelKeyThumbprint = "acme.kacme.io/key-thumbprint"
	// LabelEABKeyID is the external account binding key ID of a pre-provisioned account (hex of the key ID).
	LabelEABKeyID = "acme.kacme.io/eab-key-id"
	// LabelReplaces is the serial of the certificate an order replaces (RFC 9773 §5).
	LabelReplaces = "acme.kacme.io/replaces"
	// LabelOrder names the AcmeOrder an AcmeChallenge or AcmeCertificate belongs to.
	LabelOrder = "acme.kacme.io/order"
	// LabelState is a coarse state used to find work (e.g. challenges to validate).
	LabelState = "acme.kacme.io/state"
	// LabelExpires is when an order or authorization expires, or a
	// certificate's validity ends (status.expires, spec.notAfter), in Unix
	// seconds (rounded down). The cluster store sets it on every write of
	// those kinds; the retention sweep selects on it ("<" in a label
	// selector) so the API server hands it only what may be old enough to
	// delete. Objects without it (written before it existed) are swept too.
	LabelExpires = "acme.kacme.io/expires"
	// LabelClientIP is a hash of the address an account was registered from (rate limits).
	LabelClientIP = "acme.kacme.io/client-ip"
	// LabelTrustBundleOf names the CertificateAuthority whose trust bundle a ConfigMap carries.
	LabelTrustBundleOf = "acme.kacme.io/trust-bundle-of"
	// LabelEABSecret marks an EAB Secret outside the operator's namespace
	// that kacme controller watches (it sets it on the Secrets it mints; add
	// it to a Secret you supply to have its changes seen at once). Other
	// Secrets there never enter the controller's cache.
	LabelEABSecret = "acme.kacme.io/eab-secret"
)

// AnnotationInjectCAFromProfile on a cert-manager Issuer or ClusterIssuer
// names the AcmeProfile whose CA trust bundle the controller keeps in the
// issuer's spec.acme.caBundle.
const AnnotationInjectCAFromProfile = "acme.kacme.io/inject-ca-from-profile"

// ConditionReady is the condition type every kacme kind reports: True when
// the object is in use (a CA can sign, a profile is served, an account may
// register or order).
const ConditionReady = "Ready"
