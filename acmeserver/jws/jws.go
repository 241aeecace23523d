// Package jws verifies ACME request bodies (RFC 8555 §6.2) with go-jose v4.
// Checks are small functions run in a fixed order by the front end: Parse
// (shape, serialization, header members), then CheckKey and Verify (key
// policy, algorithm/key match, signature). Nonce and url checks need server
// state and live in the front end.
package jws

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kacme/kacme/acmeserver/acme"
)

// Algorithms accepted on ACME requests (RFC 8555 §6.2: no "none", no MACs).
var Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}

// AlgorithmNames is Algorithms as strings, for the badSignatureAlgorithm problem.
var AlgorithmNames = func() []string {
	out := make([]string, len(Algorithms))
	for i, a := range Algorithms {
		out[i] = string(a)
	}
	return out
}()

// MAC algorithms accepted on an external account binding (RFC 8555 §7.3.4).
var macAlgorithms = []jose.SignatureAlgorithm{jose.HS256, jose.HS384, jose.HS512}

// RSA modulus bounds for account keys.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// flattened is the Flattened JSON Serialization (RFC 7515 §7.2.2).
type flattened struct {
	Protected  *string         `json:"protected"`
	Payload    *string         `json:"payload"`
	Signature  *string         `json:"signature"`
	Header     json.RawMessage `json:"header"`
	Signatures json.RawMessage `json:"signatures"`
}

// protectedHeader holds the members kacme reads itself.
type protectedHeader struct {
	Alg   string          `json:"alg"`
	Nonce *string         `json:"nonce"`
	URL   *string         `json:"url"`
	JWK   json.RawMessage `json:"jwk"`
	KID   *string         `json:"kid"`
	B64   *bool           `json:"b64"`
	Crit  json.RawMessage `json:"crit"`
}

// Request is a parsed, not yet verified, ACME request.
type Request struct {
	Alg   string
	Nonce string
	// HasNonce is false when the nonce member is absent.
	HasNonce bool
	URL      string
	KID      string
	// JWK is the embedded key, when the request carries one.
	JWK    *jose.JSONWebKey
	object *jose.JSONWebSignature
}

var strictB64 = base64.RawURLEncoding.Strict()

// DecodeBase64URL decodes a binary field of a request: unpadded base64url with
// no whitespace (RFC 8555 §6.1); anything else is malformed, naming the field.
func DecodeBase64URL(field, v string) ([]byte, *acme.Problem) {
	if strings.ContainsAny(v, "=\r\n \t") {
		return nil, acme.MalformedProblem("%s: base64url must be unpadded with no whitespace (RFC 8555 §6.1)", field)
	}
	b, err := strictB64.DecodeString(v)
	if err != nil {
		return nil, acme.MalformedProblem("%s: invalid base64url", field)
	}
	return b, nil
}

// decodeFlattened decodes the body's members: one JSON object, no trailing
// data, no member twice.
func decodeFlattened(body []byte) (*flattened, *acme.Problem) {
	var f flattened
	if err, decided := uniqueScan(body); decided && err == nil {
		// One JSON value with distinct member names: no trailing data.
		if err := json.Unmarshal(body, &f); err != nil {
			return nil, acme.MalformedProblem("request body is not a JWS in flattened JSON serialization")
		}
		return &f, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&f); err != nil {
		return nil, acme.MalformedProblem("request body is not a JWS in flattened JSON serialization")
	}
	if dec.More() {
		return nil, acme.MalformedProblem("trailing data after the JWS")
	}
	if err := checkUniqueMembers(body); err != nil {
		return nil, acme.MalformedProblem("request body: %v", err)
	}
	return &f, nil
}

