package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestSlowValidationResumes: a validation that outlasts the sync wait is
// stored as processing before the client is told so; a restart in the middle
// resumes it, and it ends valid.
func TestSlowValidationResumes(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	cfg := testConfig(t)
	// First process: validation blocks until the process stops.
	slow := validatorFunc(func(ctx context.Context, _ va.Request) va.Result {
		<-ctx.Done()
		return va.Result{Problem: acme.ValidationProblem(acme.Connection, "interrupted")}
	})
	first := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme", Validator: slow, SyncWait: 100 * time.Millisecond})
	p, _ := first.Profile("default")
	ak, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, _, err := first.NewAccount(ctx, p, &jose.JSONWebKey{Key: ak.Public()}, acme.NewAccountRequest{TermsOfServiceAgreed: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := first.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: "slow.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	azID := o.Status.Authorizations[0]
	az, ci, err := first.RespondChallenge(ctx, p, a, ra.ChallengeID(azID, 0))
	if err != nil || az.Status.Challenges[ci].Status != acme.StatusProcessing {
		t.Fatalf("slow validation answered %v (err %v), want processing", az.Status.Challenges[ci].Status, err)
	}
	var stored v1alpha1.AcmeChallenge
	if err := db.Get(ctx, "kacme", azID, &stored); err != nil || stored.Status.Challenges[0].Status != acme.StatusProcessing ||
		stored.Labels[v1alpha1.LabelState] == "" {
		t.Fatalf("processing was not stored before the answer: %+v %v", stored.Status, err)
	}
	first.Close() // the process stops mid-validation: nothing more is written
	if err := db.Get(ctx, "kacme", azID, &stored); err != nil || stored.Status.Challenges[0].Status != acme.StatusProcessing {
		t.Fatalf("a stopped validation wrote an outcome: %+v %v", stored.Status, err)
	}
	// Second process: validation succeeds; the stored processing challenge is resumed.
	second := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme",
		Validator: validatorFunc(func(context.Context, va.Request) va.Result { return va.Result{} })})
	defer second.Close()
	if n, err := second.ResumeValidations(ctx); err != nil || n != 1 {
		t.Fatalf("ResumeValidations = %d, %v; want 1", n, err)
	}
	if got := waitValid(t, second, a, azID, "resumed"); got.Labels[v1alpha1.LabelState] != "" {
		t.Fatal("a finished validation is still labelled for resumption")
	}
}

