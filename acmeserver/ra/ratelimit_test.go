package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/storage"
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
	p.Limits = profile.LimitsOf(v1alpha1.RateLimitSpec{NewOrdersPerAccount: ptr(2), FailedValidationsPerAccount: ptr(1), NewAccountsPerIP: ptr(2),
		PendingAuthorizationsPerAccount: ptr(0)})
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

func ptr(n int32) *int32 { return &n }

// seed creates n objects made by mk at once (the embedded store's group
// commit writes them in a few transactions).
func seed(t *testing.T, s interface {
	Create(context.Context, storage.Object) error
}, n int, mk func(i int) storage.Object) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Create(context.Background(), mk(i))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestDefaultLimits: a profile that sets no rateLimits is limited all the
// same (issue 13): 100 new accounts per address per hour, 1000 new orders per
// account per hour, 1000 pending authorizations per account, and 100
// identifiers per order; each rate limit is 429 rateLimited with Retry-After.
// 0 turns a limit off.
func TestDefaultLimits(t *testing.T) {
	db := openStore(t)
	cfg := testConfig(t)
	p := cfg.Profiles["default"]
	if p.Limits != (profile.Limits{NewAccountsPerIP: 100, NewOrdersPerAccount: 1000, PendingAuthorizationsPerAccount: 1000}) || p.MaxIdentifiers != 100 {
		t.Fatalf("defaults %+v, max identifiers %d", p.Limits, p.MaxIdentifiers)
	}
	now := time.Now()
	r := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme", Now: func() time.Time { return now },
		Validator: validatorFunc(func(context.Context, va.Request) va.Result { return va.Result{} })})
	defer r.Close()
	ctx := context.Background()
	newAccount := func(ip string) (*v1alpha1.AcmeAccount, error) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		a, _, err := r.NewAccount(ra.WithClientIP(ctx, ip), p, &jose.JSONWebKey{Key: k.Public()}, acme.NewAccountRequest{TermsOfServiceAgreed: true}, nil)
		return a, err
	}
	// 100 accounts from one address this hour (seeded as the RA stores them).
	seed(t, db, 100, func(i int) storage.Object {
		return &v1alpha1.AcmeAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "kacme", Name: fmt.Sprintf("seeded-%d", i),
			Labels: map[string]string{v1alpha1.LabelClientIP: ra.ClientIPLabel("192.0.2.7"), v1alpha1.LabelProfile: "default"}}}
	})
	_, err := newAccount("192.0.2.7")
	wantRateLimited(t, err, time.Hour)
	a, err := newAccount("192.0.2.8")
	if err != nil {
		t.Fatal(err)
	}
	order := func(names ...string) (*v1alpha1.AcmeOrder, error) {
		var ids []acme.Identifier
		for _, n := range names {
			ids = append(ids, acme.Identifier{Type: "dns", Value: n})
		}
		return r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: ids})
	}
	names := func(prefix string, n int) []string {
		var out []string
		for i := 0; i < n; i++ {
			out = append(out, fmt.Sprintf("%s%d.example", prefix, i))
		}
		return out
	}
	// Identifiers per order: not a rate (the same request can never pass), so rejectedIdentifier.
	_, err = order(names("many", 101)...)
	var pr *acme.Problem
	if !errors.As(err, &pr) || pr.Type != acme.RejectedIdentifier || !strings.Contains(pr.Detail, "at most 100") {
		t.Fatalf("101 identifiers: %v", err)
	}
	// Pending authorizations: 900 stored, an order of 100 fits, one more does not.
	seed(t, db, 900, func(i int) storage.Object {
		return &v1alpha1.AcmeChallenge{ObjectMeta: metav1.ObjectMeta{Namespace: "kacme", Name: fmt.Sprintf("pending-%d", i),
			Labels: map[string]string{v1alpha1.LabelAccount: a.Name}},
			Spec:   v1alpha1.AcmeChallengeSpec{Account: a.Name, Identifier: v1alpha1.Identifier{Type: "dns", Value: "x.example"}},
			Status: v1alpha1.AcmeChallengeStatus{Status: acme.StatusPending, Expires: metav1.NewTime(now.Add(90 * time.Second))}}
	})
	if _, err := order(names("fits", 100)...); err != nil {
		t.Fatalf("an order that reaches the pending limit exactly: %v", err)
	}
	_, err = order("one-more.example")
	wantRateLimited(t, err, 90*time.Second)
	// New orders per account: 999 this hour besides the one above.
	seed(t, db, 999, func(i int) storage.Object {
		return &v1alpha1.AcmeOrder{ObjectMeta: metav1.ObjectMeta{Namespace: "kacme", Name: fmt.Sprintf("order-%d", i),
			Labels: map[string]string{v1alpha1.LabelAccount: a.Name}}, Spec: v1alpha1.AcmeOrderSpec{Account: a.Name}}
	})
	p.Limits.PendingAuthorizationsPerAccount = 0 // off: the order limit alone
	// Orders written by another process (a replica) are counted once the
	// account's usage is counted again, at the latest after ra.UsageReuse.
	now = now.Add(ra.UsageReuse)
	_, err = order("order-1001.example")
	wantRateLimited(t, err, time.Hour)
	p.Limits.NewOrdersPerAccount = 0
	if _, err := order("unlimited.example"); err != nil {
		t.Fatalf("with the order limit off: %v", err)
	}
}

// TestLimitsCountedOncePerWindow: with room below the limits, new orders do
// not read the account's history again within ra.UsageReuse (it is read
// once, then this process's own orders are added); near a limit they do, and
// the answer is exact.
func TestLimitsCountedOncePerWindow(t *testing.T) {
	db := &countingLists{Store: openStore(t)}
	cfg := testConfig(t)
	p := cfg.Profiles["default"]
	p.Limits = profile.LimitsOf(v1alpha1.RateLimitSpec{NewOrdersPerAccount: ptr(20)})
	now := time.Now()
	r := ra.New(cfg, ra.Options{Store: db, Namespace: "kacme", Now: func() time.Time { return now },
		Validator: validatorFunc(func(context.Context, va.Request) va.Result { return va.Result{} })})
	defer r.Close()
	ctx := context.Background()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, _, err := r.NewAccount(ctx, p, &jose.JSONWebKey{Key: k.Public()}, acme.NewAccountRequest{TermsOfServiceAgreed: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	order := func(i int) error {
		_, err := r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: fmt.Sprintf("o%d.example", i)}}})
		return err
	}
	for i := 0; i < 19; i++ {
		if err := order(i); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.orderLists.Load(); n != 1 {
		t.Fatalf("19 orders well below the limit listed the account's orders %d times, want once", n)
	}
	if err := order(19); err != nil { // the 20th still fits
		t.Fatal(err)
	}
	wantRateLimited(t, order(20), time.Hour)
}

// countingLists counts the List calls for orders.
type countingLists struct {
	storage.Store
	orderLists atomic.Int32
}

func (c *countingLists) List(ctx context.Context, ns string, list storage.ObjectList, o storage.ListOptions) error {
	if _, ok := list.(*v1alpha1.AcmeOrderList); ok {
		c.orderLists.Add(1)
	}
	return c.Store.List(ctx, ns, list, o)
}
