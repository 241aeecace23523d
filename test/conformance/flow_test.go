package conformance

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	xacme "golang.org/x/crypto/acme"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/standalone"
	"github.com/kacme/kacme/api/v1alpha1"
)

// goClient returns an x/crypto/acme client for profile.
func (e *env) goClient(profile string) *xacme.Client {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return &xacme.Client{Key: key, DirectoryURL: e.srv.URL + "/acme/" + profile + "/directory", HTTPClient: e.http,
		UserAgent: "kacme-conformance"}
}

// issue runs a whole flow with the Go ACME client over http-01.
func (e *env) issue(ctx context.Context, c *xacme.Client, ids []xacme.AuthzID, opts ...xacme.OrderOption) ([][]byte, *xacme.Order) {
	e.t.Helper()
	o, err := c.AuthorizeOrder(ctx, ids, opts...)
	if err != nil {
		e.t.Fatalf("AuthorizeOrder: %v", err)
	}
	for _, u := range o.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, ch := range z.Challenges {
			if ch.Type != "http-01" {
				continue
			}
			ka, _ := c.HTTP01ChallengeResponse(ch.Token)
			e.resp.set(ch.Token, ka)
			if _, err := c.Accept(ctx, ch); err != nil {
				e.t.Fatalf("Accept: %v", err)
			}
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			e.t.Fatalf("WaitAuthorization: %v", err)
		}
	}
	uri := o.URI
	o, err = c.WaitOrder(ctx, uri)
	if err != nil {
		e.t.Fatalf("WaitOrder: %v", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{}
	for _, id := range ids {
		if id.Type == "ip" {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(id.Value))
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, id.Value)
		}
	}
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	ders, certURL, err := c.CreateOrderCert(ctx, o.FinalizeURL, csrDER, true)
	if err != nil {
		e.t.Fatalf("CreateOrderCert: %v", err)
	}
	o.URI, o.CertURL = uri, certURL
	return ders, o
}

func (e *env) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(e.srv.RootPath)
	pool.AppendCertsFromPEM(b)
	return pool
}

