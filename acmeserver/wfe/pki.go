package wfe

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/kacme/kacme/acmeserver/ocsp"
)

// PKIURL is the base URL issued certificates name for their CRL
// (<base>/crl/<ca>) and issuer certificate (<base>/ca/<ca>): the one
// configured; else the plain HTTP listener (its address, with the external
// URL's host when it listens on every interface); else the HTTPS external
// URL.
func PKIURL(configured, external string, plain net.Listener) (string, error) {
	if configured != "" {
		u, err := url.Parse(configured)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return "", fmt.Errorf("--pki-url %q must be http(s)://host[:port][/path]", configured)
		}
		return strings.TrimRight(configured, "/"), nil
	}
	if plain == nil {
		return external, nil
	}
	host, port, err := net.SplitHostPort(plain.Addr().String())
	if err != nil {
		return "", err
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		u, err := url.Parse(external)
		if err != nil {
			return "", err
		}
		host = u.Hostname()
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// PKIServer serves what relying parties fetch over plain HTTP (RFC 5280:
// CRL distribution points and caIssuers URLs are usually http, fetched
// without TLS so that checking a certificate does not need a certificate):
// /crl/<ca>, /ca/<ca> and OCSP (/ocsp/<ca>, when ocsp is not nil), with the
// same handlers as on HTTPS, and nothing else — no ACME resource is ever
// served without TLS (RFC 8555 §6.1).
func PKIServer(w *WFE, ocsp *ocsp.Responder) *http.Server {
	mux := http.NewServeMux()
	for _, p := range []string{"/crl/{ca}", "/ca/{ca}", "/healthz"} {
		mux.Handle(p, w.mux)
	}
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		http.Error(rw, "only CRLs (/crl/<ca>), CA certificates (/ca/<ca>) and OCSP (/ocsp/<ca>) are served over plain HTTP", http.StatusNotFound)
	})
	return &http.Server{Handler: ocsp.Wrap(mux), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
}
