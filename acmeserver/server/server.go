// Package server assembles and runs the ACME server the same way in both
// modes: RA → WFE → dashboard → mux → HTTPS server (and the plain-HTTP
// listener for CRLs, CA certificates and OCSP), then a graceful drain. A mode
// (acmeserver/standalone, acmeserver/cluster) provides only what differs: the
// store, the configuration and how it changes, the validator's view of the
// network, nonces, the dashboard's sign-in, and what to stop after the drain.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kacme/kacme/acmeserver/audit"
	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/acmeserver/dashboard"
	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/nonce"
	"github.com/kacme/kacme/acmeserver/ocsp"
	"github.com/kacme/kacme/acmeserver/profile"
	"github.com/kacme/kacme/acmeserver/ra"
	"github.com/kacme/kacme/acmeserver/retention"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/va"
	"github.com/kacme/kacme/acmeserver/wfe"
)

// DrainTimeout bounds how long Close waits for in-flight requests once the
// listener has closed.
const DrainTimeout = 20 * time.Second

// Options are what a mode provides.
type Options struct {
	Store storage.Store
	// Config is the first configuration; the mode applies later ones with
	// Server.RA.SetConfig.
	Config *profile.Config
	// Validator defaults to va.New().
	Validator va.Validator
	Secrets   ra.SecretReader
	// Nonces defaults to an in-memory nonce service of this process.
	Nonces nonce.Service
	// Namespace accounts registered over ACME are stored in.
	Namespace string
	// ExternalURL is the base of every URL handed out (https://host[:port]).
	ExternalURL string
	// Listener serves HTTPS; PlainListener, when set, CRLs and CA
	// certificates (only those) over plain HTTP.
	Listener, PlainListener net.Listener
	// Certificate, when set, is the HTTPS certificate (e.g. from a Secret);
	// otherwise the server issues itself one from the default profile's CA.
	Certificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// DashboardAuth signs users in to the dashboard; SessionKey signs its
	// sessions (nil: a key of this process).
	DashboardAuth dashboard.Authorizer
	SessionKey    []byte
	// PodCertificates, when set, adds the dashboard's pod certificates page.
	PodCertificates dashboard.PodCertificateLister
	// Retention runs the sweep of expired objects in this process
	// (standalone; in a cluster the leader-elected controller does it).
	Retention bool
	// ShutdownDelay is how long Close keeps serving after /readyz starts
	// failing, so that load balancers stop routing here first.
	ShutdownDelay time.Duration
	Log           *slog.Logger
	Metrics       *metrics.Metrics
	// Now replaces the RA's clock (tests of expiry).
	Now func() time.Time
}

// Server is an assembled ACME server.
type Server struct {
	RA  *ra.RA
	WFE *wfe.WFE
	// URL is the external base URL.
	URL string

	log      *slog.Logger
	ln       net.Listener
	plainLn  net.Listener
	http     *http.Server
	plain    *http.Server
	serving  *ca.Serving
	delay    time.Duration
	afters   []func() error
	served   chan struct{} // closed when the HTTPS server has returned
	serveErr error
	once     sync.Once
	closed   chan struct{} // closed once Close has finished
	closeErr error
}

