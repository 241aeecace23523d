package conformance

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/test/harness"
)

// challengeTypes lists the types of az's challenges.
func challengeTypes(az acme.Authorization) []string {
	var out []string
	for _, c := range az.Challenges {
		out = append(out, c.Type)
	}
	return out
}

// TestDNSAccount01 (issue 18): dns-account-01 behind the profile switch.
// Two accounts validate the same name at once, each with its own TXT record
// at its account-scoped label; a record at another account's label does
// not validate; a wildcard is offered dns-account-01 (and dns-01) only, an
// ip identifier never; a profile that does not list the type does not
// offer it.
func TestDNSAccount01(t *testing.T) {
	e := newEnv(t)
	type acct struct {
		k   *key
		kid string
	}
	var accts []acct
	for range 2 {
		k, kid := e.account("dnsaccount")
		accts = append(accts, acct{k, kid})
	}
	// Both accounts order the same name; each publishes its own record.
	var challenges []*acme.Challenge
	for _, a := range accts {
		_, o := e.order(a.k, a.kid, "shared.localhost")
		_, c := e.challengeOf(a.k, a.kid, o, "dns-account-01")
		name := acme.DNSAccount01Name(a.kid, "shared.localhost")
		if len(name) != len("_")+16+len("._acme-challenge.shared.localhost") {
			t.Fatalf("label of %s: %s", a.kid, name)
		}
		e.dns.setTXT(name, acme.DNS01Value(c.Token+"."+thumbprint(a.k)))
		challenges = append(challenges, c)
	}
	if acme.DNSAccount01Name(accts[0].kid, "x") == acme.DNSAccount01Name(accts[1].kid, "x") {
		t.Fatal("two accounts share a label")
	}
	for i, a := range accts {
		if got := e.respond(a.k, a.kid, challenges[i]); got.Status != acme.StatusValid {
			t.Fatalf("account %d: %+v", i, got)
		}
	}

	// A record at the other account's label is not this account's answer.
	a, b := accts[0], accts[1]
	_, o := e.order(a.k, a.kid, "other.localhost")
	_, c := e.challengeOf(a.k, a.kid, o, "dns-account-01")
	e.dns.setTXT(acme.DNSAccount01Name(b.kid, "other.localhost"), acme.DNS01Value(c.Token+"."+thumbprint(a.k)))
	got := e.respond(a.k, a.kid, c)
	if got.Status != acme.StatusInvalid || got.Error == nil || got.Error.Type != acme.DNS ||
		!strings.Contains(got.Error.Detail, acme.DNSAccount01Name(a.kid, "other.localhost")) {
		t.Fatalf("a record at another account's label: %+v", got)
	}

	// Wildcards: the DNS types only; the record sits at the base name.
	_, o = e.order(a.k, a.kid, "*.wild.localhost")
	az, c := e.challengeOf(a.k, a.kid, o, "dns-account-01")
	if types := challengeTypes(az); !slices.Equal(types, []string{"dns-01", "dns-account-01"}) {
		t.Errorf("wildcard offers %v", types)
	}
	e.dns.setTXT(acme.DNSAccount01Name(a.kid, "wild.localhost"), acme.DNS01Value(c.Token+"."+thumbprint(a.k)))
	if got := e.respond(a.k, a.kid, c); got.Status != acme.StatusValid {
		t.Fatalf("wildcard: %+v", got)
	}
	// ip identifiers: no DNS challenge at all.
	_, o = e.order(a.k, a.kid, "127.0.0.1")
	r, body := e.signed(a.k, a.kid, o.Authorizations[0], "")
	var ipAz acme.Authorization
	if err := json.Unmarshal(body, &ipAz); err != nil || r.StatusCode != 200 {
		t.Fatal(r.StatusCode, string(body))
	}
	if types := challengeTypes(ipAz); slices.Contains(types, "dns-account-01") || slices.Contains(types, "dns-01") {
		t.Errorf("ip identifier offers %v", types)
	}
	// The default profile does not list dns-account-01.
	k, kid := e.account("default")
	_, o = e.order(k, kid, "plain.localhost")
	r, body = e.signed(k, kid, o.Authorizations[0], "")
	var plain acme.Authorization
	if err := json.Unmarshal(body, &plain); err != nil || r.StatusCode != 200 {
		t.Fatal(r.StatusCode, string(body))
	}
	if slices.Contains(challengeTypes(plain), "dns-account-01") {
		t.Errorf("a profile without the switch offers %v", challengeTypes(plain))
	}
}

// TestDNSAccount01LabelMatchesPebble (issue 18): the account-scoped name
// kacme validates (acme.DNSAccount01Name) is the one Pebble v2.10.1, an
// independent implementation of the draft, validates: a Go client publishes
// its record there for a Pebble order and Pebble finds it. (No ACME client
// available here speaks dns-account-01: lego v5.6.0, the newest served, has
// dns-persist-01 but not dns-account-01; Debian's lego 4.9.1 and certbot 2.1
// neither. Pebble is the interop partner instead.)
func TestDNSAccount01LabelMatchesPebble(t *testing.T) {
	bin := harness.Tool(t, "KACME_PEBBLE", "pebble")
	dir := t.TempDir()
	dnsSrv := startDNS(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_ = os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	port := harness.FreePort(t)
	cfg, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", port), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t)),
		"certificate": certPath, "privateKey": keyPath, "httpPort": harness.FreePort(t), "tlsPort": harness.FreePort(t),
		"ocspResponderURL": "", "externalAccountBindingRequired": false}})
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	harness.Start(t, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}, bin,
		"-config", cfgPath, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsSrv.port))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	dirURL := fmt.Sprintf("https://127.0.0.1:%d/dir", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := hc.Get(dirURL)
		if err == nil {
			r.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not serve %s: %v", dirURL, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	acctKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &xacme.Client{Key: acctKey, DirectoryURL: dirURL, HTTPClient: hc}
	if _, err := cl.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	const domain = "account-label.kacme.test"
	o, err := cl.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: domain}})
	if err != nil {
		t.Fatal(err)
	}
	z, err := cl.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	var ch *xacme.Challenge
	for _, c := range z.Challenges {
		if c.Type == "dns-account-01" {
			ch = c
		}
	}
	if ch == nil {
		t.Fatalf("pebble offered no dns-account-01 challenge: %+v", z.Challenges)
	}
	ka, err := cl.DNS01ChallengeRecord(ch.Token) // the same digest as dns-01
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv.setTXT(acme.DNSAccount01Name(string(cl.KID), domain), ka)
	if _, err := cl.Accept(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.WaitAuthorization(ctx, o.AuthzURLs[0]); err != nil {
		t.Fatalf("pebble did not find the record at %s: %v", acme.DNSAccount01Name(string(cl.KID), domain), err)
	}
}
