// Package acme holds the RFC 8555 wire objects, statuses and problem documents.
// It is the leaf of the server: it imports nothing from kacme.
package acme

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"
)

// ProblemType is an RFC 8555 §6.7 error type.
type ProblemType string

// Error types (RFC 8555 §6.7, RFC 9773 §5, draft-ietf-acme-profiles §4).
const (
	ns                                  = "urn:ietf:params:acme:error:"
	AccountDoesNotExist     ProblemType = ns + "accountDoesNotExist"
	AlreadyReplaced         ProblemType = ns + "alreadyReplaced"
	AlreadyRevoked          ProblemType = ns + "alreadyRevoked"
	BadCSR                  ProblemType = ns + "badCSR"
	BadNonce                ProblemType = ns + "badNonce"
	BadPublicKey            ProblemType = ns + "badPublicKey"
	BadRevocationReason     ProblemType = ns + "badRevocationReason"
	BadSignatureAlgorithm   ProblemType = ns + "badSignatureAlgorithm"
	CAA                     ProblemType = ns + "caa"
	Compound                ProblemType = ns + "compound"
	Connection              ProblemType = ns + "connection"
	DNS                     ProblemType = ns + "dns"
	ExternalAccountRequired ProblemType = ns + "externalAccountRequired"
	IncorrectResponse       ProblemType = ns + "incorrectResponse"
	InvalidContact          ProblemType = ns + "invalidContact"
	InvalidProfile          ProblemType = ns + "invalidProfile"
	Malformed               ProblemType = ns + "malformed"
	OrderNotReady           ProblemType = ns + "orderNotReady"
	RateLimited             ProblemType = ns + "rateLimited"
	RejectedIdentifier      ProblemType = ns + "rejectedIdentifier"
	ServerInternal          ProblemType = ns + "serverInternal"
	TLS                     ProblemType = ns + "tls"
	Unauthorized            ProblemType = ns + "unauthorized"
	UnsupportedContact      ProblemType = ns + "unsupportedContact"
	UnsupportedIdentifier   ProblemType = ns + "unsupportedIdentifier"
	UserActionRequired      ProblemType = ns + "userActionRequired"
)

// Problem is an RFC 7807/9457 problem document and the typed error every
// layer returns; only the HTTP edge turns it into a response.
type Problem struct {
	Type        ProblemType `json:"type"`
	Detail      string      `json:"detail,omitempty"`
	Status      int         `json:"status,omitempty"`
	Instance    string      `json:"instance,omitempty"`
	Identifier  *Identifier `json:"identifier,omitempty"`
	Subproblems []*Problem  `json:"subproblems,omitempty"`
	// Algorithms lists acceptable JWS algorithms (badSignatureAlgorithm, RFC 8555 §6.2).
	Algorithms []string `json:"algorithms,omitempty"`

	// Headers the edge adds to the response (Location for a conflicting key, Link for terms).
	Headers http.Header `json:"-"`
	// cause is logged but never sent.
	cause error
}

func (p *Problem) Error() string {
	if p.cause != nil {
		return fmt.Sprintf("%s: %s: %v", p.Type, p.Detail, p.cause)
	}
	return fmt.Sprintf("%s: %s", p.Type, p.Detail)
}

// Unwrap exposes the internal cause for logging.
func (p *Problem) Unwrap() error { return p.cause }

// Clip bounds a client-supplied string quoted in a problem's detail: a
// request may carry tens of kilobytes in one field, and the answer should
// not repeat them.
func Clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func newProblem(t ProblemType, status int, format string, args ...any) *Problem {
	return &Problem{Type: t, Status: status, Detail: fmt.Sprintf(format, args...)}
}

// MalformedProblem is a 400 malformed.
func MalformedProblem(format string, args ...any) *Problem {
	return newProblem(Malformed, http.StatusBadRequest, format, args...)
}

// NotFoundProblem is a 404 malformed (RFC 8555 gives no type for 404; Boulder and Pebble use malformed).
func NotFoundProblem(format string, args ...any) *Problem {
	return newProblem(Malformed, http.StatusNotFound, format, args...)
}

// MethodNotAllowedProblem is a 405 malformed (RFC 8555 §6.3).
func MethodNotAllowedProblem() *Problem {
	return newProblem(Malformed, http.StatusMethodNotAllowed, "method not allowed")
}

// UnsupportedMediaTypeProblem is a 415 malformed (RFC 8555 §6.2).
func UnsupportedMediaTypeProblem(format string, args ...any) *Problem {
	return newProblem(Malformed, http.StatusUnsupportedMediaType, format, args...)
}

// UnauthorizedProblem is a 403 unauthorized.
func UnauthorizedProblem(format string, args ...any) *Problem {
	return newProblem(Unauthorized, http.StatusForbidden, format, args...)
}

// DeactivatedProblem is a 401 unauthorized for deactivated accounts (RFC 8555 §7.3.6).
func DeactivatedProblem(format string, args ...any) *Problem {
	return newProblem(Unauthorized, http.StatusUnauthorized, format, args...)
}

// BadNonceProblem is a 400 badNonce.
func BadNonceProblem(format string, args ...any) *Problem {
	return newProblem(BadNonce, http.StatusBadRequest, format, args...)
}

// BadSignatureAlgorithmProblem is a 400 badSignatureAlgorithm carrying the accepted algorithms.
func BadSignatureAlgorithmProblem(algs []string, format string, args ...any) *Problem {
	p := newProblem(BadSignatureAlgorithm, http.StatusBadRequest, format, args...)
	p.Algorithms = algs
	return p
}

