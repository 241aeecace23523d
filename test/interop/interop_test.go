// Package interop drives real ACME clients (certbot and lego from Debian)
// against a real kacme process on loopback, with BIND 9 on loopback as the
// DNS server the clients update with nsupdate for dns-01.
//
// Set KACME_INTEROP=required (make test does) to fail instead of skip when a
// client or BIND is missing.
package interop

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"

	"encoding/pem"
	"fmt"
	"io"
	"net"
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
)

const (
	zone       = "kacme.test"
	tsigName   = "kacme-key"
	tsigSecret = "a2FjbWUtaW50ZXJvcC10c2lnLXNlY3JldC0wMTIzNDU2Nzg5" // base64
	eabHMAC    = "ZWFiLWhtYWMta2V5LWZvci1pbnRlcm9wLXRlc3RzLTAxMjM"  // base64url
)

type world struct {
	t        *testing.T
	dir      string
	dnsPort  int
	httpPort int
	tlsPort  int
	url      string // kacme base URL
	root     string // ca.crt path
	hooks    map[string]string
	pool     *x509.CertPool
}

func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			_ = u.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + tool); err2 == nil {
				continue
			}
			if os.Getenv("KACME_INTEROP") == "required" {
				t.Fatalf("%s is not installed (make test installs it with apt-get when run as root)", tool)
			}
			t.Skipf("%s is not installed; set KACME_INTEROP=required to fail instead", tool)
		}
	}
}

// start runs a command until the test ends, logging its output on failure.
func (w *world) start(name string, args []string, env []string) {
	w.t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		w.t.Fatalf("start %s: %v", name, err)
	}
	w.t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if w.t.Failed() {
			w.t.Logf("--- %s output ---\n%s", filepath.Base(name), tail(out.String(), 6000))
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (w *world) startBIND() {
	w.t.Helper()
	d := filepath.Join(w.dir, "bind")
	must(w.t, os.MkdirAll(d, 0o755))
	zoneFile := fmt.Sprintf(`$TTL 5
@ IN SOA ns.%[1]s. admin.%[1]s. 1 60 60 3600 5
@ IN NS ns.%[1]s.
ns IN A 127.0.0.1
@ IN A 127.0.0.1
* IN A 127.0.0.1
`, zone)
	must(w.t, os.WriteFile(filepath.Join(d, zone+".zone"), []byte(zoneFile), 0o644))
	conf := fmt.Sprintf(`key "%[1]s" { algorithm hmac-sha256; secret "%[2]s"; };
options {
  directory "%[3]s";
  listen-on port %[4]d { 127.0.0.1; };
  listen-on-v6 { none; };
  pid-file "%[3]s/named.pid";
  session-keyfile "%[3]s/session.key";
  recursion no;
  dnssec-validation no;
  allow-query { any; };
};
controls { };
zone "%[5]s" { type primary; file "%[3]s/%[5]s.zone"; allow-update { key "%[1]s"; }; };
`, tsigName, tsigSecret, d, w.dnsPort, zone)
	must(w.t, os.WriteFile(filepath.Join(d, "named.conf"), []byte(conf), 0o644))
	named, err := exec.LookPath("named")
	if err != nil {
		named = "/usr/sbin/named"
	}
	w.start(named, []string{"-g", "-c", filepath.Join(d, "named.conf")}, nil)
	kenvtest.WaitFor(w.t, "BIND", func() bool {
		out, err := exec.Command("dig", "+short", "+time=1", "+tries=1", "-p", fmt.Sprint(w.dnsPort), "@127.0.0.1", "ns."+zone, "A").Output()
		return err == nil && strings.TrimSpace(string(out)) == "127.0.0.1"
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeHooks writes the nsupdate hooks certbot and lego call for dns-01.
func (w *world) writeHooks() {
	w.t.Helper()
	nsupdate := func(op string) string {
		return fmt.Sprintf(`nsupdate -y hmac-sha256:%s:%s <<EOF
server 127.0.0.1 %d
zone %s
update %s $NAME 5 IN TXT "$VALUE"
send
EOF
`, tsigName, tsigSecret, w.dnsPort, zone, op)
	}
	w.hooks = map[string]string{}
	scripts := map[string]string{
		"certbot-auth":    "#!/bin/sh\nset -e\nNAME=_acme-challenge.$CERTBOT_DOMAIN.\nVALUE=$CERTBOT_VALIDATION\n" + nsupdate("add"),
		"certbot-cleanup": "#!/bin/sh\nset -e\nNAME=_acme-challenge.$CERTBOT_DOMAIN.\nVALUE=$CERTBOT_VALIDATION\n" + nsupdate("delete"),
		"lego-exec": "#!/bin/sh\nset -e\nNAME=$2\nVALUE=$3\ncase \"$1\" in\npresent)\n" + nsupdate("add") +
			";;\ncleanup)\n" + nsupdate("delete") + ";;\nesac\n",
	}
	for name, body := range scripts {
		p := filepath.Join(w.dir, name+".sh")
		must(w.t, os.WriteFile(p, []byte(body), 0o755))
		w.hooks[name] = p
	}
}

func (w *world) startKacme() {
	w.t.Helper()
	bin := filepath.Join(w.dir, "kacme")
	build := exec.Command("go", "build", "-o", bin, "github.com/kacme/kacme/cmd/kacme")
	if out, err := build.CombinedOutput(); err != nil {
		w.t.Fatalf("build kacme: %v\n%s", err, out)
	}
	port := freePort(w.t)
	w.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	cfg := filepath.Join(w.dir, "config")
	must(w.t, os.MkdirAll(cfg, 0o755))
	validation := fmt.Sprintf(`{http01Port: %d, tlsALPN01Port: %d, resolvers: ["127.0.0.1:%d"], timeout: 10s}`, w.httpPort, w.tlsPort, w.dnsPort)
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
	w.start(bin, []string{"standalone", "--data-dir", data, "--config-dir", cfg, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--quiet"}, nil)
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
		w.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(string(out), 4000))
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
	return w.run([]string{"LEGO_CA_CERTIFICATES=" + w.root, "EXEC_PATH=" + w.hooks["lego-exec"],
		"EXEC_POLLING_INTERVAL=1", "EXEC_PROPAGATION_TIMEOUT=30", "EXEC_SEQUENCE_INTERVAL=1"}, "lego", append(base, args...)...)
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
	need(t, "certbot", "lego", "named", "nsupdate", "dig", "go")
	w := &world{t: t, dir: t.TempDir()}
	w.dnsPort, w.httpPort, w.tlsPort = freePort(t), freePort(t), freePort(t)
	w.startBIND()
	w.writeHooks()
	w.startKacme()
	http01 := []string{"certonly", "--standalone", "--http-01-address", "127.0.0.1", "--http-01-port", fmt.Sprint(w.httpPort),
		"--server", w.dirURL("default"), "--agree-tos", "--register-unsafely-without-email"}
	dns01 := []string{"certonly", "--manual", "--preferred-challenges", "dns", "--manual-auth-hook", w.hooks["certbot-auth"],
		"--manual-cleanup-hook", w.hooks["certbot-cleanup"], "--server", w.dirURL("default"), "--agree-tos", "--register-unsafely-without-email"}
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
	legoDNS := []string{"--dns", "exec", "--dns.resolvers", fmt.Sprintf("127.0.0.1:%d", w.dnsPort), "--dns.disable-cp"}
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
			t.Fatalf("a second registration with a used EAB key was not refused: %v\n%s", err, tail(string(out), 2000))
		}
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
