package conformance

import (
	"crypto"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kacme/kacme/acmeserver/acme"
)

// The classes of hostile request issue 13 added to the negative suite:
// duplicate and oversized JSON members, identifiers at and past every length
// limit, IDN and mixed-case names, the key-change and EAB findings, and
// wildcard revocation. Each is built by one of the small builders below.

// newOrderURL and friends pick a URL of the default directory.
func newOrderURL(e *env, _ *fixture) string   { return e.dir["default"].NewOrder }
func accountURL(_ *env, f *fixture) string    { return f.kid }
func keyChangeURL(e *env, _ *fixture) string  { return e.dir["default"].KeyChange }
func revokeCertURL(e *env, _ *fixture) string { return e.dir["default"].RevokeCert }

// withHeader posts to newOrder with a protected header written as is
// (%s takes the nonce, then the URL, then the kid).
func withHeader(header string) func(*env, *fixture) (*http.Response, []byte) {
	return func(e *env, f *fixture) (*http.Response, []byte) {
		u := e.dir["default"].NewOrder
		prot := b64.EncodeToString([]byte(fmt.Sprintf(header, e.nonce(), u, f.kid)))
		pl := b64.EncodeToString([]byte(orderPayload("dns:a.localhost")))
		body, _ := json.Marshal(map[string]string{"protected": prot, "payload": pl, "signature": b64.EncodeToString(f.k.sign([]byte(prot + "." + pl)))})
		return e.post(u, body)
	}
}

// boundedDetail checks that a problem does not repeat a huge field.
func boundedDetail(t *testing.T, _ *http.Response, p acme.Problem) {
	t.Helper()
	if len(p.Detail) > 1024 {
		t.Fatalf("the detail repeats the oversized field: %d bytes", len(p.Detail))
	}
}

// dnsName is a valid name under localhost of exactly n octets.
func dnsName(n int) string {
	const suffix = ".localhost"
	var labels []string
	left := n - len(suffix)
	for left > 0 {
		l := min(63, left)
		if left-l == 1 { // a label cannot be empty: leave room for a dot and one letter
			l--
		}
		labels = append(labels, strings.Repeat("a", l))
		left -= l + 1
	}
	return strings.Join(labels, ".") + suffix
}

// keyChangeInner is a key-change payload: the inner JWS signed by a new key.
func keyChangeInner(e *env, f *fixture, url string, withNonce bool) string {
	newK := newKey(e.t, "ES256")
	old, _ := json.Marshal(f.k.jwk())
	inner := e.jws(newK, url, fmt.Sprintf(`{"account":%q,"oldKey":%s}`, f.kid, old), jwsOpts{noNonce: !withNonce})
	return string(inner)
}

