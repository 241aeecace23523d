// Package wfe is the HTTP front end: it speaks RFC 8555 and never changes
// state itself; every change goes through the RA. One wrapper registers every
// route and adds the headers every response needs.
package wfe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/nonce"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Authority is what the front end needs from the RA.
type Authority interface {
	Config() *profile.Config
	Profile(name string) (*profile.Profile, bool)
	Account(ctx context.Context, p *profile.Profile, id string) (*v1alpha1.AcmeAccount, error)
	NewAccount(ctx context.Context, p *profile.Profile, key *jose.JSONWebKey, req acme.NewAccountRequest, b ra.Binding) (*v1alpha1.AcmeAccount, bool, error)
	UpdateAccount(ctx context.Context, a *v1alpha1.AcmeAccount, req acme.AccountUpdateRequest) (*v1alpha1.AcmeAccount, error)
	ChangeKey(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, kcAccount, accountURL string, oldKey, newKey *jose.JSONWebKey, urlOf func(string) string) error
	NewOrder(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, req acme.NewOrderRequest) (*v1alpha1.AcmeOrder, error)
	Order(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeOrder, error)
	Orders(ctx context.Context, a *v1alpha1.AcmeAccount) ([]string, error)
	Authorization(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeChallenge, error)
	DeactivateAuthorization(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeChallenge, error)
	NewAuthorization(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, id acme.Identifier) (*v1alpha1.AcmeChallenge, error)
	Challenge(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeChallenge, int, error)
	RespondChallenge(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeChallenge, int, error)
	Finalize(ctx context.Context, p *profile.Profile, a *v1alpha1.AcmeAccount, orderID string, csr []byte) (*v1alpha1.AcmeOrder, error)
	Certificate(ctx context.Context, a *v1alpha1.AcmeAccount, id string) (*v1alpha1.AcmeCertificate, error)
	Chains(c *v1alpha1.AcmeCertificate) ([][]byte, error)
	Revoke(ctx context.Context, p *profile.Profile, who ra.Revoker, der []byte, reason *int) error
	RenewalInfo(ctx context.Context, certID string) (ra.RenewalWindow, error)
	CRL(ctx context.Context, caName, keyID string) ([]byte, error)
	CACertificate(caName, keyID string) ([]byte, error)
}

// WFE serves the ACME API.
type WFE struct {
	ra      Authority
	nonces  nonce.Service
	base    string
	log     *slog.Logger
	mux     *http.ServeMux
	maxBody int64
	// OrdersPerPage bounds one page of an orders list (RFC 8555 §7.1.2.1).
	OrdersPerPage int
	// Metrics records requests (nil records nothing).
	Metrics *metrics.Metrics
	// draining is set once shutdown has begun: /readyz fails so that load
	// balancers stop sending new requests while in-flight ones finish.
	draining atomic.Bool
}

// Drain makes /readyz fail from now on (shutdown has begun).
func (w *WFE) Drain() { w.draining.Store(true) }

// ready reports why the server should not receive traffic, or nil: it is
// shutting down. The listener opens only after the store's cache has synced
// and the HTTPS certificate is loaded, so a server without any profile yet is
// ready too (a first "helm install --wait" precedes the user's
// AcmeProfile): its directories answer a problem document saying that no
// profile is served, which tells a client more than a refused connection.
func (w *WFE) ready() error {
	if w.draining.Load() {
		return errors.New("shutting down")
	}
	return nil
}

// health serves /healthz (the process serves HTTP) and /readyz (ready).
func (w *WFE) health(rw http.ResponseWriter, r *http.Request) {
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == "/readyz" {
		if err := w.ready(); err != nil {
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(rw, "not ready: %v\n", err)
			return
		}
	}
	_, _ = rw.Write([]byte("ok\n"))
}

// statusWriter remembers the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

// New returns a front end whose URLs start with baseURL (e.g.
// https://127.0.0.1:8443); URLs never come from the request's Host (SEC-09).
func New(authority Authority, nonces nonce.Service, baseURL string, log *slog.Logger) *WFE {
	if log == nil {
		log = slog.Default()
	}
	w := &WFE{ra: authority, nonces: nonces, base: strings.TrimRight(baseURL, "/"), log: log,
		mux: http.NewServeMux(), maxBody: 64 << 10, OrdersPerPage: 100}
	w.routes()
	return w
}

