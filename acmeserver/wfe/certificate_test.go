package wfe

import (
	"strings"
	"testing"
)

// TestCertFormat (CRT-04): the format an Accept header asks for, by weight
// and specificity, with the PEM chain whenever nothing served is asked for.
func TestCertFormat(t *testing.T) {
	for accept, want := range map[string]string{
		"":                                  formatPEMChain,
		"*/*":                               formatPEMChain,
		"application/pem-certificate-chain": formatPEMChain,
		"application/pkix-cert":             formatDER,
		"application/pkcs7-mime":            formatPKCS7,
		"application/PKIX-CERT":             formatDER, // media types are case-insensitive
		"application/pkcs7-mime; smime-type=certs-only":                         formatPKCS7,
		"application/pkix-cert;q=0.5, application/pkcs7-mime;q=0.8":             formatPKCS7,
		"application/pkcs7-mime, */*;q=0.1":                                     formatPKCS7,
		"*/*, application/pem-certificate-chain;q=0":                            formatDER,
		"application/*;q=0.2, application/pkix-cert":                            formatDER,
		"application/pem-certificate-chain;q=0, application/pkix-cert;q=0":      formatPEMChain, // refuses all: pinned
		"text/html, image/png":                                                  formatPEMChain,
		"application/pkix-cert;q=2":                                             formatPEMChain, // a bad weight refuses
		"application/pkix-cert;q=abc":                                           formatPEMChain,
		";;;, ,,=":                                                              formatPEMChain,
		strings.Repeat("text/plain, ", 40) + "application/pkix-cert":            formatPEMChain, // past the 32nd range
		"application/pkix-cert, " + strings.Repeat("text/plain;q=0.1, ", 10000): formatDER,
	} {
		if got := certFormat(accept); got != want {
			t.Errorf("Accept %.60q: %s, want %s", accept, got, want)
		}
	}
}
