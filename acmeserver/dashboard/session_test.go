package dashboard_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kacme/kacme/acmeserver/dashboard"
	"github.com/kacme/kacme/acmeserver/storage/embedded"
)

// signIn posts token to the sign-in form from addr and returns the session cookie.
func signIn(t *testing.T, d http.Handler, token, addr string) *http.Cookie {
	t.Helper()
	rec := post(d, token, addr)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("sign in: %d %s", rec.Code, rec.Body)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == "kacme_dashboard" {
			return c
		}
	}
	t.Fatal("no session cookie")
	return nil
}

func post(d http.Handler, token, addr string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/dashboard/login", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = addr
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, req)
	return rec
}

func get(d http.Handler, path string, c *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if c != nil {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, req)
	return rec
}

// countingAuth is an Authorizer that counts token checks (a TokenReview
// each in a cluster).
type countingAuth struct {
	token  string
	checks atomic.Int32
}

func (a *countingAuth) Authenticate(_ context.Context, token string) (*dashboard.User, error) {
	a.checks.Add(1)
	if token != a.token {
		return nil, dashboard.ErrUnauthenticated
	}
	return &dashboard.User{Name: "alice", Groups: []string{"ops"}}, nil
}

func (a *countingAuth) Allowed(context.Context, *dashboard.User, string, string, string) (bool, error) {
	return true, nil
}

func newDashboard(t *testing.T, auth dashboard.Authorizer, now func() time.Time) http.Handler {
	return newDashboardWithKey(t, auth, now, "deployment secret")
}

func newDashboardWithKey(t *testing.T, auth dashboard.Authorizer, now func() time.Time, secret string) http.Handler {
	t.Helper()
	store, err := embedded.Open(filepath.Join(t.TempDir(), "kacme.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	d, err := dashboard.New(dashboard.Options{Store: store, RA: noRA{}, Auth: auth, Now: now,
		SessionKey: dashboard.SessionKey([]byte(secret))})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSessions (issue 13, finding 5): the token is checked once, at sign-in;
// the cookie carries a signed identity, never the token; a page view with an
// unknown, altered or expired cookie costs no token check (no TokenReview).
func TestSessions(t *testing.T) {
	auth := &countingAuth{token: "the-users-bearer-token-0123456789"}
	now := time.Now()
	d := newDashboard(t, auth, func() time.Time { return now })
	c := signIn(t, d, auth.token, "192.0.2.1:1000")
	if auth.checks.Load() != 1 {
		t.Fatalf("%d token checks at sign-in, want 1", auth.checks.Load())
	}
	decoded := c.Value
	if p, _, ok := strings.Cut(c.Value, "."); ok {
		if b, err := base64.RawURLEncoding.DecodeString(p); err == nil {
			decoded = string(b)
		}
	}
	if strings.Contains(c.Value, auth.token) || strings.Contains(decoded, auth.token) || !strings.Contains(decoded, "alice") {
		t.Fatalf("the session cookie carries the token, or not the identity: %s", decoded)
	}
	if c.MaxAge != int(dashboard.SessionLifetime/time.Second) || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie attributes %+v", c)
	}
	for i := 0; i < 20; i++ {
		if rec := get(d, "/dashboard/", c); rec.Code != http.StatusOK {
			t.Fatalf("a page with the session: %d", rec.Code)
		}
	}
	forged := []*http.Cookie{
		{Name: "kacme_dashboard", Value: auth.token}, // the token itself is not a session
		{Name: "kacme_dashboard", Value: "random-garbage"},
		{Name: "kacme_dashboard", Value: strings.Replace(c.Value, c.Value[3:4], map[bool]string{true: "B", false: "A"}[c.Value[3:4] == "A"], 1)},
		{Name: "kacme_dashboard", Value: strings.Repeat("x", 100000)},
	}
	for _, f := range forged {
		if rec := get(d, "/dashboard/", f); rec.Code != http.StatusSeeOther {
			t.Fatalf("cookie %.20q… was accepted: %d", f.Value, rec.Code)
		}
	}
	if n := auth.checks.Load(); n != 1 {
		t.Fatalf("page views cost %d token checks, want none after sign-in", n-1)
	}
	// Another deployment's key does not accept the session; an expired one is refused.
	if rec := get(newDashboardWithKey(t, auth, time.Now, "another deployment"), "/dashboard/", c); rec.Code != http.StatusSeeOther {
		t.Fatalf("a session signed under another key was accepted: %d", rec.Code)
	}
	now = now.Add(dashboard.SessionLifetime + time.Second)
	if rec := get(d, "/dashboard/", c); rec.Code != http.StatusSeeOther {
		t.Fatalf("an expired session was accepted: %d", rec.Code)
	}
}

// TestFailedSignInsLimited (issue 13, finding 5): after five failed sign-ins
// an address is refused (429 with Retry-After) before its token is checked,
// a correct token included; another address is not affected; attempts come
// back with time.
func TestFailedSignInsLimited(t *testing.T) {
	auth := &countingAuth{token: "right-token-0123456789abcdefghij"}
	d := newDashboard(t, auth, time.Now)
	for i := 0; i < 5; i++ {
		if rec := post(d, "wrong", "198.51.100.7:4000"); rec.Code != http.StatusUnauthorized {
			t.Fatalf("failed sign-in %d: %d", i+1, rec.Code)
		}
	}
	checks := auth.checks.Load()
	rec := post(d, auth.token, "198.51.100.7:4001")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("sign-in after five failures: %d, want 429", rec.Code)
	}
	if s, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || s < 1 || s > 15 {
		t.Fatalf("Retry-After %q", rec.Header().Get("Retry-After"))
	}
	if auth.checks.Load() != checks {
		t.Fatal("a limited address's token was checked (a TokenReview in a cluster)")
	}
	signIn(t, d, auth.token, "198.51.100.8:4000")
}

// TestOversizedForm: a sign-in form larger than 16 KiB is refused before
// its token is looked at (net/http alone reads up to 10 MB of a form).
func TestOversizedForm(t *testing.T) {
	auth := &countingAuth{token: "t"}
	d := newDashboard(t, auth, time.Now)
	rec := post(d, strings.Repeat("x", 1<<20), "192.0.2.9:1")
	if rec.Code != http.StatusRequestEntityTooLarge || auth.checks.Load() != 0 {
		t.Fatalf("a 1 MB form: %d after %d token checks, want 413 and none", rec.Code, auth.checks.Load())
	}
}
