package ra

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// NewOrder validates and stores a new order (RFC 8555 §7.4).
func (r *RA) NewOrder(ctx context.Context, p *Profile, a *v1alpha1.AcmeAccount, req acme.NewOrderRequest) (*v1alpha1.AcmeOrder, error) {
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
	ipName := req.Profile
	if ipName == "" {
		ipName = p.DefaultIssuance
	}
	ip, ok := p.Issuance[ipName]
	if !ok {
		return nil, acme.InvalidProfileProblem("profile %q is not offered (see the directory's meta.profiles)", req.Profile)
	}
	if ip.DisallowIP {
		for _, id := range ids {
			if id.Type == acme.IdentifierIP {
				return nil, acme.InvalidProfileProblem("profile %q does not issue for ip identifiers", ipName)
			}
		}
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
		ObjectMeta: metav1.ObjectMeta{Namespace: r.ns, Name: acme.NewID(), Labels: map[string]string{
			v1alpha1.LabelAccount: a.Name, v1alpha1.LabelProfile: p.Name}},
		Spec: v1alpha1.AcmeOrderSpec{Account: a.Name, Profile: p.Name, IssuanceProfile: ipName, NotBefore: nb, NotAfter: na,
			Replaces: req.Replaces},
		Status: v1alpha1.AcmeOrderStatus{Status: acme.StatusPending, Expires: expires},
	}
	if replacesSerial != "" {
		o.Labels[v1alpha1.LabelReplaces] = replacesSerial
	}
	for _, id := range ids {
		o.Spec.Identifiers = append(o.Spec.Identifiers, v1alpha1.Identifier{Type: id.Type, Value: id.Value})
		o.Status.Authorizations = append(o.Status.Authorizations, p.newAuthorization(id, expires))
	}
	if err := r.store.Create(ctx, o); err != nil {
		return nil, fmt.Errorf("create order: %w", err)
	}
	r.audit.Record(ctx, audit.OrderCreated, slog.String("account", a.Name), slog.String("order", o.Name),
		slog.String("profile", p.Name), slog.String("issuanceProfile", ipName), slog.Any("identifiers", o.Spec.Identifiers))
	return o, nil
}