// TestGoClientFullFlow: issuance with dns and ip identifiers, certificate
// contents, alternate chains, ARI, revocation and the CRL.
func TestGoClientFullFlow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.goClient("default")
	if _, err := c.Register(ctx, &xacme.Account{Contact: []string{"mailto:ops@example.org"}}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	ders, o := e.issue(ctx, c, []xacme.AuthzID{{Type: "dns", Value: "app.localhost"}, {Type: "dns", Value: "www.app.localhost"}, {Type: "ip", Value: "127.0.0.1"}})
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, d := range ders[1:] {
		ic, _ := x509.ParseCertificate(d)
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: e.roots(), Intermediates: inter, DNSName: "www.app.localhost"}); err != nil {
		t.Fatalf("FIN-11/CRT-01: chain does not verify: %v", err)
	}
	if len(leaf.DNSNames) != 2 || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Fatalf("FIN-11: SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if len(leaf.SubjectKeyId) == 0 || len(leaf.AuthorityKeyId) == 0 || len(leaf.CRLDistributionPoints) != 1 ||
		len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.SerialNumber.BitLen() < 64 {
		t.Fatalf("certificate profile: ski=%x aki=%x crl=%v eku=%v serialbits=%d", leaf.SubjectKeyId, leaf.AuthorityKeyId,
			leaf.CRLDistributionPoints, leaf.ExtKeyUsage, leaf.SerialNumber.BitLen())
	}
	// CRT-03: the intermediate CA offers an alternate chain with the root.
	alts, err := c.ListCertAlternates(ctx, o.CertURL)
	if err != nil || len(alts) != 1 {
		t.Fatalf("CRT-03: alternates %v %v", alts, err)
	}
	altChain, err := c.FetchCert(ctx, alts[0], true)
	if err != nil || len(altChain) != len(ders)+1 || string(altChain[0]) != string(ders[0]) {
		t.Fatalf("CRT-03: alternate chain has %d certs (default %d), same leaf: %v", len(altChain), len(ders), err)
	}
	// ARI-01/02: the window for the fresh certificate lies inside its validity.
	certID := ra.CertID(leaf)
	win := e.renewalInfo(certID)
	if !win.end.After(win.start) || win.start.Before(leaf.NotBefore) || win.end.After(leaf.NotAfter) {
		t.Fatalf("ARI window %v..%v outside %v..%v", win.start, win.end, leaf.NotBefore, leaf.NotAfter)
	}
	// REV-01, REV-09, CRL-01: revoke with keyCompromise and find it on the CRL.
	if err := c.RevokeCert(ctx, nil, ders[0], xacme.CRLReasonKeyCompromise); err != nil {
		t.Fatalf("RevokeCert: %v", err)
	}
	// x/crypto/acme hides alreadyRevoked, so the second attempt is sent by hand.
	ck := &key{signer: c.Key, alg: "ES256"}
	r, b := e.signed(ck, string(c.KID), e.dir["default"].RevokeCert, fmt.Sprintf(`{"certificate":%q,"reason":1}`, b64.EncodeToString(ders[0])))
	if p := problem(t, r, b); r.StatusCode != 400 || p.Type != acme.AlreadyRevoked {
		t.Fatalf("REV-06: second revocation: %d %s", r.StatusCode, p.Type)
	}
	crl := e.crl("test-ca")
	issuer, _ := x509.ParseCertificate(ders[1])
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("CRL-01: %v", err)
	}
	found := false
	for _, rc := range crl.RevokedCertificateEntries {
		if rc.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			found = rc.ReasonCode == 1
		}
	}
	if !found {
		t.Fatalf("REV-09: serial %x with reason 1 not on the CRL", leaf.SerialNumber)
	}
	// An unchanged CRL is served again (within ra.CRLReuse) rather than signed
	// for every fetch of this public endpoint.
	if crl2 := e.crl("test-ca"); crl2.Number.Cmp(crl.Number) != 0 {
		t.Fatalf("an unchanged CRL was signed again for the next fetch")
	}
	// CRL-01: a revocation makes the next CRL a new one, with a higher number.
	ders2, _ := e.issue(ctx, c, []xacme.AuthzID{{Type: "dns", Value: "second.localhost"}})
	if err := c.RevokeCert(ctx, nil, ders2[0], xacme.CRLReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	crl3 := e.crl("test-ca")
	if crl3.Number.Cmp(crl.Number) <= 0 || len(crl3.RevokedCertificateEntries) != len(crl.RevokedCertificateEntries)+1 {
		t.Fatalf("CRL-01: after another revocation the CRL number went %v → %v with %d → %d entries",
			crl.Number, crl3.Number, len(crl.RevokedCertificateEntries), len(crl3.RevokedCertificateEntries))
	}
	// ARI-06: a revoked certificate should be renewed now.
	if win := e.renewalInfo(certID); !win.end.Before(time.Now()) {
		t.Fatalf("ARI-06: window for a revoked cert ends at %v", win.end)
	}
}

type window struct{ start, end time.Time }

func (e *env) renewalInfo(certID string) window {
	e.t.Helper()
	r := e.get(e.dir["default"].RenewalInfo + "/" + certID)
	var ri acme.RenewalInfo
	if r.StatusCode != 200 || r.Header.Get("Retry-After") == "" {
		e.t.Fatalf("ARI-02: status %d, Retry-After %q", r.StatusCode, r.Header.Get("Retry-After"))
	}
	e.decode(r, &ri)
	s, err1 := time.Parse(time.RFC3339, ri.SuggestedWindow.Start)
	en, err2 := time.Parse(time.RFC3339, ri.SuggestedWindow.End)
	if err1 != nil || err2 != nil || !en.After(s) {
		e.t.Fatalf("ARI-03: window %+v", ri.SuggestedWindow)
	}
	return window{s, en}
}

func (e *env) crl(name string) *x509.RevocationList {
	e.t.Helper()
	r := e.get(e.srv.URL + "/crl/" + name)
	defer r.Body.Close()
	der, _ := io.ReadAll(r.Body)
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		e.t.Fatalf("CRL: %v", err)
	}
	return crl
}

