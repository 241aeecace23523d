package va

import (
	"context"
	"crypto/sha256"
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
	"sync"
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

// httpFetch is one http-01 validation: the hops it made (one validation
// record each) and the address classes of the first hop, which decide where
// a redirect may lead (see policy). Dials run in the transport's goroutine,
// so what they record is locked.
type httpFetch struct {
	va      *VA
	res     Resolver
	req     Request
	port    int
	portsOK map[string]bool
	first   *hop // the identifier's own hop, resolved before the request

	mu      sync.Mutex
	records []v1alpha1.ValidationRecord
	origin  map[addrClass]bool
}

// hop is where one request goes: a Service's endpoints, or addresses.
type hop struct {
	eps   []string
	addrs []netip.Addr
	port  int
}

// validateHTTP01 fetches http://{identifier}/.well-known/acme-challenge/{token}
// (RFC 8555 §8.3, RFC 8738 §4) and compares the body to the key
// authorization. The steps are split as Boulder's va/http.go splits them:
// resolve (addresses, and the address policy of redirects), checkRedirect
// (what a redirect may be), and checkBody (what is said about the answer:
// never the answer itself).
func (v *VA) validateHTTP01(ctx context.Context, res Resolver, req Request) Result {
	f := &httpFetch{va: v, res: res, req: req, port: req.Settings.HTTPPort}
	if f.port == 0 {
		f.port = 80
	}
	f.portsOK = map[string]bool{"80": true, "443": true, strconv.Itoa(f.port): true}
	u := f.challengeURL()
	f.records = append(f.records, v1alpha1.ValidationRecord{URL: u})
	// The identifier is resolved first, so that its lookup failing is a dns
	// problem (inside the transport it would be hidden behind the deadline).
	first, err := f.resolve(ctx, req.Identifier.Value, f.port, true)
	if err != nil {
		return Result{Records: f.recorded(), Problem: f.problem(err, u)}
	}
	f.first = first
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Result{Records: f.recorded(), Problem: acme.MalformedProblem("cannot build validation request")}
	}
	hreq.Header.Set("User-Agent", "kacme-validator/1 (+https://github.com/kacme/kacme)")
	hreq.Header.Set("Accept", "*/*")
	client := &http.Client{
		Transport: &http.Transport{
			DialContext:            f.dial,
			TLSClientConfig:        &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // RFC 8555 §8.3: https redirects are not verified
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 16 << 10,
			Proxy:                  nil,
		},
		CheckRedirect: f.checkRedirect,
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return Result{Records: f.recorded(), Problem: f.problem(err, u)}
	}
	defer resp.Body.Close()
	p := f.checkBody(resp)
	return Result{Records: f.recorded(), Problem: p}
}

// recorded is a copy of the records so far.
func (f *httpFetch) recorded() []v1alpha1.ValidationRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]v1alpha1.ValidationRecord(nil), f.records...)
}

// record changes the current hop's record.
func (f *httpFetch) record(change func(*v1alpha1.ValidationRecord)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.records[len(f.records)-1])
}

// challengeURL is the first URL fetched.
func (f *httpFetch) challengeURL() string {
	host := f.req.Identifier.Value
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + host + "]"
	}
	if f.port != 80 {
		host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(f.port))
	}
	return (&url.URL{Scheme: "http", Host: host, Path: "/.well-known/acme-challenge/" + f.req.Token}).String()
}

// resolve finds where a hop goes: a Service's endpoints when the name maps to
// one (cluster mode), else the name's addresses from the profile's resolvers
// (an address in the URL is its own), which must pass the hop's policy.
func (f *httpFetch) resolve(ctx context.Context, host string, port int, first bool) (*hop, error) {
	f.record(func(r *v1alpha1.ValidationRecord) { r.Hostname, r.Port = host, strconv.Itoa(port) })
	if f.va.Services != nil {
		eps, ok, err := f.va.Services.Endpoints(ctx, host, port, f.req.Settings.ServiceRoutes)
		if err != nil {
			return nil, err
		}
		if ok {
			f.record(func(r *v1alpha1.ValidationRecord) { r.AddressesResolved = append(r.AddressesResolved, eps...) })
			return &hop{eps: eps, port: port}, nil
		}
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = f.res.LookupHost(ctx, host); err != nil {
		return nil, err
	}
	f.record(func(r *v1alpha1.ValidationRecord) {
		for _, a := range addrs {
			r.AddressesResolved = append(r.AddressesResolved, a.String())
		}
	})
	addrs, err := f.policy(first)(addrs)
	if err != nil {
		return nil, err
	}
	return &hop{addrs: addrs, port: port}, nil
}

// dial connects a hop: the first with what resolve found before the
// request, a redirect's after resolving its host now.
func (f *httpFetch) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	h, first := f.first, f.first != nil
	f.first = nil
	if !first {
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		pn, _ := strconv.Atoi(p)
		if h, err = f.resolve(ctx, host, pn, false); err != nil {
			return nil, err
		}
	}
	var c net.Conn
	var used string
	var err error
	if h.eps != nil {
		c, used, err = f.va.dialEndpoints(ctx, f.res, h.eps, f.policy(first))
	} else {
		c, used, err = f.va.dialFirst(ctx, h.addrs, h.port)
	}
	f.record(func(r *v1alpha1.ValidationRecord) { r.AddressUsed = used })
	return c, err
}

