package jws

import (
	"encoding/json"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kacme/kacme/acmeserver/acme"
)

// KeyChange is a verified inner key-rollover JWS (RFC 8555 §7.3.5).
type KeyChange struct {
	NewKey  *jose.JSONWebKey
	Account string
	OldKey  *jose.JSONWebKey
}

// ParseKeyChange checks the inner JWS of a key change: steps 2–6 of
// RFC 8555 §7.3.5 (the caller checks account and oldKey against the account).
func ParseKeyChange(outerPayload []byte, outerURL string) (*KeyChange, *acme.Problem) {
	inner, p := Parse(outerPayload)
	if p != nil {
		if p.Type == acme.BadSignatureAlgorithm {
			return nil, p
		}
		return nil, acme.MalformedProblem("keyChange payload must be a JWS: %s", p.Detail)
	}
	if inner.JWK == nil {
		return nil, acme.MalformedProblem("inner keyChange JWS must carry the new key as jwk, not kid")
	}
	if inner.HasNonce {
		// RFC 8555 §7.3.5: the inner JWS MUST omit the nonce (it could not be
		// checked: the outer JWS's nonce is the one redeemed).
		return nil, acme.MalformedProblem("inner keyChange JWS must not have a nonce (RFC 8555 §7.3.5)")
	}
	payload, p := inner.Verify(inner.JWK)
	if p != nil {
		if p.Type == acme.BadPublicKey || p.Type == acme.BadSignatureAlgorithm {
			return nil, p
		}
		return nil, acme.MalformedProblem("inner keyChange JWS signature is invalid")
	}
	if inner.URL != outerURL {
		return nil, acme.MalformedProblem("inner keyChange url must equal the outer url")
	}
	var kc acme.KeyChange
	if err := json.Unmarshal(payload, &kc); err != nil || kc.Account == "" || len(kc.OldKey) == 0 {
		return nil, acme.MalformedProblem("keyChange payload must be {\"account\", \"oldKey\"}")
	}
	old, err := ParseJWK(kc.OldKey)
	if err != nil {
		return nil, acme.MalformedProblem("keyChange oldKey is not a public JWK")
	}
	return &KeyChange{NewKey: inner.JWK, Account: kc.Account, OldKey: old}, nil
}