// ServeHTTP implements http.Handler.
// The peer address goes to the RA for per-address rate limits (X-Forwarded-For
// is not trusted: any client could set it).
func (w *WFE) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		r = r.WithContext(ra.WithClientIP(r.Context(), host))
	}
	if w.draining.Load() {
		// Shutting down: this answer is its connection's last (HTTP/2: a
		// GOAWAY), so the client's next request opens a new connection,
		// which the Service sends to a replica that is not shutting down.
		rw.Header().Set("Connection", "close")
	}
	w.mux.ServeHTTP(rw, r)
}

// Paths under /acme/{profile}/.
const (
	pathDirectory   = "directory"
	pathNewNonce    = "new-nonce"
	pathNewAccount  = "new-account"
	pathAccount     = "acct/"
	pathNewOrder    = "new-order"
	pathNewAuthz    = "new-authz"
	pathOrder       = "order/"
	pathAuthz       = "authz/"
	pathChallenge   = "chall/"
	pathCert        = "cert/"
	pathRevoke      = "revoke-cert"
	pathKeyChange   = "key-change"
	pathRenewalInfo = "renewal-info"
)

type handlerFunc func(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error

func (w *WFE) routes() {
	w.handle("/acme/{profile}/"+pathDirectory, []string{"GET", "POST"}, w.directory)
	w.handle("/acme/directory", []string{"GET", "POST"}, w.directory)
	w.handle("/api/v1/acme/directory", []string{"GET", "POST"}, w.directory)
	w.handle("/acme/{profile}/"+pathNewNonce, []string{"GET", "POST"}, w.newNonce)
	w.handle("/acme/{profile}/"+pathNewAccount, []string{"POST"}, w.newAccount)
	w.handle("/acme/{profile}/"+pathAccount+"{id}", []string{"POST"}, w.account)
	w.handle("/acme/{profile}/"+pathAccount+"{id}/orders", []string{"POST"}, w.ordersList)
	w.handle("/acme/{profile}/"+pathNewOrder, []string{"POST"}, w.newOrder)
	w.handle("/acme/{profile}/"+pathNewAuthz, []string{"POST"}, w.newAuthz)
	w.handle("/acme/{profile}/"+pathOrder+"{id}", []string{"POST"}, w.order)
	w.handle("/acme/{profile}/"+pathOrder+"{id}/finalize", []string{"POST"}, w.finalize)
	w.handle("/acme/{profile}/"+pathAuthz+"{id}", []string{"POST"}, w.authorization)
	w.handle("/acme/{profile}/"+pathChallenge+"{id}", []string{"POST"}, w.challenge)
	w.handle("/acme/{profile}/"+pathCert+"{id}", []string{"POST"}, w.certificate)
	w.handle("/acme/{profile}/"+pathCert+"{id}/{chain}", []string{"POST"}, w.certificate)
	w.handle("/acme/{profile}/"+pathRevoke, []string{"POST"}, w.revoke)
	w.handle("/acme/{profile}/"+pathKeyChange, []string{"POST"}, w.keyChange)
	w.handle("/acme/{profile}/"+pathRenewalInfo+"/{certID}", []string{"GET"}, w.renewalInfo)
	w.handle("/crl/{ca}", []string{"GET"}, w.crl)
	w.handle("/ca/{ca}", []string{"GET"}, w.caCertificate)
	w.mux.HandleFunc("GET /healthz", w.health)
	w.mux.HandleFunc("GET /readyz", w.health)
	w.mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Cache-Control", "no-store")
		if n, err := w.nonces.Nonce(); err == nil {
			rw.Header().Set("Replay-Nonce", n)
		}
		w.writeProblem(rw, r, nil, acme.NotFoundProblem("no such resource"))
	})
}

