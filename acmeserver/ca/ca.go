// Package ca signs certificates and CRLs with CA keys (ECDSA P-256/P-384,
// RSA, Ed25519), from a root or an intermediate.
package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // RFC 5280 §4.2.1.2 method (1) key identifier, not a signature
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Authority is one loaded CA.
type Authority struct {
	Name   string
	Cert   *x509.Certificate
	Signer crypto.Signer
	// Parents are the certificates above Cert, root last (empty for a root CA).
	Parents []*x509.Certificate
	// CRLURL is written as the CRL distribution point when set; with
	// CRLPerKey, followed by ?key=<hex subject key ID of Cert>, so that a
	// leaf keeps finding the CRL its own CA key signs after a key rotation.
	CRLURL      string
	CRLPerKey   bool
	CRLValidity time.Duration
	// IssuerURL, when set, is written as the Authority Information Access
	// caIssuers URL (RFC 5280 §4.2.2.1), where this CA's certificate is
	// served (DER); with CRLPerKey it names the key too, as CRLURL does.
	IssuerURL string
	// OCSP, when set, is the CA's OCSP responder (spec.ocsp).
	OCSP *OCSPConfig
	// Previous is this CA as it was before its last key rotation (its
	// certificate and key): it signs the CRL for the leaves it issued.
	Previous *Authority
	now      func() time.Time

	serialKeyOnce sync.Once
	serialKey     []byte
	serialKeyErr  error
}

// OCSPConfig is how a CA answers OCSP (RFC 6960).
type OCSPConfig struct {
	// URL is written into certificates that ask for it
	// (IssueRequest.OCSP) as the Authority Information Access OCSP URL.
	URL string
	// Validity is the interval between a response's thisUpdate and nextUpdate.
	Validity time.Duration
	// Delegated: responses are signed by a responder certificate the CA
	// issues (IssueOCSPResponder), not by the CA key.
	Delegated bool
}

// DefaultOCSPValidity is OCSPConfig.Validity when spec.ocsp sets none.
const DefaultOCSPValidity = 12 * time.Hour

// New checks that signer matches cert and returns the authority.
func New(name string, cert *x509.Certificate, signer crypto.Signer, parents []*x509.Certificate) (*Authority, error) {
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("CA %s: certificate is not a CA certificate", name)
	}
	if !publicKeysEqual(cert.PublicKey, signer.Public()) {
		return nil, fmt.Errorf("CA %s: private key does not match the certificate", name)
	}
	prev := cert
	for i, p := range parents {
		if err := prev.CheckSignatureFrom(p); err != nil {
			return nil, fmt.Errorf("CA %s: chain certificate %d does not sign the one before: %w", name, i+1, err)
		}
		prev = p
	}
	return &Authority{Name: name, Cert: cert, Signer: signer, Parents: parents, CRLValidity: 24 * time.Hour, now: time.Now}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// Root is the top of the chain.
func (a *Authority) Root() *x509.Certificate {
	if len(a.Parents) == 0 {
		return a.Cert
	}
	return a.Parents[len(a.Parents)-1]
}

// Chains returns the issuer chains served after a leaf: the default chain is
// the issuing CA and its intermediates without a separate root; when there
// is one, an alternate chain also carries the root (RFC 8555 §7.4.2).
func (a *Authority) Chains() [][]*x509.Certificate {
	if len(a.Parents) == 0 {
		return [][]*x509.Certificate{{a.Cert}}
	}
	withoutRoot := append([]*x509.Certificate{a.Cert}, a.Parents[:len(a.Parents)-1]...)
	withRoot := append([]*x509.Certificate{a.Cert}, a.Parents...)
	return [][]*x509.Certificate{withoutRoot, withRoot}
}

// Signed is the authority (this one or one of its Previous) whose key
// signed leaf: the one whose subject key identifier is the leaf's authority
// key identifier (a hash of the CA key, so it names one key), or, for
// certificates without those identifiers, the one whose signature verifies.
// It is false when none of the keys this CA still holds did.
func (a *Authority) Signed(leaf *x509.Certificate) (*Authority, bool) {
	for c := a; c != nil; c = c.Previous {
		if len(leaf.AuthorityKeyId) > 0 && len(c.Cert.SubjectKeyId) > 0 {
			if bytes.Equal(leaf.AuthorityKeyId, c.Cert.SubjectKeyId) {
				return c, true
			}
			continue
		}
		if leaf.CheckSignatureFrom(c.Cert) == nil {
			return c, true
		}
	}
	return nil, false
}

