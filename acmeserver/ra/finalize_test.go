package ra_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/embedded"
	"github.com/kacme/kacme/acmeserver/storage/embedded/embeddedtest"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/api/v1alpha1"
)

// validatorFunc validates everything as told.
type validatorFunc func(context.Context, va.Request) va.Result

func (f validatorFunc) Validate(ctx context.Context, r va.Request) va.Result { return f(ctx, r) }

// failingStore fails the next order update once armed, as a crash between
// the two finalize writes would leave things.
type failingStore struct {
	storage.Store
	failOrderUpdate  atomic.Bool
	failAuthzCreates atomic.Bool
	// unavailable fails this many of the next writes with ErrUnavailable.
	unavailable atomic.Int32
}

func (s *failingStore) down() error {
	if s.unavailable.Add(-1) >= 0 {
		return fmt.Errorf("injected: connection refused: %w", storage.ErrUnavailable)
	}
	s.unavailable.Store(0)
	return nil
}

func (s *failingStore) Create(ctx context.Context, obj storage.Object) error {
	if err := s.down(); err != nil {
		return err
	}
	if _, ok := obj.(*v1alpha1.AcmeChallenge); ok && s.failAuthzCreates.Load() {
		return errors.New("injected: the API server refused the write")
	}
	return s.Store.Create(ctx, obj)
}

func (s *failingStore) Update(ctx context.Context, obj storage.Object) error {
	if err := s.down(); err != nil {
		return err
	}
	if _, ok := obj.(*v1alpha1.AcmeOrder); ok && s.failOrderUpdate.CompareAndSwap(true, false) {
		return errors.New("injected: the API server went away")
	}
	return s.Store.Update(ctx, obj)
}

