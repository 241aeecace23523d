package ra

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"

	jose "github.com/go-jose/go-jose/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Binding is a parsed external account binding whose MAC is still to be checked.
type Binding interface {
	// KeyID is the EAB kid.
	KeyID() string
	// Verify checks the MAC with the HMAC key; the error is for the log.
	Verify(hmacKey []byte) error
	// Raw is the JWS as sent, echoed back once verified.
	Raw() string
}

// Contact bounds: a handful of addresses, each at most an addr-spec's
// 254 octets (RFC 5321 §4.5.3.1.3 path limit less the angle brackets).
const (
	maxContacts      = 10
	maxContactOctets = 254
)

// ValidateContacts applies RFC 8555 §7.3 contact rules: mailto only, one
// plain addr-spec each, no hfields (ACC-06), and bounded sizes.
func ValidateContacts(contacts []string) *acme.Problem {
	if len(contacts) > maxContacts {
		return acme.InvalidContactProblem("at most %d contacts are accepted", maxContacts)
	}
	for _, c := range contacts {
		if len(c) > len("mailto:")+maxContactOctets {
			return acme.InvalidContactProblem("contact %q… is %d octets long; an address may be at most %d", c[:32], len(c), maxContactOctets)
		}
		scheme, addr, ok := strings.Cut(c, ":")
		if !ok || !strings.EqualFold(scheme, "mailto") {
			return acme.UnsupportedContactProblem("contact %q: only mailto: URIs are supported", c)
		}
		if strings.ContainsAny(addr, "?,;<>\" \t\r\n%") || addr == "" {
			return acme.InvalidContactProblem("contact %q: must be a single email address without parameters", c)
		}
		a, err := mail.ParseAddress(addr)
		if err != nil || a.Address != addr || a.Name != "" {
			return acme.InvalidContactProblem("contact %q is not a valid email address", c)
		}
		local, domain, _ := strings.Cut(addr, "@")
		if local == "" || !strings.Contains(domain, ".") || strings.HasSuffix(domain, ".") {
			return acme.InvalidContactProblem("contact %q must have a fully qualified domain", c)
		}
	}
	return nil
}

// AccountKey parses the account's stored public key. Keys are parsed once
// and kept (accountKeys): every request signed with a kid needs its
// account's key, several times over.
func AccountKey(a *v1alpha1.AcmeAccount) (*jose.JSONWebKey, error) {
	k, err := accountKeys.parse(a.Spec.Key)
	if err != nil {
		return nil, fmt.Errorf("account %s: stored key: %w", a.Name, err)
	}
	return k, nil
}

// maxParsedKeys bounds keyCache: a few hundred kilobytes of keys.
const maxParsedKeys = 4096

// keyCache holds parsed JWKs by their stored JSON. The JSON is the key, so
// a key change (RFC 8555 §7.3.5) is a new entry and never answered by the
// old one; when full, it starts again empty.
type keyCache struct {
	mu   sync.Mutex
	keys map[string]*jose.JSONWebKey
}

var accountKeys keyCache

// parse returns a copy of the cached key (callers may change theirs).
func (c *keyCache) parse(keyJSON string) (*jose.JSONWebKey, error) {
	c.mu.Lock()
	k, ok := c.keys[keyJSON]
	c.mu.Unlock()
	if !ok {
		k = new(jose.JSONWebKey)
		if err := k.UnmarshalJSON([]byte(keyJSON)); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.keys == nil || len(c.keys) >= maxParsedKeys {
			c.keys = make(map[string]*jose.JSONWebKey)
		}
		c.keys[keyJSON] = k
		c.mu.Unlock()
	}
	cp := *k
	return &cp, nil
}

// thumbprint is the RFC 7638 thumbprint of a stored JWK ("" if unparseable).
func thumbprint(keyJSON string) string {
	k, err := accountKeys.parse(keyJSON)
	if err != nil {
		return ""
	}
	tp, _ := acme.Thumbprint(k)
	return tp
}

