// Package dashboard serves the operator's web pages under /dashboard/: CAs,
// profiles, accounts, orders with their challenges' prepared data and
// errors, certificates, and the two incident actions (deactivate an account,
// revoke a certificate) through the same RA code as ACME and the resource
// edits. Pages are server-rendered (html/template escapes every
// user-controlled string), read through the storage seam (in a cluster the
// informer cache, so page views cost the API server nothing), and every view
// and action is authorized per namespace by an Authorizer.
package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

//go:embed templates/*.html
var templatesFS embed.FS

// Authority is what the dashboard needs from the RA.
type Authority interface {
	Config() *ra.Config
	RevokeAsAdmin(ctx context.Context, ns, name string, reason int, by string) (bool, error)
	DeactivateAsAdmin(ctx context.Context, ns, name, by string) (bool, error)
}

// Options configure the dashboard.
type Options struct {
	Store storage.Reader
	RA    Authority
	Auth  Authorizer
	// Audit holds the recent audit records of this server process.
	Audit interface{ Recent(n int) []audit.Entry }
	Log   *slog.Logger
	// PageSize bounds a list page (default 50).
	PageSize int
}

// Dashboard is the http.Handler for /dashboard/.
type Dashboard struct {
	o     Options
	mux   *http.ServeMux
	pages map[string]*template.Template
}

const cookieName = "kacme_dashboard"

// New builds the dashboard.
func New(o Options) (*Dashboard, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	d := &Dashboard{o: o, mux: http.NewServeMux(), pages: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04 MST")
		},
		"join": strings.Join,
		"list": func(xs ...string) []string { return xs },
	}
	for _, page := range []string{"login", "overview", "orders", "order", "certificates", "accounts", "confirm", "audit"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templatesFS, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, err
		}
		d.pages[page] = t
	}
	d.mux.HandleFunc("GET /dashboard/login", d.loginForm)
	d.mux.HandleFunc("POST /dashboard/login", d.login)
	d.mux.HandleFunc("POST /dashboard/logout", d.logout)
	d.mux.Handle("GET /dashboard/{$}", d.signedIn(d.overview))
	d.mux.Handle("GET /dashboard/orders", d.signedIn(d.orders))
	d.mux.Handle("GET /dashboard/orders/{ns}/{name}", d.signedIn(d.order))
	d.mux.Handle("GET /dashboard/certificates", d.signedIn(d.certificates))
	d.mux.Handle("GET /dashboard/certificates/{ns}/{name}/pem", d.signedIn(d.certificatePEM))
	d.mux.Handle("GET /dashboard/certificates/{ns}/{name}/revoke", d.signedIn(d.confirmRevoke))
	d.mux.Handle("POST /dashboard/certificates/{ns}/{name}/revoke", d.signedIn(d.action("acmecertificates", d.revoke)))
	d.mux.Handle("GET /dashboard/accounts", d.signedIn(d.accounts))
	d.mux.Handle("GET /dashboard/audit", d.signedIn(d.auditTrail))
	d.mux.Handle("GET /dashboard/accounts/{ns}/{name}/deactivate", d.signedIn(d.confirmDeactivate))
	d.mux.Handle("POST /dashboard/accounts/{ns}/{name}/deactivate", d.signedIn(d.action("acmeaccounts", d.deactivate)))
	return d, nil
}

// ServeHTTP implements http.Handler with the headers every page carries.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	// No external fetches and no inline script: styles are inline, there is no script at all.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	d.mux.ServeHTTP(w, r)
}

// session is a signed-in request.
type session struct {
	user    *User
	token   string
	allowed map[string]bool // "verb resource namespace" → decision
}

type handler func(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error

// errForbidden is an authorization refusal.
var errForbidden = errors.New("forbidden")

func (d *Dashboard) signedIn(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(cookieName)
		if err != nil || c.Value == "" {
			http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
			return
		}
		user, err := d.o.Auth.Authenticate(r.Context(), c.Value)
		if err != nil {
			http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
			return
		}
		s := &session{user: user, token: c.Value, allowed: map[string]bool{}}
		if err := h(r.Context(), w, r, s); err != nil {
			d.fail(w, err)
		}
	})
}

