package dashboard

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

func (d *Dashboard) certificates(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query().Get("name")
	match := func(c *storage.Summary) bool { return q == "" || c.Name == q || strings.Contains(c.Text, q) }
	notAfter := func(c *storage.Summary) time.Time { return c.At }
	pg, certs, err := pageOf[v1alpha1.AcmeCertificate](ctx, d, r, s, "AcmeCertificate", "acmecertificates", "certificates", match, notAfter, false)
	if err != nil {
		return err
	}
	return d.render(w, "certificates", s, map[string]any{"Certificates": certs, "Pager": pg, "Query": q})
}

func (d *Dashboard) certificatePEM(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if !d.may(ctx, s, "list", "acmecertificates", ns) {
		return errForbidden
	}
	var c v1alpha1.AcmeCertificate
	if err := d.o.Store.Get(ctx, ns, name, &c); err != nil {
		return err
	}
	chains, err := d.o.RA.Chains(&c)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", c.Name+".pem"))
	_, err = w.Write(chains[0])
	return err
}

func (d *Dashboard) confirmRevoke(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if !d.may(ctx, s, "update", "acmecertificates", ns) {
		return errForbidden
	}
	var c v1alpha1.AcmeCertificate
	if err := d.o.Store.Get(ctx, ns, name, &c); err != nil {
		return err
	}
	return d.render(w, "confirm", s, map[string]any{"Action": "Revoke certificate " + c.Name,
		"What": "names: " + strings.Join(c.Spec.Names, ", ") + "; namespace " + c.Namespace, "Reasons": ra.RevocationReasons,
		"Post": r.URL.Path})
}

func (d *Dashboard) revoke(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	reason, err := strconv.Atoi(r.PostFormValue("reason"))
	if err != nil {
		http.Error(w, "reason must be an RFC 5280 reason code", http.StatusBadRequest)
		return nil
	}
	if _, err := d.o.RA.RevokeAsAdmin(ctx, ns, name, reason, "dashboard:"+s.user.Name); err != nil {
		return err
	}
	http.Redirect(w, r, "/dashboard/certificates?name="+name, http.StatusSeeOther)
	return nil
}
