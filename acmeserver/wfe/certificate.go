package wfe

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

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
	format := certFormat(r.Header.Get("Accept"))
	if format != formatPEMChain {
		var ders [][]byte
		for rest := body; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			ders = append(ders, b.Bytes)
		}
		if len(ders) == 0 {
			return fmt.Errorf("certificate %s: the stored chain holds no certificate", c.Name)
		}
		switch format {
		case formatDER:
			// The leaf alone; its issuer is where the leaf's caIssuers
			// URL says (CRT-04: rel="up").
			body = ders[0]
			if leaf, err := x509.ParseCertificate(ders[0]); err == nil {
				for _, u := range leaf.IssuingCertificateURL {
					rw.Header().Add("Link", link(u, "up"))
				}
			}
		case formatPKCS7:
			if body, err = acme.CertsOnlyPKCS7(ders); err != nil {
				return err
			}
		}
	}
	rw.Header().Set("Vary", "Accept")
	rw.Header().Set("Content-Type", format)
	rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(body)
	return nil
}

// The certificate formats served (RFC 8555 §7.4.2, CRT-04).
const (
	formatPEMChain = "application/pem-certificate-chain" // the chain, PEM (the default)
	formatDER      = "application/pkix-cert"             // the leaf, DER (RFC 2585)
	formatPKCS7    = "application/pkcs7-mime"            // the chain, certs-only PKCS #7, DER (RFC 8551 §3.2.2)
)

// certFormat picks the format an Accept header prefers (RFC 9110 §12.5.1:
// the most specific range that matches a type gives its weight; q=0 refuses
// it). Ties go to the order above. An Accept that names none of them, or
// refuses all, gets the PEM chain (pinned, CRT-04: ACME clients expect it,
// and Boulder ignores Accept altogether) rather than a 406. At most the
// first 32 ranges are read.
func certFormat(accept string) string {
	best, bestQ := formatPEMChain, -1.0
	ranges := strings.SplitN(accept, ",", 33)
	for _, f := range []string{formatPEMChain, formatDER, formatPKCS7} {
		q, specificity := -1.0, -1
		for i, r := range ranges {
			if i == 32 {
				break
			}
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
			if err != nil {
				continue
			}
			s := -1
			switch mt {
			case f:
				s = 2
			case "application/*":
				s = 1
			case "*/*":
				s = 0
			}
			if s <= specificity {
				continue
			}
			specificity, q = s, 1
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
					q = 0
				}
			}
		}
		if q > 0 && q > bestQ {
			best, bestQ = f, q
		}
	}
	return best
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