// IssueRequest is a vetted request for a leaf certificate.
type IssueRequest struct {
	PublicKey crypto.PublicKey
	DNSNames  []string
	IPs       []net.IP
	NotBefore time.Time
	NotAfter  time.Time
	// URIs are URI subject alternative names (a SPIFFE ID).
	URIs []*url.URL
	// ClientAuth adds the clientAuth extended key usage; NoServerAuth leaves
	// serverAuth out (a client-only certificate).
	ClientAuth, NoServerAuth bool
	// Serial to use; nil draws a random one.
	Serial *big.Int
	// OCSP writes the CA's OCSP responder URL (OCSPConfig.URL) into the
	// certificate; ignored when the CA has none.
	OCSP bool
}

// ErrPolicy marks requests the CA refuses.
var ErrPolicy = errors.New("ca policy")

// NewSerial returns a positive serial with 127 random bits (≥ 64 required by the BRs).
func NewSerial() (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	b[0] &= 0x7f
	if b[0] == 0 {
		b[0] = 0x40 // keep a fixed length so serial strings sort and read alike
	}
	return new(big.Int).SetBytes(b), nil
}

// SerialFor derives the serial of the certificate issued for an order:
// HMAC-SHA256 over the order ID, keyed with a hash of the CA's private key,
// cut to 127 bits like NewSerial. It is unpredictable to clients (who know the
// order ID but not the key) and the same for every attempt to finalize one
// order, so storage's name uniqueness makes "one certificate per order" hold
// across retries, restarts and replicas without a "processing" write.
func (a *Authority) SerialFor(orderID string) (*big.Int, error) {
	a.serialKeyOnce.Do(func() {
		der, err := x509.MarshalPKCS8PrivateKey(a.Signer)
		if err != nil {
			a.serialKeyErr = fmt.Errorf("CA %s: derive serial key: %w", a.Name, err)
			return
		}
		sum := sha256.Sum256(append([]byte("kacme serial key\x00"), der...))
		a.serialKey = sum[:]
	})
	if a.serialKeyErr != nil {
		return nil, a.serialKeyErr
	}
	m := hmac.New(sha256.New, a.serialKey)
	m.Write([]byte(orderID))
	b := m.Sum(nil)[:16]
	b[0] &= 0x7f
	if b[0] == 0 {
		b[0] = 0x40
	}
	return new(big.Int).SetBytes(b), nil
}

// KeyID is the RFC 5280 §4.2.1.2 method (1) identifier of a public key.
func KeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, err
	}
	sum := sha1.Sum(spki.PublicKey.Bytes) //nolint:gosec // key identifier
	return sum[:], nil
}

