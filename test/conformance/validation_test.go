package conformance

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/standalone"
)

// challengeOf fetches an order's first authorization and returns its
// challenge of type typ.
func (e *env) challengeOf(k *key, kid string, o acme.Order, typ string) (acme.Authorization, *acme.Challenge) {
	e.t.Helper()
	r, b := e.signed(k, kid, o.Authorizations[0], "")
	var az acme.Authorization
	if err := json.Unmarshal(b, &az); err != nil || r.StatusCode != 200 {
		e.t.Fatalf("authz: %d %s", r.StatusCode, b)
	}
	for _, c := range az.Challenges {
		if c.Type == typ {
			return az, c
		}
	}
	e.t.Fatalf("no %s challenge in %s", typ, b)
	return az, nil
}

// respond answers a challenge and returns it as the server answered.
func (e *env) respond(k *key, kid string, c *acme.Challenge) acme.Challenge {
	e.t.Helper()
	r, b := e.signed(k, kid, c.URL, "{}")
	var got acme.Challenge
	if err := json.Unmarshal(b, &got); err != nil || r.StatusCode != 200 {
		e.t.Fatalf("respond: %d %s", r.StatusCode, b)
	}
	return got
}

// selfCNAME answers every question with a CNAME of the name to itself.
func selfCNAME(q dns.Question) *dns.Msg {
	return &dns.Msg{Answer: []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 5},
		Target: q.Name}}}
}

// TestCNAMELoopEndsTheChallenge (issue 13, finding 1): a dns-01 challenge
// whose TXT name is a CNAME to itself ends invalid (dns) within the
// profile's 5 s validation timeout — the server answers it within the
// challenge POST — instead of spinning forever.
func TestCNAMELoopEndsTheChallenge(t *testing.T) {
	e := newEnv(t)
	e.dns.setAnswer(selfCNAME)
	k, kid := e.account("default")
	_, o := e.order(k, kid, "loop.localhost")
	_, c := e.challengeOf(k, kid, o, "dns-01")
	start := time.Now()
	got := e.respond(k, kid, c)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the challenge POST took %s, past the validation timeout", took)
	}
	if got.Status != acme.StatusInvalid || got.Error == nil || got.Error.Type != acme.DNS || !strings.Contains(got.Error.Detail, "CNAME loop") {
		t.Fatalf("challenge %+v, want invalid with a dns problem naming the CNAME loop", got)
	}
	// (http-01 and tls-alpn-01 resolve through the same walk: va TestHostileDNSAnswers.)
}