// TestKeyRollover (KEY-09) uses the Go ACME client's rollover.
func TestKeyRollover(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.goClient("default")
	acct, err := c.Register(ctx, &xacme.Account{}, xacme.AcceptTOS)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := c.Key
	newKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err := c.AccountKeyRollover(ctx, newKey); err != nil {
		t.Fatalf("AccountKeyRollover: %v", err)
	}
	// The new key finds the same account; the old one no longer does.
	got, err := c.GetReg(ctx, "")
	if err != nil || got.URI != acct.URI {
		t.Fatalf("new key: %v %v", got, err)
	}
	old := &xacme.Client{Key: oldKey, DirectoryURL: c.DirectoryURL, HTTPClient: e.http}
	if _, err := old.GetReg(ctx, ""); err == nil {
		t.Fatal("old key still authenticates")
	}
	e.issue(ctx, c, []xacme.AuthzID{{Type: "dns", Value: "rolled.localhost"}})
	// KEY-08: rolling onto a key another account holds is a 409 with Location.
	other := e.goClient("default")
	if _, err := other.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	err = c.AccountKeyRollover(ctx, other.Key)
	if ae, ok := err.(*xacme.Error); !ok || ae.StatusCode != http.StatusConflict || ae.Header.Get("Location") == "" {
		t.Fatalf("KEY-08: rollover onto a used key: %v", err)
	}
}

// TestFinalizeRace (FIN-12): parallel finalizes issue exactly one certificate.
func TestFinalizeRace(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	_, o := e.readyOrder(k, kid, "race.localhost")
	const n = 8
	var wg sync.WaitGroup
	codes := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			der := csr(t, newKey(t, "ES256").signer, "race.localhost")
			r, b := e.signed(k, kid, o.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der)))
			if r.StatusCode == 200 {
				codes <- "ok"
				return
			}
			var p acme.Problem
			_ = json.Unmarshal(b, &p)
			codes <- fmt.Sprintf("%d %s", r.StatusCode, p.Type)
		}()
	}
	wg.Wait()
	close(codes)
	ok := 0
	for c := range codes {
		switch c {
		case "ok":
			ok++
		case fmt.Sprintf("403 %s", acme.OrderNotReady):
		default:
			t.Errorf("unexpected answer %s", c)
		}
	}
	if ok != 1 {
		t.Fatalf("%d finalizes succeeded, want 1", ok)
	}
}

// TestOrderShapes: IDN-04/05 wildcard authorizations, CHL-09 ip challenges,
// PRF-03/04 profile echo, ARI-08/09 replaces.
func TestOrderShapes(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	_, o := e.order(k, kid, "*.w.localhost", "w.localhost", "127.0.0.2")
	if o.Profile != "default" {
		t.Fatalf("PRF-04: order profile %q", o.Profile)
	}
	wild := 0
	for _, u := range o.Authorizations {
		_, b := e.signed(k, kid, u, "")
		var raw map[string]any
		_ = json.Unmarshal(b, &raw)
		var az acme.Authorization
		_ = json.Unmarshal(b, &az)
		_, hasWildcard := raw["wildcard"]
		switch {
		case az.Wildcard:
			wild++
			if az.Identifier.Value != "w.localhost" || len(az.Challenges) != 1 || az.Challenges[0].Type != "dns-01" {
				t.Fatalf("IDN-04/05: wildcard authz %s", b)
			}
		case hasWildcard:
			t.Fatalf("IDN-04: non-wildcard authz carries a wildcard member: %s", b)
		case az.Identifier.Type == "ip":
			for _, c := range az.Challenges {
				if c.Type == "dns-01" {
					t.Fatalf("CHL-09: ip authz offers dns-01")
				}
			}
		}
	}
	if wild != 1 {
		t.Fatalf("IDN-04: %d wildcard authzs", wild)
	}
	// Replaces: issue, then order a replacement twice.
	ctx := context.Background()
	c := e.goClient("default")
	if _, err := c.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	ders, _ := e.issue(ctx, c, []xacme.AuthzID{{Type: "dns", Value: "r.localhost"}})
	leaf, _ := x509.ParseCertificate(ders[0])
	certID := ra.CertID(leaf)
	kidC := c.KID
	ck := &key{signer: c.Key, alg: "ES256"}
	pl := fmt.Sprintf(`{"replaces":%q,"profile":"short","identifiers":[{"type":"dns","value":"r.localhost"}]}`, certID)
	r, b := e.signed(ck, string(kidC), e.dir["default"].NewOrder, pl)
	if r.StatusCode != 201 || !strings.Contains(string(b), certID) || !strings.Contains(string(b), `"profile":"short"`) {
		t.Fatalf("ARI-09/PRF-03: %d %s", r.StatusCode, b)
	}
	r, b = e.signed(ck, string(kidC), e.dir["default"].NewOrder, pl)
	if p := problem(t, r, b); r.StatusCode != 409 || p.Type != acme.AlreadyReplaced {
		t.Fatalf("ARI-08: second replacement: %d %s", r.StatusCode, p.Type)
	}
	// Another account may not replace it.
	r, b = e.signed(k, kid, e.dir["default"].NewOrder, pl)
	if p := problem(t, r, b); r.StatusCode != 403 || p.Type != acme.Unauthorized {
		t.Fatalf("ARI-10: foreign replacement: %d %s", r.StatusCode, p.Type)
	}
}

