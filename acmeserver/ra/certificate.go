package ra

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

const stateRevoked = "revoked"

// Certificate loads a certificate owned by a.
func (r *RA) Certificate(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeCertificate, error) {
	var c v1alpha1.AcmeCertificate
	if err := r.get(ctx, a.Namespace, id, &c, "certificate"); err != nil {
		return nil, err
	}
	if c.Spec.Account != a.Name {
		return nil, notFound("certificate")
	}
	return &c, nil
}

// LeafPEM is the stored leaf (PEM). A certificate stored before kacme kept
// the leaf only holds its whole chain in spec.chain, leaf first.
func LeafPEM(c *v1alpha1.AcmeCertificate) []byte {
	if c.Spec.Certificate != "" {
		return []byte(c.Spec.Certificate)
	}
	b, _ := pem.Decode([]byte(c.Spec.Chain))
	if b == nil {
		return nil
	}
	return pem.EncodeToMemory(b)
}

// LeafOf parses the stored leaf.
func LeafOf(c *v1alpha1.AcmeCertificate) (*x509.Certificate, error) {
	return parseLeaf(c.Name, LeafPEM(c))
}

func parseLeaf(name string, leafPEM []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(leafPEM)
	if b == nil {
		return nil, fmt.Errorf("certificate %s: no certificate is stored", name)
	}
	return x509.ParseCertificate(b.Bytes)
}

// Chains returns the PEM chains served for c (RFC 8555 §7.4.2), the default
// first, each leaf first. They are built from the CA key that signed the
// leaf (by its authority key identifier), so that after a key
// rotation an earlier leaf still comes with the issuer that verifies it. A
// leaf none of the CA's held keys signed is served as it was stored.
func (r *RA) Chains(c *v1alpha1.AcmeCertificate) ([][]byte, error) {
	leafPEM := LeafPEM(c)
	leaf, err := parseLeaf(c.Name, leafPEM)
	if err != nil {
		return nil, err
	}
	var signer *ca.Authority
	if auth, ok := r.Config().Authorities[c.Spec.CertificateAuthority]; ok {
		signer, _ = auth.Signed(leaf)
	}
	if signer == nil {
		if c.Spec.Chain != "" {
			return [][]byte{[]byte(c.Spec.Chain)}, nil
		}
		return [][]byte{leafPEM}, nil
	}
	var out [][]byte
	for _, chain := range signer.Chains() {
		b := append([]byte{}, leafPEM...)
		for _, cert := range chain {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})...)
		}
		out = append(out, b)
	}
	return out, nil
}

// RevocationReason is an RFC 5280 CRLReason code with its name.
type RevocationReason struct {
	Code int
	Name string
}

// RevocationReasons are the reasons accepted on revokeCert, on
// spec.revocationReason and in the dashboard (pinned: REV-04).
var RevocationReasons = []RevocationReason{{0, "unspecified"}, {1, "keyCompromise"}, {3, "affiliationChanged"},
	{4, "superseded"}, {5, "cessationOfOperation"}}

// checkReason refuses a reason not in RevocationReasons.
func checkReason(rc int) *acme.Problem {
	for _, r := range RevocationReasons {
		if r.Code == rc {
			return nil
		}
	}
	return acme.BadRevocationReasonProblem("reason %d is not accepted; use one of 0, 1, 3, 4, 5", rc)
}

// Revoker is who asks for a revocation: an account, or the holder of the certificate key.
type Revoker struct {
	Account *v1alpha1.AcmeAccount
	JWK     *jose.JSONWebKey
}

