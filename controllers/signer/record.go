package signer

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/kacme/kacme/api/v1alpha1"
)

// Audit events of the signer.
const (
	eventIssued = "signer.issued"
	eventDenied = "signer.denied"
	eventFailed = "signer.failed"
)

var (
	requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kacme_signer_requests_total",
		Help: "PodCertificateRequests and CertificateSigningRequests kacme decided, by signer name, kind (pod, csr) and result (Issued, Denied, Failed, Approved).",
	}, []string{"signer", "kind", "result"})
	registerOnce sync.Once
)

// registerMetrics adds the signer's metrics to the controller's /metrics.
func registerMetrics() { registerOnce.Do(func() { metrics.Registry.MustRegister(requests) }) }

// record writes the audit record and counts the decision.
func (r *Signer) record(ctx context.Context, kind string, s *v1alpha1.KubernetesSigner, signerName, ns, name, result, reason string,
	issued *issuedCert, attrs ...slog.Attr) {
	requests.WithLabelValues(signerName, kind, result).Inc()
	if r.Audit == nil {
		return
	}
	event := eventDenied
	switch result {
	case "Issued":
		event = eventIssued
	case "Failed":
		event = eventFailed
	case "Approved":
		event = "signer.approved"
	}
	attrs = append(attrs, slog.String("kind", kind), slog.String("signerName", signerName), slog.String("namespace", ns),
		slog.String("request", name), slog.String("reason", reason))
	if s != nil {
		attrs = append(attrs, slog.String("certificateAuthority", s.Spec.CertificateAuthority))
	}
	if issued != nil {
		var uris []string
		for _, u := range issued.leaf.URIs {
			uris = append(uris, u.String())
		}
		attrs = append(attrs, slog.String("serial", issued.leaf.SerialNumber.Text(16)), slog.Any("dnsNames", issued.leaf.DNSNames),
			slog.Any("uris", uris), slog.Time("notBefore", issued.leaf.NotBefore), slog.Time("notAfter", issued.leaf.NotAfter))
	}
	r.Audit.Record(ctx, event, attrs...)
}
