package trustbundle

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func selfSigned(t *testing.T, cn string, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestWithPreviousRoots: the current root first, then previously published
// roots newest expiry first, once each; expired ones are dropped.
func TestWithPreviousRoots(t *testing.T) {
	now := time.Now()
	cur := selfSigned(t, "current", now.Add(1000*time.Hour))
	older := selfSigned(t, "older", now.Add(10*time.Hour))
	old := selfSigned(t, "old", now.Add(100*time.Hour))
	expired := selfSigned(t, "expired", now.Add(-time.Hour))
	published := []corev1.ConfigMap{
		{Data: map[string]string{"ca.crt": old + cur}},
		{Data: map[string]string{"ca.crt": older + expired + old}},
	}
	if got := string(withPreviousRoots([]byte(cur), published, now)); got != cur+old+older {
		t.Fatalf("bundle has %d bytes, want current, old, older (%d bytes)", len(got), len(cur+old+older))
	}
}