func moreHostileRequests(t *testing.T) []hostile {
	macKey, _ := b64.DecodeString(eabHMAC)
	identifiers := func(n int) string {
		var ids []string
		for i := 0; i < n; i++ {
			ids = append(ids, fmt.Sprintf("dns:n%d.localhost", i))
		}
		return orderPayload(ids...)
	}
	return []hostile{
		// Duplicate members: refused in the body, the protected header and the
		// payload, so that no two parsers read one request two ways.
		{"JWS-01", "duplicate payload member in the JWS body", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			other := b64.EncodeToString([]byte(orderPayload("dns:b.localhost")))
			return e.post(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder, orderPayload("dns:a.localhost"), jwsOpts{kid: f.kid,
				rawBody: func(p, pl, s string) string {
					return fmt.Sprintf(`{"protected":%q,"payload":%q,"payload":%q,"signature":%q}`, p, other, pl, s)
				}}))
		}, nil},
		{"JWS-04", "duplicate url in the protected header", 400, acme.Malformed,
			withHeader(`{"alg":"ES256","nonce":%q,"url":%q,"url":"https://evil.example/","kid":%q}`), nil},
		{"JWS-04", "duplicate alg in the protected header", 400, acme.Malformed,
			withHeader(`{"alg":"none","alg":"ES256","nonce":%q,"url":%q,"kid":%q}`), nil},
		{"ORD-02", "duplicate identifiers member in the payload", 400, acme.Malformed,
			postAs(account, newOrderURL, `{"identifiers":[{"type":"dns","value":"a.localhost"}],"identifiers":[{"type":"dns","value":"blocked.localhost"}]}`), nil},
		{"ORD-02", "duplicate value inside an identifier", 400, acme.Malformed,
			postAs(account, newOrderURL, `{"identifiers":[{"type":"dns","value":"a.localhost","value":"blocked.localhost"}]}`), nil},
		// Oversized members: refused, and not repeated in the answer.
		{"ACC-06", "40 KB contact", 400, acme.InvalidContact,
			freshAccount("ES256", "default", fmt.Sprintf(`{"termsOfServiceAgreed":true,"contact":["mailto:%s@example.org"]}`, strings.Repeat("a", 40<<10))), boundedDetail},
		{"ACC-06", "contact of 255 octets", 400, acme.InvalidContact,
			freshAccount("ES256", "default", fmt.Sprintf(`{"termsOfServiceAgreed":true,"contact":["mailto:%s@example.org"]}`, strings.Repeat("a", 255-len("@example.org")))), boundedDetail},
		{"ACC-06", "40 KB contact in an account update", 400, acme.InvalidContact,
			postAs(account, accountURL, fmt.Sprintf(`{"contact":["mailto:%s@example.org"]}`, strings.Repeat("b", 40<<10))), boundedDetail},
		{"ACC-06", "eleven contacts", 400, acme.InvalidContact,
			freshAccount("ES256", "default", `{"termsOfServiceAgreed":true,"contact":[`+strings.TrimSuffix(strings.Repeat(`"mailto:a@example.org",`, 11), ",")+`]}`), nil},
		{"PRF-01", "40 KB profile name", 400, acme.InvalidProfile,
			postAs(account, newOrderURL, fmt.Sprintf(`{"profile":%q,"identifiers":[{"type":"dns","value":"a.localhost"}]}`, strings.Repeat("p", 40<<10))), boundedDetail},
		{"ARI-10", "10 KB replaces", 400, acme.Malformed,
			postAs(account, newOrderURL, fmt.Sprintf(`{"replaces":"%s.%s","identifiers":[{"type":"dns","value":"a.localhost"}]}`, strings.Repeat("A", 5<<10), strings.Repeat("B", 5<<10))), boundedDetail},
		{"NON-08", "10 KB nonce", 400, acme.BadNonce, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder, orderPayload("dns:a.localhost"), jwsOpts{kid: f.kid, nonceVal: strings.Repeat("N", 10<<10)}))
		}, boundedDetail},
		{"JWS-14", "10 KB url", 403, acme.Unauthorized, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder+"?"+strings.Repeat("q", 10<<10), orderPayload("dns:a.localhost"), jwsOpts{kid: f.kid}))
		}, boundedDetail},
		// Identifiers past every length limit (at the limits: TestIdentifierLimits).
		{"IDN-01", "name of 254 octets", 400, acme.Malformed, postAs(account, newOrderURL, orderPayload("dns:"+dnsName(254))), nil},
		{"IDN-01", "label of 64 octets", 400, acme.Malformed, postAs(account, newOrderURL, orderPayload("dns:"+strings.Repeat("l", 64)+".localhost")), nil},
		{"IDN-01", "40 KB identifier value", 400, acme.Malformed, postAs(account, newOrderURL, orderPayload("dns:"+strings.Repeat("v", 40<<10))),
			func(t *testing.T, r *http.Response, p acme.Problem) {
				boundedDetail(t, r, p)
				if len(p.Subproblems) != 1 || len(p.Subproblems[0].Identifier.Value) > 256 {
					t.Fatalf("the subproblem repeats the 40 KB identifier")
				}
			}},
		{"ORD-02", "101 identifiers", 400, acme.RejectedIdentifier, postAs(account, newOrderURL, identifiers(101)), nil},
		{"IDN-01", "trailing dot", 400, acme.Malformed, postAs(account, newOrderURL, orderPayload("dns:a.localhost.")), nil},
		{"IDN-06", "ip identifier with a zone", 400, acme.Malformed, postAs(account, newOrderURL, orderPayload("ip:fe80::1%eth0")), nil},
		// IDN and case: names are A-labels, compared after lowercasing.
		{"IDN-02", "U-label", 400, acme.Malformed, postAs(account, newOrderURL, orderPayload("dns:bücher.localhost")), nil},
		{"IDN-02", "invalid punycode", 400, acme.Malformed, postAs(account, newOrderURL, orderPayload("dns:xn--zz-.localhost")), nil},
		{"IDN-02", "punycode of a symbol", 400, acme.Malformed, postAs(account, newOrderURL, orderPayload("dns:xn--ls8h.localhost")), nil},
		{"IDN-08", "denied name in mixed case", 400, acme.RejectedIdentifier, postAs(account, newOrderURL, orderPayload("dns:Blocked.LOCALHOST")), nil},
		{"IDN-08", "wildcard in a denied subtree in mixed case", 400, acme.RejectedIdentifier, postAs(account, newOrderURL, orderPayload("dns:*.X.Denied.Localhost")), nil},
		{"IDN-06", "IPv4-mapped IPv6 outside the allowed CIDRs", 400, acme.RejectedIdentifier, postAs(account, newOrderURL, orderPayload("ip:::ffff:10.0.0.1")), nil},
		// Key change (RFC 8555 §7.3.5).
		{"KEY-03", "inner JWS with a nonce", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.signed(f.k, f.kid, keyChangeURL(e, f), keyChangeInner(e, f, keyChangeURL(e, f), true))
		}, nil},
		{"KEY-04", "inner url is not the outer url", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.signed(f.k, f.kid, keyChangeURL(e, f), keyChangeInner(e, f, e.dir["default"].NewOrder, false))
		}, nil},
		// EAB: an unknown key ID and a MAC made with the wrong key are answered alike.
		{"EAB-05", "unknown key ID answered as a bad MAC", 403, acme.Unauthorized, func(e *env, _ *fixture) (*http.Response, []byte) {
			k := newKey(e.t, "ES256")
			unknown, ub := newAccountWithEAB(e, k, eabJWS(e.t, k, e.dir["eab"].NewAccount, "no-such-key-id", "HS256", macKey, nil))
			badMAC, bb := newAccountWithEAB(e, k, eabJWS(e.t, k, e.dir["eab"].NewAccount, eabKID, "HS256", []byte("0123456789abcdef0123456789abcdef"), nil))
			var pu, pb acme.Problem
			_ = json.Unmarshal(ub, &pu)
			_ = json.Unmarshal(bb, &pb)
			if unknown.StatusCode != badMAC.StatusCode || pu.Type != pb.Type || pu.Detail != pb.Detail {
				e.t.Fatalf("an unknown key ID (%d %+v) and a bad MAC (%d %+v) are told apart", unknown.StatusCode, pu, badMAC.StatusCode, pb)
			}
			return unknown, ub
		}, nil},
		{"EAB-06", "HS512 over a key too short for it answered as a bad MAC", 403, acme.Unauthorized, func(e *env, _ *fixture) (*http.Response, []byte) {
			k := newKey(e.t, "ES256")
			return newAccountWithEAB(e, k, eabHS512(e, k, eabKID, macKey))
		}, nil},
		// Revocation: a wildcard SAN needs a wildcard authorization.
		{"REV-03", "wildcard certificate revoked with only the base name's authorization", 403, acme.Unauthorized, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.signed(f.other, f.otherKID, revokeCertURL(e, f), fmt.Sprintf(`{"certificate":%q}`, b64.EncodeToString(f.wildcardDER)))
		}, nil},
	}
}

