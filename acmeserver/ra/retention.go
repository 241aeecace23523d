package ra

import (
	"context"
	"fmt"
	"time"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// SweepInterval is how often standalone mode and the controller apply retention.
const SweepInterval = 10 * time.Minute

// Sweep applies a profile's retention in every namespace. It deletes the
// orders that expired more than ret.Orders before now, with their
// authorizations (AcmeChallenges): an order goes only once it and each of its
// authorizations expired before the cutoff, authorizations first, so a
// failure leaves the order to retry the next time. It deletes the
// certificates that expired more than ret.Certificates before now (revoked
// or not: RFC 5280 §3.3 lets a CRL drop an entry once the certificate has
// expired). Accounts, deactivated or not, are kept. It returns how many
// orders and certificates it deleted.
func Sweep(ctx context.Context, store storage.Store, profile string, ret Retention, now time.Time) (orders, certs int, err error) {
	byProfile := storage.ListOptions{Labels: map[string]string{v1alpha1.LabelProfile: profile}}
	cutoff := now.Add(-ret.Orders)
	var ol v1alpha1.AcmeOrderList
	if err := store.List(ctx, storage.AllNamespaces, &ol, byProfile); err != nil {
		return 0, 0, fmt.Errorf("retention: list orders of profile %s: %w", profile, err)
	}
	for i := range ol.Items {
		o := &ol.Items[i]
		if !o.Status.Expires.Time.Before(cutoff) {
			continue
		}
		var azs v1alpha1.AcmeChallengeList
		if err := store.List(ctx, o.Namespace, &azs, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelOrder: o.Name}}); err != nil {
			return orders, 0, fmt.Errorf("retention: list authorizations of order %s/%s: %w", o.Namespace, o.Name, err)
		}
		keep := false
		for j := range azs.Items {
			keep = keep || !azs.Items[j].Status.Expires.Time.Before(cutoff)
		}
		if keep {
			continue
		}
		for j := range azs.Items {
			if err := store.Delete(ctx, &azs.Items[j]); err != nil && !storage.IsNotFound(err) {
				return orders, 0, fmt.Errorf("retention: delete authorization %s/%s: %w", o.Namespace, azs.Items[j].Name, err)
			}
		}
		if err := store.Delete(ctx, o); err != nil && !storage.IsNotFound(err) {
			return orders, 0, fmt.Errorf("retention: delete order %s/%s: %w", o.Namespace, o.Name, err)
		}
		orders++
	}
	certCutoff := now.Add(-ret.Certificates)
	var cl v1alpha1.AcmeCertificateList
	if err := store.List(ctx, storage.AllNamespaces, &cl, byProfile); err != nil {
		return orders, 0, fmt.Errorf("retention: list certificates of profile %s: %w", profile, err)
	}
	for i := range cl.Items {
		c := &cl.Items[i]
		if !c.Spec.NotAfter.Time.Before(certCutoff) {
			continue
		}
		if err := store.Delete(ctx, c); err != nil && !storage.IsNotFound(err) {
			return orders, certs, fmt.Errorf("retention: delete certificate %s/%s: %w", c.Namespace, c.Name, err)
		}
		certs++
	}
	return orders, certs, nil
}

// SweepAll applies every served profile's retention; it returns how many
// orders and certificates it deleted.
func (r *RA) SweepAll(ctx context.Context) (int, error) {
	n := 0
	for _, p := range r.Config().Profiles {
		d, c, err := Sweep(ctx, r.store, p.Name, p.Retention, r.now())
		n += d + c
		if d+c > 0 {
			r.log.Info("retention: deleted expired objects", "profile", p.Name, "orders", d, "certificates", c,
				"retention", p.Retention.Orders.String(), "certificateRetention", p.Retention.Certificates.String())
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// StartRetention sweeps now and every interval until Close (standalone mode;
// in a cluster the leader-elected controller sweeps).
func (r *RA) StartRetention(interval time.Duration) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if _, err := r.SweepAll(r.baseCtx); err != nil && r.baseCtx.Err() == nil {
				r.log.Error("retention sweep", "err", err)
			}
			select {
			case <-r.baseCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
