package conformance

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/kacme/kacme/acmeserver/acme"
)

// hostile is one malformed or hostile request and the exact answer it must get.
type hostile struct {
	id     string // checklist ID
	name   string
	status int
	typ    acme.ProblemType
	send   send
	// check inspects the problem further (optional).
	check func(t *testing.T, r *http.Response, p acme.Problem)
}

// fixture holds state prepared once: accounts, orders, a certificate.
type fixture struct {
	k, other       *key
	kid, otherKID  string
	pendingOrder   string
	pendingOrderO  acme.Order
	readyOrder     string
	readyOrderO    acme.Order
	deactivatedK   *key
	deactivatedKID string
	certDER        []byte
	// wildcardDER is k's certificate for *.wild.localhost; other holds a
	// valid authorization for wild.localhost only.
	wildcardDER []byte
}

func eabJWS(t *testing.T, k *key, url, kid, alg string, macKey []byte, extra map[string]any) json.RawMessage {
	t.Helper()
	h := map[string]any{"alg": alg, "kid": kid, "url": url}
	for n, v := range extra {
		if v == nil {
			delete(h, n)
		} else {
			h[n] = v
		}
	}
	hb, _ := json.Marshal(h)
	jwk, _ := json.Marshal(k.jwk())
	prot, pl := b64.EncodeToString(hb), b64.EncodeToString(jwk)
	var sig []byte
	if alg == "ES256" {
		sig = k.sign([]byte(prot + "." + pl))
	} else {
		m := hmac.New(sha256.New, macKey)
		m.Write([]byte(prot + "." + pl))
		sig = m.Sum(nil)
	}
	out, _ := json.Marshal(map[string]string{"protected": prot, "payload": pl, "signature": b64.EncodeToString(sig)})
	return out
}

func newAccountWithEAB(e *env, k *key, eab json.RawMessage) (*http.Response, []byte) {
	u := e.dir["eab"].NewAccount
	pl, _ := json.Marshal(map[string]any{"termsOfServiceAgreed": true, "externalAccountBinding": eab})
	return e.post(u, e.jws(k, u, string(pl), jwsOpts{}))
}

func orderPayload(ids ...string) string {
	var out []string
	for _, id := range ids {
		t, v, _ := strings.Cut(id, ":")
		out = append(out, fmt.Sprintf(`{"type":%q,"value":%q}`, t, v))
	}
	return `{"identifiers":[` + strings.Join(out, ",") + `]}`
}

// send builds and sends one request against the fixture.
type send func(e *env, f *fixture) (*http.Response, []byte)

// The request builders of the negative suite: each sends the ordinary
// request of its kind, with one thing wrong.

// ordered sends a newOrder for a.localhost signed by the fixture account
// (kid), with opts changing the JWS.
func ordered(opts jwsOpts) send {
	return func(e *env, f *fixture) (*http.Response, []byte) {
		u := e.dir["default"].NewOrder
		opts.kid = f.kid
		return e.post(u, e.jws(f.k, u, orderPayload("dns:a.localhost"), opts))
	}
}

// newOrder sends a newOrder with payload, signed by the fixture account.
func newOrder(payload string) send {
	return func(e *env, f *fixture) (*http.Response, []byte) {
		return e.signed(f.k, f.kid, e.dir["default"].NewOrder, payload)
	}
}

// freshAccount sends a newAccount with payload to directory dir, signed
// with a new key of type alg (jwk).
func freshAccount(alg, dir, payload string) send {
	return func(e *env, _ *fixture) (*http.Response, []byte) {
		k := newKey(e.t, alg)
		return e.post(e.dir[dir].NewAccount, e.jws(k, e.dir[dir].NewAccount, payload, jwsOpts{}))
	}
}

// eabAccount sends a newAccount on the "eab" profile with a fresh key and an
// external account binding for the directory's endpoint (NewAccount, or
// another one), key ID kid, MAC algorithm alg under macKey, with extra
// protected header members.
func eabAccount(endpoint, kid, alg string, macKey []byte, extra map[string]any) send {
	return func(e *env, _ *fixture) (*http.Response, []byte) {
		k := newKey(e.t, "ES256")
		u := e.dir["eab"].NewAccount
		if endpoint == "NewOrder" {
			u = e.dir["eab"].NewOrder
		}
		return newAccountWithEAB(e, k, eabJWS(e.t, k, u, kid, alg, macKey, extra))
	}
}