// Revoke revokes a certificate (RFC 8555 §7.6).
func (r *RA) Revoke(ctx context.Context, p *profile.Profile, who Revoker, der []byte, reason *int) error {
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return acme.MalformedProblem("certificate cannot be parsed")
	}
	rc := 0
	if reason != nil {
		rc = *reason
	}
	if pr := checkReason(rc); pr != nil {
		return pr
	}
	var c v1alpha1.AcmeCertificate
	if err := r.store.Get(ctx, storage.AllNamespaces, SerialName(leaf.SerialNumber), &c); err != nil {
		if storage.IsNotFound(err) {
			return acme.NotFoundProblem("certificate was not issued by this server")
		}
		return err
	}
	stored, err := LeafOf(&c)
	if err != nil {
		return err
	}
	if !bytes.Equal(stored.Raw, der) || c.Spec.Profile != p.Name {
		return acme.NotFoundProblem("certificate was not issued by this server")
	}
	if pr := r.mayRevoke(ctx, who, &c, leaf); pr != nil {
		return pr
	}
	by := "certificateKey"
	if who.Account != nil {
		by = who.Account.Name
	}
	revoked, err := r.markRevoked(ctx, c.Namespace, c.Name, func(*v1alpha1.AcmeCertificate) (int, error) { return rc, nil }, by)
	if err == nil && !revoked {
		return acme.AlreadyRevokedProblem("certificate is already revoked")
	}
	return err
}

// markRevoked records the revocation of certificate ns/name with the reason
// reason picks from the current object (an error, or -1 to leave it alone),
// then the metric and the audit record, once: it reports false when the
// certificate was already revoked or left alone.
func (r *RA) markRevoked(ctx context.Context, ns, name string, reason func(*v1alpha1.AcmeCertificate) (int, error), by string) (bool, error) {
	revoked, rc := false, 0
	err := retry(ctx, func() error {
		var cur v1alpha1.AcmeCertificate
		if err := r.get(ctx, ns, name, &cur, "certificate"); err != nil {
			return err
		}
		if cur.Spec.Revocation != nil {
			return nil
		}
		var err error
		if rc, err = reason(&cur); err != nil || rc < 0 {
			return err
		}
		cur.Spec.Revocation = &v1alpha1.Revocation{Reason: rc, RevokedAt: metav1.NewTime(r.nowUTC())}
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		cur.Labels[v1alpha1.LabelState] = stateRevoked
		if err := r.store.Update(ctx, &cur); err != nil {
			return err
		}
		revoked = true
		r.metrics.Revoked(cur.Spec.Profile, rc)
		return nil
	})
	if err != nil || !revoked {
		return false, err
	}
	r.audit.Record(ctx, audit.CertificateRevoked, slog.String("serial", name), slog.Int("reason", rc), slog.String("by", by))
	return true, nil
}

// RevokeRequested carries out an administrator's spec.revocationReason on
// the certificate ns/name: it records the revocation once (a certificate
// already revoked, or without the field, is left alone) and reports whether
// this call revoked it.
func (r *RA) RevokeRequested(ctx context.Context, ns, name string) (bool, error) {
	return r.markRevoked(ctx, ns, name, func(cur *v1alpha1.AcmeCertificate) (int, error) {
		if cur.Spec.RevocationReason == nil {
			return -1, nil
		}
		if pr := checkReason(*cur.Spec.RevocationReason); pr != nil {
			return 0, pr
		}
		return *cur.Spec.RevocationReason, nil
	}, "spec.revocationReason")
}

// RevokeAsAdmin revokes a certificate for an administrator (the dashboard):
// the same record, audit line, metric and CRL entry as an ACME revocation;
// by names the administrator. It reports whether this call revoked it.
func (r *RA) RevokeAsAdmin(ctx context.Context, ns, name string, reason int, by string) (bool, error) {
	if pr := checkReason(reason); pr != nil {
		return false, pr
	}
	return r.markRevoked(ctx, ns, name, func(*v1alpha1.AcmeCertificate) (int, error) { return reason, nil }, by)
}

