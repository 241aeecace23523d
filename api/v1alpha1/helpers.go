package v1alpha1

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