// Account loads an account of profile p by ID.
func (r *RA) Account(ctx context.Context, p *profile.Profile, id string) (*v1alpha1.AcmeAccount, error) {
	var a v1alpha1.AcmeAccount
	if err := r.store.Get(ctx, storage.AllNamespaces, id, &a); err != nil {
		if storage.IsNotFound(err) {
			return nil, acme.AccountDoesNotExistProblem("account does not exist")
		}
		return nil, err
	}
	if a.Spec.Profile != p.Name || a.Spec.Key == "" {
		return nil, acme.AccountDoesNotExistProblem("account does not exist")
	}
	return &a, nil
}

// accountByKey finds the account of profile p holding key (any status).
func (r *RA) accountByKey(ctx context.Context, p *profile.Profile, tpLabel string) (*v1alpha1.AcmeAccount, error) {
	var list v1alpha1.AcmeAccountList
	err := r.store.List(ctx, storage.AllNamespaces, &list, storage.ListOptions{Labels: map[string]string{
		v1alpha1.LabelKeyThumbprint: tpLabel, v1alpha1.LabelProfile: p.Name}})
	if err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, nil
	}
	return &list.Items[0], nil
}

// NewAccount registers key on profile p, or returns its existing account
// (created=false) as RFC 8555 §7.3.1 requires.
func (r *RA) NewAccount(ctx context.Context, p *profile.Profile, key *jose.JSONWebKey, req acme.NewAccountRequest, b Binding) (*v1alpha1.AcmeAccount, bool, error) {
	tp, err := acme.ThumbprintLabel(key)
	if err != nil {
		return nil, false, acme.BadPublicKeyProblem("cannot compute key thumbprint")
	}
	unlock := r.keyLocks.Lock(p.Name + "/" + tp)
	defer unlock()
	existing, err := r.accountByKey(ctx, p, tp)
	if err != nil {
		return nil, false, err
	}
	if existing != nil {
		if existing.Spec.State != acme.StatusValid || existing.Spec.Deactivated {
			return nil, false, acme.UnauthorizedProblem("the account for this key is %s", existing.Spec.State)
		}
		return existing, false, nil
	}
	if req.OnlyReturnExisting {
		return nil, false, acme.AccountDoesNotExistProblem("no account exists for this key")
	}
	if p.Spec.TermsOfService != "" && !req.TermsOfServiceAgreed {
		return nil, false, acme.UserActionRequiredProblem(p.Spec.TermsOfService, "you must agree to the terms of service at %s", p.Spec.TermsOfService)
	}
	if pr := ValidateContacts(req.Contact); pr != nil {
		return nil, false, pr
	}
	if b == nil && p.EABRequired() {
		return nil, false, acme.ExternalAccountRequiredProblem("this directory requires an external account binding")
	}
	keyJSON, err := key.MarshalJSON()
	if err != nil {
		return nil, false, err
	}
	now := metav1.NewTime(r.nowUTC())
	if b != nil {
		a, err := r.bindAccount(ctx, p, b, tp, string(keyJSON), req)
		return a, err == nil, err
	}
	ip := clientIP(ctx)
	unlockIP := r.keyLocks.Lock("accounts-from/" + ip)
	defer unlockIP()
	if err := r.checkAccountLimit(ctx, p, ip); err != nil {
		return nil, false, err
	}
	a := &v1alpha1.AcmeAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.accountNamespace(p), Name: acme.NewID(), Labels: map[string]string{
			v1alpha1.LabelKeyThumbprint: tp, v1alpha1.LabelProfile: p.Name}},
		Spec: v1alpha1.AcmeAccountSpec{Profile: p.Name, Contact: req.Contact, State: acme.StatusValid, Key: string(keyJSON),
			KeyThumbprint: thumbprint(string(keyJSON)), TermsOfServiceAgreed: req.TermsOfServiceAgreed, CreatedAt: &now},
	}
	if ip != "" {
		a.Labels[v1alpha1.LabelClientIP] = ClientIPLabel(ip)
	}
	if err := r.store.Create(ctx, a); err != nil {
		return nil, false, fmt.Errorf("create account: %w", err)
	}
	r.audit.Record(ctx, audit.AccountCreated, slog.String("account", a.Name), slog.String("profile", p.Name),
		slog.String("keyThumbprint", tp), slog.Any("contact", a.Spec.Contact))
	return a, true, nil
}

