package ra

import (
	"bytes"
	"context"
	"math/big"
	"time"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Authorities are the CAs of the current configuration.
func (r *RA) Authorities() map[string]*ca.Authority { return r.Config().Authorities }

// CertStatus is what an OCSP response says of a serial: unknown (not
// Known), good, or revoked at RevokedAt with Reason.
type CertStatus struct {
	Known, Revoked bool
	RevokedAt      time.Time
	Reason         int
}

// CertificateStatus is the status of the leaf with serial among those key
// (caName's authority or one of its Previous) signed. A serial this server
// never issued, one it deleted after certificateRetention, and one another
// CA or another key of the same CA signed are unknown (RFC 6960 §2.2). It
// reads the store's cached copy without the PEM; only a CA that rotated its
// key needs to tell its keys apart, by the serial each derives from the
// order (ca.Authority.SerialFor), or, for a certificate without an order,
// from the leaf itself.
func (r *RA) CertificateStatus(ctx context.Context, caName string, key *ca.Authority, serial *big.Int) (CertStatus, error) {
	if serial == nil || serial.Sign() <= 0 {
		return CertStatus{}, nil
	}
	// ExpectMiss: a serial nobody issued (anyone may ask for any) is not
	// looked up at the API server, only in the cache; a certificate another
	// replica issued a moment ago is unknown here until the watch delivers it.
	var c v1alpha1.AcmeCertificate
	if err := r.store.Get(storage.ExpectMiss(storage.WithoutPEM(ctx)), storage.AllNamespaces, SerialName(serial), &c); err != nil {
		if storage.IsNotFound(err) {
			return CertStatus{}, nil
		}
		return CertStatus{}, err
	}
	if c.Spec.CertificateAuthority != caName {
		return CertStatus{}, nil
	}
	if signed, err := r.signedBy(ctx, &c, caName, key, serial); err != nil || !signed {
		return CertStatus{}, err
	}
	st := CertStatus{Known: true}
	if rv := c.Spec.Revocation; rv != nil {
		st.Revoked, st.RevokedAt, st.Reason = true, rv.RevokedAt.Time, rv.Reason
	}
	return st, nil
}

// signedBy reports whether key signed certificate c of CA caName.
func (r *RA) signedBy(ctx context.Context, c *v1alpha1.AcmeCertificate, caName string, key *ca.Authority, serial *big.Int) (bool, error) {
	auth, ok := r.Config().Authorities[caName]
	if !ok {
		return false, nil
	}
	if auth.Previous == nil {
		return true, nil // the request named one of caName's keys, and it has one
	}
	if c.Spec.Order != "" {
		n, err := key.SerialFor(c.Spec.Order)
		if err != nil {
			return false, err
		}
		return n.Cmp(serial) == 0, nil
	}
	var full v1alpha1.AcmeCertificate
	if err := r.store.Get(ctx, c.Namespace, c.Name, &full); err != nil {
		return false, err
	}
	leaf, err := LeafOf(&full)
	if err != nil {
		return false, nil
	}
	signer, ok := auth.Signed(leaf)
	return ok && bytes.Equal(signer.Cert.RawSubjectPublicKeyInfo, key.Cert.RawSubjectPublicKeyInfo), nil
}