// finalizeReady finalizes the ready order with a CSR for name under a new
// key of type alg; encode, when set, replaces base64url of the DER.
func finalizeReady(alg, name string, encode func([]byte) string) send {
	return func(e *env, f *fixture) (*http.Response, []byte) {
		der := csr(e.t, newKey(e.t, alg).signer, name)
		s := b64.EncodeToString(der)
		if encode != nil {
			s = encode(der)
		}
		return e.signed(f.k, f.kid, f.readyOrder+"/finalize", fmt.Sprintf(`{"csr":%q}`, s))
	}
}

// revokeAs revokes the fixture's certificate with payloadFormat (%q: the
// certificate), signed by its account or (byOther) by an unrelated one.
func revokeAs(byOther bool, payloadFormat string) send {
	return func(e *env, f *fixture) (*http.Response, []byte) {
		k, kid := f.k, f.kid
		if byOther {
			k, kid = f.other, f.otherKID
		}
		return e.signed(k, kid, e.dir["default"].RevokeCert, fmt.Sprintf(payloadFormat, b64.EncodeToString(f.certDER)))
	}
}

// postAs sends payload to url, signed by the fixture account who picks.
func postAs(who func(f *fixture) (*key, string), url func(e *env, f *fixture) string, payload string) send {
	return func(e *env, f *fixture) (*http.Response, []byte) {
		k, kid := who(f)
		return e.signed(k, kid, url(e, f), payload)
	}
}

func account(f *fixture) (*key, string)            { return f.k, f.kid }
func otherAccount(f *fixture) (*key, string)       { return f.other, f.otherKID }
func deactivatedAccount(f *fixture) (*key, string) { return f.deactivatedK, f.deactivatedKID }
func pendingOrderURL(_ *env, f *fixture) string    { return f.pendingOrder }

// hostileRequests is the negative suite, one group of requests per area.
func hostileRequests(t *testing.T) []hostile {
	t.Helper()
	var all []hostile
	for _, group := range [][]hostile{hostileJWS(), hostileNonces(), hostileAccounts(), hostileEAB(), hostileOrders(),
		hostileAuthorizations(), hostileFinalize(), hostileRevocation()} {
		all = append(all, group...)
	}
	return all
}

