package ra

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Values of LabelState on orders: work a restart must pick up.
const (
	stateValidating = "validating"
	stateProcessing = "processing"
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

// validationJob is one validation to run; the AcmeChallenge record is
// written once, with the outcome, so a validation costs two writes.
type validationJob struct {
	id      string // challenge ID
	record  v1alpha1.AcmeChallenge
	ai, ci  int
	orderID string
}

func newJob(o *v1alpha1.AcmeOrder, p string, ai, ci int, keyAuth string) *validationJob {
	az := o.Status.Authorizations[ai]
	ch := az.Challenges[ci]
	ident := az.Identifier
	if az.Wildcard {
		ident.Value = "*." + ident.Value
	}
	id := ChallengeID(o.Name, ai, ci)
	return &validationJob{id: id, ai: ai, ci: ci, orderID: o.Name, record: v1alpha1.AcmeChallenge{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: id, Labels: map[string]string{
			v1alpha1.LabelAccount: o.Spec.Account, v1alpha1.LabelOrder: o.Name}},
		Spec: v1alpha1.AcmeChallengeSpec{Account: o.Spec.Account, Order: o.Name, Profile: p, Authorization: ai,
			Identifier: ident, Type: ch.Type, Token: ch.Token, KeyAuthorization: keyAuth},
	}}
}

// RespondChallenge starts validation of a pending challenge (RFC 8555 §7.5.1)
// and waits up to SyncWait for it, so most clients never need to poll. A
// challenge that is not pending is returned as it is (pinned: CHL-06).
func (r *RA) RespondChallenge(ctx context.Context, p *Profile, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeOrder, int, int, error) {
	key, err := AccountKey(a)
	if err != nil {
		return nil, 0, 0, err
	}
	var job *validationJob
	var o *v1alpha1.AcmeOrder
	var ai, ci int
	err = retry(ctx, func() error {
		job = nil
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
		o.Labels[v1alpha1.LabelState] = stateValidating
		if err := r.store.Update(ctx, o); err != nil {
			return err
		}
		job = newJob(o, p.Name, ai, ci, keyAuth)
		return nil
	})
	if err != nil {
		return nil, 0, 0, err
	}
	if job == nil {
		return o, ai, ci, nil
	}
	r.startValidation(job)
	r.wait(ctx, o.Name, r.syncWait, func() bool {
		cur, _, _, err := r.Challenge(ctx, a, id)
		return err != nil || cur.Status.Authorizations[ai].Challenges[ci].Status != acme.StatusProcessing
	})
	o, ai, ci, err = r.Challenge(ctx, a, id)
	return o, ai, ci, err
}

// startValidation runs a validation in the background, bounded by the semaphore.
func (r *RA) startValidation(job *validationJob) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case r.sem <- struct{}{}:
		case <-r.baseCtx.Done():
			return // resumed at next start: the order stays "validating"
		}
		defer func() { <-r.sem }()
		spec := job.record.Spec
		started := time.Now()
		p, ok := r.Profile(spec.Profile)
		var res va.Result
		if !ok {
			res = va.Result{Problem: acme.InvalidProfileProblem("profile %q is no longer served", spec.Profile)}
		} else {
			res = r.va.Validate(r.baseCtx, va.Request{
				Identifier:       acme.Identifier{Type: spec.Identifier.Type, Value: spec.Identifier.Value},
				Type:             spec.Type,
				Token:            spec.Token,
				KeyAuthorization: spec.KeyAuthorization,
				Settings:         p.Validation,
			})
		}
		if r.baseCtx.Err() != nil {
			return // shutting down mid-validation: resume at next start
		}
		result := "valid"
		if res.Problem != nil {
			result = strings.TrimPrefix(string(res.Problem.Type), "urn:ietf:params:acme:error:")
		}
		r.metrics.Validation(string(spec.Type), result, time.Since(started))
		r.finishValidation(r.baseCtx, job, res)
	}()
}