// bindAccount binds key to the pre-provisioned account holding the EAB key
// (RFC 8555 §7.3.4 step 3–4); a binding key is usable once.
func (r *RA) bindAccount(ctx context.Context, p *profile.Profile, b Binding, tp, keyJSON string, req acme.NewAccountRequest) (*v1alpha1.AcmeAccount, error) {
	var list v1alpha1.AcmeAccountList
	err := r.store.List(ctx, storage.AllNamespaces, &list, storage.ListOptions{Labels: map[string]string{
		v1alpha1.LabelEABKeyID: v1alpha1.EABKeyLabel(b.KeyID())}})
	if err != nil {
		return nil, err
	}
	var a *v1alpha1.AcmeAccount
	for i := range list.Items {
		it := &list.Items[i]
		if it.Spec.ExternalAccountBinding != nil && it.Spec.ExternalAccountBinding.KeyID == b.KeyID() && it.Spec.Profile == p.Name {
			a = it
		}
	}
	// An unknown key ID, a key that cannot be read and a wrong MAC get one
	// answer, after the same work (a MAC check), so that probing key IDs
	// learns nothing; the log says which it was.
	var why error
	if a == nil {
		why = errors.New("unknown key ID")
		_ = b.Verify(decoyHMACKey)
	} else if raw, err := r.secrets.EABKey(ctx, a); err != nil {
		why = fmt.Errorf("the HMAC key is not available: %w", err)
		_ = b.Verify(decoyHMACKey)
	} else if hmacKey, err := decodeHMACKey(raw); err != nil {
		why = err
		_ = b.Verify(decoyHMACKey)
	} else {
		why = b.Verify(hmacKey)
	}
	if why != nil {
		r.log.Info("external account binding refused", "profile", p.Name, "eabKeyID", truncateID(b.KeyID()), "reason", why)
		return nil, acme.UnauthorizedProblem("the external account binding does not verify: its key ID is unknown, or its MAC " +
			"was not made with that key ID's HMAC key (HS384 and HS512 need keys of at least 48 and 64 bytes; use HS256 with a 32-byte key)")
	}
	if a.Spec.Key != "" || a.Spec.State != "" {
		return nil, acme.UnauthorizedProblem("external account binding key %q has already been used", b.KeyID())
	}
	now := metav1.NewTime(r.nowUTC())
	if a.Labels == nil {
		a.Labels = map[string]string{}
	}
	a.Labels[v1alpha1.LabelKeyThumbprint] = tp
	a.Labels[v1alpha1.LabelProfile] = p.Name
	if len(req.Contact) > 0 {
		a.Spec.Contact = req.Contact
	}
	// Field by field: the controller's counts and conditions stay.
	a.Spec.State, a.Spec.Key, a.Spec.KeyThumbprint = acme.StatusValid, keyJSON, thumbprint(keyJSON)
	a.Spec.TermsOfServiceAgreed, a.Spec.Binding, a.Spec.BoundAt, a.Spec.CreatedAt = req.TermsOfServiceAgreed, b.Raw(), &now, &now
	if err := r.store.Update(ctx, a); err != nil {
		if storage.IsConflict(err) {
			return nil, acme.UnauthorizedProblem("external account binding key %q has already been used", b.KeyID())
		}
		return nil, err
	}
	r.audit.Record(ctx, audit.AccountBound, slog.String("account", a.Name), slog.String("profile", p.Name),
		slog.String("eabKeyID", b.KeyID()), slog.String("keyThumbprint", tp))
	return a, nil
}

