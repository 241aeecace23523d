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

// Sweep deletes the orders of profile, in every namespace, that expired more
// than retention before now, with their authorizations (AcmeChallenges): an
// order goes only once it and each of its authorizations expired before the
// cutoff, authorizations first, so a failure leaves the order to retry the
// next time. Certificates are kept. It returns how many orders it deleted.
func Sweep(ctx context.Context, store storage.Store, profile string, retention time.Duration, now time.Time) (int, error) {
	cutoff := now.Add(-retention)
	var orders v1alpha1.AcmeOrderList
	if err := store.List(ctx, storage.AllNamespaces, &orders, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelProfile: profile}}); err != nil {
		return 0, fmt.Errorf("retention: list orders of profile %s: %w", profile, err)
	}
	deleted := 0
	for i := range orders.Items {
		o := &orders.Items[i]
		if !o.Status.Expires.Time.Before(cutoff) {
			continue
		}
		var azs v1alpha1.AcmeChallengeList
		if err := store.List(ctx, o.Namespace, &azs, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelOrder: o.Name}}); err != nil {
			return deleted, fmt.Errorf("retention: list authorizations of order %s/%s: %w", o.Namespace, o.Name, err)
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
				return deleted, fmt.Errorf("retention: delete authorization %s/%s: %w", o.Namespace, azs.Items[j].Name, err)
			}
		}
		if err := store.Delete(ctx, o); err != nil && !storage.IsNotFound(err) {
			return deleted, fmt.Errorf("retention: delete order %s/%s: %w", o.Namespace, o.Name, err)
		}
		deleted++
	}
	return deleted, nil
}

// SweepAll applies every served profile's retention.
func (r *RA) SweepAll(ctx context.Context) (int, error) {
	n := 0
	for _, p := range r.Config().Profiles {
		d, err := Sweep(ctx, r.store, p.Name, p.Retention, r.now())
		n += d
		if err != nil {
			return n, err
		}
		if d > 0 {
			r.log.Info("retention: deleted expired orders", "profile", p.Name, "orders", d, "retention", p.Retention.String())
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