// handle registers a route. It adds HEAD for GET, answers OPTIONS (CORS),
// sets Replay-Nonce, Link rel="index", Cache-Control and CORS headers, and
// answers other methods with 405 and Allow (RFC 8555 §6.3).
func (w *WFE) handle(pattern string, methods []string, h handlerFunc) {
	allowed := map[string]bool{"OPTIONS": true}
	for _, m := range methods {
		allowed[m] = true
		if m == "GET" {
			allowed["HEAD"] = true
		}
	}
	var allow []string
	for _, m := range []string{"GET", "HEAD", "POST", "OPTIONS"} {
		if allowed[m] {
			allow = append(allow, m)
		}
	}
	allowHeader := strings.Join(allow, ", ")
	w.mux.HandleFunc(pattern, func(orig http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: orig}
		defer func() {
			code := rw.code
			if code == 0 {
				code = http.StatusOK
			}
			w.Metrics.Request(pattern, r.Method, code, time.Since(start))
		}()
		hdr := rw.Header()
		hdr.Set("Access-Control-Allow-Origin", "*")
		hdr.Set("Access-Control-Expose-Headers", "Link, Replay-Nonce, Location, Retry-After")
		hdr.Set("Cache-Control", "no-store")
		var p *profile.Profile
		if path := r.PathValue("profile"); path != "" {
			var ok bool
			if p, ok = w.ra.Config().ByPath(path); !ok {
				w.writeProblem(rw, r, nil, acme.NotFoundProblem("no ACME directory %q", acme.Clip(path)))
				return
			}
		} else if r.PathValue("ca") == "" {
			p, _ = w.ra.Profile(w.ra.Config().DefaultProfile)
		}
		if p != nil && !strings.HasSuffix(pattern, pathDirectory) {
			hdr.Add("Link", link(w.dirURL(p), "index"))
		}
		if n, err := w.nonces.Nonce(); err == nil {
			hdr.Set("Replay-Nonce", n)
		}
		if !allowed[r.Method] {
			hdr.Set("Allow", allowHeader)
			w.writeProblem(rw, r, p, acme.MethodNotAllowedProblem())
			return
		}
		if r.Method == "OPTIONS" {
			hdr.Set("Allow", allowHeader)
			hdr.Set("Access-Control-Allow-Methods", allowHeader)
			hdr.Set("Access-Control-Allow-Headers", "Content-Type")
			hdr.Set("Access-Control-Max-Age", "86400")
			rw.WriteHeader(http.StatusNoContent)
			return
		}
		if p == nil && r.PathValue("ca") == "" {
			detail := "no default ACME profile is configured"
			if cfg := w.ra.Config(); cfg == nil || len(cfg.Profiles) == 0 {
				detail = "no ACME profile is served yet: no AcmeProfile whose CertificateAuthority is Ready exists"
			}
			w.writeProblem(rw, r, nil, acme.NotFoundProblem("%s", detail))
			return
		}
		if err := h(r.Context(), rw, r, p); err != nil {
			w.writeProblem(rw, r, p, acme.AsProblem(err))
		}
		w.log.Debug("request", "method", r.Method, "path", r.URL.Path, "duration", time.Since(start))
	})
}

func link(url, rel string) string { return "<" + url + ">;rel=\"" + rel + "\"" }

// URL builders.
func (w *WFE) profileURL(p *profile.Profile, path string) string {
	return w.base + "/acme/" + p.Path + "/" + path
}
func (w *WFE) dirURL(p *profile.Profile) string { return w.profileURL(p, pathDirectory) }
func (w *WFE) accountURL(p *profile.Profile, id string) string {
	return w.profileURL(p, pathAccount+id)
}

// AccountURL is the URL of account id of profile p on a server at baseURL:
// what the WFE answers as Location and accepts as kid.
func AccountURL(baseURL string, p *profile.Profile, id string) string {
	return (&WFE{base: strings.TrimRight(baseURL, "/")}).accountURL(p, id)
}
func (w *WFE) orderURL(p *profile.Profile, id string) string { return w.profileURL(p, pathOrder+id) }
func (w *WFE) authzURL(p *profile.Profile, id string) string { return w.profileURL(p, pathAuthz+id) }
func (w *WFE) challURL(p *profile.Profile, id string) string {
	return w.profileURL(p, pathChallenge+id)
}
func (w *WFE) certURL(p *profile.Profile, id string) string { return w.profileURL(p, pathCert+id) }