// checkIdentifiers normalises, de-duplicates and policy-checks identifiers;
// every refusal becomes a subproblem naming its identifier (RFC 8555 §6.7.1).
func (r *RA) checkIdentifiers(p *Profile, allowed []string, in []acme.Identifier) ([]acme.Identifier, *acme.Problem) {
	seen := map[acme.Identifier]bool{}
	var out []acme.Identifier
	var subs []*acme.Problem
	for _, raw := range in {
		id, pr := acme.NormalizeIdentifier(raw)
		if pr == nil {
			pr = p.checkPolicy(id)
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

// newAuthorization builds a pending authorization with the challenges the
// identifier allows: wildcards only dns-01 (BR), ip no dns-01 (RFC 8738 §7).
func (p *Profile) newAuthorization(id acme.Identifier, expires metav1.Time) v1alpha1.AcmeAuthorizationState {
	az := v1alpha1.AcmeAuthorizationState{Status: acme.StatusPending, Expires: expires,
		Identifier: v1alpha1.Identifier{Type: id.Type, Value: id.Value}}
	if base, ok := strings.CutPrefix(id.Value, "*."); ok {
		az.Identifier.Value, az.Wildcard = base, true
	}
	for _, t := range p.ChallengeTypes {
		if (az.Wildcard && t != v1alpha1.ChallengeDNS01) || (id.Type == acme.IdentifierIP && t == v1alpha1.ChallengeDNS01) {
			continue
		}
		az.Challenges = append(az.Challenges, v1alpha1.AcmeChallengeState{Type: t, Token: acme.NewToken(), Status: acme.StatusPending})
	}
	return az
}

// parseValidity checks requested notBefore/notAfter against the issuance
// profile (RFC 8555 §7.4: reject what cannot be honoured).
func parseValidity(nbs, nas string, ip v1alpha1.IssuanceProfile, now time.Time) (*metav1.Time, *metav1.Time, *acme.Problem) {
	if nbs == "" && nas == "" {
		return nil, nil, nil
	}
	def, max := Lifetime(ip)
	var nb, na time.Time
	if nbs != "" {
		t, err := time.Parse(time.RFC3339, nbs)
		if err != nil {
			return nil, nil, acme.MalformedProblem("notBefore is not an RFC 3339 timestamp")
		}
		nb = t.UTC()
	} else {
		nb = now
	}
	if nas != "" {
		t, err := time.Parse(time.RFC3339, nas)
		if err != nil {
			return nil, nil, acme.MalformedProblem("notAfter is not an RFC 3339 timestamp")
		}
		na = t.UTC()
	} else {
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
	if nbs != "" {
		t := metav1.NewTime(nb)
		nbp = &t
	}
	if nas != "" {
		t := metav1.NewTime(na)
		nap = &t
	}
	return nbp, nap, nil
}

// Order loads an order of account a with its state brought up to date.
func (r *RA) Order(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeOrder, error) {
	var o v1alpha1.AcmeOrder
	if err := r.get(ctx, id, &o, "order"); err != nil {
		return nil, err
	}
	if o.Spec.Account != a.Name {
		return nil, notFound("order")
	}
	r.refresh(&o)
	return &o, nil
}

// refresh applies time-driven transitions (RFC 8555 §7.1.6): expired
// authorizations and orders, and the pending → ready / invalid rules.
// Reads never write; every write path calls refresh first.
func (r *RA) refresh(o *v1alpha1.AcmeOrder) {
	now := r.now()
	for i := range o.Status.Authorizations {
		az := &o.Status.Authorizations[i]
		if (az.Status == acme.StatusPending || az.Status == acme.StatusValid) && now.After(az.Expires.Time) {
			az.Status = acme.StatusExpired
		}
	}
	switch o.Status.Status {
	case acme.StatusPending, acme.StatusReady:
		if now.After(o.Status.Expires.Time) {
			o.Status.Status = acme.StatusInvalid
			o.Status.Error = &v1alpha1.Problem{Type: string(acme.Malformed), Detail: "the order expired", Status: 403}
			return
		}
		o.Status.Status = authzOrderStatus(o)
	}
}

// authzOrderStatus derives pending/ready/invalid from the authorizations.
func authzOrderStatus(o *v1alpha1.AcmeOrder) string {
	allValid := true
	for _, az := range o.Status.Authorizations {
		switch az.Status {
		case acme.StatusValid:
		case acme.StatusPending:
			allValid = false
		default:
			if o.Status.Error == nil {
				o.Status.Error = &v1alpha1.Problem{Type: string(acme.Unauthorized), Status: 403,
					Detail: fmt.Sprintf("authorization for %s is %s", az.Identifier.Value, az.Status)}
			}
			return acme.StatusInvalid
		}
	}
	if allValid {
		return acme.StatusReady
	}
	return acme.StatusPending
}

// Orders lists the URLs-to-be (names) of a's orders that are not invalid (RFC 8555 §7.1.2.1).
func (r *RA) Orders(ctx context.Context, a *v1alpha1.AcmeAccount) ([]string, error) {
	var list v1alpha1.AcmeOrderList
	if err := r.store.List(ctx, r.ns, &list, storage.ListOptions{Labels: map[string]string{v1alpha1.LabelAccount: a.Name}}); err != nil {
		return nil, err
	}
	sort.Slice(list.Items, func(i, j int) bool {
		ti, tj := list.Items[i].CreationTimestamp, list.Items[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return list.Items[i].Name < list.Items[j].Name
	})
	var out []string
	for i := range list.Items {
		o := &list.Items[i]
		r.refresh(o)
		if o.Status.Status != acme.StatusInvalid {
			out = append(out, o.Name)
		}
	}
	return out, nil
}

// SplitAuthzID splits "<order>-<n>" (authorization) IDs.
func SplitAuthzID(id string) (order string, idx int, ok bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", 0, false
	}
	n, err := parseIndex(id[i+1:])
	return id[:i], n, err == nil
}

// SplitChallengeID splits "<order>-<n>-<m>" challenge IDs.
func SplitChallengeID(id string) (order string, az, ch int, ok bool) {
	rest, ch, ok := SplitAuthzID(id)
	if !ok {
		return "", 0, 0, false
	}
	order, az, ok = SplitAuthzID(rest)
	return order, az, ch, ok
}

func parseIndex(s string) (int, error) {
	if s == "" || len(s) > 4 {
		return 0, fmt.Errorf("bad index")
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad index")
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// AuthzID and ChallengeID name an order's authorization and challenge.
func AuthzID(order string, i int) string        { return fmt.Sprintf("%s-%d", order, i) }
func ChallengeID(order string, i, j int) string { return fmt.Sprintf("%s-%d-%d", order, i, j) }

// Authorization loads the order holding authorization id, owned by a.
func (r *RA) Authorization(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeOrder, int, error) {
	oid, idx, ok := SplitAuthzID(id)
	if !ok {
		return nil, 0, notFound("authorization")
	}
	o, err := r.Order(ctx, a, oid)
	if err != nil {
		return nil, 0, notFound("authorization")
	}
	if idx < 0 || idx >= len(o.Status.Authorizations) {
		return nil, 0, notFound("authorization")
	}
	return o, idx, nil
}

// DeactivateAuthorization deactivates a pending or valid authorization
// (RFC 8555 §7.5.2; pending is accepted too, as Boulder and Pebble do).
func (r *RA) DeactivateAuthorization(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeOrder, int, error) {
	var out *v1alpha1.AcmeOrder
	var idx int
	err := retry(ctx, func() error {
		o, i, err := r.Authorization(ctx, a, id)
		if err != nil {
			return err
		}
		az := &o.Status.Authorizations[i]
		if az.Status != acme.StatusPending && az.Status != acme.StatusValid {
			return acme.MalformedProblem("authorization is %s and cannot be deactivated", az.Status)
		}
		az.Status = acme.StatusDeactivated
		if o.Status.Status == acme.StatusPending || o.Status.Status == acme.StatusReady {
			o.Status.Status = authzOrderStatus(o)
		}
		if err := r.store.Update(ctx, o); err != nil {
			return err
		}
		out, idx = o, i
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	r.audit.Record(ctx, audit.AuthzDeactivated, slog.String("account", a.Name), slog.String("authorization", id))
	return out, idx, nil
}
