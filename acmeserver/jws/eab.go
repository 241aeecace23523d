package jws

import (
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kacme/kacme/acmeserver/acme"
)

// EAB is a parsed external account binding (RFC 8555 §7.3.4).
type EAB struct {
	KeyID  string
	object *jose.JSONWebSignature
	jwk    []byte
}

// ParseEAB performs verification steps 1, 2 and 5 of RFC 8555 §7.3.4: a
// flattened JWS with a MAC algorithm, a kid, no nonce, url equal to the outer
// url, and a payload that is the outer account key.
func ParseEAB(raw json.RawMessage, outerURL string, accountKey *jose.JSONWebKey) (*EAB, *acme.Problem) {
	var f flattened
	if err := json.Unmarshal(raw, &f); err != nil || f.Protected == nil || f.Payload == nil || f.Signature == nil ||
		len(f.Header) > 0 || len(f.Signatures) > 0 {
		return nil, acme.MalformedProblem("externalAccountBinding must be a flattened JWS")
	}
	hb, p := DecodeBase64URL("externalAccountBinding.protected", *f.Protected)
	if p != nil {
		return nil, p
	}
	payload, p := DecodeBase64URL("externalAccountBinding.payload", *f.Payload)
	if p != nil {
		return nil, p
	}
	if _, p := DecodeBase64URL("externalAccountBinding.signature", *f.Signature); p != nil {
		return nil, p
	}
	var h protectedHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, acme.MalformedProblem("externalAccountBinding protected header is not a JSON object")
	}
	if err := checkUniqueMembers(raw); err != nil {
		return nil, acme.MalformedProblem("externalAccountBinding: %v", err)
	}
	if err := checkUniqueMembers(hb); err != nil {
		return nil, acme.MalformedProblem("externalAccountBinding protected header: %v", err)
	}
	switch jose.SignatureAlgorithm(h.Alg) {
	case jose.HS256, jose.HS384, jose.HS512:
	default:
		return nil, acme.MalformedProblem("externalAccountBinding must use HS256, HS384 or HS512, not %q", acme.Clip(h.Alg))
	}
	if h.KID == nil || *h.KID == "" {
		return nil, acme.MalformedProblem("externalAccountBinding must have a kid")
	}
	if h.Nonce != nil {
		return nil, acme.MalformedProblem("externalAccountBinding must not have a nonce")
	}
	if h.URL == nil || *h.URL != outerURL {
		return nil, acme.MalformedProblem("externalAccountBinding url must equal the request url")
	}
	if len(h.JWK) > 0 || h.B64 != nil || len(h.Crit) > 0 {
		return nil, acme.MalformedProblem("externalAccountBinding has unexpected header parameters")
	}
	inner, err := ParseJWK(payload)
	if err != nil {
		return nil, acme.MalformedProblem("externalAccountBinding payload must be the account's public JWK")
	}
	want, err1 := acme.Thumbprint(accountKey)
	got, err2 := acme.Thumbprint(inner)
	if err1 != nil || err2 != nil || want != got {
		return nil, acme.BadPublicKeyProblem("externalAccountBinding payload is not the account key")
	}
	obj, err := jose.ParseSignedJSON(string(raw), macAlgorithms)
	if err != nil {
		return nil, acme.MalformedProblem("invalid externalAccountBinding: %v", err)
	}
	return &EAB{KeyID: *h.KID, object: obj, jwk: payload}, nil
}

// Verify checks the MAC with the key issued for KeyID (step 4). The error
// says why it failed, for the server's log: the client is told the same for
// every failure (see ra.bindAccount), so that a key ID's existence does not
// show.
func (e *EAB) Verify(hmacKey []byte) error {
	if len(hmacKey) == 0 {
		return errors.New("no HMAC key")
	}
	if _, err := e.object.Verify(hmacKey); err != nil {
		if errors.Is(err, jose.ErrInvalidKeySize) {
			// RFC 7518 §3.2: HS384/HS512 need keys of at least 384/512 bits.
			return fmt.Errorf("the HMAC key is too short for %s", e.object.Signatures[0].Header.Algorithm)
		}
		return errors.New("the MAC does not verify")
	}
	return nil
}
