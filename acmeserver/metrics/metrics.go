// Package metrics defines kacme's Prometheus metrics. A nil *Metrics is valid
// and records nothing, so components need no test doubles.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the server's instruments.
type Metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	validations *prometheus.CounterVec
	validating  *prometheus.HistogramVec
	issued      *prometheus.CounterVec
	revoked     *prometheus.CounterVec
	apiRequests *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	problems    *prometheus.CounterVec
	issuance    *prometheus.HistogramVec
	caNotAfter  *prometheus.GaugeVec
	writes      *prometheus.CounterVec
	ocsp        *prometheus.CounterVec
	ocspSigned  *prometheus.CounterVec
}

// New registers the metrics with reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kacme_http_requests_total",
			Help: "ACME requests by route, method and HTTP status."}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kacme_http_request_duration_seconds",
			Help: "ACME request latency by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route"}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kacme_validations_total",
			Help: "Challenge validations by type and result (valid, or the problem type)."}, []string{"type", "result"}),
		validating: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kacme_validation_duration_seconds",
			Help: "Challenge validation time by type.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}, []string{"type"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kacme_certificates_issued_total",
			Help: "Certificates issued by profile and issuance profile."}, []string{"profile", "issuance_profile"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kacme_certificates_revoked_total",
			Help: "Certificates revoked by profile and reason code."}, []string{"profile", "reason"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kacme_kube_api_requests_total",
			Help: "Requests this process made to the Kubernetes API server, by verb (get, list, watch, create, update, patch, delete) and resource."},
			[]string{"verb", "resource"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kacme_rate_limited_total",
			Help: "Requests refused with rateLimited, by profile and limit."}, []string{"profile", "limit"}),
		problems: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kacme_problems_total",
			Help: "Problem documents answered, by ACME problem type (badNonce, rateLimited, ...)."}, []string{"type"}),
		issuance: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "kacme_issuance_duration_seconds",
			Help: "Time from an order's creation to its certificate, by profile.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 14)}, []string{"profile"}),
		caNotAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "kacme_ca_not_after_timestamp_seconds",
			Help: "Expiry (Unix time) of each CA certificate the server signs with."}, []string{"ca"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kacme_storage_writes_total",
			Help: "Writes to the store (embedded or Kubernetes API) by kind and operation."}, []string{"kind", "op"}),
		ocsp: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kacme_ocsp_responses_total",
			Help: "OCSP responses by CA and what they said (good, revoked, unknown) or their error status (malformedRequest, unauthorized, tryLater, internalError)."},
			[]string{"ca", "status"}),
		ocspSigned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kacme_ocsp_signatures_total",
			Help: "OCSP responses signed (the rest were served from the cache of signed responses), by CA and why: new, refresh, nonce."},
			[]string{"ca", "why"}),
	}
	reg.MustRegister(m.requests, m.duration, m.validations, m.validating, m.issued, m.revoked, m.apiRequests, m.rateLimited,
		m.problems, m.issuance, m.caNotAfter, m.writes, m.ocsp, m.ocspSigned)
	return m
}

// Request records one HTTP request.
func (m *Metrics) Request(route, method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// Validation records one finished validation.
func (m *Metrics) Validation(typ, result string, d time.Duration) {
	if m == nil {
		return
	}
	m.validations.WithLabelValues(typ, result).Inc()
	m.validating.WithLabelValues(typ).Observe(d.Seconds())
}

// Issued records one issued certificate.
func (m *Metrics) Issued(profile, issuanceProfile string) {
	if m == nil {
		return
	}
	m.issued.WithLabelValues(profile, issuanceProfile).Inc()
}

// Revoked records one revocation.
func (m *Metrics) Revoked(profile string, reason int) {
	if m == nil {
		return
	}
	m.revoked.WithLabelValues(profile, strconv.Itoa(reason)).Inc()
}

// OCSP records one OCSP response of CA ca ("" when the request named none
// this server knows).
func (m *Metrics) OCSP(ca, status string) {
	if m == nil {
		return
	}
	m.ocsp.WithLabelValues(ca, status).Inc()
}

// OCSPSigned records one OCSP response signed, and why (new, refresh, nonce).
func (m *Metrics) OCSPSigned(ca, why string) {
	if m == nil {
		return
	}
	m.ocspSigned.WithLabelValues(ca, why).Inc()
}

// Problem records one problem document answered.
func (m *Metrics) Problem(typ string) {
	if m == nil {
		return
	}
	m.problems.WithLabelValues(strings.TrimPrefix(typ, "urn:ietf:params:acme:error:")).Inc()
}

// IssuedAfter records the time from an order's creation to its certificate.
func (m *Metrics) IssuedAfter(profile string, d time.Duration) {
	if m == nil {
		return
	}
	m.issuance.WithLabelValues(profile).Observe(d.Seconds())
}

// CAs sets the expiry of the CA certificates served now (others are dropped).
func (m *Metrics) CAs(notAfter map[string]time.Time) {
	if m == nil {
		return
	}
	m.caNotAfter.Reset()
	for name, t := range notAfter {
		m.caNotAfter.WithLabelValues(name).Set(float64(t.Unix()))
	}
}

// StorageWrite records one write to the store.
func (m *Metrics) StorageWrite(kind, op string) {
	if m == nil {
		return
	}
	m.writes.WithLabelValues(kind, op).Inc()
}

// RateLimited records one request refused by a rate limit.
func (m *Metrics) RateLimited(profile, limit string) {
	if m == nil {
		return
	}
	m.rateLimited.WithLabelValues(profile, limit).Inc()
}

// WrapTransport counts the requests a Kubernetes client sends through rt
// (rest.Config.Wrap), so API-server reads and writes per issuance can be
// measured from the client's side.
func (m *Metrics) WrapTransport(rt http.RoundTripper) http.RoundTripper {
	if m == nil {
		return rt
	}
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		verb, resource := APIVerb(req)
		m.apiRequests.WithLabelValues(verb, resource).Inc()
		return rt.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// APIVerb classifies a Kubernetes API request: the verb as RBAC names it and
// the resource, from the path /api/v1/... or /apis/<group>/<version>/...,
// optionally /namespaces/<ns>/, then <resource>[/<name>[/<subresource>]].
func APIVerb(req *http.Request) (verb, resource string) {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(req.Method), "other"
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return strings.ToLower(req.Method), "other"
	}
	resource, named := parts[0], len(parts) > 1
	if len(parts) > 2 {
		resource += "/" + parts[2]
	}
	switch req.Method {
	case http.MethodGet:
		switch {
		case req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1":
			return "watch", resource
		case named:
			return "get", resource
		}
		return "list", resource
	case http.MethodPost:
		return "create", resource
	case http.MethodPut:
		return "update", resource
	case http.MethodPatch:
		return "patch", resource
	case http.MethodDelete:
		if named {
			return "delete", resource
		}
		return "deletecollection", resource
	}
	return strings.ToLower(req.Method), resource
}
