package wfe

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/jws"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/api/v1alpha1"
)

func (w *WFE) accountJSON(p *profile.Profile, a *v1alpha1.AcmeAccount) acme.Account {
	out := acme.Account{Status: a.Spec.State, Contact: a.Spec.Contact, TermsOfServiceAgreed: a.Spec.TermsOfServiceAgreed,
		Orders: w.accountURL(p, a.Name) + "/orders", Key: json.RawMessage(a.Spec.Key)}
	if a.Spec.Binding != "" {
		out.ExternalAccountBinding = json.RawMessage(a.Spec.Binding)
	}
	return out
}

// eabBinding adapts a parsed jws.EAB to ra.Binding.
type eabBinding struct {
	*jws.EAB
	raw string
}

func (b eabBinding) KeyID() string { return b.EAB.KeyID }
func (b eabBinding) Raw() string   { return b.raw }

// newAccount serves RFC 8555 §7.3.
func (w *WFE) newAccount(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPOST(ctx, r, p, authJWK)
	if err != nil {
		return err
	}
	var nar acme.NewAccountRequest
	if prob := jws.DecodePayload(req.payload, &nar); prob != nil {
		return prob
	}
	var binding ra.Binding
	if len(nar.ExternalAccountBinding) > 0 && string(nar.ExternalAccountBinding) != "null" && !nar.OnlyReturnExisting {
		eab, prob := jws.ParseEAB(nar.ExternalAccountBinding, req.url, req.jwk)
		if prob != nil {
			return prob
		}
		binding = eabBinding{EAB: eab, raw: string(nar.ExternalAccountBinding)}
	}
	a, created, err := w.ra.NewAccount(ctx, p, req.jwk, nar, binding)
	if err != nil {
		return err
	}
	rw.Header().Set("Location", w.accountURL(p, a.Name))
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.writeJSON(rw, status, w.accountJSON(p, a))
	return nil
}

// account serves fetch (POST-as-GET), update and deactivation (RFC 8555 §7.3.2, §7.3.6).
func (w *WFE) account(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPOST(ctx, r, p, authKID)
	if err != nil {
		return err
	}
	if req.account.Name != r.PathValue("id") {
		return acme.UnauthorizedProblem("the request is not signed by this account's key")
	}
	a := req.account
	if !req.postAsGet {
		var upd acme.AccountUpdateRequest
		if prob := jws.DecodePayload(req.payload, &upd); prob != nil {
			return prob
		}
		if a, err = w.ra.UpdateAccount(ctx, a, upd); err != nil {
			return err
		}
	}
	rw.Header().Set("Location", w.accountURL(p, a.Name))
	w.writeJSON(rw, http.StatusOK, w.accountJSON(p, a))
	return nil
}

// ordersList serves RFC 8555 §7.1.2.1, paginated with Link rel="next".
func (w *WFE) ordersList(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPostAsGet(ctx, r, p)
	if err != nil {
		return err
	}
	if req.account.Name != r.PathValue("id") {
		return acme.UnauthorizedProblem("the request is not signed by this account's key")
	}
	names, err := w.ra.Orders(ctx, req.account)
	if err != nil {
		return err
	}
	cursor := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		if cursor, err = strconv.Atoi(c); err != nil || cursor < 0 {
			return acme.MalformedProblem("invalid cursor")
		}
	}
	out := acme.OrdersList{Orders: []string{}}
	end := min(cursor+w.OrdersPerPage, len(names))
	for i := cursor; i < end; i++ {
		out.Orders = append(out.Orders, w.orderURL(p, names[i]))
	}
	if end < len(names) {
		rw.Header().Add("Link", link(w.accountURL(p, req.account.Name)+"/orders?cursor="+strconv.Itoa(end), "next"))
	}
	w.writeJSON(rw, http.StatusOK, out)
	return nil
}

// keyChange serves RFC 8555 §7.3.5.
func (w *WFE) keyChange(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPOST(ctx, r, p, authKID)
	if err != nil {
		return err
	}
	kc, prob := jws.ParseKeyChange(req.payload, req.url)
	if prob != nil {
		return prob
	}
	urlOf := func(id string) string { return w.accountURL(p, id) }
	if err := w.ra.ChangeKey(ctx, p, req.account, kc.Account, req.accountURL, kc.OldKey, kc.NewKey, urlOf); err != nil {
		return err
	}
	a, err := w.ra.Account(ctx, p, req.account.Name)
	if err != nil {
		return err
	}
	rw.Header().Set("Location", w.accountURL(p, a.Name))
	w.writeJSON(rw, http.StatusOK, w.accountJSON(p, a))
	return nil
}
