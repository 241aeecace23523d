// Package interop drives real ACME clients (certbot and lego from Debian,
// the smallstep CLI built from its Go module) against a real kacme process
// on loopback, with BIND 9 on loopback as the
// DNS server the clients update with nsupdate for dns-01.
//
// Set KACME_INTEROP=required (make test does) to fail instead of skip when a
// client or BIND is missing.
package interop

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"

	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

const (
	zone    = "kacme.test"
	eabHMAC = "ZWFiLWhtYWMta2V5LWZvci1pbnRlcm9wLXRlc3RzLTAxMjM" // base64url
)

type world struct {
	t        *testing.T
	dir      string
	dns      *harness.DNS
	httpPort int
	tlsPort  int
	url      string // kacme base URL
	root     string // ca.crt path
	pool     *x509.CertPool
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) startKacme() {
	w.t.Helper()
	bin := harness.BuildKacme(w.t)
	port := harness.FreePort(w.t)
	w.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	cfg := filepath.Join(w.dir, "config")
	must(w.t, os.MkdirAll(cfg, 0o755))
	validation := fmt.Sprintf(`{http01Port: %d, tlsALPN01Port: %d, resolvers: ["%s"], timeout: 10s}`, w.httpPort, w.tlsPort, w.dns.Resolver())
	yaml := fmt.Sprintf(`apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: interop-root}
spec:
  selfSigned: {subject: {commonName: kacme interop root}, keyAlgorithm: ECDSAP384}
---
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: interop-ca}
spec:
  intermediate: {issuer: interop-root, subject: {commonName: kacme interop}, keyAlgorithm: ECDSAP384}
  crl: {distributionPointURL: "%[1]s/crl/interop-ca"}
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata: {name: default}
spec:
  certificateAuthority: interop-ca
  identifiers: {allowedDNSSuffixes: [%[2]s]}
  validation: %[3]s
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata: {name: eab}
spec:
  certificateAuthority: interop-ca
  externalAccountBinding: {required: true}
  identifiers: {allowedDNSSuffixes: [%[2]s]}
  validation: %[3]s
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeAccount
metadata: {name: certbot-team}
spec: {profile: eab, externalAccountBinding: {keyID: certbot-kid, secretName: eab-keys, secretKey: certbot}}
---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeAccount
metadata: {name: lego-team}
spec: {profile: eab, externalAccountBinding: {keyID: lego-kid, secretName: eab-keys, secretKey: lego}}
---
apiVersion: v1
kind: Secret
metadata: {name: eab-keys}
stringData: {certbot: %[4]s, lego: %[4]s}
`, w.url, zone, validation, eabHMAC)
	must(w.t, os.WriteFile(filepath.Join(cfg, "kacme.yaml"), []byte(yaml), 0o644))
	data := filepath.Join(w.dir, "data")
	w.root = filepath.Join(data, "ca.crt")
	harness.Start(w.t, nil, bin, "standalone", "--data-dir", data, "--config-dir", cfg, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--quiet")
	kenvtest.WaitFor(w.t, "kacme", func() bool {
		b, err := os.ReadFile(w.root)
		if err != nil || len(b) == 0 {
			return false
		}
		w.pool = x509.NewCertPool()
		w.pool.AppendCertsFromPEM(b)
		r, err := w.client().Get(w.url + "/acme/directory")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
}

func (w *world) client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.pool}}}
}

func (w *world) dirURL(profile string) string { return w.url + "/acme/" + profile + "/directory" }

// run runs a client command and fails the test with its output on error.
func (w *world) run(env []string, name string, args ...string) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = w.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, harness.Tail(string(out), 4000))
	}
	return string(out)
}

func (w *world) certbot(cfgName string, args ...string) string {
	w.t.Helper()
	d := filepath.Join(w.dir, cfgName)
	base := []string{"--non-interactive", "--config-dir", d, "--work-dir", d + "/work", "--logs-dir", d + "/logs"}
	return w.run([]string{"REQUESTS_CA_BUNDLE=" + w.root}, "certbot", append(args, base...)...)
}

func (w *world) lego(pathName, profile string, args ...string) string {
	w.t.Helper()
	base := []string{"--server", w.dirURL(profile), "--accept-tos", "--email", "ops@example.org", "--path", filepath.Join(w.dir, pathName)}
	return w.run(append(w.dns.LegoEnv(), "LEGO_CA_CERTIFICATES="+w.root), "lego", append(base, args...)...)
}

// readCert parses a PEM file and checks the chain verifies to kacme's root
// and that the leaf names exactly want.
func (w *world) readCert(path string, want ...string) *x509.Certificate {
	w.t.Helper()
	b, err := os.ReadFile(path)
	must(w.t, err)
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		must(w.t, err)
		certs = append(certs, c)
	}
	if len(certs) < 2 {
		w.t.Fatalf("%s: %d certificates, want leaf and chain", path, len(certs))
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: w.pool, Intermediates: inter}); err != nil {
		w.t.Fatalf("%s does not chain to the kacme root: %v", path, err)
	}
	got := append([]string{}, leaf.DNSNames...)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		w.t.Fatalf("%s names %v, want %v", path, got, want)
	}
	return leaf
}

