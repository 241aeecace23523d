package conformance

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestCertificateFormats (CRT-01, CRT-04): the certificate URL serves the
// PEM chain by default and for Accept: application/pem-certificate-chain,
// the leaf in DER for application/pkix-cert (with rel="up" to its issuer's
// certificate, the leaf's caIssuers URL), and the chain as a certs-only PKCS #7 for
// application/pkcs7-mime; openssl parses each, and each holds the same
// certificates.
func TestCertificateFormats(t *testing.T) {
	e := newEnv(t)
	k, kid := e.account("default")
	_, o := e.readyOrder(k, kid, "formats.localhost")
	r, b := e.signed(k, kid, o.Finalize, fmt.Sprintf(`{"csr":%q}`, b64.EncodeToString(csr(t, newKey(t, "ES256").signer, "formats.localhost"))))
	if err := json.Unmarshal(b, &o); err != nil || r.StatusCode != 200 || o.Certificate == "" {
		t.Fatalf("finalize: %d %s", r.StatusCode, b)
	}
	download := func(accept string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", o.Certificate, bytes.NewReader(e.jws(k, o.Certificate, "", jwsOpts{kid: kid})))
		req.Header.Set("Content-Type", "application/jose+json")
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("download with Accept %q: %d %s", accept, resp.StatusCode, body)
		}
		return resp, body
	}
	openssl := func(in []byte, args ...string) []byte {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Stdin = bytes.NewReader(in)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	ders := func(pemText []byte) [][]byte {
		var out [][]byte
		for rest := pemText; ; {
			var blk *pem.Block
			if blk, rest = pem.Decode(rest); blk == nil {
				return out
			}
			out = append(out, blk.Bytes)
		}
	}

	_, def := download("")
	chain := ders(def)
	if len(chain) < 2 {
		t.Fatalf("CRT-01: default download holds %d certificates", len(chain))
	}
	for _, accept := range []string{"application/pem-certificate-chain", "*/*", "text/html"} {
		resp, body := download(accept)
		if ct := resp.Header.Get("Content-Type"); ct != "application/pem-certificate-chain" || !bytes.Equal(body, def) {
			t.Errorf("CRT-04: Accept %q: %s, %d bytes; want the PEM chain", accept, ct, len(body))
		}
		if v := resp.Header.Get("Vary"); v != "Accept" {
			t.Errorf("Vary %q, want Accept", v)
		}
	}
	if got := ders(openssl(def, "crl2pkcs7", "-nocrl", "-certfile", "/dev/stdin", "-outform", "PEM")); len(got) == 0 {
		t.Error("openssl could not read the PEM chain")
	}

	resp, leaf := download("application/pkix-cert")
	if ct := resp.Header.Get("Content-Type"); ct != "application/pkix-cert" || !bytes.Equal(leaf, chain[0]) {
		t.Fatalf("CRT-04: pkix-cert: %s, %d bytes; want the leaf's DER", ct, len(leaf))
	}
	if out := openssl(leaf, "x509", "-inform", "DER", "-noout", "-subject", "-ext", "subjectAltName"); !strings.Contains(string(out), "formats.localhost") {
		t.Errorf("openssl x509 of the DER leaf: %s", out)
	}
	parsed, _ := x509.ParseCertificate(leaf)
	ups := 0
	for _, l := range resp.Header.Values("Link") {
		if strings.Contains(l, `rel="up"`) {
			ups++
			if len(parsed.IssuingCertificateURL) == 0 || !strings.Contains(l, parsed.IssuingCertificateURL[0]) {
				t.Errorf("CRT-04: Link %s is not the leaf's caIssuers URL %v", l, parsed.IssuingCertificateURL)
			}
		}
	}
	if ups != len(parsed.IssuingCertificateURL) || ups == 0 {
		t.Errorf("CRT-04: %d rel=up links for %d caIssuers URLs", ups, len(parsed.IssuingCertificateURL))
	}

	resp, p7 := download("application/pkcs7-mime")
	if ct := resp.Header.Get("Content-Type"); ct != "application/pkcs7-mime" {
		t.Errorf("CRT-04: pkcs7: Content-Type %s", ct)
	}
	got := ders(openssl(p7, "pkcs7", "-inform", "DER", "-print_certs"))
	if len(got) != len(chain) {
		t.Fatalf("CRT-04: the PKCS #7 holds %d certificates, the PEM chain %d", len(got), len(chain))
	}
	for i := range got {
		if !bytes.Equal(got[i], chain[i]) {
			t.Errorf("CRT-04: PKCS #7 certificate %d differs from the PEM chain's", i)
		}
	}
}
