package wfe

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/jws"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/api/v1alpha1"
)

// authMode says which key a request must be signed with (RFC 8555 §6.2).
type authMode int

const (
	authKID      authMode = iota // kid of an existing, valid account
	authJWK                      // embedded jwk (newAccount)
	authKIDOrJWK                 // either (revokeCert)
)

// request is a verified POST.
type request struct {
	payload    []byte
	postAsGet  bool
	url        string
	account    *v1alpha1.AcmeAccount // for kid requests
	accountURL string
	jwk        *jose.JSONWebKey // for jwk requests
}

// verifyPOST runs the checks in a fixed order: content type, size, JWS shape
// (jws.Parse), jwk/kid mode, key lookup, signature, nonce, url.
func (w *WFE) verifyPOST(ctx context.Context, r *http.Request, p *profile.Profile, mode authMode) (*request, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/jose+json" {
		return nil, acme.UnsupportedMediaTypeProblem("Content-Type must be application/jose+json")
	}
	if r.ContentLength > w.maxBody {
		return nil, tooLarge(w.maxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, w.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(w.maxBody)
		}
		return nil, acme.MalformedProblem("cannot read request body")
	}
	parsed, prob := jws.Parse(body)
	if prob != nil {
		return nil, prob
	}
	req := &request{url: parsed.URL}
	switch {
	case mode == authJWK && parsed.JWK == nil:
		return nil, acme.MalformedProblem("this request must be signed with an embedded jwk, not a kid")
	case mode == authKID && parsed.JWK != nil:
		return nil, acme.MalformedProblem("this request must be signed by an account (kid), not an embedded jwk")
	}
	key := parsed.JWK
	if parsed.KID != "" {
		prefix := w.profileURL(p, pathAccount)
		id, ok := strings.CutPrefix(parsed.KID, prefix)
		if !ok || id == "" || strings.Contains(id, "/") {
			return nil, acme.MalformedProblem("kid must be an account URL of this directory (%s...)", prefix)
		}
		acct, err := w.ra.Account(ctx, p, id)
		if err != nil {
			return nil, err
		}
		if key, err = ra.AccountKey(acct); err != nil {
			return nil, err
		}
		req.account, req.accountURL = acct, parsed.KID
	}
	payload, prob := parsed.Verify(key)
	if prob != nil {
		return nil, prob
	}
	if req.account != nil && (req.account.Spec.State != acme.StatusValid || req.account.Spec.Deactivated) {
		return nil, acme.DeactivatedProblem("account is deactivated")
	}
	if !parsed.HasNonce || parsed.Nonce == "" {
		return nil, acme.BadNonceProblem("the JWS has no nonce")
	}
	if !w.nonces.Redeem(ctx, parsed.Nonce) {
		return nil, acme.BadNonceProblem("nonce %q is invalid, expired or already used", acme.Clip(parsed.Nonce))
	}
	if want := w.base + r.URL.RequestURI(); parsed.URL != want {
		return nil, acme.UnauthorizedProblem("JWS url %q does not match the request URL %q (RFC 8555 §6.4)", acme.Clip(parsed.URL), acme.Clip(want))
	}
	req.payload, req.postAsGet = payload, len(payload) == 0
	if parsed.JWK != nil {
		req.jwk = parsed.JWK
	}
	return req, nil
}

func tooLarge(limit int64) *acme.Problem {
	p := acme.MalformedProblem("request body exceeds %d bytes", limit)
	p.Status = http.StatusRequestEntityTooLarge
	return p
}

// verifyPostAsGet is verifyPOST for fetch-only resources: the payload must be "" (RFC 8555 §6.3).
func (w *WFE) verifyPostAsGet(ctx context.Context, r *http.Request, p *profile.Profile) (*request, error) {
	req, err := w.verifyPOST(ctx, r, p, authKID)
	if err != nil {
		return nil, err
	}
	if !req.postAsGet {
		return nil, acme.MalformedProblem("this resource is fetched with POST-as-GET: the payload must be empty")
	}
	return req, nil
}
