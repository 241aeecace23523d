package ra

import (
	"crypto/x509"
	"encoding/hex"
	"math/big"
	"testing"

	"github.com/kacme/kacme/acmeserver/acme"
)

// ARI-01: the RFC 9773 §4.1 example.
func TestCertIDRFC9773(t *testing.T) {
	t.Parallel()
	aki, _ := hex.DecodeString("69885b6b87464041e1b37b847ba0ae2cde01c8d4")
	serial, _ := new(big.Int).SetString("87654321", 16)
	got := CertID(&x509.Certificate{AuthorityKeyId: aki, SerialNumber: serial})
	if want := "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"; got != want {
		t.Fatalf("CertID = %s, want %s", got, want)
	}
}

// ACC-06: contact rules.
func TestValidateContacts(t *testing.T) {
	t.Parallel()
	for c, ok := range map[string]bool{
		"mailto:a@example.org": true, "MAILTO:a@example.org": true,
		"tel:+15555550100": false, "mailto:a@x.org?subject=y": false, "mailto:a@x.org,b@x.org": false,
		"mailto:": false, "mailto:a@localhost": false, "mailto:Alice <a@x.org>": false, "a@x.org": false,
	} {
		if got := ValidateContacts([]string{c}) == nil; got != ok {
			t.Errorf("%q: accepted=%v, want %v", c, got, ok)
		}
	}
}

// AcmeAccount spec.allowedIdentifiers patterns.
func TestAccountAllowList(t *testing.T) {
	t.Parallel()
	allowed := []string{"app.example", "*.team.example", "10.1.0.0/16", "192.0.2.7"}
	for _, tc := range []struct {
		typ, value string
		ok         bool
	}{
		{"dns", "app.example", true}, {"dns", "www.app.example", false},
		{"dns", "a.team.example", true}, {"dns", "a.b.team.example", true}, {"dns", "*.team.example", true},
		{"dns", "team.example", false}, {"dns", "evilteam.example", false},
		{"ip", "10.1.2.3", true}, {"ip", "10.2.0.1", false}, {"ip", "192.0.2.7", true}, {"ip", "192.0.2.8", false},
	} {
		got := checkAccountAllowList(allowed, acme.Identifier{Type: tc.typ, Value: tc.value}) == nil
		if got != tc.ok {
			t.Errorf("%s %s: allowed=%v, want %v", tc.typ, tc.value, got, tc.ok)
		}
	}
	if checkAccountAllowList(nil, acme.Identifier{Type: "dns", Value: "anything.example"}) != nil {
		t.Error("an empty list must allow everything the profile allows")
	}
}
