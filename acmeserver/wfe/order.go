package wfe

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/jws"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/api/v1alpha1"
)

// retryAfter is the polling interval suggested while work is in progress.
const retryAfter = "1"

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func problemOf(p *v1alpha1.Problem) *acme.Problem {
	if p == nil {
		return nil
	}
	return &acme.Problem{Type: acme.ProblemType(p.Type), Detail: p.Detail, Status: p.Status}
}

func (w *WFE) orderJSON(p *profile.Profile, o *v1alpha1.AcmeOrder) acme.Order {
	out := acme.Order{Status: o.Status.Status, Expires: rfc3339(o.Status.Expires.Time), Finalize: w.orderURL(p, o.Name) + "/finalize",
		Profile: o.Spec.IssuanceProfile, Replaces: o.Spec.Replaces, Error: problemOf(o.Status.Error)}
	for _, id := range o.Spec.Identifiers {
		out.Identifiers = append(out.Identifiers, acme.Identifier{Type: id.Type, Value: id.Value})
	}
	for _, az := range o.Status.Authorizations {
		out.Authorizations = append(out.Authorizations, w.authzURL(p, az))
	}
	if o.Spec.NotBefore != nil {
		out.NotBefore = rfc3339(o.Spec.NotBefore.Time)
	}
	if o.Spec.NotAfter != nil {
		out.NotAfter = rfc3339(o.Spec.NotAfter.Time)
	}
	if o.Status.Certificate != "" && o.Status.Status == acme.StatusValid {
		out.Certificate = w.certURL(p, o.Status.Certificate)
	}
	return out
}

func (w *WFE) challengeJSON(p *profile.Profile, az *v1alpha1.AcmeChallenge, ci int) *acme.Challenge {
	c := az.Status.Challenges[ci]
	out := &acme.Challenge{Type: string(c.Type), URL: w.challURL(p, ra.ChallengeID(az.Name, ci)), Status: c.Status,
		Token: c.Token, Error: problemOf(c.Error)}
	if c.Validated != nil {
		out.Validated = rfc3339(c.Validated.Time)
	}
	return out
}

func (w *WFE) authzJSON(p *profile.Profile, az *v1alpha1.AcmeChallenge) acme.Authorization {
	out := acme.Authorization{Identifier: acme.Identifier{Type: az.Spec.Identifier.Type, Value: az.Spec.Identifier.Value},
		Status: az.Status.Status, Expires: rfc3339(az.Status.Expires.Time), Wildcard: az.Spec.Wildcard, Challenges: []*acme.Challenge{}}
	for ci := range az.Status.Challenges {
		out.Challenges = append(out.Challenges, w.challengeJSON(p, az, ci))
	}
	return out
}

// newOrder serves RFC 8555 §7.4.
func (w *WFE) newOrder(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPOST(ctx, r, p, authKID)
	if err != nil {
		return err
	}
	var nor acme.NewOrderRequest
	if prob := jws.DecodePayload(req.payload, &nor); prob != nil {
		return prob
	}
	o, err := w.ra.NewOrder(ctx, p, req.account, nor)
	if err != nil {
		return err
	}
	rw.Header().Set("Location", w.orderURL(p, o.Name))
	w.writeJSON(rw, http.StatusCreated, w.orderJSON(p, o))
	return nil
}

// newAuthz serves RFC 8555 §7.4.1 pre-authorization: 201 with the
// authorization and its Location.
func (w *WFE) newAuthz(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPOST(ctx, r, p, authKID)
	if err != nil {
		return err
	}
	var body struct {
		Identifier *acme.Identifier `json:"identifier"`
	}
	if prob := jws.DecodePayload(req.payload, &body); prob != nil {
		return prob
	}
	if body.Identifier == nil {
		return acme.MalformedProblem("newAuthz needs an identifier")
	}
	az, err := w.ra.NewAuthorization(ctx, p, req.account, *body.Identifier)
	if err != nil {
		return err
	}
	rw.Header().Set("Location", w.authzURL(p, az.Name))
	w.writeJSON(rw, http.StatusCreated, w.authzJSON(p, az))
	return nil
}