// mayRevoke: the issuing account, an account with valid authorizations for
// every identifier, or the certificate key holder (RFC 8555 §7.6).
func (r *RA) mayRevoke(ctx context.Context, who Revoker, c *v1alpha1.AcmeCertificate, leaf *x509.Certificate) *acme.Problem {
	if who.JWK != nil {
		type equaler interface{ Equal(crypto.PublicKey) bool }
		if eq, ok := leaf.PublicKey.(equaler); ok && eq.Equal(who.JWK.Key) {
			return nil
		}
		return acme.UnauthorizedProblem("the request is not signed by the certificate's key")
	}
	if who.Account == nil {
		return acme.UnauthorizedProblem("no requester")
	}
	if c.Spec.Account == who.Account.Name {
		return nil
	}
	// A wildcard SAN needs a wildcard authorization: one for the base name
	// proves control of that name only (RFC 8555 §7.1.4 keeps them apart).
	need := map[string]bool{}
	for _, n := range leaf.DNSNames {
		need["dns:"+strings.ToLower(n)] = true
	}
	for _, ip := range leaf.IPAddresses {
		need["ip:"+ip.String()] = true
	}
	// Summaries: an account with many authorizations costs no decoding.
	azs, err := storage.ListSummaries(ctx, r.store, who.Account.Namespace, "AcmeChallenge",
		map[string]string{v1alpha1.LabelAccount: who.Account.Name})
	if err != nil {
		return acme.InternalProblem(err, "could not check authorizations")
	}
	now := r.now()
	for _, az := range azs {
		if az.Status == acme.StatusValid && !now.After(az.At) { // valid and not expired (as r.expire)
			delete(need, az.Text)
		}
	}
	if len(need) == 0 {
		return nil
	}
	return acme.UnauthorizedProblem("the account is not authorized to revoke this certificate")
}

// CRL returns the current CRL of a CA (RFC 5280): with keyID "" or the CA's
// current subject key ID, signed by its current key; with the key ID of the
// key it had before its last rotation, by that key, for the leaves that key
// signed. The endpoint is public and unauthenticated, so a fetch decides from
// the store's summaries whether the set of revoked certificates changed (a
// revocation is final, so the set says it all): while it has not and the CRL
// is younger than CRLReuse, the signed CRL is served again. A flood of
// fetches costs a summary list each; reading the revoked certificates and
// signing happen once per change or CRLReuse.
func (r *RA) CRL(ctx context.Context, caName, keyID string) ([]byte, error) {
	current, auth, err := r.caKey(caName, keyID)
	if err != nil {
		return nil, err
	}
	revoked := map[string]string{v1alpha1.LabelState: stateRevoked}
	sums, err := storage.ListSummaries(ctx, r.store, storage.AllNamespaces, "AcmeCertificate", revoked)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(sums))
	for i := range sums {
		names[i] = sums[i].Namespace + "/" + sums[i].Name
	}
	slices.Sort(names)
	h := sha256.New()
	h.Write(auth.Cert.Raw)
	_, _ = fmt.Fprintf(h, "%d\n", auth.CRLValidity) // a hash.Hash never fails to write
	for _, n := range names {
		_, _ = fmt.Fprintf(h, "%s\n", n)
	}
	var fp [32]byte
	copy(fp[:], h.Sum(nil))
	return r.crls.get(auth, fp, r.now(), func() ([]byte, error) {
		var list v1alpha1.AcmeCertificateList
		if err := r.store.List(ctx, storage.AllNamespaces, &list, storage.ListOptions{Labels: revoked, Shared: true}); err != nil {
			return nil, err
		}
		var entries []ca.RevokedEntry
		for i := range list.Items {
			c := &list.Items[i]
			if c.Spec.CertificateAuthority != caName || c.Spec.Revocation == nil {
				continue
			}
			if current.Previous != nil && !signedBy(c, auth) {
				continue // another key's CRL lists it
			}
			serial, ok := new(big.Int).SetString(c.Spec.Serial, 16)
			if !ok {
				continue
			}
			entries = append(entries, ca.RevokedEntry{Serial: serial, RevokedAt: c.Spec.Revocation.RevokedAt.Time, Reason: c.Spec.Revocation.Reason})
		}
		return auth.CRL(entries)
	})
}

