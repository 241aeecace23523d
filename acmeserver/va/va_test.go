package va

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/api/v1alpha1"
)

const keyAuth = "token123.thumbprint456"

// dnsServer runs a miekg/dns server on loopback answering from records;
// "SERVFAIL" as a name's value makes it fail.
func dnsServer(t *testing.T, records map[string][]dns.RR, servfail map[string]bool) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := dns.NewServeMux()
	mux.HandleFunc(".", func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		if servfail[name] {
			m.Rcode = dns.RcodeServerFailure
			_ = w.WriteMsg(m)
			return
		}
		rrs, ok := records[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype || rr.Header().Rrtype == dns.TypeCNAME {
				m.Answer = append(m.Answer, rr)
			}
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: mux}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func validate(t *testing.T, req Request) Result {
	t.Helper()
	req.KeyAuthorization = keyAuth
	req.Token = "token123"
	if req.Settings.Timeout == 0 {
		req.Settings.Timeout = 3 * time.Second
	}
	return New().Validate(context.Background(), req)
}

func wantProblem(t *testing.T, res Result, typ acme.ProblemType) {
	t.Helper()
	switch {
	case typ == "" && res.Problem != nil:
		t.Fatalf("validation failed: %v", res.Problem)
	case typ != "" && res.Problem == nil:
		t.Fatalf("validation passed, want %s", typ)
	case typ != "" && res.Problem.Type != typ:
		t.Fatalf("problem %s (%s), want %s", res.Problem.Type, res.Problem.Detail, typ)
	}
}

// D01-01..05: dns-01 through a resolver on loopback.
func TestDNS01(t *testing.T) {
	t.Parallel()
	want := acme.DNS01Value(keyAuth)
	srv := dnsServer(t, map[string][]dns.RR{
		"_acme-challenge.ok.test.":     {rr(t, `_acme-challenge.ok.test. 5 IN TXT "wrong"`), rr(t, fmt.Sprintf(`_acme-challenge.ok.test. 5 IN TXT %q`, want))},
		"_acme-challenge.split.test.":  {rr(t, fmt.Sprintf(`_acme-challenge.split.test. 5 IN TXT %q %q`, want[:20], want[20:]))},
		"_acme-challenge.wrong.test.":  {rr(t, `_acme-challenge.wrong.test. 5 IN TXT "nope"`)},
		"_acme-challenge.padded.test.": {rr(t, fmt.Sprintf(`_acme-challenge.padded.test. 5 IN TXT %q`, want+"="))},
		"_acme-challenge.alias.test.":  {rr(t, `_acme-challenge.alias.test. 5 IN CNAME delegated.other.test.`)},
		"delegated.other.test.":        {rr(t, fmt.Sprintf(`delegated.other.test. 5 IN TXT %q`, want))},
		"_acme-challenge.empty.test.":  {},
	}, map[string]bool{"_acme-challenge.broken.test.": true})
	settings := Settings{Resolvers: []string{srv}}
	for name, typ := range map[string]acme.ProblemType{
		"ok.test": "", "*.ok.test": "", "split.test": "", "alias.test": "",
		"wrong.test": acme.IncorrectResponse, "padded.test": acme.IncorrectResponse, "empty.test": acme.IncorrectResponse,
		"missing.test": acme.DNS, "broken.test": acme.DNS,
	} {
		t.Run(name, func(t *testing.T) {
			res := validate(t, Request{Identifier: acme.Identifier{Type: "dns", Value: name}, Type: v1alpha1.ChallengeDNS01, Settings: settings})
			wantProblem(t, res, typ)
			if len(res.Records) != 1 || !strings.Contains(res.Records[0].Query, "_acme-challenge.") {
				t.Fatalf("records %+v", res.Records)
			}
		})
	}
}

// TestDNSAccount01: the TXT record at the account's label validates; one at
// the dns-01 name or at another account's label does not; without the
// account URL the server cannot validate (serverInternal, never a pass).
func TestDNSAccount01(t *testing.T) {
	t.Parallel()
	const acct, other = "https://ca.test/acme/default/acct/1", "https://ca.test/acme/default/acct/2"
	want := acme.DNS01Value(keyAuth)
	txt := func(name string) []dns.RR { return []dns.RR{rr(t, fmt.Sprintf(`%s. 5 IN TXT %q`, name, want))} }
	srv := dnsServer(t, map[string][]dns.RR{
		acme.DNSAccount01Name(acct, "ok.test") + ".":      txt(acme.DNSAccount01Name(acct, "ok.test")),
		"_acme-challenge.dns01.test.":                     txt("_acme-challenge.dns01.test"),
		acme.DNSAccount01Name(other, "theirs.test") + ".": txt(acme.DNSAccount01Name(other, "theirs.test")),
		acme.DNSAccount01Name(acct, "loop.test") + ".":    {rr(t, fmt.Sprintf(`%s. 5 IN CNAME %[1]s.`, acme.DNSAccount01Name(acct, "loop.test")))},
	}, nil)
	settings := Settings{Resolvers: []string{srv}}
	for _, tc := range []struct {
		name, acct string
		want       acme.ProblemType
	}{
		{"ok.test", acct, ""}, {"*.ok.test", acct, ""}, {"dns01.test", acct, acme.DNS}, {"theirs.test", acct, acme.DNS},
		{"ok.test", "", acme.ServerInternal}, {"loop.test", acct, acme.DNS},
	} {
		res := validate(t, Request{Identifier: acme.Identifier{Type: "dns", Value: tc.name}, Type: v1alpha1.ChallengeDNSAccount01,
			Settings: settings, AccountURI: tc.acct})
		wantProblem(t, res, tc.want)
	}
	if got := acme.DNSAccount01Name(acct, "ok.test"); !regexp.MustCompile(`^_[a-z2-7]{16}\._acme-challenge\.ok\.test$`).MatchString(got) {
		t.Errorf("label %q", got)
	}
}

// httpTarget serves handler on loopback and returns its port.
func httpTarget(t *testing.T, h http.Handler) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// H01-01..08: http-01 body, status, redirects and lookups.
func TestHTTP01(t *testing.T) {
	t.Parallel()
	var gotHost, gotPath string
	var port int
	port = httpTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotPath = r.Host, r.URL.Path
		switch {
		case strings.HasPrefix(r.Host, "ok."):
			_, _ = io.WriteString(w, keyAuth+"\r\n")
		case strings.HasPrefix(r.Host, "spaces."):
			_, _ = io.WriteString(w, keyAuth+"  \n")
		case strings.HasPrefix(r.Host, "leading."):
			_, _ = io.WriteString(w, " "+keyAuth)
		case strings.HasPrefix(r.Host, "big."):
			_, _ = io.WriteString(w, keyAuth+strings.Repeat("x", 2000))
		case strings.HasPrefix(r.Host, "404."):
			http.NotFound(w, r)
		case strings.HasPrefix(r.Host, "redirect."):
			http.Redirect(w, r, fmt.Sprintf("http://ok.localhost:%d%s", port, r.URL.Path), http.StatusFound)
		case strings.HasPrefix(r.Host, "see-other."):
			http.Redirect(w, r, fmt.Sprintf("http://ok.localhost:%d%s", port, r.URL.Path), http.StatusSeeOther)
		case strings.HasPrefix(r.Host, "loop."):
			http.Redirect(w, r, r.URL.Path, http.StatusFound)
		case strings.HasPrefix(r.Host, "ftp."):
			http.Redirect(w, r, "ftp://ok.localhost/x", http.StatusFound)
		case strings.HasPrefix(r.Host, "port."):
			http.Redirect(w, r, "http://ok.localhost:8081/x", http.StatusFound)
		default:
			_, _ = io.WriteString(w, "wrong")
		}
	}))
	settings := Settings{HTTPPort: port, Resolvers: []string{"127.0.0.1:1"}}
	for name, typ := range map[string]acme.ProblemType{
		"ok.localhost": "", "spaces.localhost": "", "redirect.localhost": "",
		"leading.localhost": acme.IncorrectResponse, "big.localhost": acme.IncorrectResponse, "404.localhost": acme.IncorrectResponse,
		"wrong.localhost": acme.IncorrectResponse, "see-other.localhost": acme.Connection, "loop.localhost": acme.Connection,
		"ftp.localhost": acme.Connection, "port.localhost": acme.Connection,
	} {
		t.Run(name, func(t *testing.T) {
			res := validate(t, Request{Identifier: acme.Identifier{Type: "dns", Value: name}, Type: v1alpha1.ChallengeHTTP01, Settings: settings})
			wantProblem(t, res, typ)
		})
	}
	res := validate(t, Request{Identifier: acme.Identifier{Type: "dns", Value: "ok.localhost"}, Type: v1alpha1.ChallengeHTTP01, Settings: settings})
	if gotPath != "/.well-known/acme-challenge/token123" || !strings.HasPrefix(gotHost, "ok.localhost") {
		t.Fatalf("H01-01/03: fetched host %q path %q", gotHost, gotPath)
	}
	if res.Records[0].AddressUsed != "127.0.0.1" || res.Records[0].Port != strconv.Itoa(port) {
		t.Fatalf("records %+v", res.Records)
	}
	// H01-09: ip identifiers connect to the address itself, without DNS.
	res = validate(t, Request{Identifier: acme.Identifier{Type: "ip", Value: "127.0.0.1"}, Type: v1alpha1.ChallengeHTTP01, Settings: settings})
	wantProblem(t, res, acme.IncorrectResponse) // the default branch answers "wrong", proving the connection was made
	// Unresolvable names are dns problems; closed ports are connection problems.
	res = validate(t, Request{Identifier: acme.Identifier{Type: "dns", Value: "nowhere.test"}, Type: v1alpha1.ChallengeHTTP01, Settings: settings})
	wantProblem(t, res, acme.DNS)
	closed := Settings{HTTPPort: 1, Resolvers: settings.Resolvers}
	res = validate(t, Request{Identifier: acme.Identifier{Type: "dns", Value: "ok.localhost"}, Type: v1alpha1.ChallengeHTTP01, Settings: closed})
	wantProblem(t, res, acme.Connection)
}