// policy is the address filter of a hop. The first hop goes where the
// identifier leads (the profile's identifier policy decided that it may be
// ordered) and its address classes become the origin; a redirect hop may
// reach a loopback, link-local or unspecified address only when the first
// hop went to that class too, so a redirect cannot turn a validation into a
// request to kacme's own host or to cloud metadata (169.254.169.254).
func (f *httpFetch) policy(first bool) func([]netip.Addr) ([]netip.Addr, error) {
	return func(addrs []netip.Addr) ([]netip.Addr, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if first {
			if f.origin == nil {
				f.origin = map[addrClass]bool{}
			}
			for _, a := range addrs {
				f.origin[classOf(a)] = true
			}
			return addrs, nil
		}
		var ok []netip.Addr
		var refused netip.Addr
		for _, a := range addrs {
			if c := classOf(a); c == ordinary || f.origin[c] {
				ok = append(ok, a)
			} else {
				refused = a
			}
		}
		if len(ok) == 0 && refused.IsValid() {
			return nil, &errBadRedirect{fmt.Sprintf("%s is %s, and the identifier %s does not lead to one", refused, classOf(refused).describe(), f.req.Identifier.Value)}
		}
		return ok, nil
	}
}

// checkRedirect allows 301, 302, 307 and 308 to http or https on port 80,
// 443 or the profile's http-01 port, at most maxRedirects times (RFC 8555
// §8.3 leaves the rules to the server; these are Boulder's).
func (f *httpFetch) checkRedirect(r *http.Request, via []*http.Request) error {
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
	if !f.portsOK[p] {
		return &errBadRedirect{fmt.Sprintf("port %s", p)}
	}
	if len(r.URL.String()) > 2000 {
		return &errBadRedirect{"URL longer than 2000 characters"}
	}
	f.mu.Lock()
	f.records = append(f.records, v1alpha1.ValidationRecord{URL: r.URL.String()})
	f.mu.Unlock()
	return nil
}

// checkBody compares the answer with the key authorization. What the target
// answered is never quoted (it may be any internal service's reply): a
// problem gives its status, its length and a SHA-256 prefix, which is enough
// to compare with what the client meant to serve.
func (f *httpFetch) checkBody(resp *http.Response) *acme.Problem {
	at := resp.Request.URL.String()
	if resp.StatusCode != http.StatusOK {
		return acme.ValidationProblem(acme.IncorrectResponse, "fetching %s: HTTP status %d, want 200", at, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return connectionProblem(err, "reading "+at)
	}
	if len(body) > maxBodyBytes {
		return acme.ValidationProblem(acme.IncorrectResponse, "the response from %s is larger than %d bytes", at, maxBodyBytes)
	}
	got := strings.TrimRightFunc(string(body), unicode.IsSpace) // RFC 8555 §8.3: trailing whitespace only
	if got == f.req.KeyAuthorization {
		return nil
	}
	hint := ""
	if token, _, ok := strings.Cut(got, "."); ok && token == f.req.Token {
		hint = "; it is a key authorization for this token with another account key"
	}
	sum := sha256.Sum256([]byte(got))
	return acme.ValidationProblem(acme.IncorrectResponse,
		"the response from %s is not the key authorization: %d bytes (after trailing whitespace), SHA-256 %x…%s; want %q",
		at, len(got), sum[:6], hint, f.req.KeyAuthorization)
}

// problem maps a failed fetch.
func (f *httpFetch) problem(err error, u string) *acme.Problem {
	var br *errBadRedirect
	if errors.As(err, &br) {
		return acme.ValidationProblem(acme.Connection, "fetching %s: %s", u, br.Error())
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

// addrClass sorts addresses for the redirect policy.
type addrClass string

const (
	ordinary    addrClass = ""
	loopback    addrClass = "loopback"
	linkLocal   addrClass = "link-local"
	unspecified addrClass = "unspecified"
)

func (c addrClass) describe() string {
	if c == unspecified {
		return "an unspecified address"
	}
	return "a " + string(c) + " address"
}

// classOf: loopback (127.0.0.0/8, ::1), link-local (169.254.0.0/16,
// fe80::/10), unspecified (0.0.0.0/8 — Linux connects 0.0.0.0 to the local
// host — and ::); IPv4-mapped IPv6 addresses count as their IPv4 address.
func classOf(a netip.Addr) addrClass {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return loopback
	case a.IsLinkLocalUnicast():
		return linkLocal
	case a.IsUnspecified(), a.Is4() && a.As4()[0] == 0:
		return unspecified
	}
	return ordinary
}
