package ra

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// NewOrder validates and stores a new order (RFC 8555 §7.4).
func (r *RA) NewOrder(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, req acme.NewOrderRequest) (*v1alpha1.AcmeOrder, error) {
	if len(req.Identifiers) == 0 {
		return nil, acme.MalformedProblem("an order needs at least one identifier")
	}
	if len(req.Identifiers) > p.MaxIdentifiers {
		return nil, acme.RejectedIdentifierProblem("an order may have at most %d identifiers", p.MaxIdentifiers)
	}
	ids, pr := r.checkIdentifiers(p, a.Spec.AllowedIdentifiers, req.Identifiers)
	if pr != nil {
		return nil, pr
	}
	// One account's orders are created one at a time in this process, so
	// that a burst cannot pass the limits between the count and the write.
	unlock := r.keyLocks.Lock("orders/" + a.Namespace + "/" + a.Name)
	defer unlock()
	if err := r.checkOrderLimits(ctx, p, a, len(ids)); err != nil {
		return nil, err
	}
	ipName, ip, pr := issuanceProfile(p, req.Profile, ids)
	if pr != nil {
		return nil, pr
	}
	now := r.nowUTC()
	nb, na, pr := parseValidity(req.NotBefore, req.NotAfter, ip, now)
	if pr != nil {
		return nil, pr
	}
	var replacesSerial string
	if req.Replaces != "" {
		serial, pr := r.checkReplaces(ctx, a, req.Replaces, ids)
		if pr != nil {
			return nil, pr
		}
		replacesSerial = serial
	}
	expires := metav1.NewTime(now.Add(p.OrderLifetime))
	o := &v1alpha1.AcmeOrder{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.Namespace, Name: acme.NewID(), Labels: map[string]string{
			v1alpha1.LabelAccount: a.Name, v1alpha1.LabelProfile: p.Name}},
		Spec: v1alpha1.AcmeOrderSpec{Account: a.Name, Profile: p.Name, IssuanceProfile: ipName, NotBefore: nb, NotAfter: na,
			Replaces: req.Replaces},
		Status: v1alpha1.AcmeOrderStatus{Status: acme.StatusPending, Expires: expires},
	}
	if replacesSerial != "" {
		o.Labels[v1alpha1.LabelReplaces] = replacesSerial
	}
	if err := r.addAuthorizations(ctx, p, a, o, ids, now); err != nil {
		return nil, err
	}
	// One write: the authorizations are derived from the order until one of
	// their challenges is answered (authz.go).
	if err := r.store.Create(ctx, o); err != nil {
		return nil, fmt.Errorf("create order: %w", err)
	}
	if len(o.Status.Offered) < len(ids) {
		// Authorizations reused: the order may be ready already (derived,
		// as on every read).
		azs, err := r.authorizations(ctx, o)
		if err != nil {
			return nil, err
		}
		r.refresh(o, azs)
	}
	r.usage.add(a.Namespace+"/"+a.Name, o.CreationTimestamp.Time, len(o.Status.Offered))
	r.audit.Record(ctx, audit.OrderCreated, slog.String("account", a.Name), slog.String("order", o.Name),
		slog.String("profile", p.Name), slog.String("issuanceProfile", ipName), slog.Any("identifiers", o.Spec.Identifiers))
	return o, nil
}

// addAuthorizations gives the new order o its identifiers and, for each, a
// reusable authorization of the account (the order then expires no later
// than it) or an offered one, derived until it is stored (authz.go).
func (r *RA) addAuthorizations(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, o *v1alpha1.AcmeOrder, ids []acme.Identifier, now time.Time) error {
	reusable, err := r.reusableAuthorizations(ctx, p, a, now)
	if err != nil {
		return err
	}
	for i, id := range ids {
		o.Spec.Identifiers = append(o.Spec.Identifiers, v1alpha1.Identifier{Type: id.Type, Value: id.Value})
		if az := reusable[id]; az != nil {
			o.Status.Authorizations = append(o.Status.Authorizations, az.Name)
			if az.Status.Expires.Before(&o.Status.Expires) {
				o.Status.Expires = az.Status.Expires
			}
			continue
		}
		oa := offer(p.ChallengeTypes, o.Name, i, id)
		o.Status.Offered = append(o.Status.Offered, oa)
		o.Status.Authorizations = append(o.Status.Authorizations, oa.Name)
	}
	return nil
}

