package va

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/api/v1alpha1"
)

const (
	maxRedirects = 10   // RFC 8555 §8.3 leaves the limit to the server
	maxBodyBytes = 1024 // a key authorization is 87 bytes
)

// errBadRedirect marks a redirect kacme refuses to follow.
type errBadRedirect struct{ reason string }

func (e *errBadRedirect) Error() string { return "refused redirect: " + e.reason }

// validateHTTP01 fetches http://{identifier}/.well-known/acme-challenge/{token}
// (RFC 8555 §8.3, RFC 8738 §4) and compares the body to the key authorization.
func (v *VA) validateHTTP01(ctx context.Context, res Resolver, req Request) Result {
	port := req.Settings.HTTPPort
	if port == 0 {
		port = 80
	}
	var records []v1alpha1.ValidationRecord
	allowedPorts := map[string]bool{"80": true, "443": true, strconv.Itoa(port): true}

	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		rec := &records[len(records)-1]
		rec.Hostname, rec.Port = host, p
		pn, _ := strconv.Atoi(p)
		if v.Services != nil {
			eps, ok, err := v.Services.Endpoints(ctx, host, pn, req.Settings.ServiceRoutes)
			if err != nil {
				return nil, err
			}
			if ok {
				rec.AddressesResolved = append(rec.AddressesResolved, eps...)
				return v.dialEndpoints(ctx, res, eps, rec)
			}
		}
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{a}
			rec.AddressesResolved = []string{a.String()}
		} else {
			addrs, err = res.LookupHost(ctx, host)
			if err != nil {
				return nil, err
			}
			for _, a := range addrs {
				rec.AddressesResolved = append(rec.AddressesResolved, a.String())
			}
		}
		return v.dialFirst(ctx, addrs, pn, rec)
	}
	client := &http.Client{
		Transport: &http.Transport{
			DialContext:            dial,
			TLSClientConfig:        &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // RFC 8555 §8.3: https redirects are not verified
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 16 << 10,
			Proxy:                  nil,
		},
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return &errBadRedirect{fmt.Sprintf("more than %d redirects", maxRedirects)}
			}
			if code := r.Response.StatusCode; code != 301 && code != 302 && code != 307 && code != 308 {
				return &errBadRedirect{fmt.Sprintf("status %d is not a followed redirect", code)}
			}
			if r.URL.Scheme != "http" && r.URL.Scheme != "https" {
				return &errBadRedirect{fmt.Sprintf("scheme %q", r.URL.Scheme)}
			}
			p := r.URL.Port()
			if p == "" {
				p = map[string]string{"http": "80", "https": "443"}[r.URL.Scheme]
			}
			if !allowedPorts[p] {
				return &errBadRedirect{fmt.Sprintf("port %s", p)}
			}
			if len(r.URL.Path) > 2000 {
				return &errBadRedirect{"path too long"}
			}
			records = append(records, v1alpha1.ValidationRecord{URL: r.URL.String()})
			return nil
		},
	}
	host := req.Identifier.Value
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + host + "]"
	}
	if port != 80 {
		host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port))
	}
	u := (&url.URL{Scheme: "http", Host: host, Path: "/.well-known/acme-challenge/" + req.Token}).String()
	records = append(records, v1alpha1.ValidationRecord{URL: u})
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Result{Records: records, Problem: acme.MalformedProblem("cannot build validation request")}
	}
	hreq.Header.Set("User-Agent", "kacme-validator/1 (+https://github.com/kacme/kacme)")
	hreq.Header.Set("Accept", "*/*")
	resp, err := client.Do(hreq)
	if err != nil {
		return Result{Records: records, Problem: httpProblem(err, u)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Result{Records: records, Problem: acme.ValidationProblem(acme.IncorrectResponse,
			"fetching %s: HTTP status %d, want 200", resp.Request.URL, resp.StatusCode)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return Result{Records: records, Problem: connectionProblem(err, "reading "+u)}
	}
	if len(body) > maxBodyBytes {
		return Result{Records: records, Problem: acme.ValidationProblem(acme.IncorrectResponse,
			"response body from %s is larger than %d bytes", resp.Request.URL, maxBodyBytes)}
	}
	got := strings.TrimRightFunc(string(body), unicode.IsSpace) // RFC 8555 §8.3: trailing whitespace only
	if got != req.KeyAuthorization {
		shown := got
		if len(shown) > 100 {
			shown = shown[:100]
		}
		return Result{Records: records, Problem: acme.ValidationProblem(acme.IncorrectResponse,
			"the key authorization from %s is %q, want %q", resp.Request.URL, shown, req.KeyAuthorization)}
	}
	return Result{Records: records}
}

func httpProblem(err error, u string) *acme.Problem {
	var br *errBadRedirect
	if errors.As(err, &br) {
		return acme.ValidationProblem(acme.Connection, "fetching %s: %s", u, br.reason)
	}
	var de *DNSError
	if errors.As(err, &de) || errors.Is(err, ErrNoRecords) {
		return dnsProblem(err, u)
	}
	var te tls.RecordHeaderError
	if errors.As(err, &te) || strings.Contains(err.Error(), "tls:") {
		return acme.ValidationProblem(acme.TLS, "fetching %s: TLS error: %s", u, sanitize(err))
	}
	return connectionProblem(err, "fetching "+u)
}
