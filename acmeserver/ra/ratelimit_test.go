package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strconv"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/api/v1alpha1"
)

// wantRateLimited checks err is rateLimited with a Retry-After of about want.
func wantRateLimited(t *testing.T, err error, want time.Duration) {
	t.Helper()
	var pr *acme.Problem
	if !errors.As(err, &pr) || pr.Type != acme.RateLimited || pr.Status != 429 {
		t.Fatalf("got %v, want rateLimited (429)", err)
	}
	secs, convErr := strconv.Atoi(pr.Headers.Get("Retry-After"))
	if convErr != nil || secs <= 0 || time.Duration(secs)*time.Second > want+2*time.Second || time.Duration(secs)*time.Second < want-time.Minute {
		t.Fatalf("Retry-After %q, want about %v", pr.Headers.Get("Retry-After"), want)
	}
}

// TestRateLimits: each per-profile limit refuses with rateLimited and a
// Retry-After when the oldest counted event leaves the hour, and lets the
// client through an hour later.
func TestRateLimits(t *testing.T) {
	db := openStore(t)
	cfg := testConfig(t)
	p := cfg.Profiles["default"]
	p.Spec.RateLimits = v1alpha1.RateLimitSpec{NewOrdersPerAccount: 2, FailedValidationsPerAccount: 1, NewAccountsPerIP: 2}
	now := time.Now()
	failing := validatorFunc(func(context.Context, va.Request) va.Result {
		return va.Result{Problem: acme.ValidationProblem(acme.IncorrectResponse, "wrong")}
	})
	r := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme", Validator: failing, Now: func() time.Time { return now }})
	defer r.Close()
	newAccount := func(ip string) (*v1alpha1.AcmeAccount, error) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		a, _, err := r.NewAccount(ra.WithClientIP(context.Background(), ip), p, &jose.JSONWebKey{Key: k.Public()},
			acme.NewAccountRequest{TermsOfServiceAgreed: true}, nil)
		return a, err
	}
	// New accounts per address.
	a, err := newAccount("192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newAccount("192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	_, err = newAccount("192.0.2.1")
	wantRateLimited(t, err, time.Hour)
	b, err := newAccount("2001:db8::1") // another address is not limited
	if err != nil {
		t.Fatal(err)
	}
	// New orders per account.
	ctx := context.Background()
	order := func(acct *v1alpha1.AcmeAccount, name string) (*v1alpha1.AcmeOrder, error) {
		return r.NewOrder(ctx, p, acct, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: name}}})
	}
	for _, n := range []string{"a1.example", "a2.example"} {
		if _, err := order(a, n); err != nil {
			t.Fatal(err)
		}
	}
	_, err = order(a, "a3.example")
	wantRateLimited(t, err, time.Hour)
	// Failed validations per account.
	o, err := order(b, "b1.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.RespondChallenge(ctx, p, b, ra.ChallengeID(o.Status.Authorizations[0], 0)); err != nil {
		t.Fatal(err)
	}
	_, err = order(b, "b2.example")
	wantRateLimited(t, err, time.Hour)
	// An hour later every limit has room again.
	now = now.Add(time.Hour + time.Minute)
	if _, err := newAccount("192.0.2.1"); err != nil {
		t.Fatalf("account an hour later: %v", err)
	}
	if _, err := order(a, "a3.example"); err != nil {
		t.Fatalf("order an hour later: %v", err)
	}
	if _, err := order(b, "b2.example"); err != nil {
		t.Fatalf("order after the failure left the window: %v", err)
	}
}
