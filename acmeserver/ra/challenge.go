package ra

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/api/v1alpha1"
)

// stateValidating (LabelState) marks a challenge stored as processing: work a restart must pick up.
const stateValidating = "validating"

// Challenge loads challenge id of account a: its authorization and index.
func (r *RA) Challenge(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeChallenge, int, error) {
	az, ci, _, err := r.challenge(ctx, a, id)
	return az, ci, err
}

// challenge is Challenge, and whether the authorization is stored.
func (r *RA) challenge(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeChallenge, int, bool, error) {
	azID, ci, ok := SplitChallengeID(id)
	if !ok {
		return nil, 0, false, notFound("challenge")
	}
	az, stored, err := r.authorization(ctx, a, azID)
	if err != nil {
		if _, isProblem := errors.AsType[*acme.Problem](err); isProblem {
			return nil, 0, false, notFound("challenge")
		}
		return nil, 0, false, err
	}
	if ci >= len(az.Status.Challenges) {
		return nil, 0, false, notFound("challenge")
	}
	return az, ci, stored, nil
}

// validationJob is one validation running in this process.
type validationJob struct {
	ns, authz string
	ci        int
	spec      v1alpha1.AcmeChallengeSpec
	typ       v1alpha1.ChallengeType
	token     string
	keyAuth   string
	pending   *v1alpha1.AcmeChallenge // the derived authorization, when it was not stored yet
	done      chan struct{}           // closed once the outcome is stored
}

func (j *validationJob) key() string { return j.ns + "/" + j.authz }

// RespondChallenge starts validation of a pending challenge (RFC 8555 §7.5.1)
// and waits up to SyncWait for it. The outcome is the only write when the
// validation ends in time (the usual case): "processing" is stored only when
// the client is about to be told so, so that a restart resumes it. A
// challenge that is not pending is returned as it is (pinned: CHL-06).
func (r *RA) RespondChallenge(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeChallenge, int, error) {
	key, err := AccountKey(a)
	if err != nil {
		return nil, 0, err
	}
	az, ci, stored, err := r.challenge(ctx, a, id)
	if err != nil {
		return nil, 0, err
	}
	ch := az.Status.Challenges[ci]
	if az.Status.Status != acme.StatusPending || ch.Status != acme.StatusPending {
		return az, ci, nil
	}
	for _, other := range az.Status.Challenges {
		if other.Status == acme.StatusProcessing {
			return az, ci, nil // one validation per authorization at a time
		}
	}
	keyAuth, err := acme.KeyAuthorization(ch.Token, key)
	if err != nil {
		return nil, 0, err
	}
	job := &validationJob{ns: az.Namespace, authz: az.Name, ci: ci, spec: az.Spec,
		typ: ch.Type, token: ch.Token, keyAuth: keyAuth, done: make(chan struct{})}
	if !stored {
		job.pending = az.DeepCopy()
	}
	job = r.startValidation(job)
	t := time.NewTimer(r.syncWait)
	defer t.Stop()
	select {
	case <-job.done:
		return r.Challenge(ctx, a, id)
	case <-ctx.Done():
	case <-t.C:
	}
	// Still running: store "processing" before saying so.
	var out *v1alpha1.AcmeChallenge
	err = retry(ctx, func() error {
		cur, _, stored, err := r.challenge(ctx, a, id)
		if err != nil {
			return err
		}
		out = cur
		c := &cur.Status.Challenges[ci]
		if c.Status != acme.StatusPending || cur.Status.Status != acme.StatusPending {
			return nil // the outcome was stored meanwhile
		}
		c.Status = acme.StatusProcessing
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		cur.Labels[v1alpha1.LabelState] = stateValidating
		return r.storeAuthorization(ctx, cur, stored)
	})
	if err != nil {
		return nil, 0, err
	}
	return out, ci, nil
}

