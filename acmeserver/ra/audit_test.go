package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"log/slog"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/va"
)

// TestOrderEndsAreAudited (issue 15): an order the server ends — its
// authorization failed, or its account was deactivated — writes an
// order.invalid audit record naming the order and why (it wrote none).
func TestOrderEndsAreAudited(t *testing.T) {
	ctx := context.Background()
	aud := audit.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	failing := validatorFunc(func(context.Context, va.Request) va.Result {
		return va.Result{Problem: acme.ValidationProblem(acme.IncorrectResponse, "wrong")}
	})
	r := ra.New(testConfig(t), ra.Options{Store: openStore(t), Namespace: "kacme", Validator: failing, Audit: aud})
	defer r.Close()
	p, _ := r.Profile("default")
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, _, err := r.NewAccount(ctx, p, &jose.JSONWebKey{Key: k.Public()}, acme.NewAccountRequest{TermsOfServiceAgreed: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	newOrder := func(name string) string {
		o, err := r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: name}}})
		if err != nil {
			t.Fatal(err)
		}
		return o.Name
	}
	invalid := func() map[string]string { // order → error type of its order.invalid records
		out := map[string]string{}
		for _, e := range aud.Recent(100) {
			if e.Event != audit.OrderInvalid {
				continue
			}
			var order, typ string
			for _, at := range e.Attrs {
				switch at.Key {
				case "order":
					order = at.Value.String()
				case "error":
					typ = at.Value.String()
				}
			}
			out[order] = typ
		}
		return out
	}
	failed := newOrder("failed.example")
	o, err := r.Order(ctx, a, failed)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.RespondChallenge(ctx, p, a, ra.ChallengeID(o.Status.Authorizations[0], 0)); err != nil {
		t.Fatal(err)
	}
	cancelled := newOrder("pending.example")
	if _, err := r.UpdateAccount(ctx, a, acme.AccountUpdateRequest{Status: acme.StatusDeactivated}); err != nil {
		t.Fatal(err)
	}
	got := invalid()
	if got[failed] != string(acme.IncorrectResponse) {
		t.Errorf("the order whose authorization failed: audit %v", got)
	}
	if got[cancelled] != string(acme.Unauthorized) {
		t.Errorf("the order cancelled by the account's deactivation: audit %v", got)
	}
}
