package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"
)

// ErrSourceCount is the message for a CertificateAuthority without exactly one
// source; the CRD's CEL rule says the same.
const ErrSourceCount = "exactly one of selfSigned, secretRef or intermediate is required"

// HasOneSource reports whether exactly one of selfSigned, secretRef and
// intermediate is set (the API server enforces it; standalone manifests and
// stored objects are checked again).
func (s *CertificateAuthoritySpec) HasOneSource() bool {
	n := 0
	for _, set := range []bool{s.SelfSigned != nil, s.SecretRef != nil, s.Intermediate != nil} {
		if set {
			n++
		}
	}
	return n == 1
}

// KeySecretName is where a generated CA's key and chain are kept: spec.secretName, default "<name>-ca".
func (c *CertificateAuthority) KeySecretName() string {
	if c.Spec.SecretName != "" {
		return c.Spec.SecretName
	}
	return c.Name + "-ca"
}

// DataKey is the key within the Secret holding the HMAC key: secretKey, default "key".
func (k *ExternalAccountKey) DataKey() string {
	if k.SecretKey != "" {
		return k.SecretKey
	}
	return "key"
}

// EABMirrorSecretName names the copy of a pre-registered account's EAB HMAC
// key that the controller keeps in the operator's namespace, so that the
// ACME server reads Secrets only there (its RBAC is a namespaced Role).
func EABMirrorSecretName(namespace, account string) string {
	sum := sha256.Sum256([]byte(namespace + "/" + account))
	return "kacme-eab-" + hex.EncodeToString(sum[:10])
}

// EABMirrorDataKey is the key of the HMAC key in a mirror Secret.
const EABMirrorDataKey = "key"

// Path is the directory's URL path segment: spec.directoryPath, default the name.
func (p *AcmeProfile) Path() string {
	if p.Spec.DirectoryPath != "" {
		return p.Spec.DirectoryPath
	}
	return p.Name
}

// BundleConfigMap and BundleKey are where the trust bundle goes (defaults applied).
func (c *CertificateAuthority) BundleConfigMap() string {
	if c.Spec.TrustBundle != nil && c.Spec.TrustBundle.ConfigMapName != "" {
		return c.Spec.TrustBundle.ConfigMapName
	}
	return c.Name + "-ca-bundle"
}

// BundleKey is the trust bundle's key in its ConfigMap: spec.trustBundle.key, default "ca.crt".
func (c *CertificateAuthority) BundleKey() string {
	if c.Spec.TrustBundle != nil && c.Spec.TrustBundle.Key != "" {
		return c.Spec.TrustBundle.Key
	}
	return "ca.crt"
}

// EABKeyLabel is the value of LabelEABKeyID under which a pre-provisioned
// account is found by its EAB key ID (hashed: key IDs are not label-safe).
func EABKeyLabel(keyID string) string {
	sum := sha256.Sum256([]byte(keyID))
	return hex.EncodeToString(sum[:20])
}

// MoveLegacyFields moves what earlier kacme versions wrote into status and
// nothing can recompute (an account's key, state and binding; a
// certificate's revocation) to where it is kept now, in spec. Stores call it
// on every object they read, so the first write after an upgrade persists
// the new layout; it reports whether it changed obj.
func MoveLegacyFields(obj any) bool {
	switch o := obj.(type) {
	case *AcmeAccount:
		st, sp := &o.Status, &o.Spec
		if st.LegacyKey == "" && st.LegacyStatus == "" && st.LegacyBinding == "" && st.LegacyBoundAt == nil && st.LegacyCreatedAt == nil {
			return false
		}
		if sp.Key == "" && sp.State == "" {
			sp.State, sp.Key, sp.KeyThumbprint, sp.TermsOfServiceAgreed = st.LegacyStatus, st.LegacyKey, st.LegacyKeyThumbprint, st.LegacyTermsOfServiceAgreed
			sp.Binding, sp.BoundAt, sp.CreatedAt = st.LegacyBinding, st.LegacyBoundAt, st.LegacyCreatedAt
		}
		st.LegacyStatus, st.LegacyKey, st.LegacyKeyThumbprint, st.LegacyTermsOfServiceAgreed = "", "", "", false
		st.LegacyBinding, st.LegacyBoundAt, st.LegacyCreatedAt = "", nil, nil
		return true
	case *AcmeCertificate:
		if o.Status.LegacyRevocation == nil {
			return false
		}
		if o.Spec.Revocation == nil {
			o.Spec.Revocation = o.Status.LegacyRevocation
		}
		o.Status.LegacyRevocation = nil
		return true
	}
	return false
}

// ClearServerFields empties the account fields only the server writes
// (state, key, its thumbprint, terms-of-service agreement, EAB binding,
// boundAt, createdAt): what a declared (pre-provisioned) account's manifest
// must not set. MoveLegacyFields moves exactly these from status;
// TestServerFieldsAgree keeps the two lists the same.
func (s *AcmeAccountSpec) ClearServerFields() {
	s.State, s.Key, s.KeyThumbprint, s.TermsOfServiceAgreed = "", "", "", false
	s.Binding, s.BoundAt, s.CreatedAt = "", nil, nil
}

// WithLegacyFieldsMoved is a cache transform: next (e.g. one that strips
// managedFields) after MoveLegacyFields, so every cached object has the
// current layout.
func WithLegacyFieldsMoved(next func(any) (any, error)) func(any) (any, error) {
	return func(in any) (any, error) {
		MoveLegacyFields(in)
		return next(in)
	}
}

// Bounds the CRDs put on what the server stores from a validation (the
// markers on Problem and ValidationRecord say the same numbers). A hostile
// DNS answer or HTTP response must not make a write fail, or grow an object.
const (
	MaxProblemDetail     = 4096
	MaxValidationRecords = 16
	MaxRecordAddresses   = 64
	maxRecordURL         = 2048
	maxRecordQuery       = 512
	maxRecordResolver    = 256
)

// Bounded is p with its detail cut to MaxProblemDetail bytes.
func (p *Problem) Bounded() *Problem {
	if p == nil {
		return nil
	}
	out := *p
	out.Detail = cut(p.Detail, MaxProblemDetail)
	return &out
}

// BoundRecords keeps the first MaxValidationRecords records, each with its
// first MaxRecordAddresses addresses and its strings cut to their bounds.
func BoundRecords(in []ValidationRecord) []ValidationRecord {
	if len(in) > MaxValidationRecords {
		in = in[:MaxValidationRecords]
	}
	out := make([]ValidationRecord, len(in))
	for i, r := range in {
		if len(r.AddressesResolved) > MaxRecordAddresses {
			r.AddressesResolved = r.AddressesResolved[:MaxRecordAddresses]
		}
		r.URL, r.Query, r.Resolver = cut(r.URL, maxRecordURL), cut(r.Query, maxRecordQuery), cut(r.Resolver, maxRecordResolver)
		r.Hostname = cut(r.Hostname, 253)
		out[i] = r
	}
	return out
}

// cut shortens s to at most n bytes without splitting a UTF-8 sequence,
// ending in "…" when it cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	i := n - len(ellipsis)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + ellipsis
}