// startValidation runs a validation in the background, bounded by the
// semaphore; a validation of the same authorization already running in this
// process is joined instead.
func (r *RA) startValidation(job *validationJob) *validationJob {
	r.jobsMu.Lock()
	if cur, ok := r.jobs[job.key()]; ok {
		r.jobsMu.Unlock()
		return cur
	}
	r.jobs[job.key()] = job
	r.jobsMu.Unlock()
	r.wg.Add(1)
	// forget is called before done is closed: an answer that comes once
	// this job has finished (a retry after its outcome could not be stored)
	// starts a validation of its own instead of joining a finished one.
	forget := func() {
		r.jobsMu.Lock()
		if r.jobs[job.key()] == job {
			delete(r.jobs, job.key())
		}
		r.jobsMu.Unlock()
	}
	go func() {
		defer r.wg.Done()
		defer forget()
		// The account's own slot first, then one of the pool's: an account
		// waiting for its slots holds none of everyone's.
		release, ok := r.perAcct.acquire(r.baseCtx, job.ns+"/"+job.spec.Account)
		if !ok {
			return // a stored "processing" is resumed at the next start
		}
		defer release()
		select {
		case r.sem <- struct{}{}:
		case <-r.baseCtx.Done():
			return
		}
		defer func() { <-r.sem }()
		started := time.Now()
		p, ok := r.Profile(job.spec.Profile)
		ident := acme.Identifier{Type: job.spec.Identifier.Type, Value: job.spec.Identifier.Value}
		if job.spec.Wildcard {
			ident.Value = "*." + ident.Value
		}
		var res va.Result
		if !ok {
			res = va.Result{Problem: acme.InvalidProfileProblem("profile %q is no longer served", job.spec.Profile)}
		} else {
			req := va.Request{Identifier: ident, Type: job.typ, Token: job.token,
				KeyAuthorization: job.keyAuth, Settings: p.Validation}
			if r.acctURL != nil {
				req.AccountURI = r.acctURL(p, job.spec.Account)
			}
			res = r.validate(req)
		}
		if r.baseCtx.Err() != nil {
			return // shutting down mid-validation
		}
		result := "valid"
		if res.Problem != nil {
			result = strings.TrimPrefix(string(res.Problem.Type), "urn:ietf:params:acme:error:")
		}
		r.metrics.Validation(string(job.typ), result, time.Since(started))
		r.finishValidation(r.baseCtx, job, res)
		forget()
		close(job.done)
	}()
	return job
}

// ValidatorGrace is how long past its deadline a validation may take to
// report its own outcome before the RA gives up waiting for it.
const ValidatorGrace = time.Second

// validate runs one validation under its profile's timeout, and returns by
// that deadline (plus ValidatorGrace) whatever the validator does: every
// step of the VA honours its context, and should one ever not (a bug; a
// CNAME loop once spun forever), the challenge still becomes invalid in
// time, its slot in the pool is freed, and shutdown is not held up.
func (r *RA) validate(req va.Request) va.Result {
	timeout := req.Settings.Timeout
	if timeout <= 0 {
		timeout = defaultValidationTimeout
	}
	ctx, cancel := context.WithTimeout(r.baseCtx, timeout)
	defer cancel()
	done := make(chan va.Result, 1)
	go func() { done <- r.va.Validate(ctx, req) }()
	select {
	case res := <-done:
		return res
	case <-ctx.Done():
	}
	t := time.NewTimer(ValidatorGrace)
	defer t.Stop()
	select {
	case res := <-done: // it noticed its deadline: its problem says which step hit it
		return res
	case <-t.C:
		r.log.Error("a validation overran its deadline; left running, its outcome ignored", "identifier", req.Identifier.Value,
			"type", req.Type, "timeout", timeout)
		return va.Result{Problem: acme.ValidationProblem(acme.Connection, "the validation did not finish within %s", timeout)}
	}
}

// defaultValidationTimeout applies when a profile sets none (NewProfile sets 10 s).
const defaultValidationTimeout = 10 * time.Second