// New assembles the server and resumes the validations a previous run left
// in progress. It serves nothing until Serve; if it fails, the caller still
// owns the listeners and the store.
func New(ctx context.Context, o Options) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Validator == nil {
		o.Validator = va.New()
	}
	if o.Nonces == nil {
		n, err := nonce.NewInMemory("", time.Hour)
		if err != nil {
			return nil, err
		}
		o.Nonces = n
	}
	aud := audit.New(o.Log)
	authority := ra.New(o.Config, ra.Options{Store: o.Store, Validator: o.Validator, Secrets: o.Secrets, Audit: aud,
		Log: o.Log, Namespace: o.Namespace, Metrics: o.Metrics, Now: o.Now,
		AccountURL: func(p *profile.Profile, id string) string { return wfe.AccountURL(o.ExternalURL, p, id) }})
	front := wfe.New(authority, o.Nonces, o.ExternalURL, o.Log)
	front.Metrics = o.Metrics
	dash, err := dashboard.New(dashboard.Options{Store: o.Store, RA: authority, Auth: o.DashboardAuth, Audit: aud, Log: o.Log,
		SessionKey: o.SessionKey, PodCertificates: o.PodCertificates})
	if err != nil {
		authority.Close()
		return nil, err
	}
	s := &Server{RA: authority, WFE: front, URL: o.ExternalURL, log: o.Log, ln: o.Listener, plainLn: o.PlainListener,
		serving: &ca.Serving{External: o.ExternalURL}, delay: o.ShutdownDelay,
		served: make(chan struct{}), closed: make(chan struct{})}
	getCertificate := o.Certificate
	if getCertificate == nil {
		getCertificate = s.issuedCertificate
	}
	responder := ocsp.New(ocsp.Options{Source: authority, Metrics: o.Metrics, Log: o.Log, Now: o.Now})
	mux := http.NewServeMux()
	mux.Handle("/dashboard/", dash)
	mux.Handle("/", front)
	s.http = &http.Server{
		Handler:           responder.Wrap(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCertificate},
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug),
	}
	if o.PlainListener != nil {
		s.plain = wfe.PKIServer(front, responder)
	}
	if n, err := authority.ResumeValidations(ctx); err != nil {
		o.Log.Error("resume validations", "err", err)
	} else if n > 0 {
		o.Log.Info("resumed validations", "challenges", n)
	}
	if o.Retention {
		authority.StartRetention(retention.SweepInterval)
	}
	return s, nil
}

// CheckCertificate issues (or loads) the HTTPS certificate the server would
// present without Options.Certificate, so that a missing or unusable CA
// fails start-up rather than every handshake.
func (s *Server) CheckCertificate() error {
	_, err := s.issuedCertificate(nil)
	return err
}

// issuedCertificate is the server's own HTTPS certificate, issued in memory
// from the default profile's CA.
func (s *Server) issuedCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cfg := s.RA.Config()
	var auth *ca.Authority
	if p, ok := cfg.Profiles[cfg.DefaultProfile]; ok {
		auth = p.CA
	}
	return s.serving.Get(auth)
}

// AfterDrain adds work Close does, in the order added, once requests have
// drained and the RA has stopped (closing the store, stopping informers).
func (s *Server) AfterDrain(f func() error) { s.afters = append(s.afters, f) }

// Serve starts serving on the listeners.
func (s *Server) Serve() {
	if s.plain != nil {
		go func() { _ = s.plain.Serve(s.plainLn) }()
	}
	go func() {
		s.serveErr = s.http.ServeTLS(s.ln, "", "")
		close(s.served)
	}()
}

// Wait blocks until the server stops; after Close, until Close has finished.
func (s *Server) Wait() error {
	<-s.served
	if errors.Is(s.serveErr, http.ErrServerClosed) {
		<-s.closed
		return s.closeErr
	}
	return s.serveErr
}

// Close shuts down gracefully: /readyz fails and answers close their
// connections, requests keep being served for ShutdownDelay, then the
// listeners close and in-flight requests finish (up to DrainTimeout), the RA
// stops its background work, and what AfterDrain added runs.
func (s *Server) Close() error {
	s.once.Do(func() {
		defer close(s.closed)
		s.WFE.Drain()
		time.Sleep(s.delay)
		ctx, cancel := context.WithTimeout(context.Background(), DrainTimeout)
		defer cancel()
		err := s.http.Shutdown(ctx)
		if s.plain != nil {
			_ = s.plain.Shutdown(ctx)
		}
		s.RA.Close()
		for _, f := range s.afters {
			if ferr := f(); err == nil {
				err = ferr
			}
		}
		s.closeErr = err
	})
	return s.closeErr
}

// Undo is what to release, last first, when starting fails half way.
type Undo []func()

// Add registers f.
func (u *Undo) Add(f func()) { *u = append(*u, f) }

// Fail releases everything registered and returns err.
func (u *Undo) Fail(err error) error {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
	return err
}
