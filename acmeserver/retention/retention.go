// Package retention deletes what a profile's retention no longer keeps:
// expired orders with their authorizations, and expired certificates. The
// standalone server (ra.StartRetention) and the leader-elected controller
// (controllers/retention) both sweep with it.
package retention

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/profile"
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
// orders and certificates it deleted, and (with aud) writes one audit record
// per sweep that deleted something: the counts and the cutoffs, not a record
// per object (a sweep of a busy profile deletes thousands; each object's own
// life is already in the audit trail).
func Sweep(ctx context.Context, store storage.Store, profileName string, ret profile.Retention, now time.Time, aud *audit.Logger) (orders, certs int, err error) {
	defer func() {
		if orders+certs > 0 && aud != nil {
			aud.Record(ctx, audit.RetentionSwept, slog.String("profile", profileName), slog.Int("orders", orders), slog.Int("certificates", certs),
				slog.Time("ordersExpiredBefore", now.Add(-ret.Orders)), slog.Time("certificatesExpiredBefore", now.Add(-ret.Certificates)))
		}
	}()
	byProfile := storage.ListOptions{Labels: map[string]string{v1alpha1.LabelProfile: profileName}}
	cutoff := now.Add(-ret.Orders)
	var ol v1alpha1.AcmeOrderList
	if err := store.List(ctx, storage.AllNamespaces, &ol, byProfile); err != nil {
		return 0, 0, fmt.Errorf("retention: list orders of profile %s: %w", profileName, err)
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
		return orders, 0, fmt.Errorf("retention: list certificates of profile %s: %w", profileName, err)
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