// eabHS512 is an EAB JWS with HS512 (which needs a 64-byte key).
func eabHS512(e *env, k *key, kid string, macKey []byte) json.RawMessage {
	jwk := jose.JSONWebKey{Key: k.signer.Public()}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS512, Key: append(append([]byte{}, macKey...), macKey...)},
		(&jose.SignerOptions{}).WithHeader("kid", kid).WithHeader("url", e.dir["eab"].NewAccount))
	if err != nil {
		e.t.Fatal(err)
	}
	pl, _ := jwk.MarshalJSON()
	obj, err := signer.Sign(pl)
	if err != nil {
		e.t.Fatal(err)
	}
	return json.RawMessage(obj.FullSerialize())
}

// thumbprint is the RFC 7638 thumbprint of k.
func thumbprint(k *key) string {
	tp, _ := (&jose.JSONWebKey{Key: k.signer.Public()}).Thumbprint(crypto.SHA256)
	return b64.EncodeToString(tp)
}

// dns01Certificate issues a certificate for names (one authorization each,
// validated over dns-01 through the test DNS server) and returns its DER.
func (e *env) dns01Certificate(k *key, kid string, names ...string) []byte {
	e.t.Helper()
	u, o := e.order(k, kid, names...)
	for _, az := range o.Authorizations {
		r, b := e.signed(k, kid, az, "")
		var a acme.Authorization
		if err := json.Unmarshal(b, &a); err != nil || r.StatusCode != 200 {
			e.t.Fatalf("authz: %d %s", r.StatusCode, b)
		}
		for _, c := range a.Challenges {
			if c.Type != "dns-01" {
				continue
			}
			e.dns.setTXT("_acme-challenge."+a.Identifier.Value, acme.DNS01Value(c.Token+"."+thumbprint(k)))
			if r, b := e.signed(k, kid, c.URL, "{}"); r.StatusCode != 200 || !strings.Contains(string(b), `"valid"`) {
				e.t.Fatalf("dns-01: %d %s", r.StatusCode, b)
			}
		}
	}
	der := csr(e.t, newKey(e.t, "ES256").signer, names...)
	r, b := e.signed(k, kid, o.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der)))
	if err := json.Unmarshal(b, &o); err != nil || r.StatusCode != 200 || o.Certificate == "" {
		e.t.Fatalf("finalize %s: %d %s", u, r.StatusCode, b)
	}
	_, chain := e.signed(k, kid, o.Certificate, "")
	return firstPEM(e.t, chain)
}

