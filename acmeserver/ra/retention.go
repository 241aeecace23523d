package ra

import (
	"context"
	"time"

	"github.com/kacme/kacme/acmeserver/retention"
)

// SweepAll applies every served profile's retention; it returns how many
// orders and certificates it deleted.
func (r *RA) SweepAll(ctx context.Context) (int, error) {
	n := 0
	for _, p := range r.Config().Profiles {
		d, c, err := retention.Sweep(ctx, r.store, p.Name, p.Retention, r.now(), r.audit)
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