// alpnResponder serves one certificate (built by mk) with the given ALPN.
func alpnResponder(t *testing.T, protos []string, mk func() *x509.Certificate) int {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := mk()
	tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(1), time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, NextProtos: protos}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func acmeExt(critical bool, ka string) pkix.Extension {
	sum := sha256.Sum256([]byte(ka))
	v, _ := asn1.Marshal(sum[:])
	return pkix.Extension{Id: IDPeACMEIdentifier, Critical: critical, Value: v}
}

// TA1-01..06: tls-alpn-01 certificate checks.
func TestTLSALPN01(t *testing.T) {
	t.Parallel()
	good := func(names ...string) func() *x509.Certificate {
		return func() *x509.Certificate {
			return &x509.Certificate{DNSNames: names, ExtraExtensions: []pkix.Extension{acmeExt(true, keyAuth)}}
		}
	}
	cases := map[string]struct {
		protos []string
		mk     func() *x509.Certificate
		id     acme.Identifier
		typ    acme.ProblemType
	}{
		"valid":      {[]string{ALPNProto}, good("a.localhost"), acme.Identifier{Type: "dns", Value: "a.localhost"}, ""},
		"uppercase":  {[]string{ALPNProto}, good("A.LOCALHOST"), acme.Identifier{Type: "dns", Value: "a.localhost"}, ""},
		"no-alpn":    {nil, good("a.localhost"), acme.Identifier{Type: "dns", Value: "a.localhost"}, acme.TLS},
		"two-sans":   {[]string{ALPNProto}, good("a.localhost", "b.localhost"), acme.Identifier{Type: "dns", Value: "a.localhost"}, acme.IncorrectResponse},
		"wrong-name": {[]string{ALPNProto}, good("b.localhost"), acme.Identifier{Type: "dns", Value: "a.localhost"}, acme.IncorrectResponse},
		"non-critical": {[]string{ALPNProto}, func() *x509.Certificate {
			return &x509.Certificate{DNSNames: []string{"a.localhost"}, ExtraExtensions: []pkix.Extension{acmeExt(false, keyAuth)}}
		}, acme.Identifier{Type: "dns", Value: "a.localhost"}, acme.IncorrectResponse},
		"wrong-digest": {[]string{ALPNProto}, func() *x509.Certificate {
			return &x509.Certificate{DNSNames: []string{"a.localhost"}, ExtraExtensions: []pkix.Extension{acmeExt(true, "other")}}
		}, acme.Identifier{Type: "dns", Value: "a.localhost"}, acme.IncorrectResponse},
		"ip": {[]string{ALPNProto}, func() *x509.Certificate {
			return &x509.Certificate{IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtraExtensions: []pkix.Extension{acmeExt(true, keyAuth)}}
		}, acme.Identifier{Type: "ip", Value: "127.0.0.1"}, ""},
		"ip-with-dnsname": {[]string{ALPNProto}, good("127.0.0.1"), acme.Identifier{Type: "ip", Value: "127.0.0.1"}, acme.IncorrectResponse},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			port := alpnResponder(t, tc.protos, tc.mk)
			res := validate(t, Request{Identifier: tc.id, Type: v1alpha1.ChallengeTLSALPN01, Settings: Settings{TLSPort: port, Resolvers: []string{"127.0.0.1:1"}}})
			wantProblem(t, res, tc.typ)
		})
	}
}
