package acme

import (
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// CHL-03: the RFC 7638 §3.1 example key has thumbprint NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs.
func TestThumbprintRFC7638(t *testing.T) {
	t.Parallel()
	const jwk = `{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB"}`
	var k jose.JSONWebKey
	if err := json.Unmarshal([]byte(jwk), &k); err != nil {
		t.Fatal(err)
	}
	tp, err := Thumbprint(&k)
	if err != nil || tp != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("thumbprint %q, %v", tp, err)
	}
	ka, _ := KeyAuthorization("tok", &k)
	if ka != "tok.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Fatalf("key authorization %q", ka)
	}
}

// TA1-02: reverse names used as SNI for ip identifiers (RFC 8738 §6).
func TestReverseName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1":   "1.2.0.192.in-addr.arpa",
		"2001:db8::1": "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
	} {
		if got := ReverseName(netip.MustParseAddr(in)); got != want {
			t.Errorf("ReverseName(%s) = %s, want %s", in, got, want)
		}
	}
}

// IDN-01, -02, -03, -06, -07: identifier syntax and normalisation (pinned: lowercase, canonical IPs).
func TestNormalizeIdentifier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   Identifier
		want string
		typ  ProblemType
	}{
		{Identifier{"dns", "Example.COM"}, "example.com", ""},
		{Identifier{"dns", "*.example.com"}, "*.example.com", ""},
		{Identifier{"dns", "xn--bcher-kva.example"}, "xn--bcher-kva.example", ""},
		{Identifier{"ip", "2001:DB8:0:0::1"}, "2001:db8::1", ""},
		{Identifier{"ip", "::ffff:192.0.2.1"}, "192.0.2.1", ""},
		{Identifier{"dns", "exämple.com"}, "", Malformed},
		{Identifier{"dns", "example.com."}, "", Malformed},
		{Identifier{"dns", "a..b.com"}, "", Malformed},
		{Identifier{"dns", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com"}, "", Malformed},
		{Identifier{"dns", "xn--zz-invalid.example"}, "", Malformed},
		{Identifier{"dns", "*"}, "", Malformed},
		{Identifier{"dns", "*.com"}, "", Malformed},
		{Identifier{"dns", "f*.x.com"}, "", Malformed},
		{Identifier{"dns", "*.*.x.com"}, "", Malformed},
		{Identifier{"dns", "a.*.x.com"}, "", Malformed},
		{Identifier{"dns", "192.0.2.1"}, "", Malformed},
		{Identifier{"dns", "-a.example"}, "", Malformed},
		{Identifier{"ip", "2001:db8::1%eth0"}, "", Malformed},
		{Identifier{"ip", "01.2.3.4"}, "", Malformed},
		{Identifier{"email", "a@b"}, "", UnsupportedIdentifier},
		{Identifier{"", "a.example"}, "", Malformed},
	}
	for _, tc := range tests {
		got, p := NormalizeIdentifier(tc.in)
		switch {
		case tc.typ == "" && (p != nil || got.Value != tc.want):
			t.Errorf("%v: got %v %v, want %s", tc.in, got, p, tc.want)
		case tc.typ != "" && (p == nil || p.Type != tc.typ || p.Identifier == nil):
			t.Errorf("%v: got problem %v, want %s naming the identifier", tc.in, p, tc.typ)
		}
	}
}

// CHL-02 and SEC-06: tokens and IDs carry 128 random bits and do not repeat.
func TestTokensAndIDs(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		tok, id := NewToken(), NewID()
		raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
		if err != nil || len(raw) < 16 || seen[tok] || seen[id] || len(id) != 26 {
			t.Fatalf("token %q / id %q: %v", tok, id, err)
		}
		seen[tok], seen[id] = true, true
	}
}