// order serves an order fetch.
func (w *WFE) order(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPostAsGet(ctx, r, p)
	if err != nil {
		return err
	}
	o, err := w.ra.Order(ctx, req.account, r.PathValue("id"))
	if err != nil {
		return err
	}
	w.writeOrder(rw, p, o)
	return nil
}

func (w *WFE) writeOrder(rw http.ResponseWriter, p *profile.Profile, o *v1alpha1.AcmeOrder) {
	if o.Status.Status == acme.StatusProcessing {
		rw.Header().Set("Retry-After", retryAfter)
	}
	w.writeJSON(rw, http.StatusOK, w.orderJSON(p, o))
}

// finalize serves RFC 8555 §7.4 finalization.
func (w *WFE) finalize(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPOST(ctx, r, p, authKID)
	if err != nil {
		return err
	}
	var fr acme.FinalizeRequest
	if prob := jws.DecodePayload(req.payload, &fr); prob != nil {
		return prob
	}
	if fr.CSR == "" {
		return acme.MalformedProblem("finalize needs a csr")
	}
	der, prob := jws.DecodeBase64URL("csr", fr.CSR)
	if prob != nil {
		return prob
	}
	o, err := w.ra.Finalize(ctx, p, req.account, r.PathValue("id"), der)
	if err != nil {
		return err
	}
	rw.Header().Set("Location", w.orderURL(p, o.Name))
	w.writeOrder(rw, p, o)
	return nil
}

// authorization serves fetch and deactivation (RFC 8555 §7.5, §7.5.2).
func (w *WFE) authorization(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPOST(ctx, r, p, authKID)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	var az *v1alpha1.AcmeChallenge
	if req.postAsGet {
		az, err = w.ra.Authorization(ctx, req.account, id)
	} else {
		var upd struct {
			Status string `json:"status"`
		}
		if prob := jws.DecodePayload(req.payload, &upd); prob != nil {
			return prob
		}
		if upd.Status != acme.StatusDeactivated {
			return acme.MalformedProblem("an authorization can only be updated to status %q", acme.StatusDeactivated)
		}
		az, err = w.ra.DeactivateAuthorization(ctx, req.account, id)
	}
	if err != nil {
		return err
	}
	for _, c := range az.Status.Challenges {
		if c.Status == acme.StatusProcessing {
			rw.Header().Set("Retry-After", retryAfter)
		}
	}
	w.writeJSON(rw, http.StatusOK, w.authzJSON(p, az))
	return nil
}

// challenge serves fetch (POST-as-GET) and response (POST {}) (RFC 8555 §7.5.1).
func (w *WFE) challenge(ctx context.Context, rw http.ResponseWriter, r *http.Request, p *profile.Profile) error {
	req, err := w.verifyPOST(ctx, r, p, authKID)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	var az *v1alpha1.AcmeChallenge
	var ci int
	if req.postAsGet {
		az, ci, err = w.ra.Challenge(ctx, req.account, id)
	} else {
		var obj map[string]json.RawMessage
		if prob := jws.DecodePayload(req.payload, &obj); prob != nil || obj == nil {
			return acme.MalformedProblem("a challenge response must be a JSON object")
		}
		az, ci, err = w.ra.RespondChallenge(ctx, p, req.account, id)
	}
	if err != nil {
		return err
	}
	rw.Header().Add("Link", link(w.authzURL(p, az.Name), "up"))
	c := w.challengeJSON(p, az, ci)
	if c.Status == acme.StatusProcessing {
		rw.Header().Set("Retry-After", retryAfter)
	}
	w.writeJSON(rw, http.StatusOK, c)
	return nil
}