// BadPublicKeyProblem is a 400 badPublicKey.
func BadPublicKeyProblem(format string, args ...any) *Problem {
	return newProblem(BadPublicKey, http.StatusBadRequest, format, args...)
}

// AccountDoesNotExistProblem is a 400 accountDoesNotExist.
func AccountDoesNotExistProblem(format string, args ...any) *Problem {
	return newProblem(AccountDoesNotExist, http.StatusBadRequest, format, args...)
}

// BadCSRProblem is a 400 badCSR.
func BadCSRProblem(format string, args ...any) *Problem {
	return newProblem(BadCSR, http.StatusBadRequest, format, args...)
}

// OrderNotReadyProblem is a 403 orderNotReady.
func OrderNotReadyProblem(format string, args ...any) *Problem {
	return newProblem(OrderNotReady, http.StatusForbidden, format, args...)
}

// RejectedIdentifierProblem is a 400 rejectedIdentifier.
func RejectedIdentifierProblem(format string, args ...any) *Problem {
	return newProblem(RejectedIdentifier, http.StatusBadRequest, format, args...)
}

// UnsupportedIdentifierProblem is a 400 unsupportedIdentifier.
func UnsupportedIdentifierProblem(format string, args ...any) *Problem {
	return newProblem(UnsupportedIdentifier, http.StatusBadRequest, format, args...)
}

// InvalidContactProblem is a 400 invalidContact.
func InvalidContactProblem(format string, args ...any) *Problem {
	return newProblem(InvalidContact, http.StatusBadRequest, format, args...)
}

// UnsupportedContactProblem is a 400 unsupportedContact.
func UnsupportedContactProblem(format string, args ...any) *Problem {
	return newProblem(UnsupportedContact, http.StatusBadRequest, format, args...)
}

// ExternalAccountRequiredProblem is a 403 externalAccountRequired.
func ExternalAccountRequiredProblem(format string, args ...any) *Problem {
	return newProblem(ExternalAccountRequired, http.StatusForbidden, format, args...)
}

// UserActionRequiredProblem is a 403 userActionRequired pointing at the terms (RFC 8555 §7.3.3).
func UserActionRequiredProblem(terms string, format string, args ...any) *Problem {
	p := newProblem(UserActionRequired, http.StatusForbidden, format, args...)
	p.Instance = terms
	p.Headers = http.Header{"Link": {fmt.Sprintf("<%s>;rel=\"terms-of-service\"", terms)}}
	return p
}

// InvalidProfileProblem is a 400 invalidProfile.
func InvalidProfileProblem(format string, args ...any) *Problem {
	return newProblem(InvalidProfile, http.StatusBadRequest, format, args...)
}

// AlreadyRevokedProblem is a 400 alreadyRevoked.
func AlreadyRevokedProblem(format string, args ...any) *Problem {
	return newProblem(AlreadyRevoked, http.StatusBadRequest, format, args...)
}

// AlreadyReplacedProblem is a 409 alreadyReplaced (RFC 9773 §5).
func AlreadyReplacedProblem(format string, args ...any) *Problem {
	return newProblem(AlreadyReplaced, http.StatusConflict, format, args...)
}

// BadRevocationReasonProblem is a 400 badRevocationReason.
func BadRevocationReasonProblem(format string, args ...any) *Problem {
	return newProblem(BadRevocationReason, http.StatusBadRequest, format, args...)
}

// ConflictProblem is a 409 malformed with Location of the conflicting resource (RFC 8555 §7.3.5).
func ConflictProblem(location string, format string, args ...any) *Problem {
	p := newProblem(Malformed, http.StatusConflict, format, args...)
	p.Headers = http.Header{"Location": {location}}
	return p
}

// ValidationProblem is a challenge error of type t (connection, dns, tls, incorrectResponse...).
func ValidationProblem(t ProblemType, format string, args ...any) *Problem {
	return newProblem(t, http.StatusBadRequest, format, args...)
}

// CAAProblem is a 403 caa: CAA records forbid issuance (RFC 8555 §6.7,
// RFC 8659; 403 as Boulder).
func CAAProblem(format string, args ...any) *Problem {
	return newProblem(CAA, http.StatusForbidden, format, args...)
}

// InternalProblem hides err from the client and keeps it for the log.
func InternalProblem(err error, detail string) *Problem {
	p := newProblem(ServerInternal, http.StatusInternalServerError, "%s", detail)
	p.cause = err
	return p
}

// UnavailableProblem is a 503 serverInternal for a request the server could
// not complete for now (its store unreachable): err stays in the log, and
// Retry-After tells the client when to try again.
func UnavailableProblem(err error, retryAfter time.Duration) *Problem {
	p := newProblem(ServerInternal, http.StatusServiceUnavailable,
		"the server's store is temporarily unavailable; retry in %d seconds", int(retryAfter/time.Second))
	p.Headers = http.Header{"Retry-After": {strconv.Itoa(int(retryAfter / time.Second))}}
	p.cause = err
	return p
}

// QuotaProblem is 429 rateLimited for a write the store refused because a
// quota is used up (the store's own limit, not one of kacme's per account).
func QuotaProblem(err error, retryAfter time.Duration) *Problem {
	p := newProblem(RateLimited, http.StatusTooManyRequests,
		"the namespace this account's objects are stored in has used up its quota (a Kubernetes ResourceQuota); retry in %d seconds or ask the operators",
		int(retryAfter/time.Second))
	p.Headers = http.Header{"Retry-After": {strconv.Itoa(int(retryAfter / time.Second))}}
	p.cause = err
	return p
}

// AsProblem turns any error into a problem: problems pass through, anything
// else becomes serverInternal with the error kept only for the log.
func AsProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	return InternalProblem(err, "the server could not complete the request")
}
