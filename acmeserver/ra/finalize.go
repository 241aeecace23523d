package ra

import (
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Finalize checks the CSR, moves the order to processing and issues in the
// background, waiting up to SyncWait so most clients get a valid order back
// (RFC 8555 §7.4).
func (r *RA) Finalize(ctx context.Context, p *Profile, a *v1alpha1.AcmeAccount, orderID string, csrDER []byte) (*v1alpha1.AcmeOrder, error) {
	key, err := AccountKey(a)
	if err != nil {
		return nil, err
	}
	var o *v1alpha1.AcmeOrder
	var csr *CheckedCSR
	err = retry(ctx, func() error {
		var err error
		o, err = r.Order(ctx, a, orderID)
		if err != nil {
			return err
		}
		if o.Status.Status != acme.StatusReady {
			return acme.OrderNotReadyProblem("order is %s, not ready", o.Status.Status)
		}
		if _, ok := p.Issuance[o.Spec.IssuanceProfile]; !ok {
			return acme.InvalidProfileProblem("profile %q is no longer issued", o.Spec.IssuanceProfile)
		}
		var pr *acme.Problem
		csr, pr = ParseCSR(csrDER, p, o, key.Key)
		if pr != nil {
			return pr
		}
		o.Status.Status = acme.StatusProcessing
		o.Labels[v1alpha1.LabelState] = stateProcessing
		return r.store.Update(ctx, o)
	})
	if err != nil {
		return nil, err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.issue(context.WithoutCancel(ctx), p, o, csr)
	}()
	r.wait(ctx, o.Name, r.syncWait, func() bool {
		cur, err := r.Order(ctx, a, orderID)
		return err != nil || cur.Status.Status != acme.StatusProcessing
	})
	return r.Order(ctx, a, orderID)
}

// issue signs and stores the certificate, then marks the order valid; on
// failure the order becomes invalid with the error (RFC 8555 §7.1.6).
func (r *RA) issue(ctx context.Context, p *Profile, o *v1alpha1.AcmeOrder, csr *CheckedCSR) {
	defer r.notify(o.Name)
	ip := p.Issuance[o.Spec.IssuanceProfile]
	def, _ := Lifetime(ip)
	now := r.now().UTC()
	nb := now.Add(-time.Minute) // tolerate clock skew of relying parties
	if o.Spec.NotBefore != nil {
		nb = o.Spec.NotBefore.Time
	}
	na := nb.Add(def)
	if o.Spec.NotAfter != nil {
		na = o.Spec.NotAfter.Time
	}
	r.audit.Record(ctx, audit.IssuanceIntent, slog.String("account", o.Spec.Account), slog.String("order", o.Name),
		slog.String("ca", p.CA.Name), slog.Any("dnsNames", csr.DNSNames), slog.Any("ips", csr.IPs),
		slog.Time("notBefore", nb), slog.Time("notAfter", na))
	cert, err := r.sign(ctx, p, o, csr, nb, na, ip.ClientAuth)
	if err != nil {
		r.log.Error("issuance failed", "order", o.Name, "err", err)
		r.audit.Record(ctx, audit.IssuanceFailed, slog.String("order", o.Name), slog.String("error", err.Error()))
		r.setOrderResult(ctx, o.Name, "", &v1alpha1.Problem{Type: string(acme.ServerInternal), Status: 500,
			Detail: "the certificate could not be issued"})
		return
	}
	r.audit.Record(ctx, audit.CertificateIssued, slog.String("account", o.Spec.Account), slog.String("order", o.Name),
		slog.String("serial", cert.Spec.Serial), slog.String("ca", p.CA.Name),
		slog.Time("notBefore", cert.Spec.NotBefore.Time), slog.Time("notAfter", cert.Spec.NotAfter.Time))
	r.metrics.Issued(p.Name, o.Spec.IssuanceProfile)
	r.setOrderResult(ctx, o.Name, cert.Name, nil)
}

func (r *RA) sign(ctx context.Context, p *Profile, o *v1alpha1.AcmeOrder, csr *CheckedCSR, nb, na time.Time, clientAuth bool) (*v1alpha1.AcmeCertificate, error) {
	der, leaf, err := p.CA.Issue(ca.IssueRequest{PublicKey: csr.PublicKey, DNSNames: csr.DNSNames, IPs: csr.IPs,
		NotBefore: nb, NotAfter: na, ClientAuth: clientAuth})
	if err != nil {
		return nil, err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for _, c := range p.CA.Chains()[0] {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	serial := SerialName(leaf.SerialNumber)
	cert := &v1alpha1.AcmeCertificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: serial, Labels: map[string]string{
			v1alpha1.LabelAccount: o.Spec.Account, v1alpha1.LabelOrder: o.Name, v1alpha1.LabelProfile: p.Name}},
		Spec: v1alpha1.AcmeCertificateSpec{Account: o.Spec.Account, Order: o.Name, Profile: p.Name,
			IssuanceProfile: o.Spec.IssuanceProfile, CertificateAuthority: p.CA.Name, Serial: serial, Chain: string(chain),
			NotBefore: metav1.NewTime(leaf.NotBefore), NotAfter: metav1.NewTime(leaf.NotAfter)},
	}
	if err := r.store.Create(ctx, cert); err != nil {
		return nil, fmt.Errorf("store certificate %s: %w", serial, err)
	}
	return cert, nil
}

func (r *RA) setOrderResult(ctx context.Context, orderID, certName string, prob *v1alpha1.Problem) {
	err := retry(ctx, func() error {
		var o v1alpha1.AcmeOrder
		if err := r.get(ctx, orderID, &o, "order"); err != nil {
			return err
		}
		if o.Status.Status != acme.StatusProcessing {
			return nil
		}
		delete(o.Labels, v1alpha1.LabelState)
		if prob != nil {
			o.Status.Status, o.Status.Error = acme.StatusInvalid, prob
		} else {
			o.Status.Status, o.Status.Certificate = acme.StatusValid, certName
		}
		return r.store.Update(ctx, &o)
	})
	if err != nil {
		r.log.Error("record issuance result", "order", orderID, "err", err)
	}
}

// SerialName is the name of an AcmeCertificate: its serial in lowercase hex.
func SerialName(serial *big.Int) string { return fmt.Sprintf("%x", serial) }

// ResumeIssuance settles orders a previous run left "processing": valid when
// their certificate was stored, invalid otherwise (the CSR is not kept).
func (r *RA) ResumeIssuance(ctx context.Context) (int, error) {
	var list v1alpha1.AcmeOrderList
	if err := r.store.List(ctx, r.ns, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelState: stateProcessing}}); err != nil {
		return 0, err
	}
	for _, o := range list.Items {
		var certs v1alpha1.AcmeCertificateList
		if err := r.store.List(ctx, r.ns, &certs, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelOrder: o.Name}}); err != nil {
			return 0, err
		}
		if len(certs.Items) > 0 {
			r.setOrderResult(ctx, o.Name, certs.Items[0].Name, nil)
		} else {
			r.setOrderResult(ctx, o.Name, "", &v1alpha1.Problem{Type: string(acme.ServerInternal), Status: 500,
				Detail: "issuance was interrupted by a server restart; place a new order"})
		}
	}
	return len(list.Items), nil
}