func (d *Dashboard) fail(w http.ResponseWriter, err error) {
	var p *acme.Problem
	switch {
	case errors.Is(err, errForbidden):
		http.Error(w, "forbidden: your token has no right to this", http.StatusForbidden)
	case storage.IsNotFound(err):
		http.Error(w, "not found", http.StatusNotFound)
	case errors.As(err, &p) && p.Status < 500:
		http.Error(w, p.Detail, p.Status)
	default:
		d.o.Log.Error("dashboard", "err", err)
		http.Error(w, "internal error (see the server log)", http.StatusInternalServerError)
	}
}

// may reports whether the session may verb resource in ns ("" = all).
func (d *Dashboard) may(ctx context.Context, s *session, verb, resource, ns string) bool {
	k := verb + " " + resource + " " + ns
	if v, ok := s.allowed[k]; ok {
		return v
	}
	ok, err := d.o.Auth.Allowed(ctx, s.user, verb, resource, ns)
	if err != nil {
		d.o.Log.Error("dashboard authorization", "user", s.user.Name, "err", err)
	}
	s.allowed[k] = ok && err == nil
	return s.allowed[k]
}

// visible keeps the items of the namespaces the session may list resource in.
func visible[T any](ctx context.Context, d *Dashboard, s *session, resource string, items []T, ns func(*T) string) []T {
	if d.may(ctx, s, "list", resource, "") {
		return items
	}
	var out []T
	for i := range items {
		if d.may(ctx, s, "list", resource, ns(&items[i])) {
			out = append(out, items[i])
		}
	}
	return out
}

