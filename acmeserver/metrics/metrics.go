// Package metrics defines kacme's Prometheus metrics. A nil *Metrics is valid
// and records nothing, so components need no test doubles.
package metrics

import (
	"strconv"
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
	}
	reg.MustRegister(m.requests, m.duration, m.validations, m.validating, m.issued, m.revoked)
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