// TestRestartKeepsState: account, order and certificate survive a restart.
func TestRestartKeepsState(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dataDir := filepath.Dir(e.srv.RootPath)
	c := e.goClient("default")
	acct, err := c.Register(ctx, &xacme.Account{}, xacme.AcceptTOS)
	if err != nil {
		t.Fatal(err)
	}
	ders, o := e.issue(ctx, c, []xacme.AuthzID{{Type: "dns", Value: "keep.localhost"}})
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "kacme.yaml"), []byte(configYAML(e.resp.port, e.dns.port)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := standalone.Start(ctx, standalone.Options{DataDir: dataDir, ConfigDir: cfgDir, Listen: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	move := func(u string) string { return srv.URL + strings.TrimPrefix(u, e.srv.URL) }
	c2 := &xacme.Client{Key: c.Key, DirectoryURL: srv.URL + "/acme/default/directory", HTTPClient: e.http}
	got, err := c2.GetReg(ctx, "")
	if err != nil || move(acct.URI) != got.URI {
		t.Fatalf("account after restart: %v %v", got, err)
	}
	o2, err := c2.GetOrder(ctx, move(o.URI))
	if err != nil || o2.Status != "valid" {
		t.Fatalf("order after restart: %+v %v", o2, err)
	}
	ders2, err := c2.FetchCert(ctx, move(o.CertURL), true)
	if err != nil || string(ders2[0]) != string(ders[0]) {
		t.Fatalf("certificate after restart differs: %v", err)
	}
}

// TestRevocationAuthority (REV-02, REV-03): the certificate key and an
// account holding valid authorizations for every name may revoke; an account
// with only some of the names may not.
func TestRevocationAuthority(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.goClient("default")
	if _, err := owner.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	revokeWith := func(k *key, kid string, der []byte) (*http.Response, []byte) {
		u := e.dir["default"].RevokeCert
		pl := fmt.Sprintf(`{"certificate":%q}`, b64.EncodeToString(der))
		if kid == "" {
			return e.post(u, e.jws(k, u, pl, jwsOpts{}))
		}
		return e.signed(k, kid, u, pl)
	}
	// An account with an authorization for only one of two names is refused;
	// once it holds both it may revoke.
	ders, _ := e.issue(ctx, owner, []xacme.AuthzID{{Type: "dns", Value: "x.localhost"}, {Type: "dns", Value: "y.localhost"}})
	k, kid := e.account("default")
	e.readyOrder(k, kid, "x.localhost")
	r, b := revokeWith(k, kid, ders[0])
	if p := problem(t, r, b); r.StatusCode != 403 || p.Type != acme.Unauthorized {
		t.Fatalf("REV-03: partial authorization: %d %s", r.StatusCode, p.Type)
	}
	e.readyOrder(k, kid, "y.localhost")
	if r, b := revokeWith(k, kid, ders[0]); r.StatusCode != 200 {
		t.Fatalf("REV-03: account with authorizations for every name: %d %s", r.StatusCode, b)
	}
	// The certificate key (jwk-signed) may revoke.
	certKey := newKey(t, "ES256")
	_, o := e.readyOrder(k, kid, "z.localhost")
	der := csr(t, certKey.signer, "z.localhost")
	r, b = e.signed(k, kid, o.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der)))
	_ = json.Unmarshal(b, &o)
	if r.StatusCode != 200 || o.Certificate == "" {
		t.Fatalf("finalize: %d %s", r.StatusCode, b)
	}
	_, chain := e.signed(k, kid, o.Certificate, "")
	leafDER := firstPEM(t, chain)
	if r, b := revokeWith(certKey, "", leafDER); r.StatusCode != 200 {
		t.Fatalf("REV-02: revocation signed by the certificate key: %d %s", r.StatusCode, b)
	}
	crl := e.crl("test-ca")
	leaf, _ := x509.ParseCertificate(leafDER)
	found := false
	for _, rc := range crl.RevokedCertificateEntries {
		found = found || rc.SerialNumber.Cmp(leaf.SerialNumber) == 0
	}
	if !found {
		t.Fatal("REV-09: certificate revoked with its key is not on the CRL")
	}
}

