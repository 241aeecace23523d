package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/standalone"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// concurrently runs n copies of send at once and tallies the answers as
// "<status> <problem type>" ("<status>" for a success).
func concurrently(t *testing.T, n int, send func(i int) (*http.Response, []byte)) map[string]int {
	t.Helper()
	var mu sync.Mutex
	out := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, b := send(i)
			k := fmt.Sprint(r.StatusCode)
			if r.StatusCode >= 400 {
				var p acme.Problem
				_ = json.Unmarshal(b, &p)
				k += " " + string(p.Type)
			}
			mu.Lock()
			out[k]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return out
}

// wantTally compares answers with want, ignoring order.
func wantTally(t *testing.T, what string, got map[string]int, want map[string]int) {
	t.Helper()
	var g, w []string
	for k, v := range got {
		g = append(g, fmt.Sprintf("%s×%d", k, v))
	}
	for k, v := range want {
		w = append(w, fmt.Sprintf("%s×%d", k, v))
	}
	sort.Strings(g)
	sort.Strings(w)
	if strings.Join(g, ", ") != strings.Join(w, ", ") {
		t.Fatalf("%s: got %v, want %v", what, g, w)
	}
}

// TestConcurrentRevocation (REV-01, issue 13): ten revocations of one
// certificate at once revoke it once; the others are alreadyRevoked, and the
// stored revocation is the first one's.
func TestConcurrentRevocation(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	der := e.dns01Certificate(k, kid, "revoke-race.localhost")
	got := concurrently(t, 10, func(i int) (*http.Response, []byte) {
		return e.signed(k, kid, e.dir["default"].RevokeCert, fmt.Sprintf(`{"certificate":%q,"reason":%d}`, b64.EncodeToString(der), []int{1, 4}[i%2]))
	})
	wantTally(t, "10 concurrent revocations", got, map[string]int{"200": 1, "400 " + string(acme.AlreadyRevoked): 9})
	var certs v1alpha1.AcmeCertificateList
	if err := e.srv.Store.List(context.Background(), standalone.Namespace, &certs, storage.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, c := range certs.Items {
		if c.Spec.Revocation != nil {
			revoked++
		}
	}
	if revoked != 1 {
		t.Fatalf("%d stored revocations, want 1", revoked)
	}
}

// TestConcurrentKeyChange (KEY-02, KEY-08, issue 13): an account rolled over
// to five new keys at once ends with exactly one of them; the other requests
// are malformed (their old-key signature no longer verifies, or the key
// changed under them) and change nothing. Two accounts rolling onto the same
// new key at once: one wins, the other gets 409 with the winner's Location.
func TestConcurrentKeyChange(t *testing.T) {
	e := newEnv(t)
	f := &fixture{}
	f.k, f.kid = e.account("default")
	newKeys := make([]*key, 5)
	inners := make([]string, 5)
	for i := range newKeys {
		newKeys[i] = newKey(t, "ES256")
		old, _ := json.Marshal(f.k.jwk())
		inners[i] = string(e.jws(newKeys[i], e.dir["default"].KeyChange, fmt.Sprintf(`{"account":%q,"oldKey":%s}`, f.kid, old), jwsOpts{noNonce: true}))
	}
	bodies := make([][]byte, 5)
	for i := range bodies { // nonces fetched first, so that every request is in flight at once
		bodies[i] = e.jws(f.k, e.dir["default"].KeyChange, inners[i], jwsOpts{kid: f.kid})
	}
	got := concurrently(t, 5, func(i int) (*http.Response, []byte) { return e.post(e.dir["default"].KeyChange, bodies[i]) })
	wantTally(t, "5 concurrent key changes", got, map[string]int{"200": 1, "400 " + string(acme.Malformed): 4})
	works := 0
	for _, nk := range append(newKeys, f.k) {
		if r, _ := e.signed(nk, f.kid, f.kid, ""); r.StatusCode == 200 {
			works++
		}
	}
	if works != 1 {
		t.Fatalf("%d keys sign for the account after the race, want exactly one", works)
	}

	a, akid := e.account("default")
	b, bkid := e.account("default")
	shared := newKey(t, "ES256")
	body := func(k *key, kid string) []byte {
		old, _ := json.Marshal(k.jwk())
		inner := e.jws(shared, e.dir["default"].KeyChange, fmt.Sprintf(`{"account":%q,"oldKey":%s}`, kid, old), jwsOpts{noNonce: true})
		return e.jws(k, e.dir["default"].KeyChange, string(inner), jwsOpts{kid: kid})
	}
	ab, bb := body(a, akid), body(b, bkid)
	got = concurrently(t, 2, func(i int) (*http.Response, []byte) {
		if i == 0 {
			return e.post(e.dir["default"].KeyChange, ab)
		}
		return e.post(e.dir["default"].KeyChange, bb)
	})
	wantTally(t, "two accounts onto one new key", got, map[string]int{"200": 1, "409 " + string(acme.Malformed): 1})
}

// TestConcurrentNewAccount (ACC-02): ten registrations of one key at once
// create one account; the others answer 200 with its Location.
func TestConcurrentNewAccount(t *testing.T) {
	e := newEnv(t)
	k := newKey(t, "ES256")
	u := e.dir["default"].NewAccount
	bodies := make([][]byte, 10)
	for i := range bodies {
		bodies[i] = e.jws(k, u, `{"termsOfServiceAgreed":true}`, jwsOpts{})
	}
	var mu sync.Mutex
	locations := map[string]bool{}
	got := concurrently(t, 10, func(i int) (*http.Response, []byte) {
		r, b := e.post(u, bodies[i])
		mu.Lock()
		locations[r.Header.Get("Location")] = true
		mu.Unlock()
		return r, b
	})
	wantTally(t, "10 concurrent registrations of one key", got, map[string]int{"201": 1, "200": 9})
	if len(locations) != 1 {
		t.Fatalf("registrations answered %d account URLs, want one", len(locations))
	}
}
