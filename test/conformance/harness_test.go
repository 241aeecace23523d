// Package conformance runs kacme standalone in-process and speaks raw HTTP
// with hand-built JWS to it. Test names carry the checklist IDs (each
// resolved in docs/conformance.md, "Checklist IDs").
package conformance

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/standalone"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

var b64 = base64.RawURLEncoding

// EAB key provisioned in the test configuration.
const (
	eabKID  = "team-a"
	eabHMAC = "c2VjcmV0LWhtYWMta2V5LWZvci1rYWNtZS10ZXN0cy0wMTIzNDU2Nzg5" // base64url of a 42-byte key
)

// responder serves http-01 key authorizations for every test.
type responder struct {
	mu        sync.Mutex
	keys      map[string]string
	redirects map[string]string // token → where to redirect
	port      int
	delay     atomic.Int64 // answer this many nanoseconds late
}

// redirect makes the challenge of token answer 302 to location.
func (r *responder) redirect(token, location string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.redirects == nil {
		r.redirects = map[string]string{}
	}
	r.redirects[token] = location
}

func (r *responder) set(token, ka string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[token] = ka
}

func (r *responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	token := strings.TrimPrefix(req.URL.Path, "/.well-known/acme-challenge/")
	ka, ok := r.keys[token]
	to := r.redirects[token]
	r.mu.Unlock()
	if to != "" {
		http.Redirect(w, req, to, http.StatusFound)
		return
	}
	if !ok {
		http.NotFound(w, req)
		return
	}
	time.Sleep(time.Duration(r.delay.Load()))
	_, _ = io.WriteString(w, ka)
}

type env struct {
	t    *testing.T
	srv  *standalone.Server
	http *http.Client
	dir  map[string]acme.Directory
	resp *responder
	dns  *testDNS
	reg  *prometheus.Registry
	opts standalone.Options // what the server was started with (restart)
	// skew moves the server's clock forward (expiry tests).
	skew atomic.Int64
}

func configYAML(httpPort, dnsPort int) string {
	return fmt.Sprintf(`
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: test-root}
spec:
  selfSigned: {subject: {commonName: kacme test root}, keyAlgorithm: ECDSAP384}
---
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: test-ca}
spec:
  intermediate: {issuer: test-root, subject: {commonName: kacme test}, keyAlgorithm: ECDSAP256}
  crl: {distributionPointURL: "http://127.0.0.1/crl/test-ca"}
  ocsp: {}
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata: {name: default}
spec:
  certificateAuthority: test-ca
  caaIdentities: [kacme.test]
  identifiers:
    allowedDNSSuffixes: [localhost]
    deniedNames: [blocked.localhost, "*.denied.localhost"]
    allowedCIDRs: [127.0.0.0/8]
  validation: {http01Port: %d, challengeTypes: [http-01, dns-01, tls-alpn-01], timeout: 5s, resolvers: ["127.0.0.1:%d"]}
  issuanceProfiles:
  - {name: default, description: 90 days, certificateLifetime: 2160h}
  - {name: short, description: 1 day, certificateLifetime: 24h, disallowIP: true}
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata: {name: tos}
spec:
  directoryPath: terms
  certificateAuthority: test-ca
  termsOfService: https://example.com/terms
  validation: {http01Port: %d}
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata: {name: eab}
spec:
  certificateAuthority: test-ca
  externalAccountBinding: {required: true}
  identifiers: {allowedDNSSuffixes: [localhost]}
  validation: {http01Port: %d}
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeAccount
metadata: {name: team-a}
spec:
  profile: eab
  externalAccountBinding: {keyID: %s, secretName: team-a-eab}
  allowedIdentifiers: ["*.team-a.localhost", "team-a.localhost"]
---
apiVersion: v1
kind: Secret
metadata: {name: team-a-eab}
stringData: {key: %s}
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata: {name: caa}
spec:
  certificateAuthority: test-ca
  caaIdentities: [kacme.test]
  identifiers: {allowedDNSSuffixes: [localhost]}
  validation: {http01Port: %d, challengeTypes: [http-01, dns-01], timeout: 5s, resolvers: ["127.0.0.1:%d"], checkCAA: true}
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata: {name: preauth}
spec:
  certificateAuthority: test-ca
  preAuthorization: true
  identifiers: {allowedDNSSuffixes: [localhost], deniedNames: [blocked.localhost]}
  validation: {http01Port: %d, challengeTypes: [http-01, dns-01], timeout: 5s, resolvers: ["127.0.0.1:%d"]}
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata: {name: ocsp}
spec:
  certificateAuthority: test-ca
  includeOCSPURL: true
  identifiers: {allowedDNSSuffixes: [localhost]}
  validation: {http01Port: %d}
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata: {name: dnsaccount}
spec:
  certificateAuthority: test-ca
  identifiers: {allowedDNSSuffixes: [localhost], allowedCIDRs: [127.0.0.0/8]}
  validation: {http01Port: %d, challengeTypes: [http-01, dns-01, dns-account-01], timeout: 5s, resolvers: ["127.0.0.1:%d"]}
`, httpPort, dnsPort, httpPort, httpPort, eabKID, eabHMAC, httpPort, dnsPort, httpPort, dnsPort, httpPort, httpPort, dnsPort)
}