// hostileJWS: the transport and the JWS.
func hostileJWS() []hostile {
	return []hostile{
		{"TRN-04", "wrong content type", 415, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.postCT(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder, orderPayload("dns:a.localhost"), jwsOpts{kid: f.kid}), "application/json")
		}, nil},
		{"TRN-04", "missing content type", 415, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.postCT(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder, orderPayload("dns:a.localhost"), jwsOpts{kid: f.kid}), "")
		}, nil},
		{"JWS-01", "compact serialization", 400, acme.Malformed, ordered(jwsOpts{rawBody: func(p, pl, s string) string { return p + "." + pl + "." + s }}), nil},
		{"JWS-01", "payload member missing", 400, acme.Malformed, ordered(jwsOpts{rawBody: func(p, pl, s string) string { return fmt.Sprintf(`{"protected":%q,"signature":%q}`, p, s) }}), nil},
		{"JWS-02", "multiple signatures (general serialization)", 400, acme.Malformed, ordered(jwsOpts{rawBody: func(p, pl, s string) string {
			return fmt.Sprintf(`{"payload":%q,"signatures":[{"protected":%q,"signature":%q},{"protected":%q,"signature":%q}]}`, pl, p, s, p, s)
		}}), nil},
		{"JWS-02", "unprotected header", 400, acme.Malformed, ordered(jwsOpts{rawBody: func(p, pl, s string) string {
			return fmt.Sprintf(`{"protected":%q,"header":{"kid":"x"},"payload":%q,"signature":%q}`, p, pl, s)
		}}), nil},
		{"JWS-03", "b64:false with crit", 400, acme.Malformed, ordered(jwsOpts{header: map[string]any{"b64": false, "crit": []string{"b64"}}}), nil},
		{"JWS-04", "both jwk and kid", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder, orderPayload("dns:a.localhost"), jwsOpts{kid: f.kid,
				header: map[string]any{"jwk": f.k.jwk()}}))
		}, nil},
		{"JWS-04", "neither jwk nor kid", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder, orderPayload("dns:a.localhost"), jwsOpts{
				header: map[string]any{"jwk": nil}}))
		}, nil},
		{"JWS-05", "alg none", 400, acme.BadSignatureAlgorithm, ordered(jwsOpts{header: map[string]any{"alg": "none"}}), nil},
		{"JWS-05", "HMAC HS256", 400, acme.BadSignatureAlgorithm, ordered(jwsOpts{header: map[string]any{"alg": "HS256"}}), nil},
		{"JWS-06", "unsupported PS256 lists algorithms", 400, acme.BadSignatureAlgorithm, ordered(jwsOpts{header: map[string]any{"alg": "PS256"}}), func(t *testing.T, _ *http.Response, p acme.Problem) {
			if !strings.Contains(strings.Join(p.Algorithms, ","), "ES256") {
				t.Fatalf("algorithms = %v, want ES256 among them", p.Algorithms)
			}
		}},
		{"JWS-08", "RS256 with an EC key", 400, acme.BadSignatureAlgorithm, ordered(jwsOpts{header: map[string]any{"alg": "RS256"}}), nil},
		{"JWS-09", "RSA-1024 account key", 400, acme.BadPublicKey, freshAccount("RS256-1024", "default", `{"termsOfServiceAgreed":true}`), nil},
		{"JWS-10", "newAccount signed with kid", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewAccount, e.jws(f.k, e.dir["default"].NewAccount, `{}`, jwsOpts{kid: f.kid}))
		}, nil},
		{"JWS-10", "newOrder signed with jwk", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder, orderPayload("dns:a.localhost"), jwsOpts{}))
		}, nil},
		{"JWS-11", "kid of an unknown account", 400, acme.AccountDoesNotExist, func(e *env, f *fixture) (*http.Response, []byte) {
			kid := f.kid[:strings.LastIndex(f.kid, "/")+1] + "aaaaaaaaaaaaaaaaaaaaaaaaaa"
			return e.post(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder, orderPayload("dns:a.localhost"), jwsOpts{kid: kid}))
		}, nil},
		{"JWS-11", "kid that is not an account URL", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder, orderPayload("dns:a.localhost"), jwsOpts{kid: "https://evil.example/acct/1"}))
		}, nil},
		{"JWS-12", "flipped signature byte", 400, acme.Malformed, ordered(jwsOpts{badSig: true}), nil},
		{"JWS-12", "signed by another account's key", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewOrder, e.jws(f.other, e.dir["default"].NewOrder, orderPayload("dns:a.localhost"), jwsOpts{kid: f.kid}))
		}, nil},
		{"JWS-13", "url missing", 400, acme.Malformed, ordered(jwsOpts{header: map[string]any{"url": nil}}), nil},
		{"JWS-14", "url of another endpoint", 403, acme.Unauthorized, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewAccount, orderPayload("dns:a.localhost"), jwsOpts{kid: f.kid}))
		}, nil},
		{"JWS-14", "url with a trailing slash", 403, acme.Unauthorized, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewOrder, e.jws(f.k, e.dir["default"].NewOrder+"/", orderPayload("dns:a.localhost"), jwsOpts{kid: f.kid}))
		}, nil},
		{"JWS-15", "padded base64 payload", 400, acme.Malformed, ordered(jwsOpts{rawBody: func(p, pl, s string) string {
			return fmt.Sprintf(`{"protected":%q,"payload":%q,"signature":%q}`, p, pl+"==", s)
		}}), nil},
		{"JWS-16", "POST {} to a fetch-only order", 400, acme.Malformed, postAs(account, pendingOrderURL, "{}"), nil},
		{"JWS-17", "jwk with private members", 400, acme.Malformed, func(e *env, _ *fixture) (*http.Response, []byte) {
			k := newKey(e.t, "ES256")
			priv := k.jwk()
			priv["d"] = "AAAA"
			return e.post(e.dir["default"].NewAccount, e.jws(k, e.dir["default"].NewAccount, `{}`, jwsOpts{header: map[string]any{"jwk": priv}}))
		}, nil},
	}
}