// readyOrder sets up an RA with one profile, an account and an order whose
// authorization is valid.
func readyOrder(t *testing.T) (*ra.RA, *failingStore, *profile.Profile, *v1alpha1.AcmeAccount, *v1alpha1.AcmeOrder) {
	t.Helper()
	ctx := context.Background()
	store := &failingStore{Store: openStore(t)}
	cfg := testConfig(t)
	r := ra.New(cfg, ra.Options{Store: store, Namespace: "kacme",
		Validator: validatorFunc(func(context.Context, va.Request) va.Result { return va.Result{} })})
	t.Cleanup(r.Close)
	p, _ := r.Profile("default")
	ak, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, _, err := r.NewAccount(ctx, p, &jose.JSONWebKey{Key: ak.Public()}, acme.NewAccountRequest{TermsOfServiceAgreed: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: "www.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	az, err := r.Authorization(ctx, a, o.Status.Authorizations[0])
	if err != nil {
		t.Fatal(err)
	}
	if az, _, err = r.RespondChallenge(ctx, p, a, ra.ChallengeID(az.Name, 0)); err != nil || az.Status.Status != acme.StatusValid {
		t.Fatalf("respond: %v %v", az, err)
	}
	if o, err = r.Order(ctx, a, o.Name); err != nil || o.Status.Status != acme.StatusReady {
		t.Fatalf("order after validation: %v %v", o, err)
	}
	return r, store, p, a, o
}

// openStore opens an embedded store in a temporary directory.
func openStore(t *testing.T) *embedded.Store { return embeddedtest.Open(t, embedded.Options{}) }

// testAuthority is a fresh self-signed CA called "root".
func testAuthority(t *testing.T) *ca.Authority {
	t.Helper()
	key, chain, err := ca.GenerateSelfSigned("root", v1alpha1.SelfSignedCA{})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ca.New("root", chain[0], key, chain[1:])
	if err != nil {
		t.Fatal(err)
	}
	return auth
}

// testConfig serves profile "default" (names under "example") from a fresh root CA.
func testConfig(t *testing.T) *profile.Config {
	t.Helper()
	auth := testAuthority(t)
	cfg, errs := profile.NewConfig(map[string]*ca.Authority{"root": auth}, []v1alpha1.AcmeProfile{{ObjectMeta: metav1.ObjectMeta{Name: "default"},
		Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root", Identifiers: v1alpha1.IdentifierPolicy{AllowedDNSSuffixes: []string{"example"}}}}})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return cfg
}

func csrFor(t *testing.T, name string) []byte {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func certificates(t *testing.T, s storage.Store) []v1alpha1.AcmeCertificate {
	t.Helper()
	var list v1alpha1.AcmeCertificateList
	if err := s.List(context.Background(), storage.AllNamespaces, &list, storage.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// TestFinalizeAfterCrash (FIN-*): the certificate was stored but the order was
// not marked valid (the process died between the two writes); the client's
// retry completes the order with that same certificate instead of a second
// one — also when the CA key was rotated in between, which changes the serial
// the retry computes (the stored certificate is found by its order).
func TestFinalizeAfterCrash(t *testing.T) {
	for _, rotated := range []bool{false, true} {
		t.Run(fmt.Sprintf("rotated=%v", rotated), func(t *testing.T) {
			r, store, p, a, o := readyOrder(t)
			ctx := context.Background()
			store.failOrderUpdate.Store(true)
			if _, err := r.Finalize(ctx, p, a, o.Name, csrFor(t, "www.example")); err == nil {
				t.Fatal("finalize succeeded although the order could not be written")
			}
			stored := certificates(t, store)
			if len(stored) != 1 {
				t.Fatalf("%d certificates stored by the interrupted finalize, want 1", len(stored))
			}
			if cur, err := r.Order(ctx, a, o.Name); err != nil || cur.Status.Status != acme.StatusReady {
				t.Fatalf("order after the interrupted finalize: %v %v (want still ready)", cur.Status.Status, err)
			}
			store.failOrderUpdate.Store(false)
			if rotated {
				_, p = rotate(t, r, p.CA)
			}
			done, err := r.Finalize(ctx, p, a, o.Name, csrFor(t, "www.example"))
			if err != nil || done.Status.Status != acme.StatusValid || done.Status.Certificate != stored[0].Name {
				t.Fatalf("retried finalize: %v, certificate %q, err %v; want valid with %s", done.Status.Status, done.Status.Certificate, err, stored[0].Name)
			}
			if n := len(certificates(t, store)); n != 1 {
				t.Fatalf("%d certificates after the retry, want 1", n)
			}
		})
	}
}

// TestConcurrentFinalize: many simultaneous finalize requests for one order
// yield one certificate, and every request that succeeds names it.
func TestConcurrentFinalize(t *testing.T) {
	r, store, p, a, o := readyOrder(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	names := map[string]int{}
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := r.Finalize(ctx, p, a, o.Name, csrFor(t, "www.example"))
			if err != nil {
				var pr *acme.Problem
				if errors.As(err, &pr) && pr.Type == acme.OrderNotReady {
					return // a later request saw the order valid already
				}
				t.Errorf("finalize: %v", err)
				return
			}
			mu.Lock()
			names[got.Status.Certificate]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if n := len(certificates(t, store)); n != 1 || len(names) != 1 {
		t.Fatalf("%d certificates stored, finalize answers named %v; want exactly one", n, names)
	}
}

// TestAuthorizationDerivedUntilAnswered: a new order stores no
// authorization; its pending authorization (challenges, tokens, data,
// expiry) is derived from the order, and answering a challenge stores it
// once, with the outcome. A refused first write leaves it pending, and
// the client's retry validates and stores it.
func TestAuthorizationDerivedUntilAnswered(t *testing.T) {
	r, store, p, a, _ := readyOrder(t)
	ctx := context.Background()
	o, err := r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: "two.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	name := o.Status.Authorizations[0]
	var stored v1alpha1.AcmeChallenge
	if err := store.Get(ctx, o.Namespace, name, &stored); !storage.IsNotFound(err) {
		t.Fatalf("authorization stored with its order: %v", err)
	}
	az, err := r.Authorization(ctx, a, name)
	if err != nil {
		t.Fatal(err)
	}
	if az.Status.Status != acme.StatusPending || !az.Status.Expires.Equal(&o.Status.Expires) || az.Spec.Identifier.Value != "two.example" ||
		len(az.Status.Challenges) != len(o.Status.Offered[0].Challenges) || az.Status.Challenges[0].Token != o.Status.Offered[0].Challenges[0].Token ||
		az.Status.Challenges[0].Data.Content == "" {
		t.Fatalf("derived authorization %+v from offer %+v", az, o.Status.Offered[0])
	}
	if _, err := r.Authorization(ctx, a, o.Name+"-1"); err == nil {
		t.Fatal("an authorization the order does not offer was found")
	}
	store.failAuthzCreates.Store(true)
	got, _, err := r.RespondChallenge(ctx, p, a, ra.ChallengeID(name, 0))
	if err != nil || got.Status.Status != acme.StatusPending {
		t.Fatalf("answer with the write refused: %v %v, want still pending", got.Status.Status, err)
	}
	store.failAuthzCreates.Store(false)
	if got, _, err = r.RespondChallenge(ctx, p, a, ra.ChallengeID(name, 0)); err != nil || got.Status.Status != acme.StatusValid {
		t.Fatalf("retried answer: %v %v, want valid", got, err)
	}
	if err := store.Get(ctx, o.Namespace, name, &stored); err != nil || stored.Status.Status != acme.StatusValid ||
		stored.Spec.Order != o.Name || stored.Labels[v1alpha1.LabelOrder] != o.Name {
		t.Fatalf("stored authorization %+v: %v", stored, err)
	}
	if cur, err := r.Order(ctx, a, o.Name); err != nil || cur.Status.Status != acme.StatusReady {
		t.Fatalf("order after validation: %v %v", cur.Status.Status, err)
	}
	// Valid: every authorization is stored, so the offer is dropped.
	if done, err := r.Finalize(ctx, p, a, o.Name, csrFor(t, "two.example")); err != nil || done.Status.Status != acme.StatusValid {
		t.Fatalf("finalize: %v %v", done, err)
	}
	var valid v1alpha1.AcmeOrder
	if err := store.Get(ctx, o.Namespace, o.Name, &valid); err != nil || valid.Status.Status != acme.StatusValid || len(valid.Status.Offered) != 0 {
		t.Fatalf("stored valid order: %v offered %v (%v)", valid.Status.Status, valid.Status.Offered, err)
	}
	if got, err := r.Authorization(ctx, a, name); err != nil || got.Status.Status != acme.StatusValid {
		t.Fatalf("the valid order's authorization: %v %v", got, err)
	}
}

// TestFinalizeStoreUnavailable: a finalize that cannot store its certificate
// because the store is unavailable fails with ErrUnavailable (a 503 at the
// edge) and leaves the order ready; the retry issues one certificate.
func TestFinalizeStoreUnavailable(t *testing.T) {
	r, store, p, a, o := readyOrder(t)
	ctx := context.Background()
	store.unavailable.Store(1)
	_, err := r.Finalize(ctx, p, a, o.Name, csrFor(t, "www.example"))
	if !storage.IsUnavailable(err) {
		t.Fatalf("finalize with the store down: %v, want ErrUnavailable", err)
	}
	if cur, err := r.Order(ctx, a, o.Name); err != nil || cur.Status.Status != acme.StatusReady {
		t.Fatalf("order after the refused finalize: %v %v (want still ready)", cur.Status.Status, err)
	}
	done, err := r.Finalize(ctx, p, a, o.Name, csrFor(t, "www.example"))
	if err != nil || done.Status.Status != acme.StatusValid {
		t.Fatalf("retried finalize: %v %v", done, err)
	}
	if n := len(certificates(t, store)); n != 1 {
		t.Fatalf("%d certificates, want 1", n)
	}
}

// TestValidationOutcomeWhileStoreUnavailable: the outcome of a validation
// that ends while the store is unavailable is written once it is back.
func TestValidationOutcomeWhileStoreUnavailable(t *testing.T) {
	r, store, p, a, _ := readyOrder(t)
	ctx := context.Background()
	o, err := r.NewOrder(ctx, p, a, acme.NewOrderRequest{Identifiers: []acme.Identifier{{Type: "dns", Value: "later.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	store.unavailable.Store(3) // the first three attempts to record the outcome
	az, _, err := r.RespondChallenge(ctx, p, a, ra.ChallengeID(o.Status.Authorizations[0], 0))
	if err != nil {
		t.Fatal(err)
	}
	if az.Status.Status != acme.StatusValid {
		t.Fatalf("authorization is %s after the store came back, want valid", az.Status.Status)
	}
}