// newEnv starts a server with a fresh data directory.
func newEnv(t *testing.T, opts ...func(*standalone.Options)) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp := &responder{keys: map[string]string{}, port: ln.Addr().(*net.TCPAddr).Port}
	hs := &http.Server{Handler: resp, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	dnsSrv := startDNS(t)
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "kacme.yaml"), []byte(configYAML(resp.port, dnsSrv.port)), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	reg := prometheus.NewRegistry()
	e := &env{t: t, resp: resp, dns: dnsSrv, dir: map[string]acme.Directory{}, reg: reg}
	o := standalone.Options{DataDir: t.TempDir(), ConfigDir: cfgDir,
		Listen: "127.0.0.1:0", Log: log, Metrics: metrics.New(reg),
		Now: func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }}
	for _, f := range opts {
		f(&o)
	}
	e.opts = o
	srv, err := standalone.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(srv.RootPath)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	e.srv = srv
	e.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	for p, path := range map[string]string{"default": "default", "tos": "terms", "eab": "eab", "caa": "caa", "preauth": "preauth", "ocsp": "ocsp", "dnsaccount": "dnsaccount"} {
		var d acme.Directory
		r := e.get(srv.URL + "/acme/" + path + "/directory")
		e.decode(r, &d)
		e.dir[p] = d
	}
	return e
}

func (e *env) get(url string) *http.Response {
	e.t.Helper()
	r, err := e.http.Get(url)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) decode(r *http.Response, v any) {
	e.t.Helper()
	defer r.Body.Close()
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, v); err != nil {
		e.t.Fatalf("decode %s: %v: %s", r.Request.URL, err, body)
	}
}

func (e *env) nonce() string {
	e.t.Helper()
	r, err := e.http.Head(e.dir["default"].NewNonce)
	if err != nil {
		e.t.Fatal(err)
	}
	r.Body.Close()
	return r.Header.Get("Replay-Nonce")
}

// key is an account or certificate key with its JWS algorithm.
type key struct {
	signer crypto.Signer
	alg    string
}