// hostileNonces: nonces.
func hostileNonces() []hostile {
	return []hostile{
		{"NON-06", "unknown nonce", 400, acme.BadNonce, ordered(jwsOpts{nonceVal: "AAAAAAAAAAAAAAAAAAAAAA"}), nil},
		{"NON-07", "no nonce", 400, acme.BadNonce, ordered(jwsOpts{noNonce: true}), nil},
		{"NON-08", "nonce outside base64url", 400, acme.BadNonce, ordered(jwsOpts{nonceVal: "ab+c"}), nil},
		{"NON-06", "reused nonce", 400, acme.BadNonce, func(e *env, f *fixture) (*http.Response, []byte) {
			n := e.nonce()
			r, b := e.post(f.pendingOrder, e.jws(f.k, f.pendingOrder, "", jwsOpts{kid: f.kid, nonceVal: n}))
			if r.StatusCode != 200 {
				e.t.Fatalf("first use of nonce: %d %s", r.StatusCode, b)
			}
			return e.post(f.pendingOrder, e.jws(f.k, f.pendingOrder, "", jwsOpts{kid: f.kid, nonceVal: n}))
		}, nil},
	}
}

// hostileAccounts: accounts.
func hostileAccounts() []hostile {
	return []hostile{
		{"ACC-03", "onlyReturnExisting for an unknown key", 400, acme.AccountDoesNotExist, freshAccount("ES256", "default", `{"onlyReturnExisting":true}`), nil},
		{"ACC-05", "terms not agreed", 403, acme.UserActionRequired, freshAccount("ES256", "tos", `{}`), func(t *testing.T, r *http.Response, p acme.Problem) {
			if p.Instance == "" || !strings.Contains(strings.Join(r.Header.Values("Link"), ","), `rel="terms-of-service"`) {
				t.Fatalf("userActionRequired without instance or terms-of-service Link")
			}
		}},
		{"ACC-06", "tel: contact", 400, acme.UnsupportedContact, freshAccount("ES256", "default", `{"contact":["tel:+15555550100"]}`), nil},
		{"ACC-06", "mailto with hfields", 400, acme.InvalidContact, freshAccount("ES256", "default", `{"contact":["mailto:a@x.org?subject=y"]}`), nil},
		{"ACC-06", "mailto with two addresses", 400, acme.InvalidContact, freshAccount("ES256", "default", `{"contact":["mailto:a@x.org,b@x.org"]}`), nil},
		{"ACC-06", "contact update to a bad address", 400, acme.InvalidContact, postAs(account, accountURL, `{"contact":["mailto:not an address"]}`), nil},
		{"ACC-08", "another account POSTs to this account", 403, acme.Unauthorized, postAs(otherAccount, accountURL, `{"contact":["mailto:hijack@example.org"]}`), nil},
		{"ACC-10", "deactivated account places an order", 401, acme.Unauthorized, postAs(deactivatedAccount, newOrderURL, orderPayload("dns:a.localhost")), nil},
		{"ACC-11", "newAccount with a deactivated account's key", 403, acme.Unauthorized, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewAccount, e.jws(f.deactivatedK, e.dir["default"].NewAccount, `{"termsOfServiceAgreed":true}`, jwsOpts{}))
		}, nil},
	}
}

