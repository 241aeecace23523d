package ra

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Finalize checks the CSR and issues (RFC 8555 §7.4). Signing takes
// milliseconds, so it happens within the request: the certificate is stored
// (one write), then the order is marked valid (one write); no "processing"
// state is stored. The serial is derived from the order ID (ca.SerialFor), so
// a retried, concurrent or post-crash finalize of the same order finds the
// certificate already stored under that name (or under the name the CA's
// previous key gave it) instead of issuing a second one.
func (r *RA) Finalize(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, orderID string, csrDER []byte) (*v1alpha1.AcmeOrder, error) {
	key, err := AccountKey(a)
	if err != nil {
		return nil, err
	}
	unlock := r.keyLocks.Lock("order/" + a.Namespace + "/" + orderID)
	defer unlock()
	o, err := r.readyOrder(ctx, a, orderID)
	if err != nil {
		return nil, err
	}
	ip, ok := p.Issuance[o.Spec.IssuanceProfile]
	if !ok {
		return nil, acme.InvalidProfileProblem("profile %q is no longer issued", o.Spec.IssuanceProfile)
	}
	csr, pr := ParseCSR(csrDER, p, o, key.Key)
	if pr != nil {
		return nil, pr
	}
	nb, na := r.validity(o, ip)
	r.audit.Record(ctx, audit.IssuanceIntent, slog.String("account", o.Spec.Account), slog.String("order", o.Name),
		slog.String("ca", p.CA.Name), slog.Any("dnsNames", csr.DNSNames), slog.Any("ips", csr.IPs),
		slog.Time("notBefore", nb), slog.Time("notAfter", na))
	cert, fresh, err := r.sign(ctx, p, o, csr, nb, na, ip.ClientAuth)
	if storage.IsUnavailable(err) {
		// Not the order's fault: it stays ready, and the client's retry
		// issues (under the same serial, so at most one certificate).
		return nil, err
	}
	if err != nil {
		r.log.Error("issuance failed", "order", o.Name, "err", err)
		r.audit.Record(ctx, audit.IssuanceFailed, slog.String("order", o.Name), slog.String("error", err.Error()))
		prob := &v1alpha1.Problem{Type: string(acme.ServerInternal), Status: 500, Detail: "the certificate could not be issued"}
		r.failOrder(ctx, o.Namespace, o.Name, prob)
		o.Status.Status, o.Status.Error = acme.StatusInvalid, prob
		return o, nil
	}
	if cert == nil {
		// Another replica stored this order's certificate and this one's
		// cache has not seen it yet: the client polls the order.
		o.Status.Status = acme.StatusProcessing
		return o, nil
	}
	if fresh {
		r.audit.Record(ctx, audit.CertificateIssued, slog.String("account", o.Spec.Account), slog.String("order", o.Name),
			slog.String("serial", cert.Spec.Serial), slog.String("ca", p.CA.Name),
			slog.Time("notBefore", cert.Spec.NotBefore.Time), slog.Time("notAfter", cert.Spec.NotAfter.Time))
		r.metrics.Issued(p.Name, o.Spec.IssuanceProfile)
		r.metrics.IssuedAfter(p.Name, r.now().Sub(o.CreationTimestamp.Time))
	}
	if err := r.markValid(ctx, o, cert.Name); err != nil {
		return nil, err
	}
	return o, nil
}

// readyOrder reads the order and refuses it unless it is ready.
func (r *RA) readyOrder(ctx context.Context, a *v1alpha1.AcmeAccount, orderID string) (*v1alpha1.AcmeOrder, error) {
	o, err := r.Order(ctx, a, orderID)
	if err != nil {
		return nil, err
	}
	if o.Status.Status == acme.StatusPending {
		// Another replica may have validated the last authorization a moment
		// ago: look at the source of truth before refusing.
		if o, err = r.Order(storage.Consistent(ctx), a, orderID); err != nil {
			return nil, err
		}
	}
	if o.Status.Status != acme.StatusReady {
		return nil, acme.OrderNotReadyProblem("order is %s, not ready", o.Status.Status)
	}
	return o, nil
}