// TestIdentifierLimits: requests exactly at each length limit are accepted
// (the negative suite sends one past each): a 253-octet name, a 63-octet
// label, 100 identifiers in one order, a 254-octet contact address, ten
// contacts.
func TestIdentifierLimits(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	var hundred []string
	for i := 0; i < 100; i++ {
		hundred = append(hundred, fmt.Sprintf("dns:n%d.localhost", i))
	}
	for name, payload := range map[string]string{
		"253-octet name":  orderPayload("dns:" + dnsName(253)),
		"63-octet label":  orderPayload("dns:" + strings.Repeat("l", 63) + ".localhost"),
		"100 identifiers": orderPayload(hundred...),
	} {
		if r, b := e.signed(k, kid, e.dir["default"].NewOrder, payload); r.StatusCode != http.StatusCreated {
			t.Fatalf("%s: %d %s", name, r.StatusCode, b)
		}
	}
	if n := len(dnsName(253)); n != 253 {
		t.Fatalf("dnsName(253) is %d octets", n)
	}
	addr := strings.Repeat("a", 254-len("@example.org")) + "@example.org"
	ten := strings.TrimSuffix(strings.Repeat(`"mailto:b@example.org",`, 9), ",")
	for name, payload := range map[string]string{
		"254-octet contact": fmt.Sprintf(`{"termsOfServiceAgreed":true,"contact":["mailto:%s"]}`, addr),
		"ten contacts":      fmt.Sprintf(`{"termsOfServiceAgreed":true,"contact":["mailto:%s",%s]}`, addr, ten),
	} {
		nk := newKey(t, "ES256")
		u := e.dir["default"].NewAccount
		if r, b := e.post(u, e.jws(nk, u, payload, jwsOpts{})); r.StatusCode != http.StatusCreated {
			t.Fatalf("%s: %d %s", name, r.StatusCode, b)
		}
	}
}