// decoyHMACKey is MAC'd against when there is no real key to check with.
var decoyHMACKey = func() []byte {
	k := make([]byte, 64)
	_, _ = rand.Read(k)
	return k
}()

// truncateID bounds a client-chosen key ID in logs.
func truncateID(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func decodeHMACKey(raw []byte) ([]byte, error) {
	s := strings.TrimSpace(string(raw))
	k, err := b64url.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("EAB HMAC key must be base64url: %w", err)
	}
	if len(k) < 32 {
		return nil, fmt.Errorf("EAB HMAC key is shorter than 256 bits (RFC 7518 §3.2 requires at least the hash size)")
	}
	return k, nil
}

// UpdateAccount applies an account update (RFC 8555 §7.3.2) or deactivation (§7.3.6).
func (r *RA) UpdateAccount(ctx context.Context, a *v1alpha1.AcmeAccount, req acme.AccountUpdateRequest) (*v1alpha1.AcmeAccount, error) {
	if req.Status != "" && req.Status != acme.StatusDeactivated && req.Status != acme.StatusValid {
		return nil, acme.MalformedProblem("status may only be set to %q", acme.StatusDeactivated)
	}
	if req.Contact != nil {
		if pr := ValidateContacts(*req.Contact); pr != nil {
			return nil, pr
		}
	}
	deactivate := req.Status == acme.StatusDeactivated
	if req.Contact == nil && !deactivate {
		return a, nil
	}
	var out *v1alpha1.AcmeAccount
	err := retry(ctx, func() error {
		var cur v1alpha1.AcmeAccount
		if err := r.get(ctx, a.Namespace, a.Name, &cur, "account"); err != nil {
			return err
		}
		if cur.Spec.State != acme.StatusValid {
			return acme.DeactivatedProblem("account is %s", cur.Spec.State)
		}
		if req.Contact != nil {
			cur.Spec.Contact = *req.Contact
		}
		if deactivate {
			cur.Spec.State = acme.StatusDeactivated
		}
		if err := r.store.Update(ctx, &cur); err != nil {
			return err
		}
		out = &cur
		return nil
	})
	if err != nil {
		return nil, err
	}
	if deactivate {
		r.deactivated(ctx, out, "account")
	} else {
		r.audit.Record(ctx, audit.AccountUpdated, slog.String("account", a.Name), slog.Any("contact", out.Spec.Contact))
	}
	return out, nil
}

// DeactivateRequested carries out spec.deactivated, set by an administrator
// on a valid account: its ACME status becomes deactivated (final, RFC 8555
// §7.3.6), its pending orders are cancelled, and the audit log records it.
// It reports whether this call made the change (replicas all try; one
// succeeds, through compare-and-swap).
func (r *RA) DeactivateRequested(ctx context.Context, ns, name string) (bool, error) {
	return r.deactivateStored(ctx, ns, name, "spec.deactivated", func(a *v1alpha1.AcmeAccount) bool { return a.Spec.Deactivated })
}

// DeactivateAsAdmin deactivates a valid account for an administrator (the
// dashboard) as spec.deactivated does, setting it too; by names the
// administrator. It reports whether this call deactivated it.
func (r *RA) DeactivateAsAdmin(ctx context.Context, ns, name, by string) (bool, error) {
	return r.deactivateStored(ctx, ns, name, by, func(a *v1alpha1.AcmeAccount) bool {
		a.Spec.Deactivated = true
		return true
	})
}

// deactivateStored deactivates a valid account when want (which may also
// change it) says so, in one compare-and-swap, then records it.
func (r *RA) deactivateStored(ctx context.Context, ns, name, by string, want func(*v1alpha1.AcmeAccount) bool) (bool, error) {
	var out *v1alpha1.AcmeAccount
	err := retry(ctx, func() error {
		out = nil
		var cur v1alpha1.AcmeAccount
		if err := r.get(ctx, ns, name, &cur, "account"); err != nil {
			return err
		}
		if cur.Spec.State != acme.StatusValid || !want(&cur) {
			return nil
		}
		cur.Spec.State = acme.StatusDeactivated
		if err := r.store.Update(ctx, &cur); err != nil {
			return err
		}
		out = &cur
		return nil
	})
	if err != nil || out == nil {
		return false, err
	}
	r.deactivated(ctx, out, by)
	return true, nil
}

