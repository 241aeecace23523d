package ra

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// An order's authorizations are not stored when the order is: the order
// records what each offers (status.offered: identifier, challenge types and
// tokens), and a pending authorization is derived from it on every read.
// An authorization is stored as an AcmeChallenge the first time something
// happens to it — a challenge answered (with the validation's outcome, or
// "processing" when the client must be told so), a deactivation — so one
// single-name issuance writes the authorization once, not twice.
//
// Its name, "<order>-<index>", says which order to derive it from. A
// derived authorization looks exactly as the stored pending one would: same
// name, labels, owner, expiry (the order's), challenges and their data.

// authzName names authorization i of order: "<order>-<i>".
func authzName(order string, i int) string { return order + "-" + strconv.Itoa(i) }

// splitAuthzName is the order and index of a derivable authorization name.
func splitAuthzName(name string) (order string, i int, ok bool) {
	j := strings.LastIndexByte(name, '-')
	if j <= 0 || j == len(name)-1 || len(name)-j > 5 {
		return "", 0, false
	}
	i, err := strconv.Atoi(name[j+1:])
	if err != nil || i < 0 {
		return "", 0, false
	}
	return name[:j], i, true
}

// offer builds the order's record of authorization i: the challenges the
// identifier allows (wildcards only dns-01 and dns-account-01 (BR), ip neither (RFC 8738
// §7)), each with a fresh token.
func offer(types []v1alpha1.ChallengeType, order string, i int, id acme.Identifier) v1alpha1.OfferedAuthorization {
	oa := v1alpha1.OfferedAuthorization{Name: authzName(order, i), Identifier: v1alpha1.Identifier{Type: id.Type, Value: id.Value}}
	if base, ok := strings.CutPrefix(id.Value, "*."); ok {
		oa.Identifier.Value, oa.Wildcard = base, true
	}
	for _, t := range types {
		if (oa.Wildcard && !t.IsDNS()) || (id.Type == acme.IdentifierIP && t.IsDNS()) {
			continue
		}
		oa.Challenges = append(oa.Challenges, v1alpha1.OfferedChallenge{Type: t, Token: acme.NewToken()})
	}
	return oa
}

// derive is the pending authorization the order offered under name, as it
// would have been stored; ok is false when the order offered none so named.
func derive(o *v1alpha1.AcmeOrder, name string, key *jose.JSONWebKey, acctURL string) (az *v1alpha1.AcmeChallenge, ok bool, err error) {
	var oa *v1alpha1.OfferedAuthorization
	for i := range o.Status.Offered {
		if o.Status.Offered[i].Name == name {
			oa = &o.Status.Offered[i]
			break
		}
	}
	if oa == nil {
		return nil, false, nil
	}
	az = &v1alpha1.AcmeChallenge{
		ObjectMeta: metav1.ObjectMeta{Namespace: o.Namespace, Name: name, Labels: map[string]string{
			v1alpha1.LabelAccount: o.Spec.Account, v1alpha1.LabelOrder: o.Name, v1alpha1.LabelProfile: o.Spec.Profile}},
		Spec: v1alpha1.AcmeChallengeSpec{Account: o.Spec.Account, Order: o.Name, Profile: o.Spec.Profile,
			Identifier: oa.Identifier, Wildcard: oa.Wildcard},
		Status: v1alpha1.AcmeChallengeStatus{Status: acme.StatusPending, Expires: o.Status.Expires},
	}
	if o.UID != "" {
		// Deleting the order deletes its stored authorizations.
		az.OwnerReferences = []metav1.OwnerReference{{APIVersion: v1alpha1.GroupVersion.String(), Kind: "AcmeOrder",
			Name: o.Name, UID: o.UID}}
	}
	az.CreationTimestamp = o.CreationTimestamp
	for _, c := range oa.Challenges {
		keyAuth, err := acme.KeyAuthorization(c.Token, key)
		if err != nil {
			return nil, false, err
		}
		az.Status.Challenges = append(az.Status.Challenges, v1alpha1.AcmeChallengeState{Type: c.Type, Token: c.Token,
			Status: acme.StatusPending, Data: challengeData(c.Type, oa.Identifier.Value, c.Token, keyAuth, acctURL)})
	}
	return az, true, nil
}

// loadAuthorization reads authorization name in ns: the stored AcmeChallenge
// (stored true), else the pending one derived from its order. key is the
// account's key (for the challenges' data); o, when not nil, is the order
// already read. A name that is neither is storage.ErrNotFound.
func (r *RA) loadAuthorization(ctx context.Context, ns, name string, o *v1alpha1.AcmeOrder, key *jose.JSONWebKey) (az *v1alpha1.AcmeChallenge, stored bool, err error) {
	var cur v1alpha1.AcmeChallenge
	err = r.store.Get(storage.ExpectMiss(ctx), ns, name, &cur)
	if err == nil {
		return &cur, true, nil
	}
	if !storage.IsNotFound(err) {
		return nil, false, fmt.Errorf("load authorization %s: %w", name, err)
	}
	missing := fmt.Errorf("authorization %s/%s: %w", ns, name, storage.ErrNotFound)
	orderName, _, ok := splitAuthzName(name)
	if !ok {
		return nil, false, missing
	}
	if o == nil || o.Name != orderName || o.Namespace != ns {
		var read v1alpha1.AcmeOrder
		if err := r.store.Get(ctx, ns, orderName, &read); err != nil {
			if storage.IsNotFound(err) {
				return nil, false, missing
			}
			return nil, false, fmt.Errorf("load order %s: %w", orderName, err)
		}
		o = &read
	}
	az, ok, err = derive(o, name, key, r.accountURLOf(o.Spec.Profile, o.Spec.Account))
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, missing
	}
	return az, false, nil
}