// Issue signs a leaf certificate and returns its DER and parsed form.
func (a *Authority) Issue(req IssueRequest) ([]byte, *x509.Certificate, error) {
	if len(req.DNSNames)+len(req.IPs)+len(req.URIs) == 0 {
		return nil, nil, fmt.Errorf("%w: no identifiers", ErrPolicy)
	}
	if !req.NotAfter.After(req.NotBefore) {
		return nil, nil, fmt.Errorf("%w: notAfter is not after notBefore", ErrPolicy)
	}
	if req.NotAfter.After(a.Cert.NotAfter) {
		req.NotAfter = a.Cert.NotAfter // never outlive the issuer
	}
	serial := req.Serial
	if serial == nil {
		var err error
		if serial, err = NewSerial(); err != nil {
			return nil, nil, err
		}
	}
	ski, err := KeyID(req.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: unusable public key: %v", ErrPolicy, err)
	}
	var eku []x509.ExtKeyUsage
	if !req.NoServerAuth {
		eku = append(eku, x509.ExtKeyUsageServerAuth)
	}
	if req.ClientAuth {
		eku = append(eku, x509.ExtKeyUsageClientAuth)
	}
	ku := x509.KeyUsageDigitalSignature
	if _, ok := req.PublicKey.(*rsa.PublicKey); ok {
		ku |= x509.KeyUsageKeyEncipherment
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             req.NotBefore,
		NotAfter:              req.NotAfter,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPs,
		URIs:                  req.URIs,
		KeyUsage:              ku,
		ExtKeyUsage:           eku,
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
		AuthorityKeyId:        a.Cert.SubjectKeyId,
	}
	if len(req.DNSNames) > 0 && len(req.DNSNames[0]) <= 64 {
		tmpl.Subject.CommonName = req.DNSNames[0]
	}
	if a.CRLURL != "" {
		tmpl.CRLDistributionPoints = []string{a.perKey(a.CRLURL)}
	}
	if a.IssuerURL != "" {
		tmpl.IssuingCertificateURL = []string{a.perKey(a.IssuerURL)}
	}
	if req.OCSP && a.OCSP != nil && a.OCSP.URL != "" {
		tmpl.OCSPServer = []string{a.OCSP.URL} // the request names its issuer's key: one URL serves every key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, req.PublicKey, a.Signer)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return der, cert, nil
}

// perKey adds ?key=<hex subject key ID> to u when the CA rotates its key.
func (a *Authority) perKey(u string) string {
	if a.CRLPerKey {
		return u + "?key=" + hex.EncodeToString(a.Cert.SubjectKeyId)
	}
	return u
}

// ForKey is the authority (this one or Previous) whose CA key has the hex
// subject key ID keyID; "" is this one.
func (a *Authority) ForKey(keyID string) (*Authority, bool) {
	for c := a; c != nil; c = c.Previous {
		if keyID == "" || keyID == hex.EncodeToString(c.Cert.SubjectKeyId) {
			return c, true
		}
	}
	return nil, false
}

// RevokedEntry is one CRL entry.
type RevokedEntry struct {
	Serial    *big.Int
	RevokedAt time.Time
	Reason    int
}

// CRL signs a v2 CRL. cRLNumber is the signing time in nanoseconds, so it
// rises strictly across restarts and replicas without shared state.
func (a *Authority) CRL(entries []RevokedEntry) ([]byte, error) {
	now := a.now().UTC()
	tmpl := &x509.RevocationList{
		Number:     big.NewInt(now.UnixNano()),
		ThisUpdate: now,
		NextUpdate: now.Add(a.CRLValidity),
	}
	for _, e := range entries {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: e.Serial, RevocationTime: e.RevokedAt.UTC(), ReasonCode: e.Reason, // 0 is omitted (RFC 5280 §5.3.1)
		})
	}
	return x509.CreateRevocationList(rand.Reader, tmpl, a.Cert, a.Signer)
}