// reuseMargin: an authorization that expires sooner than this is not
// reused (the order would expire before a client could finalize it).
const reuseMargin = 5 * time.Minute

// reusableAuthorizations are the account's authorizations a new order of
// profile p may use instead of offering new ones (spec.authorizationReuse;
// with spec.preAuthorization, its valid pre-authorizations),
// by identifier ("*." for a wildcard): valid, of this account and profile,
// expiring no sooner than reuseMargin from now, and validated at most
// p.AuthzReuse ago; the most recently validated one per identifier. None
// when the profile does not reuse.
func (r *RA) reusableAuthorizations(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, now time.Time) (map[acme.Identifier]*v1alpha1.AcmeChallenge, error) {
	if p.AuthzReuse <= 0 && !p.Spec.PreAuthorization {
		return nil, nil
	}
	var list v1alpha1.AcmeChallengeList
	if err := r.store.List(ctx, a.Namespace, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: a.Name}, Shared: true}); err != nil {
		return nil, fmt.Errorf("list the account's authorizations: %w", err)
	}
	out := map[acme.Identifier]*v1alpha1.AcmeChallenge{}
	validated := map[acme.Identifier]time.Time{}
	for i := range list.Items {
		az := &list.Items[i]
		if az.Spec.Account != a.Name || az.Spec.Profile != p.Name || az.Status.Status != acme.StatusValid ||
			az.Status.Expires.Time.Before(now.Add(reuseMargin)) {
			continue
		}
		var at time.Time
		for _, c := range az.Status.Challenges {
			if c.Status == acme.StatusValid && c.Validated != nil {
				at = c.Validated.Time
			}
		}
		maxAge := p.AuthzReuse
		if az.Spec.Order == "" && p.Spec.PreAuthorization {
			// A pre-authorization exists to be used by later orders: for
			// its whole lifetime (8h at most when CAA is checked).
			maxAge = max(maxAge, p.AuthzLifetime)
			if len(p.Validation.CAAIdentities) > 0 {
				maxAge = min(maxAge, profile.MaxCAAAge)
			}
		}
		if at.IsZero() || now.Sub(at) > maxAge {
			continue
		}
		id := acme.Identifier{Type: az.Spec.Identifier.Type, Value: az.Spec.Identifier.Value}
		if az.Spec.Wildcard {
			id.Value = "*." + id.Value
		}
		if at.After(validated[id]) {
			out[id], validated[id] = az, at
		}
	}
	return out, nil
}

// issuanceProfile is the issuance profile an order asks for (the profile's
// default without one), refused when it is not offered or does not issue
// for the order's identifiers.
func issuanceProfile(p *profile.Profile, name string, ids []acme.Identifier) (string, v1alpha1.IssuanceProfile, *acme.Problem) {
	if name == "" {
		name = p.DefaultIssuance
	}
	ip, ok := p.Issuance[name]
	if !ok {
		return "", ip, acme.InvalidProfileProblem("profile %q is not offered (see the directory's meta.profiles)", acme.Clip(name))
	}
	if ip.DisallowIP {
		for _, id := range ids {
			if id.Type == acme.IdentifierIP {
				return "", ip, acme.InvalidProfileProblem("profile %q does not issue for ip identifiers", name)
			}
		}
	}
	return name, ip, nil
}

