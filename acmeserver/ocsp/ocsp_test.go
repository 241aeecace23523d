package ocsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	xocsp "golang.org/x/crypto/ocsp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/api/v1alpha1"
)

// source is a Source over a fixed set of certificate states.
type source struct {
	mu     sync.Mutex
	auths  map[string]*ca.Authority
	states map[string]ra.CertStatus // by hex serial
	err    error
}

func (s *source) Authorities() map[string]*ca.Authority { return s.auths }

func (s *source) CertificateStatus(_ context.Context, _ string, _ *ca.Authority, serial *big.Int) (ra.CertStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[serial.Text(16)], s.err
}

func (s *source) set(serial *big.Int, st ra.CertStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states[serial.Text(16)] = st
}

// countingSigner counts signatures.
type countingSigner struct {
	crypto.Signer
	n *atomic.Int64
}

func (c countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	c.n.Add(1)
	return c.Signer.Sign(r, d, o)
}

// newCA generates a root CA with an OCSP responder.
func newCA(t *testing.T, name string, alg v1alpha1.KeyAlgorithm, spec *v1alpha1.OCSPSpec) (*ca.Authority, *atomic.Int64) {
	t.Helper()
	key, chain, err := ca.GenerateSelfSigned(name, v1alpha1.SelfSignedCA{KeyAlgorithm: alg, Subject: v1alpha1.CASubject{CommonName: name}})
	if err != nil {
		t.Fatal(err)
	}
	n := &atomic.Int64{}
	auth, err := ca.New(name, chain[0], countingSigner{key, n}, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth.ConfigureURLs(nil, spec, "http://pki.test")
	return auth, n
}

type fixture struct {
	reg   *prometheus.Registry
	t     *testing.T
	src   *source
	r     *Responder
	srv   *httptest.Server
	auth  *ca.Authority
	signs *atomic.Int64
	now   atomic.Int64 // clock offset
}

func newFixture(t *testing.T, spec *v1alpha1.OCSPSpec, o Options) *fixture {
	t.Helper()
	auth, signs := newCA(t, "test-ca", v1alpha1.KeyECDSAP256, spec)
	plain, _ := newCA(t, "no-ocsp", v1alpha1.KeyECDSAP256, nil)
	f := &fixture{t: t, auth: auth, signs: signs,
		src: &source{auths: map[string]*ca.Authority{"test-ca": auth, "no-ocsp": plain}, states: map[string]ra.CertStatus{}}}
	base := time.Now()
	f.reg = prometheus.NewRegistry()
	o.Source, o.Metrics = f.src, metrics.New(f.reg)
	o.Now = func() time.Time { return base.Add(time.Duration(f.now.Load())) }
	f.r = New(o)
	mux := http.NewServeMux() // behind a ServeMux, as in the server: Wrap must see the raw path first
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "mux", http.StatusTeapot) })
	f.srv = httptest.NewServer(f.r.Wrap(mux))
	t.Cleanup(f.srv.Close)
	return f
}

// leaf is a certificate of f's CA with serial.
func (f *fixture) leaf(serial int64) *x509.Certificate {
	f.t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	_, cert, err := f.auth.Issue(ca.IssueRequest{PublicKey: k.Public(), DNSNames: []string{"a.test"}, NotBefore: now,
		NotAfter: now.Add(time.Hour), Serial: big.NewInt(serial)})
	if err != nil {
		f.t.Fatal(err)
	}
	return cert
}

func (f *fixture) request(cert *x509.Certificate, issuer *x509.Certificate) []byte {
	f.t.Helper()
	der, err := xocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return der
}