// hostileEAB: external account binding.
func hostileEAB() []hostile {
	macKey, _ := b64.DecodeString(eabHMAC)
	wrongMac := []byte("0123456789abcdef0123456789abcdef")
	return []hostile{
		{"EAB-01", "no binding on an EAB-required profile", 403, acme.ExternalAccountRequired, freshAccount("ES256", "eab", `{"termsOfServiceAgreed":true}`), nil},
		{"EAB-02", "binding that is not a JWS", 400, acme.Malformed, func(e *env, _ *fixture) (*http.Response, []byte) {
			return newAccountWithEAB(e, newKey(e.t, "ES256"), json.RawMessage(`"x"`))
		}, nil},
		{"EAB-03", "binding signed with ES256", 400, acme.Malformed, eabAccount("NewAccount", eabKID, "ES256", nil, nil), nil},
		{"EAB-04", "binding with a nonce", 400, acme.Malformed, eabAccount("NewAccount", eabKID, "HS256", macKey, map[string]any{"nonce": "abc"}), nil},
		{"EAB-04", "binding url of another endpoint", 400, acme.Malformed, eabAccount("NewOrder", eabKID, "HS256", macKey, nil), nil},
		{"EAB-05", "unknown binding key ID", 403, acme.Unauthorized, eabAccount("NewAccount", "nope", "HS256", macKey, nil), nil},
		{"EAB-06", "binding MAC with the wrong key", 403, acme.Unauthorized, eabAccount("NewAccount", eabKID, "HS256", wrongMac, nil), nil},
		{"EAB-07", "binding payload is another key", 400, acme.BadPublicKey, func(e *env, f *fixture) (*http.Response, []byte) {
			k := newKey(e.t, "ES256")
			return newAccountWithEAB(e, k, eabJWS(e.t, f.other, e.dir["eab"].NewAccount, eabKID, "HS256", macKey, nil))
		}, nil},
	}
}

// hostileOrders: orders and identifiers.
func hostileOrders() []hostile {
	return []hostile{
		{"ORD-02", "no identifiers", 400, acme.Malformed, newOrder(`{"identifiers":[]}`), nil},
		{"ORD-02", "email identifier", 400, acme.UnsupportedIdentifier, newOrder(orderPayload("email:a@b.localhost")), nil},
		{"IDN-01", "name with an empty label", 400, acme.Malformed, newOrder(orderPayload("dns:a..localhost")), nil},
		{"IDN-03", "wildcard not leftmost", 400, acme.Malformed, newOrder(orderPayload("dns:a.*.b.localhost")), nil},
		{"IDN-07", "IP address in a dns identifier", 400, acme.Malformed, newOrder(orderPayload("dns:127.0.0.1")), nil},
		{"IDN-07", "ip identifier outside allowed CIDRs", 400, acme.RejectedIdentifier, newOrder(orderPayload("ip:10.0.0.1")), nil},
		{"IDN-08", "denied name among allowed ones", 400, acme.RejectedIdentifier, newOrder(orderPayload("dns:ok.localhost", "dns:blocked.localhost")), func(t *testing.T, _ *http.Response, p acme.Problem) {
			if len(p.Subproblems) != 1 || p.Subproblems[0].Identifier == nil || p.Subproblems[0].Identifier.Value != "blocked.localhost" || p.Identifier != nil {
				t.Fatalf("want one subproblem for blocked.localhost and no top-level identifier, got %+v", p)
			}
		}},
		{"IDN-08", "denied subtree and foreign suffix", 400, acme.RejectedIdentifier, newOrder(orderPayload("dns:x.denied.localhost", "dns:www.example.com")), func(t *testing.T, _ *http.Response, p acme.Problem) {
			if len(p.Subproblems) != 2 {
				t.Fatalf("want 2 subproblems, got %+v", p.Subproblems)
			}
		}},
		{"PRF-01", "unknown issuance profile", 400, acme.InvalidProfile, newOrder(`{"profile":"nope","identifiers":[{"type":"dns","value":"a.localhost"}]}`), nil},
		{"PRF-02", "profile without ip support and an ip identifier", 400, acme.InvalidProfile, newOrder(`{"profile":"short","identifiers":[{"type":"ip","value":"127.0.0.1"}]}`), nil},
		{"ORD-04", "notAfter beyond the profile's maximum", 400, acme.Malformed, newOrder(`{"notAfter":"2099-01-01T00:00:00Z","identifiers":[{"type":"dns","value":"a.localhost"}]}`), nil},
		{"ORD-04", "notBefore not RFC 3339", 400, acme.Malformed, newOrder(`{"notBefore":"tomorrow","identifiers":[{"type":"dns","value":"a.localhost"}]}`), nil},
		{"ARI-10", "malformed replaces", 400, acme.Malformed, newOrder(`{"replaces":"abc","identifiers":[{"type":"dns","value":"a.localhost"}]}`), nil},
		{"ORD-10", "another account fetches the order", 404, acme.Malformed, postAs(otherAccount, pendingOrderURL, ""), nil},
		{"TRN-07", "GET on an order", 405, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			r := e.get(f.pendingOrder)
			defer r.Body.Close()
			b := make([]byte, 4096)
			n, _ := r.Body.Read(b)
			return r, b[:n]
		}, func(t *testing.T, r *http.Response, _ acme.Problem) {
			if !strings.Contains(r.Header.Get("Allow"), "POST") {
				t.Fatalf("405 without Allow: POST")
			}
		}},
		{"SEC-10", "oversized body", 413, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.post(e.dir["default"].NewOrder, []byte(`{"protected":"`+strings.Repeat("A", 1<<20)+`"}`))
		}, nil},
	}
}