// writeJSON writes v with status.
func (w *WFE) writeJSON(rw http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		w.log.Error("encode response", "err", err)
		status, body = http.StatusInternalServerError, []byte(`{"type":"`+string(acme.ServerInternal)+`","status":500}`)
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
	rw.WriteHeader(status)
	_, _ = rw.Write(body)
}

// UnavailableRetryAfter is the Retry-After of a request refused because the
// store is unavailable: API server restarts and etcd leader elections last
// seconds, and ACME clients that honour it (Go's, lego, cert-manager) then
// come back once it is over.
const UnavailableRetryAfter = 3 * time.Second

// QuotaRetryAfter is the Retry-After of a request refused because a quota
// of the store (a ResourceQuota on the account's namespace) is used up:
// room comes back as retention deletes old objects, on the scale of hours.
const QuotaRetryAfter = time.Hour

// writeProblem writes an RFC 7807 problem; internal causes go to the log only.
func (w *WFE) writeProblem(rw http.ResponseWriter, r *http.Request, p *profile.Profile, prob *acme.Problem) {
	if prob.Status == 0 {
		prob.Status = http.StatusBadRequest
	}
	if prob.Status == http.StatusInternalServerError && storage.IsUnavailable(prob) {
		prob = acme.UnavailableProblem(prob, UnavailableRetryAfter)
	}
	if prob.Status == http.StatusInternalServerError && storage.IsQuotaExceeded(prob) {
		prob = acme.QuotaProblem(prob, QuotaRetryAfter)
	}
	w.Metrics.Problem(string(prob.Type))
	switch {
	case prob.Status == http.StatusServiceUnavailable:
		w.log.Warn("request not completed, retryable", "method", r.Method, "path", r.URL.Path, "err", prob.Error())
	case prob.Status >= 500:
		w.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", prob.Error())
	}
	if prob.Status >= 500 && prob.Headers.Get("Retry-After") == "" {
		rw.Header().Set("Retry-After", "60")
	}
	for k, vs := range prob.Headers {
		for _, v := range vs {
			rw.Header().Add(k, v)
		}
	}
	body, _ := json.Marshal(prob)
	rw.Header().Set("Content-Type", "application/problem+json")
	rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
	rw.WriteHeader(prob.Status)
	_, _ = rw.Write(body)
}

// directory serves RFC 8555 §7.1.1.
func (w *WFE) directory(_ context.Context, rw http.ResponseWriter, _ *http.Request, p *profile.Profile) error {
	meta := &acme.DirectoryMeta{
		TermsOfService: p.Spec.TermsOfService, Website: p.Spec.Website, CAAIdentities: p.Spec.CAAIdentities,
		ExternalAccountRequired: p.EABRequired(), Profiles: map[string]string{},
	}
	for _, name := range p.IssuanceOrder {
		d := p.Issuance[name].Description
		if d == "" {
			d = name
		}
		meta.Profiles[name] = d
	}
	dir := acme.Directory{
		NewNonce: w.profileURL(p, pathNewNonce), NewAccount: w.profileURL(p, pathNewAccount),
		NewOrder: w.profileURL(p, pathNewOrder), RevokeCert: w.profileURL(p, pathRevoke),
		KeyChange: w.profileURL(p, pathKeyChange), RenewalInfo: w.profileURL(p, pathRenewalInfo), Meta: meta,
	}
	if p.Spec.PreAuthorization {
		dir.NewAuthz = w.profileURL(p, pathNewAuthz) // DIR-03: only when offered
	}
	w.writeJSON(rw, http.StatusOK, dir)
	return nil
}

// newNonce serves RFC 8555 §7.2: HEAD 200, GET 204, POST-as-GET 200.
func (w *WFE) newNonce(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	if r.Method == "POST" {
		if _, err := w.verifyPOST(ctx, r, p, authKID); err != nil {
			return err
		}
		rw.WriteHeader(http.StatusOK)
		return nil
	}
	if r.Method == "HEAD" {
		rw.WriteHeader(http.StatusOK)
		return nil
	}
	rw.WriteHeader(http.StatusNoContent)
	return nil
}
