package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sessions. The credential a user signs in with (the standalone admin
// token, or a Kubernetes bearer token checked with one TokenReview) is used
// once, at sign-in, and kept nowhere. The cookie holds the identity the
// check returned, an expiry and a random ID, signed with HMAC-SHA256 under
// the session key: any replica holding the key accepts it without state,
// a forged or altered one costs one HMAC and no API request, and it carries
// nothing a thief could present to the API server. Signing out clears the
// cookie; changing the key (the admin token in standalone mode, the
// kacme-internal Secret in a cluster) ends every session.

// SessionLifetime is how long a sign-in lasts.
const SessionLifetime = 8 * time.Hour

// maxCookieBytes keeps a session within what browsers store for a cookie.
const maxCookieBytes = 3800

// sessionClaims is what a session cookie says.
type sessionClaims struct {
	Version int    `json:"v"`
	ID      string `json:"id"` // random: two sign-ins of one user get different sessions
	User    User   `json:"u"`
	Expires int64  `json:"exp"`
}

// sessionCodec signs and checks session cookies.
type sessionCodec struct {
	key []byte
	now func() time.Time
}

// SessionKey derives the dashboard's session key from a secret the
// deployment already keeps (so that replicas agree on it): the standalone
// admin token, or the replicas' internal HMAC key.
func SessionKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("kacme dashboard session key v1"))
	return m.Sum(nil)
}

// errBadSession is a cookie that is not a valid, current session.
var errBadSession = errors.New("not a valid session")

func (c sessionCodec) issue(u *User) (string, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	payload, err := json.Marshal(sessionClaims{Version: 1, ID: base64.RawURLEncoding.EncodeToString(id), User: *u,
		Expires: c.now().Add(SessionLifetime).Unix()})
	if err != nil {
		return "", err
	}
	v := base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(c.mac(payload))
	if len(v) > maxCookieBytes {
		return "", errors.New("the identity (user name, groups and extra attributes) is too large for a session cookie")
	}
	return v, nil
}

func (c sessionCodec) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(payload)
	return m.Sum(nil)
}

func (c sessionCodec) check(v string) (*User, error) {
	if len(v) > maxCookieBytes {
		return nil, errBadSession
	}
	p64, s64, ok := strings.Cut(v, ".")
	if !ok {
		return nil, errBadSession
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.DecodeString(s64)
	if err1 != nil || err2 != nil || !hmac.Equal(sig, c.mac(payload)) {
		return nil, errBadSession
	}
	var cl sessionClaims
	if err := json.Unmarshal(payload, &cl); err != nil || cl.Version != 1 || c.now().Unix() >= cl.Expires {
		return nil, errBadSession
	}
	return &cl.User, nil
}

// signInLimiter bounds failed sign-ins per client address, so that tokens
// cannot be guessed and, in a cluster, failed attempts cannot spend the API
// budget issuance needs (each attempt is a TokenReview). An address that
// has used up its attempts is refused before its token is looked at.
type signInLimiter struct {
	mu       sync.Mutex
	byAddr   map[string]*rate.Limiter
	overflow *rate.Limiter // shared by addresses beyond maxTracked
}

// Failed sign-ins: a burst of 5, then one every 12 s, per address; at most
// maxTracked addresses are tracked apart (more share one limiter).
const (
	signInBurst = 5
	signInEvery = 12 * time.Second
	maxTracked  = 10000
)

func newSignInLimiter() *signInLimiter {
	return &signInLimiter{byAddr: map[string]*rate.Limiter{}, overflow: rate.NewLimiter(rate.Every(signInEvery), signInBurst)}
}

// limiter returns addr's limiter.
func (s *signInLimiter) limiter(addr string) *rate.Limiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.byAddr[addr]; ok {
		return l
	}
	if len(s.byAddr) >= maxTracked {
		for a, l := range s.byAddr { // forget addresses whose attempts have all come back
			if l.Tokens() >= signInBurst {
				delete(s.byAddr, a)
			}
		}
		if len(s.byAddr) >= maxTracked {
			return s.overflow
		}
	}
	l := rate.NewLimiter(rate.Every(signInEvery), signInBurst)
	s.byAddr[addr] = l
	return l
}

// wait reports how long addr must wait before its next attempt (0: go on).
func (s *signInLimiter) wait(addr string) time.Duration {
	l := s.limiter(addr)
	if l.Tokens() >= 1 {
		return 0
	}
	r := l.Reserve()
	d := r.Delay()
	r.Cancel()
	return max(d, time.Second)
}

// failed spends one of addr's attempts.
func (s *signInLimiter) failed(addr string) { s.limiter(addr).Allow() }

// clientAddr is the peer address (X-Forwarded-For is not trusted: any
// client could set it).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
