package ra

import (
	"context"
	"fmt"
	"log/slog"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/api/v1alpha1"
)

const (
	stateProcessing = "processing"
	stateDone       = "done"
)

// Challenge loads the order holding challenge id, owned by a.
func (r *RA) Challenge(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeOrder, int, int, error) {
	oid, ai, ci, ok := SplitChallengeID(id)
	if !ok {
		return nil, 0, 0, notFound("challenge")
	}
	o, err := r.Order(ctx, a, oid)
	if err != nil {
		return nil, 0, 0, notFound("challenge")
	}
	if ai < 0 || ai >= len(o.Status.Authorizations) || ci < 0 || ci >= len(o.Status.Authorizations[ai].Challenges) {
		return nil, 0, 0, notFound("challenge")
	}
	return o, ai, ci, nil
}

// RespondChallenge starts validation of a pending challenge (RFC 8555 §7.5.1)
// and waits up to SyncWait for it, so most clients never need to poll. A
// challenge that is not pending is returned as it is (pinned: CHL-06).
func (r *RA) RespondChallenge(ctx context.Context, p *Profile, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeOrder, int, int, error) {
	key, err := AccountKey(a)
	if err != nil {
		return nil, 0, 0, err
	}
	var started *v1alpha1.AcmeChallenge
	var o *v1alpha1.AcmeOrder
	var ai, ci int
	err = retry(ctx, func() error {
		started = nil
		var err error
		o, ai, ci, err = r.Challenge(ctx, a, id)
		if err != nil {
			return err
		}
		az := &o.Status.Authorizations[ai]
		ch := &az.Challenges[ci]
		if az.Status != acme.StatusPending || ch.Status != acme.StatusPending {
			return nil
		}
		for _, other := range az.Challenges {
			if other.Status == acme.StatusProcessing {
				return nil // one validation per authorization at a time
			}
		}
		keyAuth, err := acme.KeyAuthorization(ch.Token, key)
		if err != nil {
			return err
		}
		ch.Status = acme.StatusProcessing
		if err := r.store.Update(ctx, o); err != nil {
			return err
		}
		ident := az.Identifier
		if az.Wildcard {
			ident.Value = "*." + ident.Value
		}
		started = &v1alpha1.AcmeChallenge{
			ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: id, Labels: map[string]string{
				v1alpha1.LabelAccount: a.Name, v1alpha1.LabelOrder: o.Name, v1alpha1.LabelState: stateProcessing}},
			Spec: v1alpha1.AcmeChallengeSpec{Account: a.Name, Order: o.Name, Profile: p.Name, Authorization: ai,
				Identifier: ident, Type: ch.Type, Token: ch.Token, KeyAuthorization: keyAuth},
			Status: v1alpha1.AcmeChallengeStatus{Status: acme.StatusProcessing},
		}
		return nil
	})
	if err != nil {
		return nil, 0, 0, err
	}
	if started == nil {
		return o, ai, ci, nil
	}
	if err := r.store.Create(ctx, started); err != nil && !storage.IsAlreadyExists(err) {
		// The order says processing but no work item exists: fail the challenge rather than leave it hanging.
		r.log.Error("create challenge record", "challenge", id, "err", err)
		r.finishValidation(context.WithoutCancel(ctx), started, va.Result{Problem: acme.InternalProblem(err, "the server could not start validation")})
		o, ai, ci, err = r.Challenge(ctx, a, id)
		return o, ai, ci, err
	}
	r.startValidation(started)
	r.wait(ctx, o.Name, r.syncWait, func() bool {
		cur, _, _, err := r.Challenge(ctx, a, id)
		return err != nil || cur.Status.Authorizations[ai].Challenges[ci].Status != acme.StatusProcessing
	})
	o, ai, ci, err = r.Challenge(ctx, a, id)
	return o, ai, ci, err
}

// startValidation runs a validation in the background, bounded by the semaphore.
func (r *RA) startValidation(ch *v1alpha1.AcmeChallenge) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case r.sem <- struct{}{}:
		case <-r.baseCtx.Done():
			return // resumed at next start: the record stays "processing"
		}
		defer func() { <-r.sem }()
		p, ok := r.Profile(ch.Spec.Profile)
		var res va.Result
		if !ok {
			res = va.Result{Problem: acme.InvalidProfileProblem("profile %q is no longer served", ch.Spec.Profile)}
		} else {
			res = r.va.Validate(r.baseCtx, va.Request{
				Identifier:       acme.Identifier{Type: ch.Spec.Identifier.Type, Value: ch.Spec.Identifier.Value},
				Type:             ch.Spec.Type,
				Token:            ch.Spec.Token,
				KeyAuthorization: ch.Spec.KeyAuthorization,
				Settings:         p.Validation,
			})
		}
		if r.baseCtx.Err() != nil {
			return // shutting down mid-validation: resume at next start
		}
		r.finishValidation(r.baseCtx, ch, res)
	}()
}

