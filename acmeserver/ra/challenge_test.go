package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := second.Authorization(ctx, a, azID)
		if err == nil && got.Status.Status == acme.StatusValid {
			if got.Labels[v1alpha1.LabelState] != "" {
				t.Fatal("a finished validation is still labelled for resumption")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("resumed validation did not end valid: %+v %v", got, err)
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
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := peer.Authorization(ctx, a, azID)
		if err == nil && got.Status.Status == acme.StatusValid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("adopted validation did not end valid: %+v %v", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
