package dashboard

import (
	"context"
	"net/http"
	"strings"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

func (d *Dashboard) accounts(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	all := func(*storage.Summary) bool { return true }
	pg, accounts, err := pageOf[v1alpha1.AcmeAccount](ctx, d, r, s, "AcmeAccount", "acmeaccounts", "accounts", all, created, true)
	if err != nil {
		return err
	}
	return d.render(w, "accounts", s, map[string]any{"Accounts": accounts, "Pager": pg})
}

func (d *Dashboard) confirmDeactivate(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if !d.may(ctx, s, "update", "acmeaccounts", ns) {
		return errForbidden
	}
	var a v1alpha1.AcmeAccount
	if err := d.o.Store.Get(ctx, ns, name, &a); err != nil {
		return err
	}
	return d.render(w, "confirm", s, map[string]any{"Action": "Deactivate account " + a.Name,
		"What": "namespace " + a.Namespace + "; contacts: " + strings.Join(a.Spec.Contact, ", ") +
			". Deactivation is final: the account's requests are refused and its pending orders cancelled.",
		"Post": r.URL.Path})
}

func (d *Dashboard) deactivate(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if _, err := d.o.RA.DeactivateAsAdmin(ctx, ns, name, "dashboard:"+s.user.Name); err != nil {
		return err
	}
	http.Redirect(w, r, "/dashboard/accounts", http.StatusSeeOther)
	return nil
}