// finishValidation records the outcome on the order (one write) and on the
// challenge record (one write), then wakes waiters.
func (r *RA) finishValidation(ctx context.Context, ch *v1alpha1.AcmeChallenge, res va.Result) {
	defer r.notify(ch.Spec.Order)
	now := metav1.NewTime(r.nowUTC())
	_, ai, ci, _ := SplitChallengeID(ch.Name)
	err := retry(ctx, func() error {
		var o v1alpha1.AcmeOrder
		if err := r.get(ctx, ch.Spec.Order, &o, "order"); err != nil {
			return err
		}
		if ai >= len(o.Status.Authorizations) || ci >= len(o.Status.Authorizations[ai].Challenges) {
			return fmt.Errorf("challenge %s is out of range of its order", ch.Name)
		}
		az := &o.Status.Authorizations[ai]
		c := &az.Challenges[ci]
		if c.Status != acme.StatusProcessing {
			return nil // already finished (resumed twice)
		}
		if res.Problem == nil {
			c.Status, c.Validated = acme.StatusValid, &now
			if az.Status == acme.StatusPending {
				az.Status = acme.StatusValid
				exp := now.Add(r.authzLifetime(ch.Spec.Profile))
				az.Expires = metav1.NewTime(exp)
			}
		} else {
			c.Status = acme.StatusInvalid
			c.Error = &v1alpha1.Problem{Type: string(res.Problem.Type), Detail: res.Problem.Detail, Status: res.Problem.Status}
			if az.Status == acme.StatusPending {
				az.Status = acme.StatusInvalid
			}
		}
		if o.Status.Status == acme.StatusPending {
			r.refresh(&o)
		}
		return r.store.Update(ctx, &o)
	})
	if err != nil {
		r.log.Error("record validation result on order", "challenge", ch.Name, "err", err)
	}
	attrs := []slog.Attr{slog.String("account", ch.Spec.Account), slog.String("order", ch.Spec.Order),
		slog.String("challenge", ch.Name), slog.String("type", string(ch.Spec.Type)),
		slog.String("identifier", ch.Spec.Identifier.Value), slog.Any("records", res.Records)}
	if res.Problem != nil {
		r.audit.Record(ctx, audit.ChallengeFailed, append(attrs, slog.String("problem", string(res.Problem.Type)), slog.String("detail", res.Problem.Error()))...)
	} else {
		r.audit.Record(ctx, audit.ChallengeValidated, attrs...)
	}
	err = retry(ctx, func() error {
		var cur v1alpha1.AcmeChallenge
		if err := r.get(ctx, ch.Name, &cur, "challenge"); err != nil {
			return err
		}
		cur.Labels[v1alpha1.LabelState] = stateDone
		cur.Status = v1alpha1.AcmeChallengeStatus{Status: acme.StatusValid, Records: res.Records, Finished: &now}
		if res.Problem != nil {
			cur.Status.Status = acme.StatusInvalid
			cur.Status.Error = &v1alpha1.Problem{Type: string(res.Problem.Type), Detail: res.Problem.Detail, Status: res.Problem.Status}
		}
		return r.store.Update(ctx, &cur)
	})
	if err != nil && !isNotFoundProblem(err) {
		r.log.Error("record validation result", "challenge", ch.Name, "err", err)
	}
}

func isNotFoundProblem(err error) bool {
	p, ok := err.(*acme.Problem)
	return ok && p.Status == 404
}

func (r *RA) authzLifetime(profile string) (d timeDuration) {
	if p, ok := r.Profile(profile); ok {
		return p.AuthzLifetime
	}
	return defaultAuthzLifetime
}

// ResumeValidations restarts validations left "processing" by a previous run.
func (r *RA) ResumeValidations(ctx context.Context) (int, error) {
	var list v1alpha1.AcmeChallengeList
	if err := r.store.List(ctx, r.ns, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelState: stateProcessing}}); err != nil {
		return 0, err
	}
	for i := range list.Items {
		r.startValidation(&list.Items[i])
	}
	return len(list.Items), nil
}
