// Package ra holds the use cases that change ACME state: accounts, orders,
// validation, finalization, revocation. It owns every write; the front end
// only reads through it. It calls the validator, the CA and storage through
// small interfaces.
package ra

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/api/v1alpha1"
)

// SecretReader returns the EAB HMAC key of a pre-registered account, as
// stored (base64url).
type SecretReader interface {
	EABKey(ctx context.Context, a *v1alpha1.AcmeAccount) ([]byte, error)
}

// Options configure the RA.
type Options struct {
	Store     storage.Store
	Validator va.Validator
	Secrets   SecretReader
	Audit     *audit.Logger
	Log       *slog.Logger
	// Namespace accounts registered over ACME are stored in; every other
	// object lives in its account's namespace (a pre-registered AcmeAccount
	// keeps its own).
	Namespace string
	// MaxConcurrentValidations bounds validation work. Default 64.
	MaxConcurrentValidations int
	// MaxValidationsPerAccount bounds how many of those one account's
	// challenges may hold at once (the others wait without taking a slot), so
	// that one account pointing many challenges at slow targets cannot stall
	// everyone's validations. Default 8.
	MaxValidationsPerAccount int
	// SyncWait is how long a challenge response or finalize waits for the
	// asynchronous work before answering "processing". Default 5s.
	SyncWait time.Duration
	// Now is the clock (tests).
	Now func() time.Time
	// Metrics records validations and issuance (nil records nothing).
	Metrics *metrics.Metrics
	// CloseWait bounds how long Close waits for background work. Default 5s.
	CloseWait time.Duration
	// AccountURL is an account's URL as its clients know it (the CAA
	// accounturi parameter must equal it). Default: none, so that no
	// accounturi matches.
	AccountURL func(p *profile.Profile, account string) string
}

// RA implements the ACME use cases.
type RA struct {
	store     storage.Store
	va        va.Validator
	secrets   SecretReader
	audit     *audit.Logger
	log       *slog.Logger
	ns        string
	syncWait  time.Duration
	now       func() time.Time
	config    atomic.Pointer[profile.Config]
	sem       chan struct{}
	perAcct   keyedSemaphore // validations per account (MaxValidationsPerAccount)
	wg        sync.WaitGroup
	baseCtx   context.Context
	cancel    context.CancelFunc
	keyLocks  keyedMutex
	jobsMu    sync.Mutex
	jobs      map[string]*validationJob
	orphans   map[string]time.Time // processing challenges of other replicas, first seen (AdoptValidations)
	metrics   *metrics.Metrics
	closeWait time.Duration
	acctURL   func(p *profile.Profile, account string) string
	crls      crlCache   // the last CRL signed per CA key (CRL)
	usage     usageCache // what the order limits counted per account
}