// hostileAuthorizations: authorizations and challenges.
func hostileAuthorizations() []hostile {
	return []hostile{
		{"AUTHZ-05", "authorization update to valid", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.signed(f.k, f.kid, f.pendingOrderO.Authorizations[0], `{"status":"valid"}`)
		}, nil},
		{"CHL-05", "challenge response that is not an object", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			r, b := e.signed(f.k, f.kid, f.pendingOrderO.Authorizations[0], "")
			var az acme.Authorization
			_ = json.Unmarshal(b, &az)
			if r.StatusCode != 200 || len(az.Challenges) == 0 {
				e.t.Fatalf("authz fetch: %d %s", r.StatusCode, b)
			}
			return e.signed(f.k, f.kid, az.Challenges[0].URL, `[]`)
		}, nil},
	}
}

// hostileFinalize: finalize.
func hostileFinalize() []hostile {
	return []hostile{
		{"FIN-01", "finalize a pending order", 403, acme.OrderNotReady, func(e *env, f *fixture) (*http.Response, []byte) {
			der := csr(e.t, newKey(e.t, "ES256").signer, "pending.localhost")
			return e.signed(f.k, f.kid, f.pendingOrder+"/finalize", fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der)))
		}, nil},
		{"FIN-02", "PEM instead of base64url DER", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.signed(f.k, f.kid, f.readyOrder+"/finalize", `{"csr":"-----BEGIN CERTIFICATE REQUEST-----"}`)
		}, nil},
		{"JWS-15", "padded csr", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			der := csr(e.t, newKey(e.t, "ES256").signer, "ready.localhost")
			s := b64.EncodeToString(der)
			return e.signed(f.k, f.kid, f.readyOrder+"/finalize", fmt.Sprintf(`{"csr":%q}`, s+strings.Repeat("=", (4-len(s)%4)%4+4)))
		}, nil},
		{"FIN-03", "CSR with a broken signature", 400, acme.BadCSR, func(e *env, f *fixture) (*http.Response, []byte) {
			der := csr(e.t, newKey(e.t, "ES256").signer, "ready.localhost")
			der[len(der)-5] ^= 0xff
			return e.signed(f.k, f.kid, f.readyOrder+"/finalize", fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der)))
		}, nil},
		{"FIN-04", "CSR missing an identifier", 400, acme.BadCSR, finalizeReady("ES256", "other.localhost", nil), nil},
		{"FIN-07", "CSR with the account key", 400, acme.BadCSR, func(e *env, f *fixture) (*http.Response, []byte) {
			der := csr(e.t, f.k.signer, "ready.localhost")
			return e.signed(f.k, f.kid, f.readyOrder+"/finalize", fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der)))
		}, nil},
		{"FIN-08", "CSR with an RSA-1024 key", 400, acme.BadCSR, finalizeReady("RS256-1024", "ready.localhost", nil), nil},
		{"FIN-08", "CSR with an Ed25519 key on a profile without it", 400, acme.BadCSR, finalizeReady("EdDSA", "ready.localhost", nil), nil},
	}
}

