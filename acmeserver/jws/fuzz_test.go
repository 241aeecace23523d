package jws

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func seedJWS(t testing.TB) []byte {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k},
		(&jose.SignerOptions{EmbedJWK: true}).WithHeader("nonce", "abc").WithHeader("url", "https://x/acme/new-account"))
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.Sign([]byte(`{"termsOfServiceAgreed":true}`))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(obj.FullSerialize())
}

// FuzzParse: no input makes Parse panic, and whatever Parse accepts has the
// invariants later checks rely on.
func FuzzParse(f *testing.F) {
	good := seedJWS(f)
	f.Add(good)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"protected":"e30","payload":"","signature":""}`))
	f.Add([]byte(`{"payload":"","signatures":[{"protected":"e30","signature":""}]}`))
	f.Add([]byte(`eyJhbGciOiJub25lIn0.e30.`))
	f.Add([]byte(`{"protected":"eyJhbGciOiJIUzI1NiJ9","payload":"e30","signature":"AA"}`))
	f.Add([]byte(`[1,2,3]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, p := Parse(body)
		if (r == nil) == (p == nil) {
			t.Fatalf("Parse returned request %v and problem %v", r, p)
		}
		if r == nil {
			if p.Status != 400 || p.Type == "" {
				t.Fatalf("problem without type/status: %+v", p)
			}
			return
		}
		if (r.JWK == nil) == (r.KID == "") || r.URL == "" || !algAllowed(r.Alg) {
			t.Fatalf("accepted request breaks invariants: %+v", r)
		}
		if r.JWK != nil {
			_, _ = r.Verify(r.JWK)
		}
	})
}

// FuzzParseEAB: external account bindings never panic and only MAC algorithms pass.
func FuzzParseEAB(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := &jose.JSONWebKey{Key: k.Public()}
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")},
		(&jose.SignerOptions{}).WithHeader("kid", "kid-1").WithHeader("url", "https://x/new-account"))
	pl, _ := json.Marshal(jwk)
	obj, _ := signer.Sign(pl)
	f.Add([]byte(obj.FullSerialize()))
	f.Add([]byte(`"x"`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, p := ParseEAB(raw, "https://x/new-account", jwk)
		if (e == nil) == (p == nil) {
			t.Fatalf("ParseEAB returned %v and %v", e, p)
		}
		if e != nil {
			_ = e.Verify([]byte("0123456789abcdef0123456789abcdef"))
		}
	})
}
