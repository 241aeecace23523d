package acme

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
)

// Statuses (RFC 8555 §7.1.6).
const (
	StatusPending     = "pending"
	StatusProcessing  = "processing"
	StatusValid       = "valid"
	StatusInvalid     = "invalid"
	StatusReady       = "ready"
	StatusDeactivated = "deactivated"
	StatusExpired     = "expired"
	StatusRevoked     = "revoked"
)

// Identifier types (RFC 8555 §9.7.7, RFC 8738).
const (
	IdentifierDNS = "dns"
	IdentifierIP  = "ip"
)

// Identifier is an ACME identifier.
type Identifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Directory is the directory object (RFC 8555 §7.1.1).
type Directory struct {
	NewNonce    string         `json:"newNonce"`
	NewAccount  string         `json:"newAccount"`
	NewOrder    string         `json:"newOrder"`
	NewAuthz    string         `json:"newAuthz,omitempty"`
	RevokeCert  string         `json:"revokeCert"`
	KeyChange   string         `json:"keyChange"`
	RenewalInfo string         `json:"renewalInfo,omitempty"`
	Meta        *DirectoryMeta `json:"meta,omitempty"`
}

// DirectoryMeta is the directory's meta object.
type DirectoryMeta struct {
	TermsOfService          string            `json:"termsOfService,omitempty"`
	Website                 string            `json:"website,omitempty"`
	CAAIdentities           []string          `json:"caaIdentities,omitempty"`
	ExternalAccountRequired bool              `json:"externalAccountRequired"`
	Profiles                map[string]string `json:"profiles,omitempty"`
}

// Account is the account object (RFC 8555 §7.1.2).
type Account struct {
	Status                 string          `json:"status"`
	Contact                []string        `json:"contact,omitempty"`
	TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed,omitempty"`
	ExternalAccountBinding json.RawMessage `json:"externalAccountBinding,omitempty"`
	Orders                 string          `json:"orders"`
	Key                    json.RawMessage `json:"key,omitempty"`
}

// NewAccountRequest is the newAccount payload (RFC 8555 §7.3).
type NewAccountRequest struct {
	Contact                []string        `json:"contact"`
	TermsOfServiceAgreed   bool            `json:"termsOfServiceAgreed"`
	OnlyReturnExisting     bool            `json:"onlyReturnExisting"`
	ExternalAccountBinding json.RawMessage `json:"externalAccountBinding"`
}

// AccountUpdateRequest is the account update payload (RFC 8555 §7.3.2).
type AccountUpdateRequest struct {
	Contact *[]string `json:"contact"`
	Status  string    `json:"status"`
}

// Order is the order object (RFC 8555 §7.1.3).
type Order struct {
	Status         string       `json:"status"`
	Expires        string       `json:"expires,omitempty"`
	Identifiers    []Identifier `json:"identifiers"`
	NotBefore      string       `json:"notBefore,omitempty"`
	NotAfter       string       `json:"notAfter,omitempty"`
	Error          *Problem     `json:"error,omitempty"`
	Authorizations []string     `json:"authorizations"`
	Finalize       string       `json:"finalize"`
	Certificate    string       `json:"certificate,omitempty"`
	Profile        string       `json:"profile,omitempty"`
	Replaces       string       `json:"replaces,omitempty"`
}

// NewOrderRequest is the newOrder payload.
type NewOrderRequest struct {
	Identifiers []Identifier `json:"identifiers"`
	NotBefore   string       `json:"notBefore"`
	NotAfter    string       `json:"notAfter"`
	Profile     string       `json:"profile"`
	Replaces    string       `json:"replaces"`
}

// Authorization is the authorization object (RFC 8555 §7.1.4).
type Authorization struct {
	Identifier Identifier   `json:"identifier"`
	Status     string       `json:"status"`
	Expires    string       `json:"expires,omitempty"`
	Challenges []*Challenge `json:"challenges"`
	Wildcard   bool         `json:"wildcard,omitempty"`
}

// Challenge is the challenge object (RFC 8555 §7.1.5, §8).
type Challenge struct {
	Type      string   `json:"type"`
	URL       string   `json:"url"`
	Status    string   `json:"status"`
	Token     string   `json:"token"`
	Validated string   `json:"validated,omitempty"`
	Error     *Problem `json:"error,omitempty"`
}

// FinalizeRequest is the finalize payload (RFC 8555 §7.4).
type FinalizeRequest struct {
	CSR string `json:"csr"`
}

// RevokeRequest is the revokeCert payload (RFC 8555 §7.6).
type RevokeRequest struct {
	Certificate string `json:"certificate"`
	Reason      *int   `json:"reason"`
}

// KeyChange is the inner payload of a key rollover (RFC 8555 §7.3.5).
type KeyChange struct {
	Account string          `json:"account"`
	OldKey  json.RawMessage `json:"oldKey"`
}

// RenewalInfo is the ARI response (RFC 9773 §4.2).
type RenewalInfo struct {
	SuggestedWindow struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"suggestedWindow"`
	ExplanationURL string `json:"explanationURL,omitempty"`
}

// OrdersList is the account's orders list (RFC 8555 §7.1.2.1).
type OrdersList struct {
	Orders []string `json:"orders"`
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns a random 128-bit identifier, lowercase base32 so it is also
// a valid Kubernetes object name (RFC 8555 §10.5: unpredictable, no structure).
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// NewToken returns a challenge token: 128 random bits, base64url (RFC 8555 §8.3).
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Thumbprint is the base64url RFC 7638 SHA-256 thumbprint of a JWK.
func Thumbprint(k *jose.JSONWebKey) (string, error) {
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// ThumbprintLabel is the thumbprint in a form usable as a label value.
func ThumbprintLabel(k *jose.JSONWebKey) (string, error) {
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return strings.ToLower(idEncoding.EncodeToString(tp)), nil
}

// KeyAuthorization is token "." thumbprint (RFC 8555 §8.1).
func KeyAuthorization(token string, k *jose.JSONWebKey) (string, error) {
	tp, err := Thumbprint(k)
	if err != nil {
		return "", err
	}
	return token + "." + tp, nil
}

// DNSAccount01Name is the name whose TXT record answers a dns-account-01
// challenge of the account at accountURL for domain (its base name for a
// wildcard): "_" + the first 10 octets of SHA-256(accountURL) in lower-case
// base32 (16 characters, no padding) + "._acme-challenge." + domain
// (draft-ietf-acme-dns-account-label-01 §3.1).
func DNSAccount01Name(accountURL, domain string) string {
	sum := sha256.Sum256([]byte(accountURL))
	return "_" + strings.ToLower(base32.StdEncoding.EncodeToString(sum[:10])) + "._acme-challenge." + domain
}

// DNS01Value is base64url(SHA-256(keyAuthorization)) (RFC 8555 §8.4), the
// TXT value of dns-01 and of dns-account-01.
func DNS01Value(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