func (f *fixture) post(path string, der []byte) (*http.Response, []byte) {
	f.t.Helper()
	resp, err := http.Post(f.srv.URL+path, "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func (f *fixture) get(path string) (*http.Response, []byte) {
	f.t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// parse checks a successful response's signature (against the CA, or the
// delegated responder certificate it carries, which the CA must have
// signed) and returns it.
func (f *fixture) parse(body []byte, cert *x509.Certificate) *xocsp.Response {
	f.t.Helper()
	resp, err := xocsp.ParseResponseForCert(body, cert, f.auth.Cert)
	if err != nil {
		f.t.Fatalf("parse response: %v", err)
	}
	return resp
}

// status is the responseStatus of an OCSP response.
func status(t *testing.T, body []byte) xocsp.ResponseStatus {
	t.Helper()
	var r struct {
		Status asn1.Enumerated
		Rest   asn1.RawValue `asn1:"optional,explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(body, &r); err != nil {
		t.Fatalf("not an OCSP response: %v (%x)", err, body)
	}
	return xocsp.ResponseStatus(r.Status)
}

// TestStatuses (REV-05, REV-09): good, revoked with reason and time,
// revoked with reason 0 (no reason in the response), unknown; POST and GET.
func TestStatuses(t *testing.T) {
	f := newFixture(t, &v1alpha1.OCSPSpec{}, Options{})
	good, revoked, unspecified, unknown := f.leaf(11), f.leaf(12), f.leaf(13), f.leaf(14)
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	f.src.set(good.SerialNumber, ra.CertStatus{Known: true})
	f.src.set(revoked.SerialNumber, ra.CertStatus{Known: true, Revoked: true, RevokedAt: at, Reason: 1})
	f.src.set(unspecified.SerialNumber, ra.CertStatus{Known: true, Revoked: true, RevokedAt: at})
	for _, method := range []string{"POST", "GET"} {
		ask := func(c *x509.Certificate) *xocsp.Response {
			der := f.request(c, f.auth.Cert)
			var resp *http.Response
			var body []byte
			if method == "POST" {
				resp, body = f.post("/ocsp/test-ca", der)
			} else {
				resp, body = f.get("/ocsp/test-ca/" + url.PathEscape(base64.StdEncoding.EncodeToString(der)))
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/ocsp-response" {
				t.Fatalf("%s: %d %s", method, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			return f.parse(body, c)
		}
		if r := ask(good); r.Status != xocsp.Good || r.SerialNumber.Cmp(good.SerialNumber) != 0 {
			t.Errorf("%s good: status %d serial %v", method, r.Status, r.SerialNumber)
		}
		r := ask(revoked)
		if r.Status != xocsp.Revoked || r.RevocationReason != 1 || !r.RevokedAt.Equal(at) {
			t.Errorf("%s revoked: status %d reason %d at %v", method, r.Status, r.RevocationReason, r.RevokedAt)
		}
		if r := ask(unspecified); r.Status != xocsp.Revoked || r.RevocationReason != xocsp.Unspecified {
			t.Errorf("%s revoked without a reason: status %d reason %d", method, r.Status, r.RevocationReason)
		}
		if r := ask(unknown); r.Status != xocsp.Unknown {
			t.Errorf("%s unknown: status %d", method, r.Status)
		}
		if r.NextUpdate.Sub(r.ThisUpdate) != ca.DefaultOCSPValidity {
			t.Errorf("validity %v, want %v", r.NextUpdate.Sub(r.ThisUpdate), ca.DefaultOCSPValidity)
		}
	}
}

// TestGETWithSlashes: a GET request whose base64 holds "//" (and "+")
// unescaped is answered, not redirected by the ServeMux behind the responder.
func TestGETWithSlashes(t *testing.T) {
	f := newFixture(t, &v1alpha1.OCSPSpec{}, Options{})
	c := f.leaf(99)
	f.src.set(c.SerialNumber, ra.CertStatus{Known: true})
	// Vary the serial until the request's base64 holds "//".
	for s := int64(1); s < 1<<20; s++ {
		tmpl := *c
		tmpl.SerialNumber = big.NewInt(s)
		der, _ := xocsp.CreateRequest(&tmpl, f.auth.Cert, nil)
		enc := base64.StdEncoding.EncodeToString(der)
		if !strings.Contains(enc, "//") {
			continue
		}
		resp, body := f.get("/ocsp/test-ca/" + enc)
		if resp.StatusCode != 200 || status(t, body) != xocsp.Success {
			t.Fatalf("GET %s: %d", enc, resp.StatusCode)
		}
		if r, err := xocsp.ParseResponse(body, f.auth.Cert); err != nil || r.SerialNumber.Int64() != s {
			t.Fatalf("GET with //: %v %v", err, r)
		}
		return
	}
	t.Fatal("no serial gave a request with //")
}

// TestRefused: requests the responder must not answer with a status.
func TestRefused(t *testing.T) {
	f := newFixture(t, &v1alpha1.OCSPSpec{}, Options{})
	c := f.leaf(5)
	other, _ := newCA(t, "other", v1alpha1.KeyECDSAP256, &v1alpha1.OCSPSpec{})
	good := f.request(c, f.auth.Cert)
	twoCerts := func() []byte {
		// An OCSPRequest with two CertIDs (x/crypto writes one).
		var req struct {
			TBS struct {
				List []asn1.RawValue
			}
		}
		if _, err := asn1.Unmarshal(good, &req); err != nil {
			t.Fatal(err)
		}
		req.TBS.List = append(req.TBS.List, req.TBS.List[0])
		der, _ := asn1.Marshal(req)
		return der
	}()
	for _, tc := range []struct {
		name, path string
		der        []byte
		want       xocsp.ResponseStatus
	}{
		{"garbage", "/ocsp/test-ca", []byte("not DER"), xocsp.Malformed},
		{"empty", "/ocsp/test-ca", nil, xocsp.Malformed},
		{"trailing data", "/ocsp/test-ca", append(bytes.Clone(good), 0), xocsp.Malformed},
		{"two certificates", "/ocsp/test-ca", twoCerts, xocsp.Malformed},
		{"oversized nonce", "/ocsp/test-ca", withNonce(t, good, bytes.Repeat([]byte{1}, 33)), xocsp.Malformed},
		{"empty nonce", "/ocsp/test-ca", withNonce(t, good, []byte{}), xocsp.Malformed},
		{"unknown CA", "/ocsp/nope", good, xocsp.Unauthorized},
		{"CA without OCSP", "/ocsp/no-ocsp", good, xocsp.Unauthorized},
		{"another CA's certificate", "/ocsp/test-ca", f.request(c, other.Cert), xocsp.Unauthorized},
	} {
		resp, body := f.post(tc.path, tc.der)
		if resp.StatusCode != 200 || status(t, body) != tc.want {
			t.Errorf("%s: HTTP %d, status %v; want %v", tc.name, resp.StatusCode, status(t, body), tc.want)
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", tc.name, cc)
		}
	}
	if resp, _ := f.post("/ocsp/test-ca", bytes.Repeat([]byte{0x30}, MaxRequestSize+1)); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized POST: %d", resp.StatusCode)
	}
	if resp, _ := f.post("/ocsp/test-ca/extra", good); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST below a CA: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("PUT", f.srv.URL+"/ocsp/test-ca", bytes.NewReader(good))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
		t.Errorf("PUT: %v %v", err, resp)
	}
	for _, path := range []string{"/ocsp/test-ca/", "/ocsp/test-ca/%2F%2F", "/ocsp/test-ca/!!!!", "/ocsp/test-ca/" + strings.Repeat("A", 3*MaxRequestSize)} {
		resp, body := f.get(path)
		if resp.StatusCode == 200 && status(t, body) != xocsp.Malformed || resp.StatusCode != 200 && resp.StatusCode != 431 && resp.StatusCode != 400 {
			t.Errorf("GET %.40s: %d", path, resp.StatusCode)
		}
	}
	f.get("/ocsp/made-up-ca-name/!!!!") // malformed, for a CA nobody has
	fams, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, fam := range fams {
		if fam.GetName() != "kacme_ocsp_responses_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			series++
			for _, l := range m.GetLabel() {
				if l.GetName() == "ca" && l.GetValue() != "test-ca" && l.GetValue() != "no-ocsp" && l.GetValue() != "" {
					t.Errorf("a request's CA name became a metric label: %q", l.GetValue())
				}
			}
		}
	}
	if series == 0 {
		t.Error("no kacme_ocsp_responses_total series")
	}
	if resp, _ := f.get("/crl/x"); resp.StatusCode != http.StatusTeapot {
		t.Errorf("a path outside /ocsp/ did not reach the next handler: %d", resp.StatusCode)
	}
}

// withNonce adds a nonce extension (value: an OCTET STRING of n) to an
// OCSP request.
func withNonce(t *testing.T, der, n []byte) []byte {
	t.Helper()
	var req struct {
		TBS struct {
			List       []asn1.RawValue
			Extensions []pkix.Extension `asn1:"explicit,tag:2,optional"`
		}
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		t.Fatal(err)
	}
	v, _ := asn1.Marshal(n)
	req.TBS.Extensions = append(req.TBS.Extensions, pkix.Extension{Id: oidNonce, Value: v})
	out, err := asn1.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// responseNonce is the nonce among a response's responseExtensions.
func responseNonce(t *testing.T, body []byte) []byte {
	t.Helper()
	var outer struct {
		Status   asn1.Enumerated
		Response struct {
			Type     asn1.ObjectIdentifier
			Response []byte
		} `asn1:"explicit,tag:0"`
	}
	if _, err := asn1.Unmarshal(body, &outer); err != nil {
		t.Fatal(err)
	}
	var basic struct {
		TBS struct {
			Raw        asn1.RawContent
			Version    int `asn1:"optional,default:0,explicit,tag:0"`
			Responder  asn1.RawValue
			ProducedAt time.Time `asn1:"generalized"`
			Responses  []asn1.RawValue
			Extensions []pkix.Extension `asn1:"explicit,tag:1,optional"`
		}
	}
	if _, err := asn1.Unmarshal(outer.Response.Response, &basic); err != nil {
		t.Fatal(err)
	}
	for _, e := range basic.TBS.Extensions {
		if e.Id.Equal(oidNonce) {
			return e.Value
		}
	}
	return nil
}

// TestNonce (RFC 8954): a nonce comes back among the responseExtensions of
// a response signed for that request (valid signature, not cacheable);
// past the signing budget the cached response comes back without it.
func TestNonce(t *testing.T) {
	f := newFixture(t, &v1alpha1.OCSPSpec{}, Options{SignRate: 1})
	c := f.leaf(7)
	f.src.set(c.SerialNumber, ra.CertStatus{Known: true})
	n := []byte("0123456789abcdef")
	want, _ := asn1.Marshal(n)
	resp, body := f.post("/ocsp/test-ca", withNonce(t, f.request(c, f.auth.Cert), n))
	if got := responseNonce(t, body); !bytes.Equal(got, want) {
		t.Fatalf("nonce %x, want %x", got, want)
	}
	if r := f.parse(body, c); r.Status != xocsp.Good {
		t.Errorf("status %d", r.Status)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("a response with a nonce has Cache-Control %q", cc)
	}
	// The budget (1/s, burst 1) is spent: the same request gets a cached
	// response (signed now, as none is cached yet), without the nonce.
	resp, body = f.post("/ocsp/test-ca", withNonce(t, f.request(c, f.auth.Cert), n))
	if got := responseNonce(t, body); got != nil {
		t.Errorf("over the budget: nonce %x", got)
	}
	if r := f.parse(body, c); r.Status != xocsp.Good || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
		t.Errorf("over the budget: status %d, Cache-Control %q", r.Status, resp.Header.Get("Cache-Control"))
	}
}

// TestCaching: a response is signed once per serial and state; a
// revocation is answered at once; past half the validity it is signed
// again; cacheable responses carry RFC 5019 §6.2 headers.
func TestCaching(t *testing.T) {
	f := newFixture(t, &v1alpha1.OCSPSpec{Validity: &metav1.Duration{Duration: time.Hour}}, Options{})
	c := f.leaf(8)
	f.src.set(c.SerialNumber, ra.CertStatus{Known: true})
	der := f.request(c, f.auth.Cert)
	before := f.signs.Load()
	var first []byte
	for i := range 5 {
		resp, body := f.post("/ocsp/test-ca", der)
		if i == 0 {
			first = body
			r := f.parse(body, c)
			// max-age: the seconds left until nextUpdate (thisUpdate is cut to the second).
			if cc := resp.Header.Get("Cache-Control"); cc != "max-age=3599, public, no-transform, must-revalidate" && cc != "max-age=3600, public, no-transform, must-revalidate" {
				t.Errorf("Cache-Control %q", cc)
			}
			if lm, _ := http.ParseTime(resp.Header.Get("Last-Modified")); !lm.Equal(r.ThisUpdate) {
				t.Errorf("Last-Modified %s, thisUpdate %s", resp.Header.Get("Last-Modified"), r.ThisUpdate)
			}
			if ex, _ := http.ParseTime(resp.Header.Get("Expires")); !ex.Equal(r.NextUpdate) {
				t.Errorf("Expires %s, nextUpdate %s", resp.Header.Get("Expires"), r.NextUpdate)
			}
			if resp.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
		} else if !bytes.Equal(body, first) {
			t.Errorf("request %d got another response", i)
		}
	}
	if n := f.signs.Load() - before; n != 1 {
		t.Errorf("%d signatures for 5 requests, want 1", n)
	}
	f.src.set(c.SerialNumber, ra.CertStatus{Known: true, Revoked: true, RevokedAt: time.Now().UTC().Truncate(time.Second), Reason: 4})
	_, body := f.post("/ocsp/test-ca", der)
	if r := f.parse(body, c); r.Status != xocsp.Revoked || r.RevocationReason != 4 {
		t.Errorf("after the revocation: status %d reason %d", r.Status, r.RevocationReason)
	}
	f.now.Store(int64(29 * time.Minute))
	_, again := f.post("/ocsp/test-ca", der)
	if !bytes.Equal(again, body) {
		t.Error("re-signed before half the validity")
	}
	f.now.Store(int64(31 * time.Minute))
	_, later := f.post("/ocsp/test-ca", der)
	r := f.parse(later, c)
	if bytes.Equal(later, body) || r.Status != xocsp.Revoked || time.Until(r.NextUpdate) < 80*time.Minute {
		t.Errorf("past half the validity: same response %t, nextUpdate in %v", bytes.Equal(later, body), time.Until(r.NextUpdate))
	}
}

// TestUnknownBudget: serials nobody issued cost a signature each until the
// budget is spent, then tryLater; a repeated one is served from the cache.
func TestUnknownBudget(t *testing.T) {
	f := newFixture(t, &v1alpha1.OCSPSpec{}, Options{SignRate: 3})
	var tryLater int
	for s := range int64(10) {
		_, body := f.post("/ocsp/test-ca", f.request(f.leaf(1000+s), f.auth.Cert))
		if status(t, body) == xocsp.TryLater {
			tryLater++
		}
	}
	if tryLater < 5 {
		t.Errorf("%d of 10 unknown serials got tryLater; the budget is 3", tryLater)
	}
	_, body := f.post("/ocsp/test-ca", f.request(f.leaf(1000), f.auth.Cert))
	if status(t, body) != xocsp.Success {
		t.Error("a cached unknown response was not served")
	}
}

// TestDelegated: a Delegated CA (and any Ed25519 CA) signs with a
// responder certificate it issued: OCSPSigning only, id-pkix-ocsp-nocheck,
// not a CA, outliving the response; replaced after two thirds of its life.
func TestDelegated(t *testing.T) {
	for _, tc := range []struct {
		name string
		alg  v1alpha1.KeyAlgorithm
		spec v1alpha1.OCSPSpec
	}{
		{"Delegated", v1alpha1.KeyECDSAP384, v1alpha1.OCSPSpec{Responder: v1alpha1.OCSPResponderDelegated}},
		{"Ed25519", v1alpha1.KeyEd25519, v1alpha1.OCSPSpec{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, &tc.spec, Options{})
			f.auth, f.signs = newCA(t, "test-ca", tc.alg, &tc.spec)
			f.src.auths["test-ca"] = f.auth
			c := f.leaf(21)
			f.src.set(c.SerialNumber, ra.CertStatus{Known: true})
			_, body := f.post("/ocsp/test-ca", f.request(c, f.auth.Cert))
			r := f.parse(body, c) // checks the responder certificate against the CA
			rc := r.Certificate
			if rc == nil {
				t.Fatal("no responder certificate in the response")
			}
			if rc.IsCA || len(rc.ExtKeyUsage) != 1 || rc.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
				t.Errorf("responder certificate: CA %t, EKU %v", rc.IsCA, rc.ExtKeyUsage)
			}
			nocheck := false
			for _, e := range rc.Extensions {
				nocheck = nocheck || e.Id.Equal(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5})
			}
			if !nocheck || rc.NotAfter.Before(r.NextUpdate) {
				t.Errorf("nocheck %t, responder expires %v before nextUpdate %v", nocheck, rc.NotAfter, r.NextUpdate)
			}
			// Two thirds into its 7 days: a new responder certificate.
			f.now.Store(int64(5 * 24 * time.Hour))
			f.src.set(c.SerialNumber, ra.CertStatus{Known: true, Revoked: true, RevokedAt: time.Now()})
			_, body = f.post("/ocsp/test-ca", f.request(c, f.auth.Cert))
			if r2 := f.parse(body, c); r2.Certificate.SerialNumber.Cmp(rc.SerialNumber) == 0 {
				t.Error("the responder certificate was not replaced after two thirds of its life")
			}
		})
	}
}

// TestRotatedKey: a request naming the key a CA had before a rotation is
// answered by that key.
func TestRotatedKey(t *testing.T) {
	f := newFixture(t, &v1alpha1.OCSPSpec{}, Options{})
	old := f.auth
	cur, _ := newCA(t, "test-ca", v1alpha1.KeyECDSAP256, &v1alpha1.OCSPSpec{})
	cur.Previous = old
	cur.ConfigureURLs(nil, &v1alpha1.OCSPSpec{}, "http://pki.test")
	f.src.auths["test-ca"] = cur
	c := f.leaf(31) // signed by the old key
	f.src.set(c.SerialNumber, ra.CertStatus{Known: true})
	_, body := f.post("/ocsp/test-ca", f.request(c, old.Cert))
	if r, err := xocsp.ParseResponseForCert(body, c, old.Cert); err != nil || r.Status != xocsp.Good {
		t.Fatalf("the old key's leaf: %v %v", err, r)
	}
}

// FuzzParseRequest: no input makes the parser panic, and whatever it
// accepts has one positive serial.
func FuzzParseRequest(f *testing.F) {
	key, chain, _ := ca.GenerateSelfSigned("fuzz", v1alpha1.SelfSignedCA{})
	auth, _ := ca.New("fuzz", chain[0], key, nil)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, leaf, _ := auth.Issue(ca.IssueRequest{PublicKey: k.Public(), DNSNames: []string{"a.test"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)})
	der, _ := xocsp.CreateRequest(leaf, auth.Cert, nil)
	f.Add(der)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if req, err := parseRequest(b); err == nil && (req.serial == nil || req.serial.Sign() <= 0) {
			t.Fatalf("accepted a request without a positive serial: %x", b)
		}
	})
}

// TestConditionalGET: a cache revalidating a GET it holds gets 304 Not
// Modified while that response is the one served (If-None-Match, or
// If-Modified-Since at or after thisUpdate), the whole response otherwise —
// and once the status changed, the new response whatever the cache holds.
// A Range is ignored, POST is never conditional, an uncacheable answer is
// always sent whole.
func TestConditionalGET(t *testing.T) {
	f := newFixture(t, &v1alpha1.OCSPSpec{Validity: &metav1.Duration{Duration: time.Hour}}, Options{})
	c := f.leaf(11)
	f.src.set(c.SerialNumber, ra.CertStatus{Known: true})
	der := f.request(c, f.auth.Cert)
	path := "/ocsp/test-ca/" + url.PathEscape(base64.StdEncoding.EncodeToString(der))
	first, body := f.get(path)
	if first.StatusCode != http.StatusOK {
		t.Fatalf("GET: %s", first.Status)
	}
	etag, lastMod := first.Header.Get("ETag"), first.Header.Get("Last-Modified")
	if etag == "" || lastMod == "" {
		t.Fatalf("ETag %q, Last-Modified %q", etag, lastMod)
	}
	do := func(method string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		var rd io.Reader
		u := f.srv.URL + path
		if method == http.MethodPost {
			u, rd = f.srv.URL+"/ocsp/test-ca", bytes.NewReader(der)
		}
		req, _ := http.NewRequest(method, u, rd)
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/ocsp-request")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	lm, _ := http.ParseTime(lastMod)
	for _, tc := range []struct {
		name   string
		method string
		hdr    []string
		want   int
		whole  bool
	}{
		{"If-None-Match, same", "GET", []string{"If-None-Match", etag}, http.StatusNotModified, false},
		{"If-None-Match, in a list", "GET", []string{"If-None-Match", `"x", ` + etag}, http.StatusNotModified, false},
		{"If-None-Match, weak", "GET", []string{"If-None-Match", "W/" + etag}, http.StatusNotModified, false},
		{"If-None-Match, another", "GET", []string{"If-None-Match", `"0123"`}, http.StatusOK, true},
		{"If-Modified-Since thisUpdate", "GET", []string{"If-Modified-Since", lastMod}, http.StatusNotModified, false},
		{"If-Modified-Since before", "GET", []string{"If-Modified-Since", lm.Add(-time.Second).Format(http.TimeFormat)}, http.StatusOK, true},
		{"If-Modified-Since garbage", "GET", []string{"If-Modified-Since", "yesterday"}, http.StatusOK, true},
		{"HEAD, If-None-Match", "HEAD", []string{"If-None-Match", etag}, http.StatusNotModified, false},
		{"Range ignored", "GET", []string{"Range", "bytes=0-9"}, http.StatusOK, true},
		{"POST not conditional", "POST", []string{"If-None-Match", etag}, http.StatusOK, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := do(tc.method, tc.hdr...)
			if resp.StatusCode != tc.want {
				t.Fatalf("%s", resp.Status)
			}
			if tc.whole && !bytes.Equal(b, body) {
				t.Errorf("body of %d bytes, want the %d-byte response", len(b), len(body))
			}
			if !tc.whole && len(b) != 0 {
				t.Errorf("a %d answer with %d bytes of body", resp.StatusCode, len(b))
			}
			if resp.StatusCode == http.StatusNotModified && (resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") == "") {
				t.Errorf("304 with ETag %q, Cache-Control %q", resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
			}
		})
	}
	// Revoked: the cache's ETag no longer matches; the new response comes.
	f.src.set(c.SerialNumber, ra.CertStatus{Known: true, Revoked: true, RevokedAt: time.Now().UTC().Truncate(time.Second), Reason: 1})
	f.now.Store(int64(31 * time.Minute)) // past half the validity: re-signed
	resp, b := do("GET", "If-None-Match", etag)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the revocation: %s", resp.Status)
	}
	if r := f.parse(b, c); r.Status != xocsp.Revoked {
		t.Errorf("after the revocation: status %d", r.Status)
	}
	// Uncacheable (a malformed request's unsigned answer, no-store) is sent
	// whole even to "If-None-Match: *".
	req, _ := http.NewRequest("GET", f.srv.URL+"/ocsp/test-ca/bm90LWFuLW9jc3AtcmVxdWVzdA==", nil)
	req.Header.Set("If-None-Match", "*")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusOK || r2.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("malformed request with If-None-Match *: %s, Cache-Control %q", r2.Status, r2.Header.Get("Cache-Control"))
	}
}