// checkIdentifiers normalises, de-duplicates and policy-checks identifiers;
// every refusal becomes a subproblem naming its identifier (RFC 8555 §6.7.1).
func (r *RA) checkIdentifiers(p *profile.Profile, allowed []string, in []acme.Identifier) ([]acme.Identifier, *acme.Problem) {
	seen := map[acme.Identifier]bool{}
	var out []acme.Identifier
	var subs []*acme.Problem
	for _, raw := range in {
		id, pr := acme.NormalizeIdentifier(raw)
		if pr == nil {
			pr = p.CheckPolicy(id)
		}
		if pr == nil {
			pr = checkAccountAllowList(allowed, id)
		}
		if pr != nil {
			subs = append(subs, pr)
			continue
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	if len(subs) == 0 {
		sort.Slice(out, func(i, j int) bool {
			if out[i].Type != out[j].Type {
				return out[i].Type < out[j].Type
			}
			return out[i].Value < out[j].Value
		})
		return out, nil
	}
	typ := subs[0].Type
	for _, s := range subs[1:] {
		if s.Type != typ {
			typ = acme.Compound
		}
	}
	var details []string
	for _, s := range subs {
		details = append(details, s.Detail)
	}
	return nil, &acme.Problem{Type: typ, Status: http.StatusBadRequest,
		Detail: "cannot issue for: " + strings.Join(details, "; "), Subproblems: subs}
}

// challengeData is what a client deploys for a challenge (RFC 8555 §8.3,
// §8.4; RFC 8737 §3; dns-account-01 at the name the account URL acctURL
// scopes).
func challengeData(t v1alpha1.ChallengeType, name, token, keyAuth, acctURL string) v1alpha1.ChallengeData {
	switch t {
	case v1alpha1.ChallengeHTTP01:
		return v1alpha1.ChallengeData{Path: "/.well-known/acme-challenge/" + token, Content: keyAuth}
	case v1alpha1.ChallengeDNS01:
		return v1alpha1.ChallengeData{RecordName: "_acme-challenge." + name + ".", RecordValue: acme.DNS01Value(keyAuth)}
	case v1alpha1.ChallengeDNSAccount01:
		return v1alpha1.ChallengeData{RecordName: acme.DNSAccount01Name(acctURL, name) + ".", RecordValue: acme.DNS01Value(keyAuth)}
	case v1alpha1.ChallengeTLSALPN01:
		sum := sha256.Sum256([]byte(keyAuth))
		return v1alpha1.ChallengeData{Digest: hex.EncodeToString(sum[:])}
	}
	return v1alpha1.ChallengeData{}
}

// parseValidity checks requested notBefore/notAfter against the issuance
// profile (RFC 8555 §7.4: reject what cannot be honoured). The zero time
// (0001-01-01T00:00:00Z, what Go clients such as the smallstep CLI send for
// "unset") is absent, as step-ca treats it.
func parseValidity(nbs, nas string, ip v1alpha1.IssuanceProfile, now time.Time) (*metav1.Time, *metav1.Time, *acme.Problem) {
	nbSet, nb, pr := parseTime("notBefore", nbs)
	if pr != nil {
		return nil, nil, pr
	}
	naSet, na, pr := parseTime("notAfter", nas)
	if pr != nil {
		return nil, nil, pr
	}
	if !nbSet && !naSet {
		return nil, nil, nil
	}
	def, max := profile.Lifetime(ip)
	if !nbSet {
		nb = now
	}
	if !naSet {
		na = nb.Add(def)
	}
	switch {
	case !na.After(nb):
		return nil, nil, acme.MalformedProblem("notAfter must be after notBefore")
	case na.Sub(nb) > max:
		return nil, nil, acme.MalformedProblem("requested validity %s exceeds the profile's maximum %s", na.Sub(nb), max)
	case nb.Before(now.Add(-time.Hour)):
		return nil, nil, acme.MalformedProblem("notBefore may be at most one hour in the past")
	case nb.After(now.Add(max)):
		return nil, nil, acme.MalformedProblem("notBefore is too far in the future")
	case !na.After(now):
		return nil, nil, acme.MalformedProblem("notAfter is in the past")
	}
	var nbp, nap *metav1.Time
	if nbSet {
		t := metav1.NewTime(nb)
		nbp = &t
	}
	if naSet {
		t := metav1.NewTime(na)
		nap = &t
	}
	return nbp, nap, nil
}

// parseTime parses an RFC 3339 order field; empty or the zero time is unset.
func parseTime(field, v string) (set bool, t time.Time, pr *acme.Problem) {
	if v == "" {
		return false, time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return false, time.Time{}, acme.MalformedProblem("%s is not an RFC 3339 timestamp", field)
	}
	if t.IsZero() {
		return false, time.Time{}, nil
	}
	return true, t.UTC(), nil
}

// Order loads an order of account a with its state brought up to date.
func (r *RA) Order(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeOrder, error) {
	o, _, err := r.order(ctx, a, id)
	return o, err
}

// order loads an order of a with its authorizations, status derived.
func (r *RA) order(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeOrder, []*v1alpha1.AcmeChallenge, error) {
	var o v1alpha1.AcmeOrder
	if err := r.get(ctx, a.Namespace, id, &o, "order"); err != nil {
		return nil, nil, err
	}
	if o.Spec.Account != a.Name {
		return nil, nil, notFound("order")
	}
	azs, err := r.authorizations(ctx, &o)
	if err != nil {
		return nil, nil, err
	}
	r.refresh(&o, azs)
	return &o, azs, nil
}

// authorizations loads an order's stored AcmeChallenges; one not stored (a
// pending authorization derived from the order, or one not visible yet) is
// nil.
func (r *RA) authorizations(ctx context.Context, o *v1alpha1.AcmeOrder) ([]*v1alpha1.AcmeChallenge, error) {
	if o.Status.Status != acme.StatusPending {
		return nil, nil // valid and invalid are stored: nothing to derive
	}
	out := make([]*v1alpha1.AcmeChallenge, len(o.Status.Authorizations))
	for i, name := range o.Status.Authorizations {
		var az v1alpha1.AcmeChallenge
		if err := r.store.Get(storage.ExpectMiss(ctx), o.Namespace, name, &az); err != nil {
			if storage.IsNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("load authorization %s: %w", name, err)
		}
		r.expire(&az)
		out[i] = &az
	}
	return out, nil
}

// expire applies an authorization's expiry (RFC 8555 §7.1.6).
func (r *RA) expire(az *v1alpha1.AcmeChallenge) {
	if az.Status.Status == "" {
		// Restored without its status (a backup that drops status): its
		// challenges and expiry are gone, so it cannot be used any more.
		az.Status.Status = acme.StatusExpired
		return
	}
	if (az.Status.Status == acme.StatusPending || az.Status.Status == acme.StatusValid) && r.now().After(az.Status.Expires.Time) {
		az.Status.Status = acme.StatusExpired
	}
}

// refresh derives the order's status (RFC 8555 §7.1.6): expiry, and
// pending → ready / invalid from its authorizations. Only pending, valid and
// invalid are stored; reads never write.
func (r *RA) refresh(o *v1alpha1.AcmeOrder, azs []*v1alpha1.AcmeChallenge) {
	if o.Status.Status == "" {
		// Restored without its status (a backup that drops status): its
		// authorizations and certificate link are gone; clients start a new
		// order, as they do for an expired one.
		o.Status.Status = acme.StatusInvalid
		o.Status.Error = &v1alpha1.Problem{Type: string(acme.Malformed), Status: 403,
			Detail: "the order's state was not restored from backup; place a new order"}
		return
	}
	if o.Status.Status != acme.StatusPending {
		return
	}
	if r.now().After(o.Status.Expires.Time) {
		o.Status.Status = acme.StatusInvalid
		o.Status.Error = &v1alpha1.Problem{Type: string(acme.Malformed), Detail: "the order expired", Status: 403}
		return
	}
	allValid := true
	for _, az := range azs {
		switch {
		case az == nil || az.Status.Status == acme.StatusPending:
			allValid = false
		case az.Status.Status == acme.StatusValid:
		default:
			o.Status.Status = acme.StatusInvalid
			o.Status.Error = authzProblem(az)
			return
		}
	}
	if allValid && len(azs) > 0 {
		o.Status.Status = acme.StatusReady
	}
}

func authzProblem(az *v1alpha1.AcmeChallenge) *v1alpha1.Problem {
	for _, c := range az.Status.Challenges {
		if c.Error != nil {
			return &v1alpha1.Problem{Type: c.Error.Type, Status: c.Error.Status,
				Detail: fmt.Sprintf("authorization for %s is %s: %s", az.Spec.Identifier.Value, az.Status.Status, c.Error.Detail)}
		}
	}
	return &v1alpha1.Problem{Type: string(acme.Unauthorized), Status: 403,
		Detail: fmt.Sprintf("authorization for %s is %s", az.Spec.Identifier.Value, az.Status.Status)}
}

// failOrder stores a pending order as invalid with prob (one write on the
// failure path, so that `kubectl get acmeorders` shows the outcome) and
// writes an order.invalid audit record: a failed authorization, a failed
// issuance, an authorization that could not be stored, or the account's
// deactivation ended the order.
func (r *RA) failOrder(ctx context.Context, ns, id string, prob *v1alpha1.Problem) {
	if id == "" {
		return // a pre-authorization: no order of its own
	}
	var failed *v1alpha1.AcmeOrder
	err := retry(ctx, func() error {
		var o v1alpha1.AcmeOrder
		if err := r.get(ctx, ns, id, &o, "order"); err != nil {
			return err
		}
		if o.Status.Status != acme.StatusPending {
			return nil
		}
		o.Status.Status, o.Status.Error = acme.StatusInvalid, prob.Bounded()
		if err := r.store.Update(ctx, &o); err != nil {
			return err
		}
		failed = &o
		return nil
	})
	if err != nil {
		r.log.Error("record failed order", "order", id, "err", err)
		return
	}
	if failed != nil {
		r.audit.Record(ctx, audit.OrderInvalid, slog.String("account", failed.Spec.Account), slog.String("order", id),
			slog.String("namespace", ns), slog.String("error", prob.Type), slog.String("detail", prob.Detail))
	}
}

// Orders lists the URLs-to-be (names) of a's orders that are not invalid
// (RFC 8555 §7.1.2.1), oldest first. It decides from the store's summaries:
// a stored valid or invalid order is final, an expired pending one is
// invalid, and only the other pending orders (few: they expire within
// days) are read with their authorizations to derive their status. So an
// account with 100,000 orders costs a sort, not 100,000 reads.
func (r *RA) Orders(ctx context.Context, a *v1alpha1.AcmeAccount) ([]string, error) {
	list, err := storage.ListSummaries(ctx, r.store, a.Namespace, "AcmeOrder", map[string]string{v1alpha1.LabelAccount: a.Name})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list, func(x, y storage.Summary) int {
		if c := x.Created.Compare(y.Created); c != 0 {
			return c
		}
		return strings.Compare(x.Name, y.Name)
	})
	now := r.now()
	var out []string
	for _, sum := range list {
		switch {
		case sum.Status == acme.StatusValid:
			out = append(out, sum.Name)
			continue
		case sum.Status == acme.StatusInvalid, sum.Status == "", sum.Status == acme.StatusPending && now.After(sum.At):
			continue // invalid as stored, restored without status, or expired (refresh's rules)
		}
		var o v1alpha1.AcmeOrder
		if err := r.store.Get(ctx, a.Namespace, sum.Name, &o); err != nil {
			if storage.IsNotFound(err) {
				continue
			}
			return nil, err
		}
		azs, err := r.authorizations(ctx, &o)
		if err != nil {
			return nil, err
		}
		r.refresh(&o, azs)
		if o.Status.Status != acme.StatusInvalid {
			out = append(out, o.Name)
		}
	}
	return out, nil
}

// ChallengeID names challenge i of authorization az: "<authz>-<i>".
func ChallengeID(az string, i int) string { return fmt.Sprintf("%s-%d", az, i) }

// SplitChallengeID splits a challenge ID.
func SplitChallengeID(id string) (az string, idx int, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 || i == len(id)-1 || len(id)-i > 5 {
		return "", 0, false
	}
	n := 0
	for _, c := range id[i+1:] {
		if c < '0' || c > '9' {
			return "", 0, false
		}
		n = n*10 + int(c-'0')
	}
	return id[:i], n, true
}

// Authorization loads authorization id of account a: stored, or derived
// from its order while pending (authz.go).
func (r *RA) Authorization(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeChallenge, error) {
	az, _, err := r.authorization(ctx, a, id)
	return az, err
}

// authorization is Authorization, and whether az is stored.
func (r *RA) authorization(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (az *v1alpha1.AcmeChallenge, stored bool, err error) {
	key, err := AccountKey(a)
	if err != nil {
		return nil, false, err
	}
	az, stored, err = r.loadAuthorization(ctx, a.Namespace, id, nil, key)
	if err != nil {
		if storage.IsNotFound(err) {
			return nil, false, notFound("authorization")
		}
		return nil, false, err
	}
	if az.Spec.Account != a.Name {
		return nil, false, notFound("authorization")
	}
	r.expire(az)
	return az, stored, nil
}

// DeactivateAuthorization deactivates a pending or valid authorization
// (RFC 8555 §7.5.2; pending is accepted too, as Boulder and Pebble do); its
// order, if still pending, becomes invalid.
func (r *RA) DeactivateAuthorization(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeChallenge, error) {
	var out *v1alpha1.AcmeChallenge
	err := retry(ctx, func() error {
		az, stored, err := r.authorization(ctx, a, id)
		if err != nil {
			return err
		}
		if az.Status.Status != acme.StatusPending && az.Status.Status != acme.StatusValid {
			return acme.MalformedProblem("authorization is %s and cannot be deactivated", az.Status.Status)
		}
		az.Status.Status = acme.StatusDeactivated
		if err := r.storeAuthorization(ctx, az, stored); err != nil {
			return err
		}
		out = az
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.failOrder(ctx, a.Namespace, out.Spec.Order, authzProblem(out))
	r.audit.Record(ctx, audit.AuthzDeactivated, slog.String("account", a.Name), slog.String("authorization", id))
	return out, nil
}