// CRLReuse is how long a signed CRL is served again while what it lists is
// unchanged (its nextUpdate is a day or more away).
const CRLReuse = time.Minute

// crlCache keeps the last CRL signed per CA key with a fingerprint of the
// revoked set it was signed from.
type crlCache struct {
	mu sync.Mutex
	m  map[string]signedCRL
}

type signedCRL struct {
	fingerprint [32]byte
	der         []byte
	at          time.Time
}

// get returns the CRL of auth signed from the revoked set fp, signing it
// again (sign) when the set changed or the last one is CRLReuse old.
func (c *crlCache) get(auth *ca.Authority, fp [32]byte, now time.Time, sign func() ([]byte, error)) ([]byte, error) {
	key := string(auth.Cert.SubjectKeyId)
	c.mu.Lock()
	defer c.mu.Unlock()
	if got, ok := c.m[key]; ok && got.fingerprint == fp && now.Sub(got.at) < CRLReuse && !now.Before(got.at) {
		return got.der, nil
	}
	der, err := sign()
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]signedCRL{}
	}
	c.m[key] = signedCRL{fingerprint: fp, der: der, at: now}
	return der, nil
}

// CACertificate is the DER certificate of a CA (with keyID, of the key it
// had before its last rotation), what issued certificates' caIssuers URL
// points to.
func (r *RA) CACertificate(caName, keyID string) ([]byte, error) {
	_, auth, err := r.caKey(caName, keyID)
	if err != nil {
		return nil, err
	}
	return auth.Cert.Raw, nil
}

// caKey finds a served CA and, by hex subject key ID ("": the current one),
// one of its keys.
func (r *RA) caKey(caName, keyID string) (current, key *ca.Authority, err error) {
	current, ok := r.Config().Authorities[caName]
	if !ok {
		return nil, nil, acme.NotFoundProblem("no such CA")
	}
	key, ok = current.ForKey(keyID)
	if !ok {
		return nil, nil, acme.NotFoundProblem("CA %s has no key %q", caName, acme.Clip(keyID))
	}
	return current, key, nil
}

// signedBy reports whether c's leaf names auth's key as its issuer's.
func signedBy(c *v1alpha1.AcmeCertificate, auth *ca.Authority) bool {
	leaf, err := LeafOf(c)
	return err == nil && bytes.Equal(leaf.AuthorityKeyId, auth.Cert.SubjectKeyId)
}

// RenewalWindow is an ARI suggested window.
type RenewalWindow struct{ Start, End time.Time }

// RenewalInfo answers RFC 9773 §4 for a certID.
func (r *RA) RenewalInfo(ctx context.Context, certID string) (RenewalWindow, error) {
	c, leaf, pr := r.certByCertID(ctx, certID)
	if pr != nil {
		return RenewalWindow{}, pr
	}
	if c.Spec.Revocation != nil {
		now := r.nowUTC()
		return RenewalWindow{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)}, nil // renew now (ARI-06)
	}
	nb, na := c.Spec.NotBefore.Time, c.Spec.NotAfter.Time
	life := na.Sub(nb)
	w := RenewalWindow{Start: nb.Add(life * 2 / 3), End: nb.Add(life * 5 / 6)}
	if auth, ok := r.Config().Authorities[c.Spec.CertificateAuthority]; ok && auth.Previous != nil && !bytes.Equal(leaf.AuthorityKeyId, auth.Cert.SubjectKeyId) {
		// Issued under the key the CA had before its last rotation: renew
		// within a day, so that leaves move to the new key (and chain).
		now := r.nowUTC()
		w.Start = minTime(w.Start, now)
		w.End = minTime(w.End, now.Add(24*time.Hour))
		if !w.End.After(w.Start) {
			w.End = w.Start.Add(time.Hour)
		}
	}
	return w, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// certByCertID parses "base64url(AKI).base64url(serial)" (RFC 9773 §4.1)