// TestMetrics: a full flow shows up in the Prometheus metrics.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.goClient("default")
	if _, err := c.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	e.issue(ctx, c, []xacme.AuthzID{{Type: "dns", Value: "m.localhost"}})
	// A replayed nonce: a badNonce problem.
	k, kid := e.account("default")
	n := e.nonce()
	for range 2 {
		e.post(e.dir["default"].NewOrder, e.jws(k, e.dir["default"].NewOrder, `{"identifiers":[{"type":"dns","value":"n.localhost"}]}`, jwsOpts{kid: kid, nonceVal: n}))
	}
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + float64(m.GetHistogram().GetSampleCount()) + m.GetGauge().GetValue()
		}
	}
	for _, want := range []string{
		"kacme_certificates_issued_total,issuance_profile=default,profile=default",
		"kacme_validations_total,result=valid,type=http-01",
		"kacme_http_requests_total,code=201,method=POST,route=/acme/{profile}/new-order",
		"kacme_issuance_duration_seconds,profile=default",
		"kacme_storage_writes_total,kind=AcmeOrder,op=create",
		"kacme_storage_writes_total,kind=AcmeCertificate,op=create",
		"kacme_problems_total,type=badNonce",
	} {
		if got[want] < 1 {
			t.Errorf("metric %s = %v, want ≥ 1", want, got[want])
		}
	}
	cas := 0
	for key, v := range got {
		if strings.HasPrefix(key, "kacme_ca_not_after_timestamp_seconds,ca=") {
			cas++
			if v < float64(time.Now().Unix()) {
				t.Errorf("%s = %v: in the past", key, v)
			}
		}
	}
	if cas == 0 {
		t.Error("no kacme_ca_not_after_timestamp_seconds")
	}
}

// TestURLsIgnoreHost (SEC-09): URLs come from the configured base, not from the request's Host.
func TestURLsIgnoreHost(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("GET", e.srv.URL+"/acme/directory", nil)
	req.Host = "evil.example"
	r, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var d map[string]any
	e.decode(r, &d)
	for k, v := range d {
		if s, ok := v.(string); ok && !strings.HasPrefix(s, e.srv.URL+"/") {
			t.Fatalf("%s = %s does not start with the configured base %s", k, s, e.srv.URL)
		}
	}
}

// TestRetiredProfile (PRF-05) and CHL-06: finalizing under an issuance profile
// the server no longer offers is invalidProfile; responding again to a valid
// challenge returns it unchanged.
func TestRetiredProfile(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	pl := `{"profile":"short","identifiers":[{"type":"dns","value":"retire.localhost"}]}`
	r, b := e.signed(k, kid, e.dir["default"].NewOrder, pl)
	if r.StatusCode != 201 {
		t.Fatalf("newOrder: %d %s", r.StatusCode, b)
	}
	var o acme.Order
	_ = json.Unmarshal(b, &o)
	_, azb := e.signed(k, kid, o.Authorizations[0], "")
	var az acme.Authorization
	_ = json.Unmarshal(azb, &az)
	tp, _ := (&jose.JSONWebKey{Key: k.signer.Public()}).Thumbprint(crypto.SHA256)
	var chURL string
	for _, c := range az.Challenges {
		if c.Type == "http-01" {
			chURL = c.URL
			e.resp.set(c.Token, c.Token+"."+b64.EncodeToString(tp))
		}
	}
	if r, b := e.signed(k, kid, chURL, "{}"); r.StatusCode != 200 || !strings.Contains(string(b), `"valid"`) {
		t.Fatalf("respond: %d %s", r.StatusCode, b)
	}
	before := e.snapshot()
	if r, b := e.signed(k, kid, chURL, "{}"); r.StatusCode != 200 || !strings.Contains(string(b), `"valid"`) {
		t.Fatalf("CHL-06: second response to a valid challenge: %d %s", r.StatusCode, b)
	}
	if d := diffSnapshots(before, e.snapshot()); d != "" {
		t.Fatalf("CHL-06: responding to a valid challenge changed state: %s", d)
	}
	// Retire "short" from the served configuration.
	cfg := *e.srv.RA.Config()
	profiles := map[string]*profile.Profile{}
	for name, p := range cfg.Profiles {
		cp := *p
		cp.Issuance = map[string]v1alpha1.IssuanceProfile{}
		for n, ip := range p.Issuance {
			if n != "short" {
				cp.Issuance[n] = ip
			}
		}
		profiles[name] = &cp
	}
	cfg.Profiles = profiles
	e.srv.RA.SetConfig(&cfg)
	der := csr(t, newKey(t, "ES256").signer, "retire.localhost")
	r, b = e.signed(k, kid, o.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(der)))
	if p := problem(t, r, b); r.StatusCode != 400 || p.Type != acme.InvalidProfile {
		t.Fatalf("PRF-05: finalize under a retired profile: %d %s", r.StatusCode, p.Type)
	}
}