// GenerateKey creates a key of the given algorithm.
func GenerateKey(alg v1alpha1.KeyAlgorithm) (crypto.Signer, error) {
	switch alg {
	case "", v1alpha1.KeyECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case v1alpha1.KeyECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case v1alpha1.KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case v1alpha1.KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case v1alpha1.KeyRSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case v1alpha1.KeyEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unknown key algorithm %q", alg)
}

func subjectOf(s v1alpha1.CASubject, defaultCN string) pkix.Name {
	cn, org := s.CommonName, s.Organization
	if cn == "" {
		cn = defaultCN
	}
	if org == "" {
		org = "kacme"
	}
	return pkix.Name{CommonName: cn, Organization: []string{org}}
}

// GenerateSelfSigned creates a root CA per spec; the chain is the root alone.
func GenerateSelfSigned(name string, spec v1alpha1.SelfSignedCA) (crypto.Signer, []*x509.Certificate, error) {
	validity := 10 * 365 * 24 * time.Hour
	if spec.Validity != nil && spec.Validity.Duration > 0 {
		validity = spec.Validity.Duration
	}
	key, err := GenerateKey(spec.KeyAlgorithm)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().Add(-time.Minute).UTC()
	root, err := selfSign(key, subjectOf(spec.Subject, "kacme "+name+" CA"), now, now.Add(validity))
	if err != nil {
		return nil, nil, err
	}
	return key, []*x509.Certificate{root}, nil
}

// GenerateIntermediate creates a CA signed by issuer; the chain is the new
// certificate followed by the issuer's chain.
func GenerateIntermediate(name string, spec v1alpha1.IntermediateCA, issuer *Authority) (crypto.Signer, []*x509.Certificate, error) {
	validity := 5 * 365 * 24 * time.Hour
	if spec.Validity != nil && spec.Validity.Duration > 0 {
		validity = spec.Validity.Duration
	}
	key, err := GenerateKey(spec.KeyAlgorithm)
	if err != nil {
		return nil, nil, err
	}
	cert, err := issuer.signSubordinate(key.Public(), subjectOf(spec.Subject, "kacme "+name+" CA"), time.Now(), validity)
	if err != nil {
		return nil, nil, err
	}
	return key, append([]*x509.Certificate{cert, issuer.Cert}, issuer.Parents...), nil
}

func selfSign(key crypto.Signer, subject pkix.Name, nb, na time.Time) (*x509.Certificate, error) {
	tmpl, err := caTemplate(key.Public(), subject, nb, na, -1)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func signCA(pub crypto.PublicKey, subject pkix.Name, nb, na time.Time, parent *x509.Certificate, parentKey crypto.Signer, maxPath int) (*x509.Certificate, error) {
	tmpl, err := caTemplate(pub, subject, nb, na, maxPath)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// serialAndKeyID draws a serial and computes pub's key identifier: what
// every certificate a CA signs for one of its own keys starts with.
func serialAndKeyID(pub crypto.PublicKey) (*big.Int, []byte, error) {
	serial, err := NewSerial()
	if err != nil {
		return nil, nil, err
	}
	ski, err := KeyID(pub)
	return serial, ski, err
}

func caTemplate(pub crypto.PublicKey, subject pkix.Name, nb, na time.Time, maxPath int) (*x509.Certificate, error) {
	serial, ski, err := serialAndKeyID(pub)
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber: serial, Subject: subject, NotBefore: nb, NotAfter: na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, SubjectKeyId: ski,
	}
	if maxPath >= 0 {
		t.MaxPathLen, t.MaxPathLenZero = maxPath, maxPath == 0
	}
	return t, nil
}

// Renew re-signs a generated CA's certificate with the same key and subject
// for a new validity: certificates it issued stay valid under the new one.
// issuer is nil for a root.
func Renew(key crypto.Signer, old *x509.Certificate, now time.Time, validity time.Duration, issuer *Authority) (*x509.Certificate, error) {
	if issuer == nil {
		nb := now.Add(-time.Minute).UTC()
		return selfSign(key, old.Subject, nb, nb.Add(validity))
	}
	return issuer.signSubordinate(key.Public(), old.Subject, now, validity)
}

// oidOCSPNoCheck is id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

// IssueOCSPResponder signs a delegated OCSP responder certificate for pub
// (RFC 6960 §4.2.2.2): extended key usage OCSPSigning only, not a CA, with
// id-pkix-ocsp-nocheck (relying parties do not check its own status, so it
// must be short-lived), valid from notBefore to notAfter but never longer
// than a.
func (a *Authority) IssueOCSPResponder(pub crypto.PublicKey, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	if notAfter.After(a.Cert.NotAfter) {
		notAfter = a.Cert.NotAfter
	}
	serial, ski, err := serialAndKeyID(pub)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: clipCN(a.Cert.Subject.CommonName + " OCSP responder")},
		NotBefore:             notBefore.UTC(),
		NotAfter:              notAfter.UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning},
		BasicConstraintsValid: true,
		SubjectKeyId:          ski,
		AuthorityKeyId:        a.Cert.SubjectKeyId,
		ExtraExtensions:       []pkix.Extension{{Id: oidOCSPNoCheck, Value: asn1.NullBytes}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, pub, a.Signer)
	if err != nil {
		return nil, fmt.Errorf("CA %s: sign OCSP responder certificate: %w", a.Name, err)
	}
	return x509.ParseCertificate(der)
}

// clipCN cuts a common name to the 64 characters RFC 5280 allows.
func clipCN(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// signSubordinate signs a CA certificate below a: never outliving a, with a
// path length one shorter than a's.
func (a *Authority) signSubordinate(pub crypto.PublicKey, subject pkix.Name, now time.Time, validity time.Duration) (*x509.Certificate, error) {
	nb := now.Add(-time.Minute).UTC()
	na := nb.Add(validity)
	if na.After(a.Cert.NotAfter) {
		na = a.Cert.NotAfter
	}
	maxPath := 0
	if a.Cert.MaxPathLen > 1 {
		maxPath = a.Cert.MaxPathLen - 1
	}
	return signCA(pub, subject, nb, na, a.Cert, a.Signer, maxPath)
}