// New returns an RA serving cfg.
func New(cfg *profile.Config, o Options) *RA {
	if o.MaxConcurrentValidations <= 0 {
		o.MaxConcurrentValidations = 64
	}
	if o.MaxValidationsPerAccount <= 0 {
		o.MaxValidationsPerAccount = 8
	}
	if o.SyncWait == 0 {
		o.SyncWait = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CloseWait <= 0 {
		o.CloseWait = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Audit == nil {
		o.Audit = audit.New(o.Log)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &RA{
		store: o.Store, va: o.Validator, secrets: o.Secrets, audit: o.Audit, log: o.Log, ns: o.Namespace,
		syncWait: o.SyncWait, now: o.Now, sem: make(chan struct{}, o.MaxConcurrentValidations),
		perAcct: keyedSemaphore{size: o.MaxValidationsPerAccount},
		baseCtx: ctx, cancel: cancel, jobs: map[string]*validationJob{}, metrics: o.Metrics, closeWait: o.CloseWait,
		acctURL: o.AccountURL,
	}
	if o.Metrics != nil {
		r.store = countingStore{Store: o.Store, m: o.Metrics}
	}
	r.SetConfig(cfg)
	return r
}

// SetConfig swaps the served profiles (configuration reload).
func (r *RA) SetConfig(cfg *profile.Config) {
	r.config.Store(cfg)
	notAfter := map[string]time.Time{}
	for name, a := range cfg.Authorities {
		notAfter[name] = a.Cert.NotAfter
	}
	r.metrics.CAs(notAfter)
}

// countingStore counts the writes (kacme_storage_writes_total).
type countingStore struct {
	storage.Store
	m *metrics.Metrics
}

func (s countingStore) count(obj storage.Object, op string, err error) error {
	if err == nil {
		kind, _ := storage.KindOf(obj)
		s.m.StorageWrite(kind, op)
	}
	return err
}

func (s countingStore) Create(ctx context.Context, obj storage.Object) error {
	return s.count(obj, "create", s.Store.Create(ctx, obj))
}

func (s countingStore) Update(ctx context.Context, obj storage.Object) error {
	return s.count(obj, "update", s.Store.Update(ctx, obj))
}

func (s countingStore) Delete(ctx context.Context, obj storage.Object) error {
	return s.count(obj, "delete", s.Store.Delete(ctx, obj))
}

// Config returns the served profiles.
func (r *RA) Config() *profile.Config { return r.config.Load() }

// Profile returns a served profile.
func (r *RA) Profile(name string) (*profile.Profile, bool) {
	p, ok := r.config.Load().Profiles[name]
	return p, ok
}

// Close stops background work: running validations are cancelled (one
// stored as processing is resumed by the next start, or adopted by another
// replica) and nothing more is written. It waits for the work to end for at
// most CloseWait, so that a stuck step cannot hold shutdown up.
func (r *RA) Close() {
	r.cancel()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(r.closeWait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		r.log.Error("background work did not stop in time; closing anyway", "waited", r.closeWait)
	}
}

func (r *RA) nowUTC() time.Time { return r.now().UTC().Truncate(time.Second) }

// notFound is the answer for missing and for other accounts' resources alike (RFC 8555 §10.5).
func notFound(kind string) *acme.Problem { return acme.NotFoundProblem("%s does not exist", kind) }

// get loads an object, mapping not-found to a 404 problem.
func (r *RA) get(ctx context.Context, ns, name string, obj storage.Object, kind string) error {
	if err := r.store.Get(ctx, ns, name, obj); err != nil {
		if storage.IsNotFound(err) {
			return notFound(kind)
		}
		return fmt.Errorf("load %s %s: %w", kind, name, err)
	}
	return nil
}

// retry runs a read-modify-write until it does not conflict, for up to 5
// s. Two writers racing resolve at the first retry; a longer run of
// conflicts means this process reads a stale copy (its cache is catching up
// after a watch broke, or a write whose answer was lost did happen), so the
// retries back off from 5 ms to 250 ms to let the copy catch up instead of
// failing the request at once; after 5 s the error is ErrUnavailable.
func retry(ctx context.Context, fn func() error) error {
	deadline := time.Now().Add(5 * time.Second)
	wait := 5 * time.Millisecond
	for i := 0; ; i++ {
		err := fn()
		if err == nil || !storage.IsConflict(err) {
			return err
		}
		if time.Now().After(deadline) {
			// Still stale: a transient state, answered as such (503 with
			// Retry-After), not as an internal error.
			return fmt.Errorf("%w: the stored copy stayed stale for 5 s: %w", storage.ErrUnavailable, err)
		}
		if i == 0 {
			continue // the common race: the re-read sees the winner
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// StoreOutage is how long work that runs outside any request (recording a
// validation's outcome) keeps retrying while the store is unavailable. The
// validation job stays registered meanwhile, so a client that retries its
// challenge joins it instead of starting another.
const StoreOutage = 5 * time.Minute

// retryUnavailable runs fn again, with backoff from 250 ms to 5 s, while it
// fails with storage.ErrUnavailable, for up to StoreOutage.
func retryUnavailable(ctx context.Context, log *slog.Logger, fn func() error) error {
	deadline := time.Now().Add(StoreOutage)
	wait := 250 * time.Millisecond
	for {
		err := fn()
		if !storage.IsUnavailable(err) || time.Now().Add(wait).After(deadline) {
			return err
		}
		log.Warn("store unavailable, retrying", "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// keyedMutex serialises work per key (account creation per key thumbprint).
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	sync.Mutex
	refs int
}

func (k *keyedMutex) Lock(key string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyLock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// keyedSemaphore is a semaphore of size per key (an account's validations);
// keys with no holder or waiter are forgotten.
type keyedSemaphore struct {
	size int
	mu   sync.Mutex
	sems map[string]*keySem
}

type keySem struct {
	ch   chan struct{}
	refs int
}

// acquire takes one of key's slots, or gives up when ctx ends; release
// returns it (call it only after acquire succeeded).
func (k *keyedSemaphore) acquire(ctx context.Context, key string) (release func(), ok bool) {
	k.mu.Lock()
	if k.sems == nil {
		k.sems = map[string]*keySem{}
	}
	s := k.sems[key]
	if s == nil {
		s = &keySem{ch: make(chan struct{}, k.size)}
		k.sems[key] = s
	}
	s.refs++
	k.mu.Unlock()
	done := func() {
		k.mu.Lock()
		if s.refs--; s.refs == 0 {
			delete(k.sems, key)
		}
		k.mu.Unlock()
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch; done() }, true
	case <-ctx.Done():
		done()
		return nil, false
	}
}

var b64url = base64.RawURLEncoding

const defaultAuthzLifetime = 24 * time.Hour

// accountURLOf is the URL of account under profile profileName ("" when
// the RA has no AccountURL option or the profile is not served): what
// dns-account-01 scopes its record name by and CAA's accounturi names.
func (r *RA) accountURLOf(profileName, account string) string {
	if r.acctURL == nil {
		return ""
	}
	p, ok := r.Profile(profileName)
	if !ok {
		return ""
	}
	return r.acctURL(p, account)
}
