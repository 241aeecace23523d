package ra

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kacme/kacme/api/v1alpha1"
)

func jwkJSON(t *testing.T) (string, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&jose.JSONWebKey{Key: &k.PublicKey}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b), k
}

// AccountKey parses each stored key once, answers a changed key with the new
// one, never caches a failure, and stays within its bound.
func TestAccountKeyCache(t *testing.T) {
	var c keyCache
	old, oldPriv := jwkJSON(t)
	acct := &v1alpha1.AcmeAccount{}
	acct.Name, acct.Spec.Key = "a", old
	k1, err := AccountKey(acct)
	if err != nil {
		t.Fatal(err)
	}
	k1.KeyID = "changed by a caller"
	k2, err := AccountKey(acct)
	if err != nil || k2.KeyID != "" || !k2.Key.(*ecdsa.PublicKey).Equal(&oldPriv.PublicKey) {
		t.Fatalf("second parse: %v %+v", err, k2)
	}
	// A key change (RFC 8555 §7.3.5) stores new JSON: the new key answers.
	acct.Spec.Key, _ = jwkJSON(t)
	k3, err := AccountKey(acct)
	if err != nil || k3.Key.(*ecdsa.PublicKey).Equal(&oldPriv.PublicKey) {
		t.Fatalf("after a key change the old key answered (%v)", err)
	}
	// A bad stored key is an error each time and is not kept.
	if _, err := c.parse(`{"kty":"EC"}`); err == nil {
		t.Fatal("a bad key parsed")
	}
	if _, err := c.parse(`{"kty":"EC"}`); err == nil || len(c.keys) != 0 {
		t.Fatalf("a bad key was kept: %v, %d keys", err, len(c.keys))
	}
	// Full, it starts again: never more than maxParsedKeys.
	for range maxParsedKeys + 10 {
		s, _ := jwkJSON(t)
		if _, err := c.parse(s); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.keys); n == 0 || n > maxParsedKeys {
		t.Fatalf("%d keys cached (bound %d)", n, maxParsedKeys)
	}
}
