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
// failure leaves the order to retry the next time; pre-authorizations
// (newAuthz, no order) go once they expired before that cutoff too. It deletes the
// certificates that expired more than ret.Certificates before now (revoked
// or not: RFC 5280 §3.3 lets a CRL drop an entry once the certificate has
// expired). Accounts, deactivated or not, are kept. It returns how many
// orders and certificates it deleted, and (with aud) writes one audit record
// per sweep that deleted something: the counts and the cutoffs, not a record
// per object (a sweep of a busy profile deletes thousands; each object's own
// life is already in the audit trail).
func Sweep(ctx context.Context, store storage.Store, profileName string, ret profile.Retention, now time.Time, aud *audit.Logger) (orders, certs int, err error) {
	preAuthz := 0
	defer func() {
		if orders+certs+preAuthz > 0 && aud != nil {
			aud.Record(ctx, audit.RetentionSwept, slog.String("profile", profileName), slog.Int("orders", orders), slog.Int("certificates", certs),
				slog.Int("preAuthorizations", preAuthz),
				slog.Time("ordersExpiredBefore", now.Add(-ret.Orders)), slog.Time("certificatesExpiredBefore", now.Add(-ret.Certificates)))
		}
	}()
	// Summaries of what ended before a cutoff: a sweep decides from memory
	// (standalone) or has the API server select by the expiry label
	// (cluster), and reads whole only what it deletes.
	byProfile := map[string]string{v1alpha1.LabelProfile: profileName}
	cutoff := now.Add(-ret.Orders)
	ol, err := storage.ListExpired(ctx, store, storage.AllNamespaces, "AcmeOrder", byProfile, cutoff)
	if err != nil {
		return 0, 0, fmt.Errorf("retention: list orders of profile %s: %w", profileName, err)
	}
	for _, o := range ol {
		if !o.At.Before(cutoff) {
			continue
		}
		azs, err := storage.ListSummaries(ctx, store, o.Namespace, "AcmeChallenge", map[string]string{v1alpha1.LabelOrder: o.Name})
		if err != nil {
			return orders, 0, fmt.Errorf("retention: list authorizations of order %s/%s: %w", o.Namespace, o.Name, err)
		}
		keep := false
		for _, az := range azs {
			keep = keep || !az.At.Before(cutoff)
		}
		if keep {
			continue
		}
		for _, az := range azs {
			if _, err := deleteIf(ctx, store, &v1alpha1.AcmeChallenge{}, az.Namespace, az.Name, cutoff); err != nil {
				return orders, 0, fmt.Errorf("retention: delete authorization %s/%s: %w", az.Namespace, az.Name, err)
			}
		}
		deleted, err := deleteIf(ctx, store, &v1alpha1.AcmeOrder{}, o.Namespace, o.Name, cutoff)
		if err != nil {
			return orders, 0, fmt.Errorf("retention: delete order %s/%s: %w", o.Namespace, o.Name, err)
		}
		if deleted {
			orders++
		}
	}
	if preAuthz, err = sweepPreAuthorizations(ctx, store, profileName, cutoff); err != nil {
		return orders, 0, err
	}
	certCutoff := now.Add(-ret.Certificates)
	cl, err := storage.ListExpired(ctx, store, storage.AllNamespaces, "AcmeCertificate", byProfile, certCutoff)
	if err != nil {
		return orders, 0, fmt.Errorf("retention: list certificates of profile %s: %w", profileName, err)
	}
	for _, c := range cl {
		if !c.At.Before(certCutoff) {
			continue
		}
		deleted, err := deleteIf(ctx, store, &v1alpha1.AcmeCertificate{}, c.Namespace, c.Name, certCutoff)
		if err != nil {
			return orders, certs, fmt.Errorf("retention: delete certificate %s/%s: %w", c.Namespace, c.Name, err)
		}
		if deleted {
			certs++
		}
	}
	return orders, certs, nil
}

// sweepPreAuthorizations deletes a profile's pre-authorizations (newAuthz:
// no order, an empty order label) that expired before cutoff, the orders'
// cutoff, and reports how many.
func sweepPreAuthorizations(ctx context.Context, store storage.Store, profileName string, cutoff time.Time) (int, error) {
	pl, err := storage.ListExpired(ctx, store, storage.AllNamespaces, "AcmeChallenge",
		map[string]string{v1alpha1.LabelProfile: profileName, v1alpha1.LabelOrder: ""}, cutoff)
	if err != nil {
		return 0, fmt.Errorf("retention: list pre-authorizations of profile %s: %w", profileName, err)
	}
	n := 0
	for _, az := range pl {
		if !az.At.Before(cutoff) {
			continue
		}
		deleted, err := deleteIf(ctx, store, &v1alpha1.AcmeChallenge{}, az.Namespace, az.Name, cutoff)
		if err != nil {
			return n, fmt.Errorf("retention: delete pre-authorization %s/%s: %w", az.Namespace, az.Name, err)
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// deleteIf reads the object ns/name into obj and deletes that version if it
// still ended before cutoff (its Summary.At: an order's or authorization's
// expiry, a certificate's notAfter; compare-and-swap, so a write in between
// keeps it), and reports whether it deleted it. Gone already is not an error.
func deleteIf(ctx context.Context, store storage.Store, obj storage.Object, ns, name string, cutoff time.Time) (bool, error) {
	err := store.Get(ctx, ns, name, obj)
	if err != nil || !storage.Summarize(obj).At.Before(cutoff) {
		if storage.IsNotFound(err) {
			err = nil
		}
		return false, err
	}
	if err := store.Delete(ctx, obj); err != nil && !storage.IsNotFound(err) {
		return false, err
	}
	return true, nil
}