// onCRL reports whether the certificate is on its CA's CRL.
func (w *world) onCRL(leaf *x509.Certificate) bool {
	w.t.Helper()
	r, err := w.client().Get(leaf.CRLDistributionPoints[0])
	must(w.t, err)
	defer r.Body.Close()
	der, _ := io.ReadAll(r.Body)
	crl, err := x509.ParseRevocationList(der)
	must(w.t, err)
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

func TestClients(t *testing.T) {
	harness.Need(t, "certbot", "lego", "named", "nsupdate", "dig", "go")
	w := &world{t: t, dir: t.TempDir()}
	w.httpPort, w.tlsPort = harness.FreePort(t), harness.FreePort(t)
	w.dns = harness.StartBIND(t, w.dir, zone)
	w.startKacme()
	http01 := []string{"certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", fmt.Sprint(w.httpPort),
		"--server", w.dirURL("default"), "--agree-tos", "--register-unsafely-without-email"}
	dns01 := []string{"certonly", "--manual", "--preferred-challenges", "dns", "--manual-auth-hook", w.dns.Hooks["certbot-auth"],
		"--manual-cleanup-hook", w.dns.Hooks["certbot-cleanup"], "--server", w.dirURL("default"), "--agree-tos", "--register-unsafely-without-email"}
	live := func(cfg, name string) string { return filepath.Join(w.dir, cfg, "live", name, "fullchain.pem") }
	httpPort := fmt.Sprintf("127.0.0.1:%d", w.httpPort)

	t.Run("certbot/http-01", func(t *testing.T) {
		w.t = t
		w.certbot("certbot", append(http01, "-d", "web.kacme.test")...)
		w.readCert(live("certbot", "web.kacme.test"), "web.kacme.test")
	})
	t.Run("certbot/dns-01", func(t *testing.T) {
		w.t = t
		w.certbot("certbot", append(dns01, "-d", "dns.kacme.test")...)
		w.readCert(live("certbot", "dns.kacme.test"), "dns.kacme.test")
	})
	t.Run("certbot/dns-01-wildcard-and-apex", func(t *testing.T) {
		w.t = t
		w.certbot("certbot", append(dns01, "-d", "wild.kacme.test", "-d", "*.wild.kacme.test")...)
		w.readCert(live("certbot", "wild.kacme.test"), "wild.kacme.test", "*.wild.kacme.test")
	})
	t.Run("certbot/renew", func(t *testing.T) {
		w.t = t
		before := w.readCert(live("certbot", "web.kacme.test"), "web.kacme.test")
		w.certbot("certbot", "renew", "--force-renewal", "--no-random-sleep-on-renew", "--cert-name", "web.kacme.test")
		after := w.readCert(live("certbot", "web.kacme.test"), "web.kacme.test")
		if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
			t.Fatal("renewal did not produce a new certificate")
		}
	})
	t.Run("certbot/eab-then-revoke", func(t *testing.T) {
		w.t = t
		args := []string{"certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", fmt.Sprint(w.httpPort),
			"--server", w.dirURL("eab"), "--agree-tos", "--register-unsafely-without-email",
			"--eab-kid", "certbot-kid", "--eab-hmac-key", eabHMAC, "-d", "eab.kacme.test"}
		w.certbot("certbot-eab", args...)
		leaf := w.readCert(live("certbot-eab", "eab.kacme.test"), "eab.kacme.test")
		if w.onCRL(leaf) {
			t.Fatal("fresh certificate is already on the CRL")
		}
		w.certbot("certbot-eab", "revoke", "--server", w.dirURL("eab"), "--reason", "keycompromise", "--no-delete-after-revoke",
			"--cert-path", filepath.Join(w.dir, "certbot-eab", "live", "eab.kacme.test", "cert.pem"))
		if !w.onCRL(leaf) {
			t.Fatal("revoked certificate is not on the CRL")
		}
	})
	t.Run("lego/http-01", func(t *testing.T) {
		w.t = t
		w.lego("lego", "default", "--http", "--http.port", httpPort, "--domains", "lego-web.kacme.test", "run")
		w.readCert(filepath.Join(w.dir, "lego", "certificates", "lego-web.kacme.test.crt"), "lego-web.kacme.test")
	})
	t.Run("lego/tls-alpn-01", func(t *testing.T) {
		w.t = t
		w.lego("lego", "default", "--tls", "--tls.port", fmt.Sprintf("127.0.0.1:%d", w.tlsPort), "--domains", "lego-tls.kacme.test", "run")
		w.readCert(filepath.Join(w.dir, "lego", "certificates", "lego-tls.kacme.test.crt"), "lego-tls.kacme.test")
	})
	legoDNS := w.dns.LegoArgs()
	t.Run("lego/dns-01", func(t *testing.T) {
		w.t = t
		w.lego("lego", "default", append(legoDNS, "--domains", "lego-dns.kacme.test", "run")...)
		w.readCert(filepath.Join(w.dir, "lego", "certificates", "lego-dns.kacme.test.crt"), "lego-dns.kacme.test")
	})
	t.Run("lego/dns-01-wildcard-and-apex", func(t *testing.T) {
		w.t = t
		w.lego("lego", "default", append(legoDNS, "--domains", "*.lwild.kacme.test", "--domains", "lwild.kacme.test", "run")...)
		w.readCert(filepath.Join(w.dir, "lego", "certificates", "_.lwild.kacme.test.crt"), "lwild.kacme.test", "*.lwild.kacme.test")
	})
	t.Run("lego/renew", func(t *testing.T) {
		w.t = t
		path := filepath.Join(w.dir, "lego", "certificates", "lego-web.kacme.test.crt")
		before := w.readCert(path, "lego-web.kacme.test")
		w.lego("lego", "default", "--http", "--http.port", httpPort, "--domains", "lego-web.kacme.test", "renew", "--days", "100000", "--no-random-sleep")
		if after := w.readCert(path, "lego-web.kacme.test"); after.SerialNumber.Cmp(before.SerialNumber) == 0 {
			t.Fatal("renewal did not produce a new certificate")
		}
	})
	t.Run("lego/eab-then-revoke", func(t *testing.T) {
		w.t = t
		w.lego("lego-eab", "eab", "--eab", "--kid", "lego-kid", "--hmac", eabHMAC,
			"--http", "--http.port", httpPort, "--domains", "lego-eab.kacme.test", "run")
		leaf := w.readCert(filepath.Join(w.dir, "lego-eab", "certificates", "lego-eab.kacme.test.crt"), "lego-eab.kacme.test")
		// lego insists on the EAB flags whenever the directory requires EAB; the account already exists.
		w.lego("lego-eab", "eab", "--eab", "--kid", "lego-kid", "--hmac", eabHMAC, "--domains", "lego-eab.kacme.test", "revoke", "--reason", "4")
		if !w.onCRL(leaf) {
			t.Fatal("revoked certificate is not on the CRL")
		}
	})
	t.Run("lego/eab-key-is-single-use", func(t *testing.T) {
		w.t = t
		cmd := exec.Command("lego", "--server", w.dirURL("eab"), "--accept-tos", "--email", "other@example.org",
			"--path", filepath.Join(w.dir, "lego-eab2"), "--eab", "--kid", "lego-kid", "--hmac", eabHMAC,
			"--http", "--http.port", httpPort, "--domains", "again.kacme.test", "run")
		cmd.Env = append(os.Environ(), "LEGO_CA_CERTIFICATES="+w.root)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "already been used") {
			t.Fatalf("a second registration with a used EAB key was not refused: %v\n%s", err, harness.Tail(string(out), 2000))
		}
	})
	t.Run("step/http-01", func(t *testing.T) {
		// The smallstep CLI (built by hack/tools.sh step) sends notBefore and
		// notAfter as the zero time when none is asked for (issue 13).
		w.t = t
		step := harness.Tool(t, "KACME_STEP", "step")
		dir := filepath.Join(w.dir, "step")
		crt, key := filepath.Join(dir, "step.crt"), filepath.Join(dir, "step.key")
		must(t, os.MkdirAll(dir, 0o700))
		w.run([]string{"STEPPATH=" + filepath.Join(dir, "config")}, step, "ca", "certificate", "step.kacme.test", crt, key,
			"--acme", w.dirURL("default"), "--standalone", "--http-listen", httpPort, "--root", w.root, "--force")
		w.readCert(crt, "step.kacme.test")
	})
	t.Run("go-client/key-rollover", func(t *testing.T) {
		w.t = t
		ctx := context.Background()
		k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c := &xacme.Client{Key: k1, DirectoryURL: w.dirURL("default"), HTTPClient: w.client()}
		acct, err := c.Register(ctx, &xacme.Account{}, xacme.AcceptTOS)
		must(t, err)
		k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, c.AccountKeyRollover(ctx, k2))
		got, err := (&xacme.Client{Key: k2, DirectoryURL: c.DirectoryURL, HTTPClient: w.client()}).GetReg(ctx, "")
		if err != nil || got.URI != acct.URI {
			t.Fatalf("new key does not find the account: %v", err)
		}
		if _, err := (&xacme.Client{Key: k1, DirectoryURL: c.DirectoryURL, HTTPClient: w.client()}).GetReg(ctx, ""); err == nil {
			t.Fatal("old key still finds the account")
		}
	})
}
