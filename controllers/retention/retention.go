// Package retention deletes expired orders and their authorizations after
// each AcmeProfile's spec.retention, and expired certificates after its
// spec.certificateRetention (acmeserver/retention), in the cluster: one sweep
// every sweep.SweepInterval by the elected controller replica, reading through
// the API (paged lists off the request path) rather than keeping every order
// in an informer.
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/profile"
	sweep "github.com/kacme/kacme/acmeserver/retention"
	"github.com/kacme/kacme/acmeserver/storage/kube"
	"github.com/kacme/kacme/api/v1alpha1"
)

// +kubebuilder:rbac:groups=acme.kacme.io,resources=acmeorders;acmechallenges;acmecertificates,verbs=list;delete

// Sweeper is a manager.Runnable.
type Sweeper struct {
	// Client writes (deletes) and reads profiles; APIReader lists orders.
	Client    client.Client
	APIReader client.Reader
	// Interval between sweeps; default sweep.SweepInterval.
	Interval time.Duration
	Log      logr.Logger
	// Now is the clock (tests).
	Now func() time.Time
}

// NeedLeaderElection is true: one replica sweeps.
func (s *Sweeper) NeedLeaderElection() bool { return true }

// Start sweeps now and every Interval until ctx ends.
func (s *Sweeper) Start(ctx context.Context) error {
	if s.Interval <= 0 {
		s.Interval = sweep.SweepInterval
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	// Pages: a sweep summarizes whole kinds through the API server, and
	// must not hold 100,000 decoded orders to do so.
	store := kube.New(s.Client, s.APIReader).WithPagedLists(500)
	aud := audit.New(slog.New(logr.ToSlogHandler(s.Log)))
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		var profiles v1alpha1.AcmeProfileList
		if err := s.Client.List(ctx, &profiles); err != nil && ctx.Err() == nil {
			s.Log.Error(err, "retention: list profiles")
		}
		for i := range profiles.Items {
			p := &profiles.Items[i]
			orders, certs, err := sweep.Sweep(ctx, store, p.Name, profile.RetentionOf(p), s.Now(), aud)
			if err != nil && ctx.Err() == nil {
				s.Log.Error(err, "retention sweep", "profile", p.Name)
			}
			if orders+certs > 0 {
				s.Log.Info("retention: deleted expired objects", "profile", p.Name, "orders", orders, "certificates", certs)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
