package conformance

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/kacme/kacme/acmeserver/acme"
)

// TestPreAuthorization (DIR-03, AUTHZ-10, TRN-08): newAuthz is in the
// directory only of a profile that offers it; it answers 201 with the
// authorization and its Location; a wildcard is malformed (400) and a name
// the policy refuses is rejectedIdentifier with 403; once the
// pre-authorization is valid, the account's order for the name is ready
// without another validation and issues, and another account's is not.
func TestPreAuthorization(t *testing.T) {
	e := newEnv(t)
	if e.dir["default"].NewAuthz != "" || e.dir["preauth"].NewAuthz == "" {
		t.Fatalf("DIR-03: newAuthz %q without pre-authorization, %q with", e.dir["default"].NewAuthz, e.dir["preauth"].NewAuthz)
	}
	url := e.dir["preauth"].NewAuthz
	k, kid := e.account("preauth")
	newAuthz := func(typ, value string) (int, []byte, string) {
		t.Helper()
		r, b := e.signed(k, kid, url, fmt.Sprintf(`{"identifier":{"type":%q,"value":%q}}`, typ, value))
		return r.StatusCode, b, r.Header.Get("Location")
	}
	for _, tc := range []struct {
		value  string
		status int
		typ    acme.ProblemType
	}{
		{"*.wild.localhost", 400, acme.Malformed},
		{"blocked.localhost", 403, acme.RejectedIdentifier},
		{"example.com", 403, acme.RejectedIdentifier},
	} {
		st, b, _ := newAuthz("dns", tc.value)
		var p acme.Problem
		_ = json.Unmarshal(b, &p)
		if st != tc.status || (p.Type != tc.typ && !hasSubproblem(p, tc.typ)) {
			t.Errorf("AUTHZ-10: newAuthz %s: %d %s", tc.value, st, b)
		}
	}
	// Hostile: an oversized name (refused, not repeated back), an unknown
	// type, no identifier, a payload that is not JSON.
	huge := strings.Repeat("a", 40000) + ".localhost"
	if st, b, _ := newAuthz("dns", huge); st != 403 || len(b) > 2000 {
		t.Errorf("newAuthz of a 40 KB name: %d, %d bytes", st, len(b))
	}
	if st, b, _ := newAuthz("email", "a@b.localhost"); st != 403 && st != 400 {
		t.Errorf("newAuthz of an unknown identifier type: %d %s", st, b)
	}
	for _, payload := range []string{`{"identifiers":[{"type":"dns","value":"x.localhost"}]}`, `{"identifier":"x.localhost"}`, `not json`} {
		if r, b := e.signed(k, kid, url, payload); r.StatusCode != 400 {
			t.Errorf("newAuthz with payload %s: %d %s", payload, r.StatusCode, b)
		}
	}
	// Another directory's newAuthz path is not offered.
	other := strings.Replace(url, "/preauth/", "/default/", 1)
	dk, dkid := e.account("default")
	if r, b := e.signed(dk, dkid, other, `{"identifier":{"type":"dns","value":"x.localhost"}}`); r.StatusCode != 404 {
		t.Errorf("newAuthz on a profile without it: %d %s", r.StatusCode, b)
	}

	st, b, loc := newAuthz("dns", "pre.localhost")
	var az acme.Authorization
	if err := json.Unmarshal(b, &az); err != nil || st != 201 || loc == "" || az.Status != acme.StatusPending ||
		az.Identifier.Value != "pre.localhost" || len(az.Challenges) == 0 {
		t.Fatalf("AUTHZ-10: newAuthz: %d %s (Location %q)", st, b, loc)
	}
	if r, b := e.signed(k, kid, loc, ""); r.StatusCode != 200 {
		t.Fatalf("TRN-08: the Location of the pre-authorization: %d %s", r.StatusCode, b)
	}
	if c := e.answerHTTP01(k, kid, az); c.Status != acme.StatusValid {
		t.Fatalf("respond: %s %+v", c.Status, c.Error)
	}
	_, o := e.order(k, kid, "pre.localhost")
	if o.Status != acme.StatusReady || len(o.Authorizations) != 1 || o.Authorizations[0] != loc {
		t.Fatalf("the order after a pre-authorization: %s, authorizations %v (want %s)", o.Status, o.Authorizations, loc)
	}
	r, b := e.signed(k, kid, o.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(csr(t, newKey(t, "ES256").signer, "pre.localhost"))))
	if err := json.Unmarshal(b, &o); err != nil || r.StatusCode != 200 || o.Status != acme.StatusValid {
		t.Fatalf("finalize: %d %s", r.StatusCode, b)
	}
	k2, kid2 := e.account("preauth")
	if _, o := e.order(k2, kid2, "pre.localhost"); o.Status != acme.StatusPending {
		t.Fatalf("another account's order used the pre-authorization: %s", o.Status)
	}
}

func hasSubproblem(p acme.Problem, typ acme.ProblemType) bool {
	for _, s := range p.Subproblems {
		if s.Type == typ {
			return true
		}
	}
	return false
}
