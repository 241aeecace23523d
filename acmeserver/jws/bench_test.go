package jws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkParse: Parse and Verify of the two shapes an issuance sends most,
// a POST-as-GET with kid and a finalize (a CSR in the payload), and a
// new-account request with its jwk.
func BenchmarkParse(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := &jose.JSONWebKey{Key: k.Public()}
	sign := func(opts *jose.SignerOptions, payload string) []byte {
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, opts)
		if err != nil {
			b.Fatal(err)
		}
		obj, err := s.Sign([]byte(payload))
		if err != nil {
			b.Fatal(err)
		}
		return []byte(obj.FullSerialize())
	}
	kid := func(url string) *jose.SignerOptions {
		return (&jose.SignerOptions{}).WithHeader("nonce", "AAEJYmy0w0ZOqvM0lPwcwl3EzkpMQo1yN2Dtog2iAAcXGQ4").
			WithHeader("url", url).WithHeader("kid", "https://127.0.0.1:14000/acme/default/acct/k7pbxh7mwl24xc6edeokc2crnm")
	}
	csr := `{"csr":"` + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("x", 420))) + `"}`
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"post-as-get", sign(kid("https://127.0.0.1:14000/acme/default/authz/ggnnmlqfnzsctqhygsfk7ev6ly"), "")},
		{"finalize", sign(kid("https://127.0.0.1:14000/acme/default/order/ggnnmlqfnzsctqhygsfk7ev6ly/finalize"), csr)},
		{"new-account", sign((&jose.SignerOptions{EmbedJWK: true}).WithHeader("nonce", "abc").WithHeader("url", "https://127.0.0.1:14000/acme/default/new-account"), `{"termsOfServiceAgreed":true}`)},
	} {
		b.Run(tc.name+"/parse", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, p := Parse(tc.body); p != nil {
					b.Fatal(p)
				}
			}
		})
		b.Run(tc.name+"/parse+verify", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r, p := Parse(tc.body)
				if p != nil {
					b.Fatal(p)
				}
				if _, p := r.Verify(jwk); p != nil {
					b.Fatal(p)
				}
			}
		})
	}
}
