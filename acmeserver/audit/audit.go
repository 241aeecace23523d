// Package audit writes one structured JSON record per ACME state change.
// Records carry "audit":true so they can be shipped apart from other logs.
// Private keys are never passed here; public keys appear only as thumbprints.
package audit

import (
	"context"
	"log/slog"
)

// Event names.
const (
	AccountCreated     = "account.created"
	AccountBound       = "account.bound"
	AccountUpdated     = "account.updated"
	AccountDeactivated = "account.deactivated"
	AccountRekeyed     = "account.rekeyed"
	OrderCreated       = "order.created"
	AuthzDeactivated   = "authorization.deactivated"
	ChallengeValidated = "challenge.validated"
	ChallengeFailed    = "challenge.failed"
	IssuanceIntent     = "certificate.issuing"
	CertificateIssued  = "certificate.issued"
	IssuanceFailed     = "certificate.failed"
	CertificateRevoked = "certificate.revoked"
)

// Logger writes audit records.
type Logger struct {
	l *slog.Logger
}

// New returns an audit logger writing through l.
func New(l *slog.Logger) *Logger {
	if l == nil {
		l = slog.Default()
	}
	return &Logger{l: l.With(slog.Bool("audit", true))}
}

// Record writes one audit record for event with attributes.
func (a *Logger) Record(ctx context.Context, event string, attrs ...slog.Attr) {
	a.l.LogAttrs(ctx, slog.LevelInfo, event, append([]slog.Attr{slog.String("event", event)}, attrs...)...)
}
