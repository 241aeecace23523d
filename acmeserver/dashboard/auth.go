package dashboard

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kacme/kacme/acmeserver/ca"
)

// User is who signed in.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Authorizer decides who is signed in and what they may see and do.
type Authorizer interface {
	// Authenticate returns the user a bearer token belongs to.
	Authenticate(ctx context.Context, token string) (*User, error)
	// Allowed reports whether user may verb ("list" to view, "update" to
	// act) resource (acmeorders, acmecertificates, ...) in namespace ("":
	// every namespace).
	Allowed(ctx context.Context, user *User, verb, resource, namespace string) (bool, error)
}

// ErrUnauthenticated is a token that signs nobody in.
var ErrUnauthenticated = errors.New("the token is not valid")

// AdminToken is the standalone Authorizer: one random token, every right.
type AdminToken struct{ token string }

// Authenticate implements Authorizer.
func (a AdminToken) Authenticate(_ context.Context, token string) (*User, error) {
	if a.token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(a.token)) != 1 {
		return nil, ErrUnauthenticated
	}
	return &User{Name: "admin"}, nil
}

// Allowed implements Authorizer: the admin may do everything.
func (a AdminToken) Allowed(context.Context, *User, string, string, string) (bool, error) {
	return true, nil
}

// TokenFile is where standalone mode keeps the admin token.
const TokenFile = "dashboard-token"

// LoadOrCreateToken reads the admin token from dir, or creates one (0600);
// created reports a new token, which the caller prints once.
func LoadOrCreateToken(dir string) (a AdminToken, created bool, err error) {
	p := filepath.Join(dir, TokenFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if t := strings.TrimSpace(string(b)); len(t) >= 32 {
			return AdminToken{token: t}, false, nil
		}
		return AdminToken{}, false, fmt.Errorf("%s: token too short; delete the file to get a new one", p)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return AdminToken{}, false, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return AdminToken{}, false, err
	}
	t := base64.RawURLEncoding.EncodeToString(raw)
	if err := ca.WriteFileAtomic(p, []byte(t+"\n"), 0o600); err != nil {
		return AdminToken{}, false, err
	}
	return AdminToken{token: t}, true, nil
}

// Token is the admin token (to print once).
func (a AdminToken) Token() string { return a.token }

// csrfToken binds a form to the session: an HMAC of a fixed label under the
// session cookie, so any replica can check it without shared state, and a
// page on another site, which cannot read the HttpOnly cookie, cannot forge
// it.
func csrfToken(sessionCookie string) string {
	m := hmac.New(sha256.New, []byte(sessionCookie))
	m.Write([]byte("kacme dashboard csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func validCSRF(sessionCookie, got string) bool {
	return got != "" && hmac.Equal([]byte(csrfToken(sessionCookie)), []byte(got))
}
