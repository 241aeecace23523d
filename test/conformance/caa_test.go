package conformance

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/kacme/kacme/acmeserver/acme"
)

// TestCAA (CAA-01, -02, -05, -06) through ACME on a profile with
// validation.checkCAA, against the DNS server on loopback: a parent's record
// naming kacme lets a name issue; a record naming another CA makes the
// http-01 challenge invalid with a caa error that names the record; an
// accounturi parameter holds for its account only, a validationmethods
// parameter for its methods only.
func TestCAA(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("caa")
	e.dns.setCAA("caa.localhost", `0 issue "kacme.test"`)
	e.dns.setCAA("other.caa.localhost", `0 issue "other-ca.test"`)
	e.dns.setCAA("mine.caa.localhost", fmt.Sprintf(`0 issue "kacme.test; accounturi=%s"`, kid))
	e.dns.setCAA("theirs.caa.localhost", fmt.Sprintf(`0 issue "kacme.test; accounturi=%s-other"`, kid))
	e.dns.setCAA("http.caa.localhost", `0 issue "kacme.test; validationmethods=http-01"`)
	e.dns.setCAA("dnsonly.caa.localhost", `0 issue "kacme.test; validationmethods=dns-01"`)

	// respond answers the http-01 challenge of a one-name order and returns
	// the challenge as the server answers it.
	respond := func(name string) acme.Challenge {
		t.Helper()
		_, o := e.order(k, kid, name)
		r, b := e.signed(k, kid, o.Authorizations[0], "")
		var az acme.Authorization
		if err := json.Unmarshal(b, &az); err != nil || r.StatusCode != 200 {
			t.Fatalf("authz: %d %s", r.StatusCode, b)
		}
		return e.answerHTTP01(k, kid, az)
	}
	for name, allowed := range map[string]bool{
		"www.caa.localhost":     true,  // CAA-01: caa.localhost's record applies
		"other.caa.localhost":   false, // CAA-02
		"mine.caa.localhost":    true,  // CAA-05
		"theirs.caa.localhost":  false,
		"http.caa.localhost":    true, // CAA-06
		"dnsonly.caa.localhost": false,
	} {
		t.Run(name, func(t *testing.T) {
			c := respond(name)
			switch {
			case allowed && c.Status != acme.StatusValid:
				t.Fatalf("challenge %s: %+v", c.Status, c.Error)
			case !allowed && (c.Status != acme.StatusInvalid || c.Error == nil || c.Error.Type != acme.CAA):
				t.Fatalf("challenge %s, error %+v; want invalid with caa", c.Status, c.Error)
			case !allowed && !strings.Contains(c.Error.Detail, name) || !allowed && !strings.Contains(c.Error.Detail, "issue"):
				t.Fatalf("caa detail does not name the records: %s", c.Error.Detail)
			}
		})
	}
	// And an allowed name issues.
	_, o := e.readyOrder(k, kid, "issued.caa.localhost")
	r, b := e.signed(k, kid, o.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(csr(t, newKey(t, "ES256").signer, "issued.caa.localhost"))))
	if err := json.Unmarshal(b, &o); err != nil || r.StatusCode != 200 || o.Status != acme.StatusValid {
		t.Fatalf("finalize under an allowing CAA record: %d %s", r.StatusCode, b)
	}
}