// storeAuthorization writes az: an update when it is stored, else its
// first write (a create). A create that finds it stored meanwhile (another
// replica answered or deactivated it) is a conflict: retry reads it again.
func (r *RA) storeAuthorization(ctx context.Context, az *v1alpha1.AcmeChallenge, stored bool) error {
	if stored {
		return r.store.Update(ctx, az)
	}
	az.CreationTimestamp = metav1.Time{}
	if err := r.store.Create(ctx, az); err != nil {
		if storage.IsAlreadyExists(err) {
			return fmt.Errorf("authorization %s: %w", az.Name, storage.ErrConflict)
		}
		return err
	}
	return nil
}

// OrderAuthorizations loads every authorization of order o, stored or
// derived (for views such as the dashboard's order page); one that is
// neither (deleted) is left out.
func (r *RA) OrderAuthorizations(ctx context.Context, o *v1alpha1.AcmeOrder) ([]*v1alpha1.AcmeChallenge, error) {
	var key *jose.JSONWebKey
	if len(o.Status.Offered) > 0 {
		var a v1alpha1.AcmeAccount
		if err := r.store.Get(ctx, o.Namespace, o.Spec.Account, &a); err != nil {
			return nil, fmt.Errorf("load account %s: %w", o.Spec.Account, err)
		}
		k, err := AccountKey(&a)
		if err != nil {
			return nil, err
		}
		key = k
	}
	var out []*v1alpha1.AcmeChallenge
	for _, name := range o.Status.Authorizations {
		az, _, err := r.loadAuthorization(ctx, o.Namespace, name, o, key)
		if storage.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		r.expire(az)
		out = append(out, az)
	}
	return out, nil
}

// NewAuthorization creates a pre-authorization (RFC 8555 §7.4.1): a pending
// authorization of id for the account, stored at once (no order derives
// it) with no order, that a later order of the account uses once it is
// valid (reusableAuthorizations). The profile must offer it
// (spec.preAuthorization); a wildcard cannot be pre-authorized (§7.4.1), and
// an identifier the policy refuses is a 403 rejectedIdentifier.
func (r *RA) NewAuthorization(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, id acme.Identifier) (*v1alpha1.AcmeChallenge, error) {
	if !p.Spec.PreAuthorization {
		return nil, acme.NotFoundProblem("this directory does not offer pre-authorization (newAuthz)")
	}
	if strings.HasPrefix(id.Value, "*.") {
		return nil, acme.MalformedProblem("a wildcard identifier cannot be pre-authorized (RFC 8555 §7.4.1); place an order for it")
	}
	ids, pr := r.checkIdentifiers(p, a.Spec.AllowedIdentifiers, []acme.Identifier{id})
	if pr != nil {
		pr.Status = http.StatusForbidden // §7.4.1: unwilling to pre-authorize
		return nil, pr
	}
	key, err := AccountKey(a)
	if err != nil {
		return nil, err
	}
	unlock := r.keyLocks.Lock("orders/" + a.Namespace + "/" + a.Name)
	defer unlock()
	if err := r.checkOrderLimits(ctx, p, a, 1); err != nil {
		return nil, err
	}
	now := r.nowUTC()
	name := acme.NewID()
	oa := offer(p.ChallengeTypes, name, 0, ids[0])
	az := &v1alpha1.AcmeChallenge{
		// The empty order label is how retention finds pre-authorizations.
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: name, Labels: map[string]string{
			v1alpha1.LabelAccount: a.Name, v1alpha1.LabelProfile: p.Name, v1alpha1.LabelOrder: ""}},
		Spec:   v1alpha1.AcmeChallengeSpec{Account: a.Name, Profile: p.Name, Identifier: oa.Identifier},
		Status: v1alpha1.AcmeChallengeStatus{Status: acme.StatusPending, Expires: metav1.NewTime(now.Add(p.OrderLifetime))},
	}
	acctURL := r.accountURLOf(p.Name, a.Name)
	for _, c := range oa.Challenges {
		keyAuth, err := acme.KeyAuthorization(c.Token, key)
		if err != nil {
			return nil, err
		}
		az.Status.Challenges = append(az.Status.Challenges, v1alpha1.AcmeChallengeState{Type: c.Type, Token: c.Token,
			Status: acme.StatusPending, Data: challengeData(c.Type, oa.Identifier.Value, c.Token, keyAuth, acctURL)})
	}
	if err := r.store.Create(ctx, az); err != nil {
		return nil, fmt.Errorf("create pre-authorization: %w", err)
	}
	r.usage.add(a.Namespace+"/"+a.Name, now, 1)
	r.audit.Record(ctx, audit.AuthzPreAuthorized, slog.String("account", a.Name), slog.String("authorization", name),
		slog.String("profile", p.Name), slog.Any("identifier", az.Spec.Identifier))
	return az, nil
}