// hostileRevocation: revocation, key change and ARI.
func hostileRevocation() []hostile {
	return []hostile{
		{"REV-04", "reason 7 (unused)", 400, acme.BadRevocationReason, revokeAs(false, `{"certificate":%q,"reason":7}`), nil},
		{"REV-04", "reason as a string", 400, acme.BadRevocationReason, revokeAs(false, `{"certificate":%q,"reason":"1"}`), nil},
		{"REV-03", "unrelated account revokes", 403, acme.Unauthorized, revokeAs(true, `{"certificate":%q}`), nil},
		{"REV-02", "unrelated jwk revokes", 403, acme.Unauthorized, func(e *env, f *fixture) (*http.Response, []byte) {
			k := newKey(e.t, "ES256")
			u := e.dir["default"].RevokeCert
			return e.post(u, e.jws(k, u, fmt.Sprintf(`{"certificate":%q}`, b64.EncodeToString(f.certDER)), jwsOpts{}))
		}, nil},
		{"KEY-02", "key change whose payload is not a JWS", 400, acme.Malformed, func(e *env, f *fixture) (*http.Response, []byte) {
			return e.signed(f.k, f.kid, e.dir["default"].KeyChange, fmt.Sprintf(`{"account":%q,"oldKey":{}}`, f.kid))
		}, nil},
		{"ARI-05", "malformed certID", 400, acme.Malformed, func(e *env, _ *fixture) (*http.Response, []byte) {
			r := e.get(e.dir["default"].RenewalInfo + "/abc")
			defer r.Body.Close()
			b := make([]byte, 4096)
			n, _ := r.Body.Read(b)
			return r, b[:n]
		}, nil},
	}
}

// TestNegativeSuite sends each hostile request and checks the exact problem
// type and status, and that no stored object was created or changed.
func TestNegativeSuite(t *testing.T) {
	e := newEnv(t)
	f := &fixture{}
	f.k, f.kid = e.account("default")
	f.other, f.otherKID = e.account("default")
	f.pendingOrder, f.pendingOrderO = e.order(f.k, f.kid, "pending.localhost")
	f.readyOrder, f.readyOrderO = e.readyOrder(f.k, f.kid, "ready.localhost")
	f.deactivatedK, f.deactivatedKID = e.account("default")
	if r, b := e.signed(f.deactivatedK, f.deactivatedKID, f.deactivatedKID, `{"status":"deactivated"}`); r.StatusCode != 200 {
		t.Fatalf("deactivate: %d %s", r.StatusCode, b)
	}
	// A certificate to revoke: issue on a separate order.
	u, o := e.readyOrder(f.k, f.kid, "issued.localhost")
	der := csr(t, newKey(t, "ES256").signer, "issued.localhost")
	r, b := e.signed(f.k, f.kid, o.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der)))
	if r.StatusCode != 200 || !strings.Contains(string(b), `"valid"`) {
		t.Fatalf("finalize: %d %s", r.StatusCode, b)
	}
	_ = json.Unmarshal(b, &o)
	_ = u
	_, b = e.signed(f.k, f.kid, o.Certificate, "")
	f.certDER = firstPEM(t, b)

	f.wildcardDER = e.dns01Certificate(f.k, f.kid, "*.wild.localhost")
	e.readyOrder(f.other, f.otherKID, "wild.localhost")

	cases := append(hostileRequests(t), moreHostileRequests(t)...)
	if len(cases) < 30 {
		t.Fatalf("only %d hostile requests", len(cases))
	}
	for _, hc := range cases {
		t.Run(hc.id+"/"+hc.name, func(t *testing.T) {
			e.t = t
			before := e.snapshot()
			r, body := hc.send(e, f)
			p := problem(t, r, body)
			if r.StatusCode != hc.status || p.Type != hc.typ {
				t.Fatalf("got %d %s, want %d %s: %s", r.StatusCode, p.Type, hc.status, hc.typ, p.Detail)
			}
			if hc.check != nil {
				hc.check(t, r, p)
			}
			if d := diffSnapshots(before, e.snapshot()); d != "" {
				t.Fatalf("stored state changed: %s", d)
			}
		})
	}
	e.t = t
	// FIN-04: after refused CSRs the order is still ready and a correct CSR works.
	_, b = e.signed(f.k, f.kid, f.readyOrder, "")
	if !strings.Contains(string(b), `"ready"`) {
		t.Fatalf("order left ready state after refused finalizes: %s", b)
	}
	der = csr(t, newKey(t, "ES256").signer, "ready.localhost")
	if r, b = e.signed(f.k, f.kid, f.readyOrderO.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der))); r.StatusCode != 200 {
		t.Fatalf("finalize after refusals: %d %s", r.StatusCode, b)
	}
}
