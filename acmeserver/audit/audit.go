// Package audit writes one structured JSON record per ACME state change.
// Records carry "audit":true so they can be shipped apart from other logs.
// Private keys are never passed here; public keys appear only as thumbprints.
package audit

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Event names.
const (
	AccountCreated     = "account.created"
	AccountBound       = "account.bound"
	AccountUpdated     = "account.updated"
	AccountDeactivated = "account.deactivated"
	AccountRekeyed     = "account.rekeyed"
	OrderCreated       = "order.created"
	OrderInvalid       = "order.invalid"
	AuthzDeactivated   = "authorization.deactivated"
	AuthzPreAuthorized = "authorization.created"
	ChallengeValidated = "challenge.validated"
	ChallengeFailed    = "challenge.failed"
	IssuanceIntent     = "certificate.issuing"
	CertificateIssued  = "certificate.issued"
	IssuanceFailed     = "certificate.failed"
	CertificateRevoked = "certificate.revoked"
	RetentionSwept     = "retention.swept"
)

// Logger writes audit records, and keeps the most recent ones in memory
// for the dashboard (the log is the record; this is a window on it).
type Logger struct {
	l *slog.Logger

	mu     sync.Mutex
	recent []Entry // ring of the last Keep records
	next   int
}

// Keep is how many recent records a Logger holds in memory.
const Keep = 1000

// Entry is one audit record as kept in memory.
type Entry struct {
	Time  time.Time
	Event string
	Attrs []slog.Attr
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
	e := Entry{Time: time.Now().UTC(), Event: event, Attrs: attrs}
	a.mu.Lock()
	if len(a.recent) < Keep {
		a.recent = append(a.recent, e)
	} else {
		a.recent[a.next] = e
	}
	a.next = (a.next + 1) % Keep
	a.mu.Unlock()
}

// Recent returns up to n of the latest records this process wrote, newest first.
func (a *Logger) Recent(n int) []Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Entry, 0, min(n, len(a.recent)))
	for i := 1; i <= len(a.recent) && len(out) < n; i++ {
		out = append(out, a.recent[(a.next-i+len(a.recent))%len(a.recent)])
	}
	return out
}