// waitValid waits up to 5 s for authorization azID of a to be valid.
func waitValid(t *testing.T, r *ra.RA, a *v1alpha1.AcmeAccount, azID, what string) *v1alpha1.AcmeChallenge {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := r.Authorization(context.Background(), a, azID)
		if err == nil && got.Status.Status == acme.StatusValid {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s validation did not end valid: %+v %v", what, got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdoptValidations: a replica that stops mid-validation leaves the
// challenge processing; a peer adopts it only once it has stayed so for the
// grace period, and it ends valid.
func TestAdoptValidations(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	cfg := testConfig(t)
	peer := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme",
		Validator: validatorFunc(func(context.Context, va.Request) va.Result { return va.Result{} })})
	defer peer.Close()
	dying := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme", SyncWait: 50 * time.Millisecond,
		Validator: validatorFunc(func(ctx context.Context, _ va.Request) va.Result {
			<-ctx.Done()
			return va.Result{Problem: acme.ValidationProblem(acme.Connection, "interrupted")}
		})})
	p, _ := dying.Profile("default")
	ak, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, _, err := dying.NewAccount(ctx, p, &jose.JSONWebKey{Key: ak.Public()}, acme.NewAccountRequest{TermsOfServiceAgreed: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := dying.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: "orphan.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	azID := o.Status.Authorizations[0]
	if _, _, err := dying.RespondChallenge(ctx, p, a, ra.ChallengeID(azID, 0)); err != nil {
		t.Fatal(err)
	}
	dying.Close()
	const grace = 300 * time.Millisecond
	if n, err := peer.AdoptValidations(ctx, grace); err != nil || n != 0 {
		t.Fatalf("first look adopted %d (%v); want 0: the grace period has not passed", n, err)
	}
	time.Sleep(grace)
	if n, err := peer.AdoptValidations(ctx, grace); err != nil || n != 1 {
		t.Fatalf("AdoptValidations after the grace period = %d, %v; want 1", n, err)
	}
	waitValid(t, peer, a, azID, "adopted")
}

// TestStuckValidator: a validation step that ignores its deadline (a CNAME
// loop once spun forever in the resolver) still ends the challenge invalid
// within the profile's timeout plus ValidatorGrace, and Close does not wait
// for it; one stopped mid-way by Close stays processing and is resumed.
func TestStuckValidator(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	cfg := testConfig(t)
	cfg.Profiles["default"].Validation.Timeout = time.Second
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stuck := validatorFunc(func(context.Context, va.Request) va.Result {
		<-release // ignores its context
		return va.Result{}
	})
	r := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme", Validator: stuck, SyncWait: 5 * time.Second})
	p, _ := r.Profile("default")
	ak, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, _, err := r.NewAccount(ctx, p, &jose.JSONWebKey{Key: ak.Public()}, acme.NewAccountRequest{TermsOfServiceAgreed: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	order := func(name string) string {
		o, err := r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: name}}})
		if err != nil {
			t.Fatal(err)
		}
		return o.Status.Authorizations[0]
	}
	azID := order("stuck.example")
	start := time.Now()
	done := make(chan *v1alpha1.AcmeChallenge, 1)
	go func() {
		az, _, err := r.RespondChallenge(ctx, p, a, ra.ChallengeID(azID, 0))
		if err != nil {
			t.Error(err)
		}
		done <- az
	}()
	select {
	case az := <-done:
		if az == nil || az.Status.Challenges[0].Status != acme.StatusInvalid || az.Status.Challenges[0].Error.Type != string(acme.Connection) {
			t.Fatalf("a stuck validation answered %+v, want invalid (connection)", az)
		}
		if took := time.Since(start); took > time.Second+ra.ValidatorGrace+500*time.Millisecond {
			t.Fatalf("the stuck validation ended after %s", took)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("a validation that ignores its deadline kept the challenge pending past the timeout")
	}

	// Shutdown during a validation: the slow one is stored as processing,
	// Close returns in time, and a new start resumes it.
	cfg.Profiles["default"].Validation.Timeout = time.Minute
	slow := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme", Validator: stuck, SyncWait: 100 * time.Millisecond, CloseWait: time.Second})
	azID = order("shutdown.example")
	if az, _, err := slow.RespondChallenge(ctx, p, a, ra.ChallengeID(azID, 0)); err != nil || az.Status.Challenges[0].Status != acme.StatusProcessing {
		t.Fatalf("slow validation: %v %+v", err, az)
	}
	start = time.Now()
	slow.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %s with a validation running", took)
	}
	next := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme",
		Validator: validatorFunc(func(context.Context, va.Request) va.Result { return va.Result{} })})
	defer next.Close()
	if n, err := next.ResumeValidations(ctx); err != nil || n != 1 {
		t.Fatalf("ResumeValidations = %d, %v; want the interrupted one", n, err)
	}
	waitValid(t, next, a, azID, "resumed")
	r.Close()
}

// TestValidationFairShare (issue 13, the class of finding 1): one account
// with many challenges on slow targets holds at most MaxValidationsPerAccount
// validations at once, so another account's challenge is validated at once
// instead of queueing behind them for the pool.
func TestValidationFairShare(t *testing.T) {
	ctx := context.Background()
	db := openStore(t)
	cfg := testConfig(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var running, most atomic.Int32
	v := validatorFunc(func(ctx context.Context, req va.Request) va.Result {
		if strings.HasPrefix(req.Identifier.Value, "slow") {
			n := running.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			defer running.Add(-1)
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return va.Result{}
	})
	r := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme", Validator: v, SyncWait: 50 * time.Millisecond,
		MaxConcurrentValidations: 10, MaxValidationsPerAccount: 4})
	defer r.Close()
	p, _ := r.Profile("default")
	account := func() *v1alpha1.AcmeAccount {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		a, _, err := r.NewAccount(ctx, p, &jose.JSONWebKey{Key: k.Public()}, acme.NewAccountRequest{TermsOfServiceAgreed: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	greedy, other := account(), account()
	respond := func(a *v1alpha1.AcmeAccount, name string) *v1alpha1.AcmeChallenge {
		o, err := r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: name}}})
		if err != nil {
			t.Fatal(err)
		}
		az, _, err := r.RespondChallenge(ctx, p, a, ra.ChallengeID(o.Status.Authorizations[0], 0))
		if err != nil {
			t.Fatal(err)
		}
		return az
	}
	for i := 0; i < 20; i++ {
		respond(greedy, fmt.Sprintf("slow%d.example", i))
	}
	time.Sleep(200 * time.Millisecond)
	if n := most.Load(); n > 4 {
		t.Fatalf("one account held %d validations at once, want at most 4", n)
	}
	start := time.Now()
	if az := respond(other, "quick.example"); az.Status.Status != acme.StatusValid {
		t.Fatalf("another account's challenge answered %q while the first account's 20 wait, want valid at once", az.Status.Status)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("another account waited %s", took)
	}
}