func (d *Dashboard) render(w http.ResponseWriter, page string, s *session, data map[string]any) error {
	if data == nil {
		data = map[string]any{}
	}
	if s != nil {
		data["User"], data["CSRF"] = s.user.Name, csrfToken(s.token)
	}
	data["Page"] = page
	var b strings.Builder
	if err := d.pages[page].Execute(&b, data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := w.Write([]byte(b.String()))
	return err
}

func (d *Dashboard) loginForm(w http.ResponseWriter, _ *http.Request) {
	if err := d.render(w, "login", nil, nil); err != nil {
		d.fail(w, err)
	}
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	token := strings.TrimSpace(r.PostFormValue("token"))
	if _, err := d.o.Auth.Authenticate(r.Context(), token); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_ = d.render(w, "login", nil, map[string]any{"Error": "That token does not sign you in."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/dashboard/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: 8 * 3600})
	http.Redirect(w, r, "/dashboard/", http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/dashboard/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
}

// list lists every object of a kind without copying it (pages only read):
// from memory in both modes, so a page costs no decoding and no API request.
func (d *Dashboard) list(ctx context.Context, l storage.ObjectList) error {
	return d.o.Store.List(ctx, storage.AllNamespaces, l, storage.ListOptions{Shared: true})
}

func (d *Dashboard) overview(ctx context.Context, w http.ResponseWriter, _ *http.Request, s *session) error {
	var accounts v1alpha1.AcmeAccountList
	var orders v1alpha1.AcmeOrderList
	var certs v1alpha1.AcmeCertificateList
	for _, l := range []storage.ObjectList{&accounts, &orders, &certs} {
		if err := d.list(ctx, l); err != nil {
			return err
		}
	}
	nsOf := func(o *v1alpha1.AcmeOrder) string { return o.Namespace }
	ords := visible(ctx, d, s, "acmeorders", orders.Items, nsOf)
	crts := visible(ctx, d, s, "acmecertificates", certs.Items, func(c *v1alpha1.AcmeCertificate) string { return c.Namespace })
	accts := visible(ctx, d, s, "acmeaccounts", accounts.Items, func(a *v1alpha1.AcmeAccount) string { return a.Namespace })
	now := time.Now()
	perHour := make([]int, 24)  // issuances per hour over the last day, oldest first
	expiring := make([]int, 30) // certificates expiring per day over the next 30 days
	for i := range crts {
		c := &crts[i]
		if age := now.Sub(c.CreationTimestamp.Time); age >= 0 && age < 24*time.Hour {
			perHour[23-int(age/time.Hour)]++
		}
		if left := c.Spec.NotAfter.Sub(now); left >= 0 && left < 30*24*time.Hour && c.Status.Revocation == nil {
			expiring[int(left/(24*time.Hour))]++
		}
	}
	cfg := d.o.RA.Config()
	type caRow struct {
		Name, Subject string
		NotAfter      time.Time
		DaysLeft      int
		Rotated       bool
	}
	var cas []caRow
	for name, a := range cfg.Authorities {
		cas = append(cas, caRow{Name: name, Subject: a.Cert.Subject.String(), NotAfter: a.Cert.NotAfter,
			DaysLeft: int(time.Until(a.Cert.NotAfter).Hours() / 24), Rotated: a.Previous != nil})
	}
	sort.Slice(cas, func(i, j int) bool { return cas[i].Name < cas[j].Name })
	type profileRow struct{ Name, Path, CA, NotServed string }
	var profiles []profileRow
	for _, p := range cfg.Profiles {
		profiles = append(profiles, profileRow{Name: p.Name, Path: "/acme/" + p.Path + "/directory", CA: p.CA.Name})
	}
	for name, err := range cfg.NotServed {
		profiles = append(profiles, profileRow{Name: name, NotServed: err.Error()})
	}
	sort.Slice(profiles, func(i, j int) bool { return profiles[i].Name < profiles[j].Name })
	return d.render(w, "overview", s, map[string]any{"CAs": cas, "Profiles": profiles, "Accounts": len(accts),
		"Orders": len(ords), "Certificates": len(crts), "PerHour": bars(perHour), "Expiring": bars(expiring)})
}

// bar is one column of a chart drawn with plain HTML (no script).
type bar struct {
	N      int
	Height int // percent of the tallest
}

func bars(ns []int) []bar {
	top := 1
	for _, n := range ns {
		top = max(top, n)
	}
	out := make([]bar, len(ns))
	for i, n := range ns {
		out[i] = bar{N: n, Height: n * 100 / top}
	}
	return out
}

// filter is the orders list's query.
type filter struct{ Status, Profile, Namespace, Identifier string }

func (d *Dashboard) orders(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	f := filter{Status: q.Get("status"), Profile: q.Get("profile"), Namespace: q.Get("namespace"), Identifier: q.Get("identifier")}
	var all v1alpha1.AcmeOrderList
	if err := d.list(ctx, &all); err != nil {
		return err
	}
	items := visible(ctx, d, s, "acmeorders", all.Items, func(o *v1alpha1.AcmeOrder) string { return o.Namespace })
	var rows []*v1alpha1.AcmeOrder // pointers: sorting moves 8 bytes per swap, not the whole order
	for i := range items {
		o := &items[i]
		if (f.Status == "" || o.Status.Status == f.Status) && (f.Profile == "" || o.Spec.Profile == f.Profile) &&
			(f.Namespace == "" || o.Namespace == f.Namespace) && (f.Identifier == "" || hasIdentifier(o, f.Identifier)) {
			rows = append(rows, o)
		}
	}
	sortRows(rows, func(o *v1alpha1.AcmeOrder) time.Time { return o.CreationTimestamp.Time }, true)
	pg, rows := paginate(r, rows, d.o.PageSize, len(items), "orders")
	return d.render(w, "orders", s, map[string]any{"Orders": rows, "Filter": f, "Pager": pg})
}

func hasIdentifier(o *v1alpha1.AcmeOrder, s string) bool {
	for _, id := range o.Spec.Identifiers {
		if strings.Contains(id.Value, s) {
			return true
		}
	}
	return false
}

// sortRows orders rows by a time (newest first when desc), then by
// namespace and name: stores list in no particular order and many objects
// share a second, so without the tie-break page 2 could repeat page 1.
func sortRows[T any, P interface {
	*T
	GetNamespace() string
	GetName() string
}](rows []P, at func(P) time.Time, desc bool) {
	sort.Slice(rows, func(i, j int) bool {
		ti, tj := at(rows[i]), at(rows[j])
		if !ti.Equal(tj) {
			return ti.After(tj) == desc
		}
		if a, b := rows[i].GetNamespace(), rows[j].GetNamespace(); a != b {
			return a < b
		}
		return rows[i].GetName() < rows[j].GetName()
	})
}

// pager is a list page's position, shown by the "pager" template.
type pager struct {
	PageNo, Pages int
	// Total is how many objects of the kind the user may see, What their name.
	Total      int
	What       string
	Prev, Next string
}

// paginate cuts the rows of the requested page (?page=, 1-based, clamped).
func paginate[T any](r *http.Request, rows []T, size, total int, what string) (pager, []T) {
	p := pager{Pages: max(1, (len(rows)+size-1)/size), Total: total, What: what}
	p.PageNo, _ = strconv.Atoi(r.URL.Query().Get("page"))
	p.PageNo = min(max(p.PageNo, 1), p.Pages)
	p.Prev, p.Next = pageURL(r, p.PageNo-1), pageURL(r, p.PageNo+1)
	lo := (p.PageNo - 1) * size
	return p, rows[lo:min(lo+size, len(rows))]
}

func pageURL(r *http.Request, page int) string {
	q := r.URL.Query()
	q.Set("page", strconv.Itoa(page))
	return r.URL.Path + "?" + q.Encode()
}

// challengeView is one challenge with what the client had to deploy, in plain words.
type challengeView struct {
	Type, Status, Token, Validated string
	Deploy                         []string
	Error                          *v1alpha1.Problem
}

func (d *Dashboard) order(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	if !d.may(ctx, s, "list", "acmeorders", ns) {
		return errForbidden
	}
	var o v1alpha1.AcmeOrder
	if err := d.o.Store.Get(ctx, ns, name, &o); err != nil {
		return err
	}
	type authzView struct {
		Name, Identifier, Status string
		Expires                  time.Time
		Challenges               []challengeView
		Records                  []v1alpha1.ValidationRecord
	}
	var azs []authzView
	ports := [2]int{80, 443} // http-01 and tls-alpn-01 ports the profile validates on
	if p, ok := d.o.RA.Config().Profiles[o.Spec.Profile]; ok {
		if p.Validation.HTTPPort != 0 {
			ports[0] = p.Validation.HTTPPort
		}
		if p.Validation.TLSPort != 0 {
			ports[1] = p.Validation.TLSPort
		}
	}
	for _, id := range o.Status.Authorizations {
		var az v1alpha1.AcmeChallenge
		if err := d.o.Store.Get(ctx, ns, id, &az); err != nil {
			if storage.IsNotFound(err) {
				continue
			}
			return err
		}
		v := authzView{Name: az.Name, Identifier: az.Spec.Identifier.Value, Status: az.Status.Status, Expires: az.Status.Expires.Time,
			Records: az.Status.Records}
		if az.Spec.Wildcard {
			v.Identifier = "*." + v.Identifier
		}
		for _, c := range az.Status.Challenges {
			cv := challengeView{Type: string(c.Type), Status: c.Status, Token: c.Token, Error: c.Error}
			if c.Validated != nil {
				cv.Validated = c.Validated.UTC().Format(time.RFC3339)
			}
			cv.Deploy = deployText(c, az.Spec.Identifier.Value, ports)
			v.Challenges = append(v.Challenges, cv)
		}
		azs = append(azs, v)
	}
	return d.render(w, "order", s, map[string]any{"Order": o, "Authorizations": azs})
}

// deployText says what the client had to put in place for a challenge.
func deployText(c v1alpha1.AcmeChallengeState, name string, ports [2]int) []string {
	host := func(port, std int) string {
		if port == std {
			return name
		}
		return name + ":" + strconv.Itoa(port)
	}
	switch c.Type {
	case "http-01":
		return []string{"URL: http://" + host(ports[0], 80) + c.Data.Path, "file content: " + c.Data.Content}
	case "dns-01":
		return []string{"TXT record: " + c.Data.RecordName, "value: " + c.Data.RecordValue}
	case "tls-alpn-01":
		return []string{"a certificate for " + name + " with the acmeIdentifier extension (SHA-256 " + c.Data.Digest + ") served with ALPN acme-tls/1 on " + host(ports[1], 443)}
	}
	return nil
}

func (d *Dashboard) certificates(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	var all v1alpha1.AcmeCertificateList
	if err := d.list(ctx, &all); err != nil {
		return err
	}
	items := visible(ctx, d, s, "acmecertificates", all.Items, func(c *v1alpha1.AcmeCertificate) string { return c.Namespace })
	q := r.URL.Query().Get("name")
	var rows []*v1alpha1.AcmeCertificate
	for i := range items {
		if c := &items[i]; q == "" || c.Name == q || strings.Contains(strings.Join(c.Spec.Names, " "), q) {
			rows = append(rows, c)
		}
	}
	sortRows(rows, func(c *v1alpha1.AcmeCertificate) time.Time { return c.Spec.NotAfter.Time }, false)
	pg, rows := paginate(r, rows, d.o.PageSize, len(items), "certificates")
	return d.render(w, "certificates", s, map[string]any{"Certificates": rows, "Pager": pg, "Query": q})
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
	w.Header().Set("Content-Type", "application/pem-certificate-chain")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", c.Name+".pem"))
	_, err := w.Write([]byte(c.Spec.Chain))
	return err
}

func (d *Dashboard) accounts(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
	var all v1alpha1.AcmeAccountList
	if err := d.list(ctx, &all); err != nil {
		return err
	}
	items := visible(ctx, d, s, "acmeaccounts", all.Items, func(a *v1alpha1.AcmeAccount) string { return a.Namespace })
	rows := make([]*v1alpha1.AcmeAccount, len(items))
	for i := range items {
		rows[i] = &items[i]
	}
	sortRows(rows, func(a *v1alpha1.AcmeAccount) time.Time { return a.CreationTimestamp.Time }, true)
	pg, rows := paginate(r, rows, d.o.PageSize, len(items), "accounts")
	return d.render(w, "accounts", s, map[string]any{"Accounts": rows, "Pager": pg})
}

// auditTrail shows this process's recent audit records. They span every
// namespace, so in a cluster only users who may list accounts everywhere
// see them.
func (d *Dashboard) auditTrail(ctx context.Context, w http.ResponseWriter, _ *http.Request, s *session) error {
	if d.o.Audit == nil {
		return storage.ErrNotFound
	}
	if !d.may(ctx, s, "list", "acmeaccounts", "") {
		return errForbidden
	}
	type row struct {
		Time  time.Time
		Event string
		Attrs []string
	}
	var rows []row
	for _, e := range d.o.Audit.Recent(200) {
		r := row{Time: e.Time, Event: e.Event}
		for _, a := range e.Attrs {
			r.Attrs = append(r.Attrs, a.Key+"="+a.Value.String())
		}
		rows = append(rows, r)
	}
	return d.render(w, "audit", s, map[string]any{"Records": rows})
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

// action guards a confirmed POST on an object {ns}/{name} of resource: the
// form must carry the session's CSRF token and the user must have update
// on resource in ns.
func (d *Dashboard) action(resource string, h handler) handler {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
		if !validCSRF(s.token, r.PostFormValue("csrf")) {
			http.Error(w, "missing or wrong CSRF token: reload the page and confirm again", http.StatusForbidden)
			return nil
		}
		if !d.may(ctx, s, "update", resource, r.PathValue("ns")) {
			return errForbidden
		}
		return h(ctx, w, r, s)
	}
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
