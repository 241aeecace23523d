package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestAuthorizationReuse (AUTHZ-09): with spec.authorizationReuse an
// account's new order uses its valid authorization for the same identifier
// (no validation; the order is ready and issues), within the age only, not
// another account's, not a deactivated one, not a wildcard for the plain
// name, and not at all on a profile without reuse.
func TestAuthorizationReuse(t *testing.T) {
	ctx := context.Background()
	auth := testAuthority(t)
	spec := func(name string, reuse time.Duration) v1alpha1.AcmeProfile {
		p := v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root",
			Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"example"}}}}
		if reuse > 0 {
			p.Spec.AuthorizationReuse = &metav1.Duration{Duration: reuse}
		}
		return p
	}
	cfg, errs := profile.NewConfig(map[string]*ca.Authority{"root": auth}, []v1alpha1.AcmeProfile{spec("reuse", time.Hour), spec("plain", 0)})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var clock atomic.Int64 // offset
	var validations atomic.Int64
	r := ra.New(cfg, ra.Options{Store: openStore(t), Namespace: "kacme",
		Now: func() time.Time { return time.Now().Add(time.Duration(clock.Load())) },
		Validator: validatorFunc(func(context.Context, va.Request) va.Result {
			validations.Add(1)
			return va.Result{}
		})})
	t.Cleanup(r.Close)
	reuse, _ := r.Profile("reuse")
	plain, _ := r.Profile("plain")
	account := func(p *profile.Profile) *v1alpha1.AcmeAccount {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		a, _, err := r.NewAccount(ctx, p, &jose.JSONWebKey{Key: k.Public()}, acme.NewAccountRequest{TermsOfServiceAgreed: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	order := func(p *profile.Profile, a *v1alpha1.AcmeAccount, names ...string) *v1alpha1.AcmeOrder {
		t.Helper()
		var ids []acme.Identifier
		for _, n := range names {
			ids = append(ids, acme.Identifier{Type: "dns", Value: n})
		}
		o, err := r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: ids})
		if err != nil {
			t.Fatal(err)
		}
		if o, err = r.Order(ctx, a, o.Name); err != nil {
			t.Fatal(err)
		}
		return o
	}
	validate := func(p *profile.Profile, a *v1alpha1.AcmeAccount, o *v1alpha1.AcmeOrder) {
		t.Helper()
		for _, name := range o.Status.Authorizations {
			az, err := r.Authorization(ctx, a, name)
			if err != nil {
				t.Fatal(err)
			}
			if az.Status.Status == acme.StatusValid {
				continue
			}
			if az, _, err = r.RespondChallenge(ctx, p, a, ra.ChallengeID(az.Name, 0)); err != nil || az.Status.Status != acme.StatusValid {
				t.Fatalf("respond: %v %v", az, err)
			}
		}
	}

	alice, bob := account(reuse), account(reuse)
	first := order(reuse, alice, "www.example", "*.wild.example")
	validate(reuse, alice, first)
	n := validations.Load()

	again := order(reuse, alice, "www.example", "*.wild.example")
	if again.Status.Status != acme.StatusReady || validations.Load() != n {
		t.Fatalf("reuse: order %s after %d new validations, want ready after none", again.Status.Status, validations.Load()-n)
	}
	if again.Status.Authorizations[0] != first.Status.Authorizations[0] || len(again.Status.Offered) != 0 {
		t.Fatalf("reuse: authorizations %v (offered %d), want %v", again.Status.Authorizations, len(again.Status.Offered), first.Status.Authorizations)
	}
	if again.Status.Expires.After(first.Status.Expires.Time) {
		t.Errorf("an order that reuses an authorization expires at %v, after it (%v)", again.Status.Expires, first.Status.Expires)
	}
	if done, err := r.Finalize(ctx, reuse, alice, again.Name, csrForNames(t, "*.wild.example", "www.example")); err != nil || done.Status.Status != acme.StatusValid {
		t.Fatalf("finalize the order that reused its authorizations: %v %v", done, err)
	}
	mixed := order(reuse, alice, "www.example", "new.example", "wild.example")
	if mixed.Status.Status != acme.StatusPending || len(mixed.Status.Offered) != 2 {
		t.Errorf("an order with new names: %s, %d offered, want pending with 2 (the plain name of a validated wildcard is new)", mixed.Status.Status, len(mixed.Status.Offered))
	}
	if o := order(reuse, bob, "www.example"); o.Status.Status != acme.StatusPending {
		t.Errorf("another account's order: %s, want pending", o.Status.Status)
	}
	if o := order(plain, account(plain), "www.example"); o.Status.Status != acme.StatusPending {
		t.Errorf("a profile without reuse: %s, want pending", o.Status.Status)
	}
	clock.Store(int64(61 * time.Minute))
	if o := order(reuse, alice, "www.example"); o.Status.Status != acme.StatusPending {
		t.Errorf("older than authorizationReuse: %s, want pending", o.Status.Status)
	}
	clock.Store(0)
	www := first.Status.Authorizations[1] // identifiers sort: "*.wild.example" first
	if az, err := r.Authorization(ctx, alice, www); err != nil || az.Spec.Identifier.Value != "www.example" {
		t.Fatalf("authorization %s: %v", www, err)
	}
	if _, err := r.DeactivateAuthorization(ctx, alice, www); err != nil {
		t.Fatal(err)
	}
	if o := order(reuse, alice, "www.example"); o.Status.Status != acme.StatusPending {
		t.Errorf("after deactivation: %s, want pending", o.Status.Status)
	}
}

func csrForNames(t *testing.T, names ...string) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