func newKey(t *testing.T, alg string) *key {
	t.Helper()
	var s crypto.Signer
	var err error
	switch alg {
	case "ES256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		s, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "RS256":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	case "RS256-1024":
		s, err = rsa.GenerateKey(rand.Reader, 1024)
		alg = "RS256"
	case "EdDSA":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("unknown alg %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &key{signer: s, alg: alg}
}

func (k *key) jwk() map[string]any {
	raw, _ := jose.JSONWebKey{Key: k.signer.Public()}.MarshalJSON()
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

// sign produces the raw signature over input for k's algorithm.
func (k *key) sign(input []byte) []byte {
	switch s := k.signer.(type) {
	case *ecdsa.PrivateKey:
		var h []byte
		size := 32
		if s.Curve == elliptic.P384() {
			sum := sha512_384(input)
			h, size = sum, 48
		} else {
			sum := sha256.Sum256(input)
			h = sum[:]
		}
		r, ss, _ := ecdsa.Sign(rand.Reader, s, h)
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		ss.FillBytes(out[size:])
		return out
	case *rsa.PrivateKey:
		sum := sha256.Sum256(input)
		sig, _ := rsa.SignPKCS1v15(rand.Reader, s, crypto.SHA256, sum[:])
		return sig
	case ed25519.PrivateKey:
		return ed25519.Sign(s, input)
	}
	panic("unsupported key")
}

// jwsOpts shape a hand-built JWS.
type jwsOpts struct {
	kid      string         // use kid instead of jwk
	header   map[string]any // extra or overriding protected members (nil value deletes)
	rawBody  func(protected, payload, sig string) string
	badSig   bool
	noNonce  bool
	nonceVal string
}

// jws hand-builds a flattened JWS for url with payload ("" for POST-as-GET).
func (e *env) jws(k *key, url string, payload string, o jwsOpts) []byte {
	e.t.Helper()
	h := map[string]any{"alg": k.alg, "url": url}
	if !o.noNonce {
		h["nonce"] = o.nonceVal
		if o.nonceVal == "" {
			h["nonce"] = e.nonce()
		}
	}
	if o.kid != "" {
		h["kid"] = o.kid
	} else {
		h["jwk"] = k.jwk()
	}
	for name, v := range o.header {
		if v == nil {
			delete(h, name)
		} else {
			h[name] = v
		}
	}
	hb, _ := json.Marshal(h)
	prot := b64.EncodeToString(hb)
	pl := b64.EncodeToString([]byte(payload))
	sig := k.sign([]byte(prot + "." + pl))
	if o.badSig {
		sig[len(sig)/2] ^= 0xff
	}
	ss := b64.EncodeToString(sig)
	if o.rawBody != nil {
		return []byte(o.rawBody(prot, pl, ss))
	}
	body, _ := json.Marshal(map[string]string{"protected": prot, "payload": pl, "signature": ss})
	return body
}

// post sends a JOSE body and returns the response with its body read.
func (e *env) post(url string, body []byte) (*http.Response, []byte) {
	e.t.Helper()
	return e.postCT(url, body, "application/jose+json")
}

func (e *env) postCT(url string, body []byte, ct string) (*http.Response, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	r, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r, b
}

// account registers a new account on profile and returns its key and URL.
func (e *env) account(profile string) (*key, string) {
	e.t.Helper()
	k := newKey(e.t, "ES256")
	r, b := e.post(e.dir[profile].NewAccount, e.jws(k, e.dir[profile].NewAccount, `{"termsOfServiceAgreed":true,"contact":["mailto:ops@example.org"]}`, jwsOpts{}))
	if r.StatusCode != 201 {
		e.t.Fatalf("newAccount: %d %s", r.StatusCode, b)
	}
	return k, r.Header.Get("Location")
}

// signed posts payload to url as the account (kid).
func (e *env) signed(k *key, kid, url, payload string) (*http.Response, []byte) {
	e.t.Helper()
	return e.post(url, e.jws(k, url, payload, jwsOpts{kid: kid}))
}

// order places an order (in the account's directory) and returns its URL
// and body.
func (e *env) order(k *key, kid string, names ...string) (string, acme.Order) {
	e.t.Helper()
	var ids []acme.Identifier
	for _, n := range names {
		t := "dns"
		if net.ParseIP(n) != nil {
			t = "ip"
		}
		ids = append(ids, acme.Identifier{Type: t, Value: n})
	}
	pl, _ := json.Marshal(map[string]any{"identifiers": ids})
	newOrder := e.dir["default"].NewOrder
	if i := strings.Index(kid, "/acct/"); i > 0 {
		for _, d := range e.dir { // the account's own directory
			if strings.HasPrefix(d.NewOrder, kid[:i+1]) {
				newOrder = d.NewOrder
			}
		}
	}
	r, b := e.signed(k, kid, newOrder, string(pl))
	if r.StatusCode != 201 {
		e.t.Fatalf("newOrder: %d %s", r.StatusCode, b)
	}
	var o acme.Order
	_ = json.Unmarshal(b, &o)
	return r.Header.Get("Location"), o
}

// readyOrder places an order and validates every authorization over http-01.
func (e *env) readyOrder(k *key, kid string, names ...string) (string, acme.Order) {
	e.t.Helper()
	u, o := e.order(k, kid, names...)
	for _, az := range o.Authorizations {
		r, b := e.signed(k, kid, az, "")
		var a acme.Authorization
		_ = json.Unmarshal(b, &a)
		if r.StatusCode != 200 {
			e.t.Fatalf("authz: %d %s", r.StatusCode, b)
		}
		if c := e.answerHTTP01(k, kid, a); c.Status != acme.StatusValid {
			e.t.Fatalf("respond: %s %+v", c.Status, c.Error)
		}
	}
	r, b := e.signed(k, kid, u, "")
	_ = json.Unmarshal(b, &o)
	if r.StatusCode != 200 || o.Status != "ready" {
		e.t.Fatalf("order not ready: %d %s", r.StatusCode, b)
	}
	return u, o
}

// answerHTTP01 deploys the key authorization of az's http-01 challenge on
// the responder, answers the challenge and returns it as the server answers.
func (e *env) answerHTTP01(k *key, kid string, az acme.Authorization) acme.Challenge {
	e.t.Helper()
	tp, _ := (&jose.JSONWebKey{Key: k.signer.Public()}).Thumbprint(crypto.SHA256)
	for _, c := range az.Challenges {
		if c.Type != "http-01" {
			continue
		}
		e.resp.set(c.Token, c.Token+"."+b64.EncodeToString(tp))
		r, b := e.signed(k, kid, c.URL, "{}")
		var got acme.Challenge
		if err := json.Unmarshal(b, &got); err != nil || r.StatusCode != 200 {
			e.t.Fatalf("respond: %d %s", r.StatusCode, b)
		}
		return got
	}
	e.t.Fatal("no http-01 challenge")
	return acme.Challenge{}
}

// csr builds a CSR for names signed by k.
func csr(t *testing.T, k crypto.Signer, names ...string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// snapshot is every stored object with its resourceVersion.
func (e *env) snapshot() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	ctx := context.Background()
	lists := []storage.ObjectList{&v1alpha1.AcmeAccountList{}, &v1alpha1.AcmeOrderList{}, &v1alpha1.AcmeChallengeList{}, &v1alpha1.AcmeCertificateList{}}
	for _, l := range lists {
		if err := e.srv.Store.List(ctx, standalone.Namespace, l, storage.ListOptions{}); err != nil {
			e.t.Fatal(err)
		}
		kind, _ := storage.KindOf(l)
		items, _ := metaItems(l)
		for _, it := range items {
			out[kind+"/"+it.GetName()] = it.GetResourceVersion()
		}
	}
	return out
}

func diffSnapshots(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %s -> %q", k, v, b[k]))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "created "+k)
		}
	}
	sort.Strings(d)
	return strings.Join(d, "; ")
}

// problem decodes a problem document and checks the invariants every error shares.
func problem(t *testing.T, r *http.Response, body []byte) acme.Problem {
	t.Helper()
	var p acme.Problem
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("status %d with Content-Type %q, want application/problem+json: %s", r.StatusCode, ct, body)
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem body: %v: %s", err, body)
	}
	if p.Status != r.StatusCode { // PRB-02
		t.Fatalf("problem status %d != HTTP status %d", p.Status, r.StatusCode)
	}
	if r.Header.Get("Replay-Nonce") == "" { // NON-04
		t.Fatalf("error response without Replay-Nonce")
	}
	return p
}
