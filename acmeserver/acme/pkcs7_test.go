package acme

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os/exec"
	"testing"
	"time"
)

// TestCertsOnlyPKCS7: openssl reads the certs-only PKCS #7 back as the same
// certificates, in order (CRT-04).
func TestCertsOnlyPKCS7(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (make test installs it): ", err)
	}
	var ders [][]byte
	for i := range 2 {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: "c" + string(rune('0'+i))},
			NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			t.Fatal(err)
		}
		ders = append(ders, der)
	}
	p7, err := CertsOnlyPKCS7(ders)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("openssl", "pkcs7", "-inform", "DER", "-print_certs")
	cmd.Stdin = bytes.NewReader(p7)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkcs7: %v\n%s", err, out)
	}
	var got [][]byte
	for rest := out; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		got = append(got, b.Bytes)
	}
	if len(got) != 2 || !bytes.Equal(got[0], ders[0]) || !bytes.Equal(got[1], ders[1]) {
		t.Fatalf("openssl read %d certificates back, want both in order", len(got))
	}
	for _, bad := range [][][]byte{nil, {[]byte("not DER")}, {append(append([]byte{}, ders[0]...), 0)}} {
		if _, err := CertsOnlyPKCS7(bad); err == nil {
			t.Errorf("%d bytes of garbage accepted", len(bad))
		}
	}
}