// TestEABAccount: EAB-08 (the verified binding is echoed), a binding key binds
// one account only, and the pre-provisioned account's allowedIdentifiers
// limit what it may order.
func TestEABAccount(t *testing.T) {
	e := newEnv(t)
	macKey, _ := b64.DecodeString(eabHMAC)
	k := newKey(t, "ES256")
	binding := eabJWS(t, k, e.dir["eab"].NewAccount, eabKID, "HS256", macKey, nil)
	r, b := newAccountWithEAB(e, k, binding)
	if r.StatusCode != 201 {
		t.Fatalf("newAccount with EAB: %d %s", r.StatusCode, b)
	}
	var acct struct {
		ExternalAccountBinding json.RawMessage `json:"externalAccountBinding"`
	}
	_ = json.Unmarshal(b, &acct)
	var got, want any
	_ = json.Unmarshal(acct.ExternalAccountBinding, &got)
	_ = json.Unmarshal(binding, &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("EAB-08: echoed binding %s, sent %s", acct.ExternalAccountBinding, binding)
	}
	kid := r.Header.Get("Location")
	if !strings.HasSuffix(kid, "/acct/team-a") {
		t.Fatalf("the binding did not bind the pre-provisioned account: %s", kid)
	}
	// The same key again is the same account (ACC-02); another key cannot reuse the binding key.
	if r, _ := newAccountWithEAB(e, k, binding); r.StatusCode != 200 || r.Header.Get("Location") != kid {
		t.Fatalf("ACC-02: repeated registration: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	k2 := newKey(t, "ES256")
	r, b = newAccountWithEAB(e, k2, eabJWS(t, k2, e.dir["eab"].NewAccount, eabKID, "HS256", macKey, nil))
	if p := problem(t, r, b); r.StatusCode != 403 || p.Type != acme.Unauthorized {
		t.Fatalf("a used binding key bound a second account: %d %s", r.StatusCode, p.Type)
	}
	// allowedIdentifiers.
	order := func(names ...string) (*http.Response, []byte) {
		return e.signed(k, kid, e.dir["eab"].NewOrder, orderPayload(names...))
	}
	if r, b := order("dns:team-a.localhost", "dns:api.team-a.localhost", "dns:*.team-a.localhost"); r.StatusCode != 201 {
		t.Fatalf("allowed names refused: %d %s", r.StatusCode, b)
	}
	r, b = order("dns:api.team-a.localhost", "dns:team-b.localhost")
	p := problem(t, r, b)
	if r.StatusCode != 400 || p.Type != acme.RejectedIdentifier || len(p.Subproblems) != 1 || p.Subproblems[0].Identifier.Value != "team-b.localhost" {
		t.Fatalf("allowedIdentifiers: %d %+v", r.StatusCode, p)
	}
}

// TestDirectoryPath: spec.directoryPath names a profile's directory in every URL it hands out.
func TestDirectoryPath(t *testing.T) {
	e := newEnv(t)
	if !strings.HasPrefix(e.dir["tos"].NewAccount, e.srv.URL+"/acme/terms/") {
		t.Fatalf("newAccount of the profile with directoryPath terms: %s", e.dir["tos"].NewAccount)
	}
	r := e.get(e.srv.URL + "/acme/tos/directory")
	r.Body.Close()
	if r.StatusCode != http.StatusNotFound {
		t.Fatalf("the profile's name is not a directory path: %d", r.StatusCode)
	}
}