// validity is the certificate's validity: the order's notBefore/notAfter,
// else from a minute ago for the issuance profile's default lifetime.
func (r *RA) validity(o *v1alpha1.AcmeOrder, ip v1alpha1.IssuanceProfile) (nb, na time.Time) {
	def, _ := profile.Lifetime(ip)
	nb = r.now().UTC().Add(-time.Minute) // tolerate clock skew of relying parties
	if o.Spec.NotBefore != nil {
		nb = o.Spec.NotBefore.Time
	}
	na = nb.Add(def)
	if o.Spec.NotAfter != nil {
		na = o.Spec.NotAfter.Time
	}
	return nb, na
}

// markValid records the issued certificate on the order (stored and o).
func (r *RA) markValid(ctx context.Context, o *v1alpha1.AcmeOrder, certName string) error {
	err := retry(ctx, func() error {
		var cur v1alpha1.AcmeOrder
		if err := r.get(ctx, o.Namespace, o.Name, &cur, "order"); err != nil {
			return err
		}
		if cur.Status.Status == acme.StatusValid {
			return nil
		}
		cur.Status.Status, cur.Status.Certificate, cur.Status.Error = acme.StatusValid, certName, nil
		// A ready order's authorizations are all stored (valid): nothing is
		// derived from the offer any more, and a smaller write costs the API
		// server and every watcher less.
		cur.Status.Offered = nil
		return r.store.Update(ctx, &cur)
	})
	if err != nil {
		return fmt.Errorf("record issued certificate on order %s: %w", o.Name, err)
	}
	o.Status.Status, o.Status.Certificate = acme.StatusValid, certName
	return nil
}

// sign issues the order's certificate and stores it. fresh is false when an
// earlier attempt had stored it already; cert is nil when that one is not
// visible yet.
func (r *RA) sign(ctx context.Context, p *profile.Profile, o *v1alpha1.AcmeOrder, csr *CheckedCSR, nb, na time.Time, clientAuth bool) (cert *v1alpha1.AcmeCertificate, fresh bool, err error) {
	serialNum, err := p.CA.SerialFor(o.Name)
	if err != nil {
		return nil, false, err
	}
	serial := SerialName(serialNum)
	// An earlier attempt's certificate: under this serial, or, if the CA key
	// was rotated since, under the serial the previous key gave the order.
	// (Gets by name: a label List would scan the kube store's overlay of
	// recent writes on every finalize.)
	for c := p.CA; c != nil; c = c.Previous {
		n, err := c.SerialFor(o.Name)
		if err != nil {
			return nil, false, err
		}
		var existing v1alpha1.AcmeCertificate
		if err := r.store.Get(ctx, o.Namespace, SerialName(n), &existing); err == nil {
			return &existing, false, nil
		} else if !storage.IsNotFound(err) {
			return nil, false, err
		}
	}
	der, leaf, err := p.CA.Issue(ca.IssueRequest{PublicKey: csr.PublicKey, DNSNames: csr.DNSNames, IPs: csr.IPs,
		NotBefore: nb, NotAfter: na, ClientAuth: clientAuth, Serial: serialNum, OCSP: p.Spec.IncludeOCSPURL})
	if err != nil {
		return nil, false, err
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert = &v1alpha1.AcmeCertificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: serial, Labels: map[string]string{
			v1alpha1.LabelAccount: o.Spec.Account, v1alpha1.LabelOrder: o.Name, v1alpha1.LabelProfile: p.Name}},
		Spec: v1alpha1.AcmeCertificateSpec{Account: o.Spec.Account, Order: o.Name, Profile: p.Name,
			IssuanceProfile: o.Spec.IssuanceProfile, CertificateAuthority: p.CA.Name, Serial: serial, Names: certNames(leaf), Certificate: string(leafPEM),
			NotBefore: metav1.NewTime(leaf.NotBefore), NotAfter: metav1.NewTime(leaf.NotAfter)},
	}
	if err := r.store.Create(ctx, cert); err != nil {
		if storage.IsAlreadyExists(err) {
			return nil, false, nil // a concurrent attempt elsewhere won; its certificate is the order's
		}
		return nil, false, fmt.Errorf("store certificate %s: %w", serial, err)
	}
	return cert, true, nil
}

// certNames lists a certificate's DNS names, then its IP addresses.
func certNames(leaf *x509.Certificate) []string {
	names := append([]string{}, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

// SerialName is the name of an AcmeCertificate: its serial in lowercase hex.
func SerialName(serial *big.Int) string { return fmt.Sprintf("%x", serial) }
