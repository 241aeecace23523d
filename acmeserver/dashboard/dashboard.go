// Package dashboard serves the operator's web pages under /dashboard/: CAs,
// profiles, accounts, orders with their challenges' prepared data and
// errors, certificates, and the two incident actions (deactivate an account,
// revoke a certificate) through the same RA code as ACME and the resource
// edits. Pages are server-rendered (html/template escapes every
// user-controlled string), read through the storage seam (in a cluster the
// informer cache, so page views cost the API server nothing), and every view
// and action is authorized per namespace by an Authorizer.
//
// One file per page: login.go, overview.go, orders.go (the list and one
// order), certificates.go (with revocation), accounts.go (with
// deactivation), audittrail.go; table.go sorts and pages their tables;
// dashboard.go routes, signs in and renders; auth.go, kube.go and session.go
// are the Authorizers and the session cookie.
package dashboard

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

//go:embed templates/*.html
var templatesFS embed.FS

// Authority is what the dashboard needs from the RA.
type Authority interface {
	Config() *profile.Config
	RevokeAsAdmin(ctx context.Context, ns, name string, reason int, by string) (bool, error)
	DeactivateAsAdmin(ctx context.Context, ns, name, by string) (bool, error)
	Chains(c *v1alpha1.AcmeCertificate) ([][]byte, error)
	// OrderAuthorizations are an order's authorizations, stored or (while
	// pending and unanswered) derived from the order.
	OrderAuthorizations(ctx context.Context, o *v1alpha1.AcmeOrder) ([]*v1alpha1.AcmeChallenge, error)
}

// Options configure the dashboard.
type Options struct {
	Store storage.Reader
	RA    Authority
	Auth  Authorizer
	// Audit holds the recent audit records of this server process.
	Audit interface{ Recent(n int) []audit.Entry }
	// PodCertificates lists the pod certificates kacme's signers decided
	// (cluster mode; nil: no such page).
	PodCertificates PodCertificateLister
	Log             *slog.Logger
	// PageSize bounds a list page (default 50).
	PageSize int
	// SessionKey signs session cookies (SessionKey derives one); replicas
	// that share it accept each other's sessions. Default: a random key of
	// this process.
	SessionKey []byte
	// Now is the clock (tests).
	Now func() time.Time
}

// Dashboard is the http.Handler for /dashboard/.
type Dashboard struct {
	o        Options
	mux      *http.ServeMux
	pages    map[string]*template.Template
	sessions sessionCodec
	signIns  *signInLimiter
}

const cookieName = "kacme_dashboard"

// maxFormBytes bounds a request body (sign-in and action forms).
const maxFormBytes = 16 << 10

// New builds the dashboard.
func New(o Options) (*Dashboard, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.PageSize <= 0 {
		o.PageSize = 50
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.SessionKey) == 0 {
		o.SessionKey = make([]byte, 32)
		if _, err := rand.Read(o.SessionKey); err != nil {
			return nil, err
		}
	}
	d := &Dashboard{o: o, mux: http.NewServeMux(), pages: map[string]*template.Template{},
		sessions: sessionCodec{key: o.SessionKey, now: o.Now}, signIns: newSignInLimiter()}
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
	for _, page := range []string{"login", "overview", "orders", "order", "certificates", "accounts", "confirm", "audit", "podcertificates"} {
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
	d.mux.Handle("GET /dashboard/pod-certificates", d.signedIn(d.podCertificates))
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
	// Forms are a token or a CSRF token and a reason: a few hundred bytes
	// (net/http would otherwise read up to 10 MB of a form).
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	d.mux.ServeHTTP(w, r)
}

// session is a signed-in request.
type session struct {
	user    *User
	cookie  string          // the session cookie's value (the CSRF token is bound to it)
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
		user, err := d.sessions.check(c.Value) // an HMAC, never an API request
		if err != nil {
			http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
			return
		}
		s := &session{user: user, cookie: c.Value, allowed: map[string]bool{}}
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

func (d *Dashboard) render(w http.ResponseWriter, page string, s *session, data map[string]any) error {
	if data == nil {
		data = map[string]any{}
	}
	if s != nil {
		data["User"], data["CSRF"] = s.user.Name, csrfToken(s.cookie)
	}
	data["Page"] = page
	data["PodCertificates"] = d.o.PodCertificates != nil
	var b strings.Builder
	if err := d.pages[page].Execute(&b, data); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, err := w.Write([]byte(b.String()))
	return err
}

// action guards a confirmed POST on an object {ns}/{name} of resource: the
// form must carry the session's CSRF token and the user must have update
// on resource in ns.
func (d *Dashboard) action(resource string, h handler) handler {
	return func(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) error {
		if !validCSRF(s.cookie, r.PostFormValue("csrf")) {
			http.Error(w, "missing or wrong CSRF token: reload the page and confirm again", http.StatusForbidden)
			return nil
		}
		if !d.may(ctx, s, "update", resource, r.PathValue("ns")) {
			return errForbidden
		}
		return h(ctx, w, r, s)
	}
}
