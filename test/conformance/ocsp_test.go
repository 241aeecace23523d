package conformance

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/kacme/kacme/acmeserver/standalone"
)

// TestOCSP (REV-05, REV-09; issue 18): openssl ocsp against the standalone
// server's plain-HTTP responder, at the URL the certificate names, reports
// good for a fresh certificate, revoked with reason and time right after a
// revocation, and unknown for a serial the CA never issued; the response
// verifies against the root and echoes openssl's nonce. A profile without
// includeOCSPURL writes no OCSP URL.
func TestOCSP(t *testing.T) {
	e := newEnv(t, func(o *standalone.Options) { o.HTTPListen = "127.0.0.1:0" })
	ctx := context.Background()
	c := e.goClient("ocsp")
	if _, err := c.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	ders, _ := e.issue(ctx, c, []xacme.AuthzID{{Type: "dns", Value: "ocsp.localhost"}})
	leaf, err := x509.ParseCertificate(ders[0])
	if err != nil {
		t.Fatal(err)
	}
	want := e.srv.PKIURL + "/ocsp/test-ca"
	if len(leaf.OCSPServer) != 1 || leaf.OCSPServer[0] != want || !strings.HasPrefix(want, "http://") {
		t.Fatalf("AIA OCSP %v, want [%s]", leaf.OCSPServer, want)
	}
	dir := t.TempDir()
	write := func(name string, der ...[]byte) string {
		var b []byte
		for _, d := range der {
			b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leafPath, issuerPath := write("leaf.pem", ders[0]), write("issuer.pem", ders[1])
	ocsp := func(args ...string) string {
		t.Helper()
		args = append([]string{"ocsp", "-issuer", issuerPath, "-url", want, "-CAfile", e.srv.RootPath, "-timeout", "10"}, args...)
		out, err := exec.Command("openssl", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		if !strings.Contains(string(out), "Response verify OK") || strings.Contains(string(out), "WARNING: no nonce") {
			t.Fatalf("openssl did not verify the response, or found no nonce:\n%s", out)
		}
		return string(out)
	}
	if out := ocsp("-cert", leafPath); !strings.Contains(out, leafPath+": good") {
		t.Fatalf("fresh certificate:\n%s", out)
	}
	before := time.Now().UTC().Truncate(time.Second)
	if err := c.RevokeCert(ctx, nil, ders[0], xacme.CRLReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	out := ocsp("-cert", leafPath)
	if !strings.Contains(out, leafPath+": revoked") || !strings.Contains(out, "Reason: keyCompromise") {
		t.Fatalf("REV-09: after the revocation:\n%s", out)
	}
	m := regexp.MustCompile(`Revocation Time: (.+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no revocation time:\n%s", out)
	}
	at, err := time.Parse("Jan _2 15:04:05 2006 MST", strings.TrimSpace(m[1]))
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Fatalf("revocation time %q (%v), revoked after %v", m[1], err, before)
	}
	serial := "0x" + strings.ToUpper(new(big.Int).Add(leaf.SerialNumber, big.NewInt(1)).Text(16))
	if out := ocsp("-serial", serial); !strings.Contains(out, serial+": unknown") {
		t.Fatalf("a serial never issued:\n%s", out)
	}
	// The default profile has no includeOCSPURL: its certificates name no responder.
	d := e.goClient("default")
	if _, err := d.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	plain, _ := e.issue(ctx, d, []xacme.AuthzID{{Type: "dns", Value: "plain.localhost"}})
	if pc, _ := x509.ParseCertificate(plain[0]); len(pc.OCSPServer) != 0 {
		t.Errorf("a profile without includeOCSPURL wrote %v", pc.OCSPServer)
	}
}