// finishValidation stores the outcome on the AcmeChallenge (one write: its
// creation when the authorization was derived until now) and, when it
// failed, marks the order invalid.
func (r *RA) finishValidation(ctx context.Context, job *validationJob, res va.Result) {
	now := metav1.NewTime(r.nowUTC())
	var stored *v1alpha1.AcmeChallenge
	err := retryUnavailable(ctx, r.log, func() error {
		return retry(ctx, func() error {
			stored = nil
			var az v1alpha1.AcmeChallenge
			exists := true
			if err := r.store.Get(storage.ExpectMiss(ctx), job.ns, job.authz, &az); storage.IsNotFound(err) && job.pending != nil {
				az, exists = *job.pending.DeepCopy(), false // its first write
			} else if err != nil {
				return err
			}
			if job.ci >= len(az.Status.Challenges) {
				return nil
			}
			c := &az.Status.Challenges[job.ci]
			if c.Status != acme.StatusPending && c.Status != acme.StatusProcessing {
				return nil // already finished elsewhere
			}
			if az.Status.Status != acme.StatusPending {
				return nil // deactivated or expired meanwhile
			}
			c.Data = challengeData(c.Type, az.Spec.Identifier.Value, c.Token, job.keyAuth, // the key may have rolled over
				r.accountURLOf(az.Spec.Profile, az.Spec.Account))
			if res.Problem == nil {
				c.Status, c.Validated = acme.StatusValid, &now
				az.Status.Status = acme.StatusValid
				az.Status.Expires = metav1.NewTime(now.Add(r.authzLifetime(job.spec.Profile)))
			} else {
				c.Status = acme.StatusInvalid
				c.Error = (&v1alpha1.Problem{Type: string(res.Problem.Type), Detail: res.Problem.Detail, Status: res.Problem.Status}).Bounded()
				az.Status.Status = acme.StatusInvalid
			}
			az.Status.Records = v1alpha1.BoundRecords(res.Records)
			delete(az.Labels, v1alpha1.LabelState)
			if err := r.storeAuthorization(ctx, &az, exists); err != nil {
				return err
			}
			stored = &az
			return nil
		})
	})
	if err != nil {
		r.log.Error("record validation result", "authorization", job.authz, "err", err)
		return
	}
	if stored == nil {
		return
	}
	attrs := []slog.Attr{slog.String("account", job.spec.Account), slog.String("order", job.spec.Order),
		slog.String("challenge", ChallengeID(job.authz, job.ci)), slog.String("type", string(job.typ)),
		slog.String("identifier", job.spec.Identifier.Value), slog.Any("records", res.Records)}
	if res.Problem != nil {
		r.audit.Record(ctx, audit.ChallengeFailed, append(attrs, slog.String("problem", string(res.Problem.Type)), slog.String("detail", res.Problem.Error()))...)
		r.failOrder(ctx, job.ns, job.spec.Order, authzProblem(stored))
	} else {
		r.audit.Record(ctx, audit.ChallengeValidated, attrs...)
	}
}

func (r *RA) authzLifetime(profile string) time.Duration {
	if p, ok := r.Profile(profile); ok {
		return p.AuthzLifetime
	}
	return defaultAuthzLifetime
}

// ResumeValidations restarts validations a previous run left "processing".
func (r *RA) ResumeValidations(ctx context.Context) (int, error) {
	list, err := r.validating(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range list.Items {
		k, err := r.resume(ctx, &list.Items[i])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// validating lists the authorizations with a challenge stored as processing.
func (r *RA) validating(ctx context.Context) (*v1alpha1.AcmeChallengeList, error) {
	var list v1alpha1.AcmeChallengeList
	err := r.store.List(ctx, storage.AllNamespaces, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelState: stateValidating}})
	return &list, err
}

// resume starts the validation of every processing challenge of az.
func (r *RA) resume(ctx context.Context, az *v1alpha1.AcmeChallenge) (int, error) {
	var a v1alpha1.AcmeAccount
	if err := r.get(ctx, az.Namespace, az.Spec.Account, &a, "account"); err != nil {
		return 0, err
	}
	key, err := AccountKey(&a)
	if err != nil {
		return 0, err
	}
	n := 0
	for ci, c := range az.Status.Challenges {
		if c.Status != acme.StatusProcessing {
			continue
		}
		keyAuth, err := acme.KeyAuthorization(c.Token, key)
		if err != nil {
			return n, err
		}
		r.startValidation(&validationJob{ns: az.Namespace, authz: az.Name, ci: ci, spec: az.Spec,
			typ: c.Type, token: c.Token, keyAuth: keyAuth, done: make(chan struct{})})
		n++
	}
	return n, nil
}

// AdoptValidations resumes the challenges stored as processing that no
// validation of this process works on and that stayed so for at least grace
// across calls: their replica stopped mid-validation (killed, node lost).
// Replicas call it periodically; grace must exceed the longest validation.
// A challenge two replicas validate at once gets one outcome (the store's
// compare-and-swap), so adopting too early costs a duplicate validation only.
func (r *RA) AdoptValidations(ctx context.Context, grace time.Duration) (int, error) {
	list, err := r.validating(ctx)
	if err != nil {
		return 0, err
	}
	now := r.now()
	var adopt []*v1alpha1.AcmeChallenge
	r.jobsMu.Lock()
	seen := map[string]time.Time{}
	for i := range list.Items {
		az := &list.Items[i]
		k := az.Namespace + "/" + az.Name
		if _, mine := r.jobs[k]; mine {
			continue
		}
		first, ok := r.orphans[k]
		if !ok {
			first = now
		}
		if now.Sub(first) >= grace {
			adopt = append(adopt, az)
			continue
		}
		seen[k] = first
	}
	r.orphans = seen
	r.jobsMu.Unlock()
	n := 0
	for _, az := range adopt {
		r.log.Info("adopting a validation another replica left unfinished", "authorization", az.Namespace+"/"+az.Name)
		k, err := r.resume(ctx, az)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