// deactivated records a deactivation (by the account holder or by an
// administrator) and cancels the account's pending orders.
func (r *RA) deactivated(ctx context.Context, a *v1alpha1.AcmeAccount, by string) {
	r.audit.Record(ctx, audit.AccountDeactivated, slog.String("account", a.Name), slog.String("namespace", a.Namespace), slog.String("by", by))
	r.cancelPendingOrders(ctx, a)
}

// ChangeKey rolls the account over to newKey (RFC 8555 §7.3.5 steps 7–9).
// accountURL is the outer kid; kcAccount and oldKey come from the inner JWS.
func (r *RA) ChangeKey(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, kcAccount, accountURL string, oldKey, newKey *jose.JSONWebKey, urlOf func(id string) string) error {
	if kcAccount != accountURL {
		return acme.MalformedProblem("keyChange account does not match the request's kid")
	}
	cur, err := AccountKey(a)
	if err != nil {
		return err
	}
	curTP, _ := acme.Thumbprint(cur)
	oldTP, err := acme.Thumbprint(oldKey)
	if err != nil || oldTP != curTP {
		return acme.MalformedProblem("keyChange oldKey is not the account's current key")
	}
	newTP, err := acme.ThumbprintLabel(newKey)
	if err != nil {
		return acme.BadPublicKeyProblem("cannot compute new key thumbprint")
	}
	unlock := r.keyLocks.Lock(p.Name + "/" + newTP)
	defer unlock()
	if other, err := r.accountByKey(ctx, p, newTP); err != nil {
		return err
	} else if other != nil {
		return acme.ConflictProblem(urlOf(other.Name), "the new key is already in use by another account")
	}
	keyJSON, err := newKey.MarshalJSON()
	if err != nil {
		return err
	}
	err = retry(ctx, func() error {
		var latest v1alpha1.AcmeAccount
		if err := r.get(ctx, a.Namespace, a.Name, &latest, "account"); err != nil {
			return err
		}
		if latest.Spec.Key != a.Spec.Key {
			return acme.MalformedProblem("the account key changed concurrently")
		}
		latest.Spec.Key, latest.Spec.KeyThumbprint = string(keyJSON), thumbprint(string(keyJSON))
		latest.Labels[v1alpha1.LabelKeyThumbprint] = newTP
		return r.store.Update(ctx, &latest)
	})
	if err != nil {
		return err
	}
	r.audit.Record(ctx, audit.AccountRekeyed, slog.String("account", a.Name), slog.String("newKeyThumbprint", newTP))
	return nil
}

// cancelPendingOrders invalidates the pending and ready orders of a
// deactivated account (RFC 8555 §7.3.6 SHOULD); issued certificates stay valid.
func (r *RA) cancelPendingOrders(ctx context.Context, a *v1alpha1.AcmeAccount) {
	orders, err := storage.ListSummaries(ctx, r.store, a.Namespace, "AcmeOrder", map[string]string{v1alpha1.LabelAccount: a.Name})
	if err != nil {
		r.log.Error("list orders of a deactivated account", "account", a.Name, "err", err)
		return
	}
	for _, o := range orders {
		if o.Status == acme.StatusPending {
			r.failOrder(ctx, a.Namespace, o.Name, &v1alpha1.Problem{Type: string(acme.Unauthorized), Status: 403,
				Detail: "the account was deactivated"})
		}
	}
}

// accountNamespace is where an account registered over ACME on p is stored.
func (r *RA) accountNamespace(p *profile.Profile) string {
	if p.Spec.AccountNamespace != "" {
		return p.Spec.AccountNamespace
	}
	return r.ns
}