// TestShutdownDuringCNAMELoop (issue 13, finding 1): the server shuts down
// within its drain time while a validation walks a CNAME loop (answered
// slowly, so that it is still running when Close begins; before the fix
// the walk never ended and neither did Close); a validation cut short by
// shutdown stays processing and the next start resumes it.
func TestShutdownDuringCNAMELoop(t *testing.T) {
	e := newEnv(t)
	e.dns.setAnswer(func(q dns.Question) *dns.Msg {
		time.Sleep(1500 * time.Millisecond)
		return selfCNAME(q)
	})
	k, kid := e.account("default")
	_, o := e.order(k, kid, "slow-loop.localhost")
	_, c := e.challengeOf(k, kid, o, "dns-01")
	answered := make(chan acme.Challenge, 1)
	go func() {
		r, b := e.signed(k, kid, c.URL, "{}")
		var got acme.Challenge
		_ = json.Unmarshal(b, &got)
		if r.StatusCode != 200 {
			got.Status = fmt.Sprint(r.StatusCode)
		}
		answered <- got
	}()
	time.Sleep(300 * time.Millisecond) // the validation waits for the first answer
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- e.srv.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(standaloneDrain):
		t.Fatalf("Close did not return within the %s drain time while a CNAME-loop validation ran", standaloneDrain)
	}
	t.Logf("closed in %s", time.Since(start))
	if got := <-answered; got.Status != acme.StatusInvalid || got.Error == nil || got.Error.Type != acme.DNS {
		t.Fatalf("the in-flight challenge POST answered %+v, want invalid (dns)", got)
	}

	// A validation still running when the server stops (the resolver
	// answers each query of a long CNAME chain after 4 s) is left
	// processing, and Close does not wait for it; the next start resumes it.
	e2 := newEnv(t, withConfig(func(y string) string { return strings.Replace(y, "timeout: 5s", "timeout: 60s", 1) }))
	var hops atomic.Int32
	e2.dns.setAnswer(func(q dns.Question) *dns.Msg {
		time.Sleep(4 * time.Second)
		hop := hops.Add(1)
		return &dns.Msg{Answer: []dns.RR{&dns.CNAME{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 5},
			Target: fmt.Sprintf("c%d.chain.test.", hop)}}}
	})
	k, kid = e2.account("default")
	_, o = e2.order(k, kid, "resumed.localhost")
	az, c := e2.challengeOf(k, kid, o, "dns-01")
	if got := e2.respond(k, kid, c); got.Status != acme.StatusProcessing {
		t.Fatalf("a validation that outlasts the sync wait answered %q, want processing", got.Status)
	}
	start = time.Now()
	if err := e2.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > standaloneDrain {
		t.Fatalf("Close took %s", took)
	}
	e2.dns.setAnswer(nil)
	e2.dns.setTXT("_acme-challenge."+az.Identifier.Value, acme.DNS01Value(c.Token+"."+thumbprint(k)))
	oldURL := e2.srv.URL
	srv := e2.restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, b := e2.signed(k, strings.Replace(kid, oldURL, srv.URL, 1), strings.Replace(o.Authorizations[0], oldURL, srv.URL, 1), "")
		if r.StatusCode == 200 && strings.Contains(string(b), `"valid"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted validation was not resumed to valid: %d %s", r.StatusCode, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// standaloneDrain bounds a standalone shutdown: the in-flight requests'
// drain (20 s at most) is far longer than anything here should take, and
// Go's http.Server gives connections that never sent a request 5 s.
const standaloneDrain = 15 * time.Second

// TestHostileHTTPTargets (issue 13, finding 2; SEC-04): through the server,
// an http-01 answer is never quoted in the challenge, the authorization or
// the order, and a redirect to cloud metadata is refused.
func TestHostileHTTPTargets(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	const secret = "internal-service-credentials-4f1c"
	_, o := e.order(k, kid, "secret.localhost")
	_, c := e.challengeOf(k, kid, o, "http-01")
	e.resp.set(c.Token, secret)
	got := e.respond(k, kid, c)
	if got.Status != acme.StatusInvalid || got.Error.Type != acme.IncorrectResponse {
		t.Fatalf("challenge %+v", got)
	}
	for _, u := range []string{c.URL, o.Authorizations[0]} {
		if _, b := e.signed(k, kid, u, ""); strings.Contains(string(b), secret) {
			t.Fatalf("%s quotes what the target answered: %s", u, b)
		}
	}
	r, b := e.signed(k, kid, e.orderURL(o), "")
	if r.StatusCode != 200 || strings.Contains(string(b), secret) || !strings.Contains(string(b), "SHA-256") {
		t.Fatalf("order: %d %s", r.StatusCode, b)
	}

	_, o = e.order(k, kid, "metadata.localhost")
	_, c = e.challengeOf(k, kid, o, "http-01")
	e.resp.redirect(c.Token, "http://169.254.169.254/latest/meta-data/")
	got = e.respond(k, kid, c)
	if got.Status != acme.StatusInvalid || got.Error.Type != acme.Connection || !strings.Contains(got.Error.Detail, "169.254.169.254 is a link-local address") {
		t.Fatalf("challenge redirected to cloud metadata: %+v", got)
	}
}

// restart starts a new server on e's data directory and configuration and
// makes e use it.
func (e *env) restart() *standalone.Server {
	e.t.Helper()
	srv, err := standalone.Start(context.Background(), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = srv.Close() })
	e.srv = srv
	for p, path := range map[string]string{"default": "default", "tos": "terms", "eab": "eab"} {
		var d acme.Directory
		e.decode(e.get(srv.URL+"/acme/"+path+"/directory"), &d)
		e.dir[p] = d
	}
	return srv
}

// orderURL is the URL of an order (its finalize URL without /finalize).
func (e *env) orderURL(o acme.Order) string { return strings.TrimSuffix(o.Finalize, "/finalize") }

// withConfig rewrites the test configuration before the server starts.
func withConfig(edit func(string) string) func(*standalone.Options) {
	return func(o *standalone.Options) {
		p := filepath.Join(o.ConfigDir, "kacme.yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			panic(err)
		}
		if err := os.WriteFile(p, []byte(edit(string(b))), 0o600); err != nil {
			panic(err)
		}
	}
}

// TestZeroValidityIsAbsent (issue 13): the smallstep CLI sends the zero
// time for notBefore and notAfter when the user gives neither; kacme, like
// step-ca, takes it as absent (it answered "notAfter must be after
// notBefore"). The certificate gets the profile's default lifetime.
func TestZeroValidityIsAbsent(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	r, b := e.signed(k, kid, e.dir["default"].NewOrder,
		`{"identifiers":[{"type":"dns","value":"step.localhost"}],"notBefore":"0001-01-01T00:00:00Z","notAfter":"0001-01-01T00:00:00Z"}`)
	var o acme.Order
	if err := json.Unmarshal(b, &o); err != nil || r.StatusCode != 201 {
		t.Fatalf("newOrder with zero times: %d %s", r.StatusCode, b)
	}
	if o.NotBefore != "" || o.NotAfter != "" {
		t.Fatalf("zero times were kept: %s", b)
	}
}

// TestBannerFollowsProfile (issue 13): the banner of a server started with
// --config-dir prints commands for its default profile's http-01 port and a
// name it allows, and its directories at their paths.
func TestBannerFollowsProfile(t *testing.T) {
	e := newEnv(t)
	b := e.srv.Banner(t.TempDir())
	for _, want := range []string{fmt.Sprintf("--http-01-port %d", e.resp.port), fmt.Sprintf("--http.port 127.0.0.1:%d", e.resp.port),
		"-d app.localhost", e.srv.URL + "/acme/terms/directory"} {
		if !strings.Contains(b, want) {
			t.Fatalf("the banner does not say %q:\n%s", want, b)
		}
	}
}

// TestPKIOverPlainHTTP (issue 13; RFC 5280 §4.2.1.13, §4.2.2.1): with an HTTP
// listener, issued certificates point to a CRL and to their issuer's
// certificate under it, derived from the server's address (the CA sets only
// crl: {}); both are served over plain HTTP and check out; nothing ACME is.
func TestPKIOverPlainHTTP(t *testing.T) {
	e := newEnv(t, func(o *standalone.Options) { o.HTTPListen = "127.0.0.1:0" },
		withConfig(func(y string) string {
			return strings.Replace(y, `crl: {distributionPointURL: "http://127.0.0.1/crl/test-ca"}`, "crl: {}", 1)
		}))
	if !strings.HasPrefix(e.srv.PKIURL, "http://127.0.0.1:") {
		t.Fatalf("PKI URL %q, want the plain HTTP listener", e.srv.PKIURL)
	}
	k, kid := e.account("default")
	der := e.dns01Certificate(k, kid, "pki.localhost")
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.CRLDistributionPoints) != 1 || leaf.CRLDistributionPoints[0] != e.srv.PKIURL+"/crl/test-ca" ||
		len(leaf.IssuingCertificateURL) != 1 || leaf.IssuingCertificateURL[0] != e.srv.PKIURL+"/ca/test-ca" {
		t.Fatalf("CRL DP %v, caIssuers %v; want under %s", leaf.CRLDistributionPoints, leaf.IssuingCertificateURL, e.srv.PKIURL)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	fetch := func(u, wantType string) []byte {
		r, err := plain.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 || r.Header.Get("Content-Type") != wantType {
			t.Fatalf("GET %s over plain HTTP: %d %s", u, r.StatusCode, r.Header.Get("Content-Type"))
		}
		return b
	}
	issuer, err := x509.ParseCertificate(fetch(leaf.IssuingCertificateURL[0], "application/pkix-cert"))
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("the caIssuers certificate did not sign the leaf: %v", err)
	}
	crl, err := x509.ParseRevocationList(fetch(leaf.CRLDistributionPoints[0], "application/pkix-crl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("the CRL is not signed by the issuer: %v", err)
	}
	for _, p := range []string{"/acme/directory", "/dashboard/", "/acme/default/new-nonce"} {
		r, err := plain.Get(e.srv.PKIURL + p)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound {
			t.Fatalf("%s over plain HTTP: %d, want 404 (TRN-01)", p, r.StatusCode)
		}
	}
}