// finishValidation records the outcome on the order (one write) and as the
// AcmeChallenge record (one write), then wakes waiters.
func (r *RA) finishValidation(ctx context.Context, job *validationJob, res va.Result) {
	defer r.notify(job.orderID)
	now := metav1.NewTime(r.nowUTC())
	spec := job.record.Spec
	err := retry(ctx, func() error {
		var o v1alpha1.AcmeOrder
		if err := r.get(ctx, job.orderID, &o, "order"); err != nil {
			return err
		}
		if job.ai >= len(o.Status.Authorizations) || job.ci >= len(o.Status.Authorizations[job.ai].Challenges) {
			return fmt.Errorf("challenge %s is out of range of its order", job.id)
		}
		az := &o.Status.Authorizations[job.ai]
		c := &az.Challenges[job.ci]
		if c.Status != acme.StatusProcessing {
			return nil // already finished (resumed twice)
		}
		if res.Problem == nil {
			c.Status, c.Validated = acme.StatusValid, &now
			if az.Status == acme.StatusPending {
				az.Status = acme.StatusValid
				az.Expires = metav1.NewTime(now.Add(r.authzLifetime(spec.Profile)))
			}
		} else {
			c.Status = acme.StatusInvalid
			c.Error = &v1alpha1.Problem{Type: string(res.Problem.Type), Detail: res.Problem.Detail, Status: res.Problem.Status}
			if az.Status == acme.StatusPending {
				az.Status = acme.StatusInvalid
			}
		}
		if !hasProcessingChallenge(&o) {
			delete(o.Labels, v1alpha1.LabelState)
		}
		if o.Status.Status == acme.StatusPending {
			r.refresh(&o)
		}
		return r.store.Update(ctx, &o)
	})
	if err != nil {
		r.log.Error("record validation result on order", "challenge", job.id, "err", err)
	}
	attrs := []slog.Attr{slog.String("account", spec.Account), slog.String("order", spec.Order),
		slog.String("challenge", job.id), slog.String("type", string(spec.Type)),
		slog.String("identifier", spec.Identifier.Value), slog.Any("records", res.Records)}
	rec := job.record.DeepCopy()
	rec.Status = v1alpha1.AcmeChallengeStatus{Status: acme.StatusValid, Records: res.Records, Finished: &now}
	if res.Problem != nil {
		r.audit.Record(ctx, audit.ChallengeFailed, append(attrs, slog.String("problem", string(res.Problem.Type)), slog.String("detail", res.Problem.Error()))...)
		rec.Status.Status = acme.StatusInvalid
		rec.Status.Error = &v1alpha1.Problem{Type: string(res.Problem.Type), Detail: res.Problem.Detail, Status: res.Problem.Status}
	} else {
		r.audit.Record(ctx, audit.ChallengeValidated, attrs...)
	}
	if err := r.store.Create(ctx, rec); err != nil && !storage.IsAlreadyExists(err) {
		r.log.Error("record validation result", "challenge", job.id, "err", err)
	}
}

func hasProcessingChallenge(o *v1alpha1.AcmeOrder) bool {
	for _, az := range o.Status.Authorizations {
		for _, c := range az.Challenges {
			if c.Status == acme.StatusProcessing {
				return true
			}
		}
	}
	return false
}

func (r *RA) authzLifetime(profile string) time.Duration {
	if p, ok := r.Profile(profile); ok {
		return p.AuthzLifetime
	}
	return defaultAuthzLifetime
}

// ResumeValidations restarts validations a previous run left "processing".
func (r *RA) ResumeValidations(ctx context.Context) (int, error) {
	var list v1alpha1.AcmeOrderList
	if err := r.store.List(ctx, r.ns, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelState: stateValidating}}); err != nil {
		return 0, err
	}
	n := 0
	for i := range list.Items {
		o := &list.Items[i]
		var a v1alpha1.AcmeAccount
		if err := r.get(ctx, o.Spec.Account, &a, "account"); err != nil {
			return n, err
		}
		key, err := AccountKey(&a)
		if err != nil {
			return n, err
		}
		for ai, az := range o.Status.Authorizations {
			for ci, c := range az.Challenges {
				if c.Status != acme.StatusProcessing {
					continue
				}
				keyAuth, err := acme.KeyAuthorization(c.Token, key)
				if err != nil {
					return n, err
				}
				r.startValidation(newJob(o, o.Spec.Profile, ai, ci, keyAuth))
				n++
			}
		}
	}
	return n, nil
}