// and returns the certificate and its parsed leaf.
func (r *RA) certByCertID(ctx context.Context, certID string) (*v1alpha1.AcmeCertificate, *x509.Certificate, *acme.Problem) {
	akiPart, serialPart, ok := strings.Cut(certID, ".")
	if !ok || akiPart == "" || serialPart == "" || strings.Contains(serialPart, ".") {
		return nil, nil, acme.MalformedProblem("certID must be base64url(keyIdentifier).base64url(serial)")
	}
	aki, err1 := b64url.Strict().DecodeString(akiPart)
	serial, err2 := b64url.Strict().DecodeString(serialPart)
	if err1 != nil || err2 != nil || len(serial) == 0 || len(serial) > 21 {
		return nil, nil, acme.MalformedProblem("certID is not valid base64url")
	}
	var c v1alpha1.AcmeCertificate
	if err := r.store.Get(ctx, storage.AllNamespaces, SerialName(new(big.Int).SetBytes(serial)), &c); err != nil {
		if storage.IsNotFound(err) {
			return nil, nil, acme.NotFoundProblem("no certificate with this certID")
		}
		return nil, nil, acme.InternalProblem(err, "could not look up the certificate")
	}
	leaf, err := LeafOf(&c)
	if err != nil || !bytes.Equal(leaf.AuthorityKeyId, aki) {
		return nil, nil, acme.NotFoundProblem("no certificate with this certID")
	}
	return &c, leaf, nil
}

// CertID computes the RFC 9773 §4.1 identifier of a certificate.
func CertID(leaf *x509.Certificate) string {
	serial := leaf.SerialNumber.Bytes()
	if len(serial) == 0 || serial[0]&0x80 != 0 {
		serial = append([]byte{0}, serial...) // DER content octets keep the sign byte
	}
	return b64url.EncodeToString(leaf.AuthorityKeyId) + "." + b64url.EncodeToString(serial)
}

// checkReplaces applies RFC 9773 §5 to a newOrder "replaces" field and
// returns the replaced certificate's serial.
func (r *RA) checkReplaces(ctx context.Context, a *v1alpha1.AcmeAccount, certID string, ids []acme.Identifier) (string, *acme.Problem) {
	c, _, pr := r.certByCertID(ctx, certID)
	if pr != nil {
		if pr.Status == 404 {
			return "", acme.MalformedProblem("replaces names an unknown certificate")
		}
		return "", pr
	}
	if c.Spec.Account != a.Name {
		return "", acme.UnauthorizedProblem("replaces names a certificate of another account")
	}
	leaf, err := LeafOf(c)
	if err != nil {
		return "", acme.InternalProblem(err, "could not read the replaced certificate")
	}
	have := map[string]bool{}
	for _, n := range leaf.DNSNames {
		have["dns:"+n] = true
	}
	for _, ip := range leaf.IPAddresses {
		have["ip:"+ip.String()] = true
	}
	shared := false
	for _, id := range ids {
		shared = shared || have[id.Type+":"+id.Value]
	}
	if !shared {
		return "", acme.MalformedProblem("the order shares no identifier with the certificate it replaces")
	}
	var orders v1alpha1.AcmeOrderList
	if err := r.store.List(ctx, c.Namespace, &orders, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelReplaces: c.Name}}); err != nil {
		return "", acme.InternalProblem(err, "could not check replacements")
	}
	for i := range orders.Items {
		o := &orders.Items[i]
		azs, err := r.authorizations(ctx, o)
		if err != nil {
			return "", acme.InternalProblem(err, "could not check replacements")
		}
		r.refresh(o, azs)
		if o.Status.Status != acme.StatusInvalid {
			return "", acme.AlreadyReplacedProblem("certificate %s is already being replaced by order %s", certID, o.Name)
		}
	}
	return c.Name, nil
}
