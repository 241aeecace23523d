package wfe

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/jws"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
)

// certificate serves RFC 8555 §7.4.2 downloads: the PEM chain, with the
// other chains linked as rel="alternate" at cert/{id}/{n}.
func (w *WFE) certificate(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPostAsGet(ctx, r, p)
	if err != nil {
		return err
	}
	c, err := w.ra.Certificate(ctx, req.account, r.PathValue("id"))
	if err != nil {
		return err
	}
	chains, err := w.ra.Chains(c)
	if err != nil {
		return err
	}
	chain := 0
	if s := r.PathValue("chain"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n >= len(chains) {
			return acme.NotFoundProblem("no such chain")
		}
		chain = n
	}
	body := chains[chain]
	for i := range chains {
		if i == chain {
			continue
		}
		u := w.certURL(p, c.Name)
		if i > 0 {
			u += "/" + strconv.Itoa(i)
		}
		rw.Header().Add("Link", link(u, "alternate"))
	}
	rw.Header().Set("Content-Type", "application/pem-certificate-chain")
	rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(body)
	return nil
}

// revoke serves RFC 8555 §7.6, signed by an account or by the certificate key.
func (w *WFE) revoke(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPOST(ctx, r, p, authKIDOrJWK)
	if err != nil {
		return err
	}
	var body struct {
		Certificate string          `json:"certificate"`
		Reason      json.RawMessage `json:"reason"`
	}
	if prob := jws.DecodePayload(req.payload, &body); prob != nil {
		return prob
	}
	if body.Certificate == "" {
		return acme.MalformedProblem("revokeCert needs a certificate")
	}
	der, prob := jws.DecodeBase64URL("certificate", body.Certificate)
	if prob != nil {
		return prob
	}
	var reason *int
	if len(body.Reason) > 0 && string(body.Reason) != "null" {
		var n int
		if err := json.Unmarshal(body.Reason, &n); err != nil {
			return acme.BadRevocationReasonProblem("reason must be an integer CRLReason code")
		}
		reason = &n
	}
	who := ra.Revoker{Account: req.account, JWK: req.jwk}
	if err := w.ra.Revoke(ctx, p, who, der, reason); err != nil {
		return err
	}
	rw.Header().Set("Content-Length", "0")
	rw.WriteHeader(http.StatusOK)
	return nil
}

// renewalInfo serves RFC 9773 §4 (unauthenticated GET).
func (w *WFE) renewalInfo(ctx context.Context, rw http.ResponseWriter, r *http.Request, _ *profile.Profile) error {
	win, err := w.ra.RenewalInfo(ctx, r.PathValue("certID"))
	if err != nil {
		return err
	}
	var out acme.RenewalInfo
	out.SuggestedWindow.Start = rfc3339(win.Start)
	out.SuggestedWindow.End = rfc3339(win.End)
	rw.Header().Set("Retry-After", "21600")
	rw.Header().Set("Cache-Control", "public, max-age=21600")
	w.writeJSON(rw, http.StatusOK, out)
	return nil
}

// crl serves the CA's current CRL (DER, RFC 5280).
func (w *WFE) crl(ctx context.Context, rw http.ResponseWriter, r *http.Request, _ *profile.Profile) error {
	der, err := w.ra.CRL(ctx, r.PathValue("ca"), r.URL.Query().Get("key"))
	return writeDER(rw, der, err, "application/pkix-crl", 60)
}

// caCertificate serves a CA's certificate (DER), the target of the
// Authority Information Access caIssuers URL in issued certificates (RFC
// 5280 §4.2.2.1: "application/pkix-cert").
func (w *WFE) caCertificate(_ context.Context, rw http.ResponseWriter, r *http.Request, _ *profile.Profile) error {
	der, err := w.ra.CACertificate(r.PathValue("ca"), r.URL.Query().Get("key"))
	return writeDER(rw, der, err, "application/pkix-cert", 3600)
}

// writeDER writes public PKI data that caches may keep for maxAge seconds.
func writeDER(rw http.ResponseWriter, der []byte, err error, contentType string, maxAge int) error {
	if err != nil {
		return err
	}
	rw.Header().Set("Content-Type", contentType)
	rw.Header().Set("Content-Length", strconv.Itoa(len(der)))
	rw.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(maxAge))
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(der)
	return nil
}