// Parse checks a request body's shape: a flattened JWS with exactly one
// signature and no unprotected header (JWS-01, -02), no b64/crit (JWS-03), an
// accepted algorithm (JWS-05, -06), a url, and exactly one of jwk/kid (JWS-04).
func Parse(body []byte) (*Request, *acme.Problem) {
	f, p := decodeFlattened(body)
	if p != nil {
		return nil, p
	}
	if len(f.Signatures) > 0 {
		return nil, acme.MalformedProblem("JWS must have exactly one signature (general serialization is not allowed)")
	}
	if len(f.Header) > 0 {
		return nil, acme.MalformedProblem("JWS must not have an unprotected header")
	}
	if f.Protected == nil || f.Payload == nil || f.Signature == nil {
		return nil, acme.MalformedProblem("JWS must have protected, payload and signature members")
	}
	hb, p := DecodeBase64URL("protected", *f.Protected)
	if p != nil {
		return nil, p
	}
	if _, p := DecodeBase64URL("payload", *f.Payload); p != nil {
		return nil, p
	}
	if _, p := DecodeBase64URL("signature", *f.Signature); p != nil {
		return nil, p
	}
	var h protectedHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, acme.MalformedProblem("protected header is not a JSON object")
	}
	if err := checkUniqueMembers(hb); err != nil {
		return nil, acme.MalformedProblem("protected header: %v (RFC 7515 §4)", err)
	}
	if h.B64 != nil || len(h.Crit) > 0 {
		return nil, acme.MalformedProblem("the b64 and crit header parameters are not allowed (RFC 8555 §6.2)")
	}
	if !algAllowed(h.Alg) {
		return nil, acme.BadSignatureAlgorithmProblem(AlgorithmNames, "JWS algorithm %q is not accepted", acme.Clip(h.Alg))
	}
	if h.URL == nil || *h.URL == "" {
		return nil, acme.MalformedProblem("protected header must contain a url (RFC 8555 §6.4.1)")
	}
	hasJWK, hasKID := len(h.JWK) > 0 && string(h.JWK) != "null", h.KID != nil
	if hasJWK == hasKID {
		return nil, acme.MalformedProblem("protected header must contain exactly one of jwk and kid")
	}
	// The members are checked above (one signature, no unprotected header),
	// so the compact serialization of the same three members is the same
	// JWS; go-jose parses it without scanning the body's JSON again.
	obj, err := jose.ParseSignedCompact(*f.Protected+"."+*f.Payload+"."+*f.Signature, Algorithms)
	if err != nil {
		var ua *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &ua) {
			return nil, acme.BadSignatureAlgorithmProblem(AlgorithmNames, "JWS algorithm is not accepted")
		}
		return nil, acme.MalformedProblem("invalid JWS: %v", err)
	}
	if len(obj.Signatures) != 1 {
		return nil, acme.MalformedProblem("JWS must have exactly one signature")
	}
	r := &Request{Alg: h.Alg, URL: *h.URL, object: obj}
	if h.Nonce != nil {
		r.Nonce, r.HasNonce = *h.Nonce, true
	}
	if hasKID {
		if *h.KID == "" {
			return nil, acme.MalformedProblem("kid must not be empty")
		}
		r.KID = *h.KID
	} else {
		k := obj.Signatures[0].Protected.JSONWebKey
		if k == nil || !k.Valid() || !k.IsPublic() {
			return nil, acme.MalformedProblem("jwk must be a valid public key")
		}
		r.JWK = k
	}
	return r, nil
}

func algAllowed(alg string) bool {
	for _, a := range Algorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// CheckKey applies the account key policy (JWS-09): RSA 2048–8192 bits,
// ECDSA P-256/P-384/P-521, Ed25519.
func CheckKey(k *jose.JSONWebKey) *acme.Problem {
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		if n := pk.N.BitLen(); n < MinRSABits || n > MaxRSABits {
			return acme.BadPublicKeyProblem("RSA key of %d bits is not accepted (%d–%d)", n, MinRSABits, MaxRSABits)
		}
		if pk.E < 3 || pk.E%2 == 0 {
			return acme.BadPublicKeyProblem("RSA public exponent is not accepted")
		}
	case *ecdsa.PublicKey:
		switch pk.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return acme.BadPublicKeyProblem("elliptic curve is not accepted")
		}
	case ed25519.PublicKey:
	default:
		return acme.BadPublicKeyProblem("key type %T is not accepted (RSA, ECDSA, Ed25519)", k.Key)
	}
	return nil
}

// algFits reports whether alg is the one algorithm kacme accepts for k (JWS-08).
func algFits(alg string, k *jose.JSONWebKey) bool {
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		return alg == string(jose.RS256)
	case *ecdsa.PublicKey:
		switch pk.Curve {
		case elliptic.P256():
			return alg == string(jose.ES256)
		case elliptic.P384():
			return alg == string(jose.ES384)
		case elliptic.P521():
			return alg == string(jose.ES512)
		}
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

// Verify checks the key policy, that the algorithm fits the key, and the
// signature; it returns the payload.
func (r *Request) Verify(k *jose.JSONWebKey) ([]byte, *acme.Problem) {
	if p := CheckKey(k); p != nil {
		return nil, p
	}
	if !algFits(r.Alg, k) {
		return nil, acme.BadSignatureAlgorithmProblem(AlgorithmNames, "algorithm %s does not fit the key", r.Alg)
	}
	payload, err := r.object.Verify(k)
	if err != nil {
		return nil, acme.MalformedProblem("JWS signature is invalid")
	}
	return payload, nil
}

// DecodePayload unmarshals a verified JSON payload; a POST-as-GET or a
// non-object payload is malformed.
func DecodePayload(payload []byte, v any) *acme.Problem {
	if len(payload) == 0 {
		return acme.MalformedProblem("request payload must be a JSON object, not empty")
	}
	if err := json.Unmarshal(payload, v); err != nil {
		return acme.MalformedProblem("request payload is not valid JSON: %v", err)
	}
	if err := checkUniqueMembers(payload); err != nil {
		return acme.MalformedProblem("request payload: %v", err)
	}
	return nil
}

// ParseJWK parses a stored or embedded public JWK.
func ParseJWK(data []byte) (*jose.JSONWebKey, error) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	if !k.Valid() || !k.IsPublic() {
		return nil, fmt.Errorf("not a valid public key")
	}
	return &k, nil
}
