// Command nodeclient is what the real-node e2e (test/e2e/node_test.go) runs
// in pods: an ACME client (golang.org/x/crypto/acme) that answers http-01
// itself behind its Service or dns-01 through RFC 2136 updates to the
// cluster DNS, a load generator of several such clients, a TLS server of a
// mounted Secret, a TLS client that verifies a server against a mounted
// trust bundle, and a directory watcher. Every ACME error response it sees
// is recorded (the Go client retries badNonce without telling), and the
// command fails if there was one.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/crypto/acme"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nodeclient issue|load|serve-tls|fetch|watch [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "issue":
		err = issueCmd(os.Args[2:])
	case "load":
		err = loadCmd(os.Args[2:])
	case "serve-tls":
		err = serveTLSCmd(os.Args[2:])
	case "fetch":
		err = fetchCmd(os.Args[2:])
	case "watch":
		err = watchCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodeclient:", err)
		os.Exit(1)
	}
}

// recorder is an http.RoundTripper that records ACME error responses and
// counts requests.
type recorder struct {
	base     http.RoundTripper
	requests atomic.Int64
	mu       sync.Mutex
	problems []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.requests.Add(1)
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		r.add(fmt.Sprintf("%s %s: %v", req.Method, req.URL.Path, err))
		return nil, err
	}
	if resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
		r.add(fmt.Sprintf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body))
	}
	return resp, nil
}

func (r *recorder) add(p string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) < 100 {
		r.problems = append(r.problems, time.Now().UTC().Format(time.RFC3339Nano)+" "+p)
	}
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.problems...)
}

// transport is an HTTP client transport that trusts the CA bundle in file
// and keeps its connections (as ACME clients do).
func transport(caFile string) (*http.Transport, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s has no certificate", caFile)
	}
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second,
		DialContext: (&net.Dialer{Timeout: 10 * time.Second}).DialContext, TLSHandshakeTimeout: 10 * time.Second}, nil
}

// responder answers http-01 for every client of this process.
type responder struct{ keys sync.Map }

func (h *responder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	if ok {
		if v, found := h.keys.Load(token); found {
			_, _ = io.WriteString(w, v.(string))
			return
		}
	}
	http.NotFound(w, r)
}

// serveHTTP01 answers http-01 on listen and waits until name's Service
// routes to it (kacme dials the Service's ready endpoints, which include
// this pod only once the endpoints controller saw it running).
func serveHTTP01(ctx context.Context, listen, name string) (*responder, error) {
	h := &responder{}
	h.keys.Store("self-check", "ok")
	srv := &http.Server{Addr: listen, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.Serve(ln) }()
	hc := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := hc.Get("http://" + name + "/.well-known/acme-challenge/self-check")
		if err == nil {
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if string(body) == "ok" {
				return h, nil
			}
			err = fmt.Errorf("%d %q", r.StatusCode, body)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("http://%s does not reach this pod: %v", name, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// dns01 publishes and removes _acme-challenge TXT records with RFC 2136
// updates signed with TSIG.
type dns01 struct {
	server, zone, key, secret string
}

func (d dns01) update(name, value string, add bool) error {
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(d.zone))
	rr, err := dns.NewRR(fmt.Sprintf("_acme-challenge.%s 5 IN TXT %q", dns.Fqdn(name), value))
	if err != nil {
		return err
	}
	if add {
		m.Insert([]dns.RR{rr})
	} else {
		m.Remove([]dns.RR{rr})
	}
	m.SetTsig(dns.Fqdn(d.key), dns.HmacSHA256, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", Timeout: 10 * time.Second, TsigSecret: map[string]string{dns.Fqdn(d.key): d.secret}}
	resp, _, err := c.Exchange(m, d.server)
	if err != nil {
		return err
	}
	if resp.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("DNS UPDATE for %s: %s", name, dns.RcodeToString[resp.Rcode])
	}
	return nil
}

// client is one ACME account.
type client struct {
	*acme.Client
	rec *recorder
}

func newClient(ctx context.Context, directory, caFile string) (*client, error) {
	t, err := transport(caFile)
	if err != nil {
		return nil, err
	}
	rec := &recorder{base: t}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &client{Client: &acme.Client{Key: key, DirectoryURL: directory, HTTPClient: &http.Client{Transport: rec, Timeout: time.Minute},
		UserAgent: "kacme-nodeclient"}, rec: rec}
	if _, err := c.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	return c, nil
}

// issue obtains a certificate for name: http-01 through h, or dns-01 through d.
func (c *client) issue(ctx context.Context, name string, h *responder, d *dns01) ([][]byte, error) {
	o, err := c.AuthorizeOrder(ctx, []acme.AuthzID{{Type: "dns", Value: name}})
	if err != nil {
		return nil, fmt.Errorf("new order: %w", err)
	}
	for _, u := range o.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		if err != nil {
			return nil, err
		}
		if z.Status == acme.StatusValid {
			continue
		}
		want := "http-01"
		if d != nil {
			want = "dns-01"
		}
		var ch *acme.Challenge
		for _, x := range z.Challenges {
			if x.Type == want {
				ch = x
			}
		}
		if ch == nil {
			return nil, fmt.Errorf("authorization %s offers no %s", u, want)
		}
		if d != nil {
			v, err := c.DNS01ChallengeRecord(ch.Token)
			if err != nil {
				return nil, err
			}
			if err := d.update(name, v, true); err != nil {
				return nil, err
			}
			defer func() { _ = d.update(name, v, false) }()
		} else {
			ka, err := c.HTTP01ChallengeResponse(ch.Token)
			if err != nil {
				return nil, err
			}
			h.keys.Store(ch.Token, ka)
			defer h.keys.Delete(ch.Token)
		}
		if _, err := c.Accept(ctx, ch); err != nil {
			return nil, fmt.Errorf("accept %s: %w", want, err)
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			return nil, fmt.Errorf("authorization: %w", err)
		}
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
	if err != nil {
		return nil, err
	}
	ders, _, err := c.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	return ders, nil
}

type acmeFlags struct {
	directory, ca, name, challenge, httpListen string
	dns                                        dns01
}

func (a *acmeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.directory, "directory", "", "ACME directory URL")
	fs.StringVar(&a.ca, "ca", "/trust/ca.crt", "CA bundle the ACME server's certificate verifies against")
	fs.StringVar(&a.name, "name", "", "DNS name to get a certificate for")
	fs.StringVar(&a.challenge, "challenge", "http-01", "http-01 (answered here, behind the name's Service) or dns-01 (RFC 2136 to -dns-server)")
	fs.StringVar(&a.httpListen, "http-listen", ":8080", "where http-01 is answered")
	fs.StringVar(&a.dns.server, "dns-server", "", "DNS server accepting RFC 2136 updates (host:port)")
	fs.StringVar(&a.dns.zone, "dns-zone", "", "the zone the updates are for")
	fs.StringVar(&a.dns.key, "tsig-key", "", "TSIG key name (the secret: $TSIG_SECRET)")
}

// solvers sets up the chosen challenge.
func (a *acmeFlags) solvers(ctx context.Context) (*responder, *dns01, error) {
	switch a.challenge {
	case "http-01":
		h, err := serveHTTP01(ctx, a.httpListen, a.name)
		return h, nil, err
	case "dns-01":
		d := a.dns
		d.secret = os.Getenv("TSIG_SECRET")
		if d.server == "" || d.zone == "" || d.key == "" || d.secret == "" {
			return nil, nil, errors.New("dns-01 needs -dns-server, -dns-zone, -tsig-key and $TSIG_SECRET")
		}
		return nil, &d, nil
	}
	return nil, nil, fmt.Errorf("unknown challenge %q", a.challenge)
}

// issueCmd obtains one certificate and prints its chain (PEM).
func issueCmd(args []string) error {
	var a acmeFlags
	fs := flag.NewFlagSet("issue", flag.ContinueOnError)
	a.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h, d, err := a.solvers(ctx)
	if err != nil {
		return err
	}
	c, err := newClient(ctx, a.directory, a.ca)
	if err != nil {
		return err
	}
	ders, err := c.issue(ctx, a.name, h, d)
	if err != nil {
		return err
	}
	for _, der := range ders {
		_ = pem.Encode(os.Stdout, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	if p := c.rec.list(); len(p) > 0 {
		return fmt.Errorf("error responses:\n%s", strings.Join(p, "\n"))
	}
	return nil
}

// status is what load and watch report (GET /status, and on exit).
type status struct {
	Done     int64    `json:"done"`
	Target   int64    `json:"target,omitempty"`
	Requests int64    `json:"requests"`
	Failed   int64    `json:"failed,omitempty"`
	Problems []string `json:"problems"`
	Finished bool     `json:"finished"`
}

// serveStatus serves GET /status, and POST /stop calls stop (if not nil).
func serveStatus(listen string, get func() status, stop func()) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(get())
	})
	if stop != nil {
		mux.HandleFunc("POST /stop", func(w http.ResponseWriter, _ *http.Request) {
			stop()
			w.WriteHeader(http.StatusNoContent)
		})
	}
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.ListenAndServe() }()
}

// loadCmd has -clients accounts issue -total certificates for -name
// (http-01), concurrently, each client on its own kept-alive connections;
// with -total 0, until POST /stop (each client finishes its issuance).
func loadCmd(args []string) error {
	var a acmeFlags
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	a.register(fs)
	clients := fs.Int("clients", 4, "concurrent ACME accounts")
	total := fs.Int64("total", 300, "certificates to issue in all (0: until POST /stop)")
	statusListen := fs.String("status-listen", ":8081", "serve progress at /status here")
	linger := fs.Duration("linger", 30*time.Second, "keep serving /status this long after the end")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var cls []*client
	var done, next atomic.Int64
	var finished atomic.Bool
	var mu sync.Mutex
	var failures []string
	report := func() status {
		s := status{Done: done.Load(), Target: *total, Finished: finished.Load()}
		mu.Lock()
		s.Problems = append(s.Problems, failures...)
		for _, c := range cls {
			s.Requests += c.rec.requests.Load()
			s.Problems = append(s.Problems, c.rec.list()...)
		}
		mu.Unlock()
		return s
	}
	var stopped atomic.Bool
	serveStatus(*statusListen, report, func() { stopped.Store(true) })
	h, _, err := a.solvers(ctx)
	if err != nil {
		return err
	}
	for range *clients {
		c, err := newClient(ctx, a.directory, a.ca)
		if err != nil {
			return err
		}
		mu.Lock()
		cls = append(cls, c)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for _, c := range cls {
		wg.Go(func() {
			for !stopped.Load() && (*total == 0 || next.Add(1) <= *total) {
				if _, err := c.issue(ctx, a.name, h, nil); err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	finished.Store(true)
	s := report()
	out, _ := json.Marshal(s)
	fmt.Println(string(out))
	time.Sleep(*linger)
	if len(s.Problems) > 0 || (*total > 0 && s.Done != *total) {
		return fmt.Errorf("%d issued, %d problems", s.Done, len(s.Problems))
	}
	return nil
}

// serveTLSCmd serves HTTPS with a certificate and key (a mounted Secret or
// a podCertificate volume), read again at each handshake so that a rotated
// certificate is served without a restart.
func serveTLSCmd(args []string) error {
	fs := flag.NewFlagSet("serve-tls", flag.ContinueOnError)
	cert := fs.String("cert", "/tls/tls.crt", "certificate chain")
	key := fs.String("key", "/tls/tls.key", "private key")
	listen := fs.String("listen", ":8443", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv := &http.Server{Addr: *listen, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello from a pod with a certificate from kacme\n")
	}), TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(*cert, *key)
		return &c, err
	}}}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServeTLS("", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// fetchCmd GETs -url, verifying the server as -server-name against the
// -ca bundle (until it works or -wait passes), and prints what it saw.
func fetchCmd(args []string) error {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	url := fs.String("url", "", "https URL")
	serverName := fs.String("server-name", "", "name the certificate must be valid for")
	ca := fs.String("ca", "/bundle/ca.crt", "trust bundle")
	wait := fs.Duration("wait", 2*time.Minute, "retry this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, err := transport(*ca)
	if err != nil {
		return err
	}
	t.TLSClientConfig.ServerName = *serverName
	hc := &http.Client{Transport: t, Timeout: 10 * time.Second}
	deadline := time.Now().Add(*wait)
	for {
		r, err := hc.Get(*url)
		if err == nil {
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			leaf := r.TLS.PeerCertificates[0]
			fmt.Printf("%d %s\nverified %s (issuer %q, serial %x) against %s\nnames %s %v\n", r.StatusCode, strings.TrimSpace(string(body)),
				*serverName, leaf.Issuer.CommonName, leaf.SerialNumber, *ca, strings.Join(leaf.DNSNames, ","), leaf.URIs)
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		fmt.Fprintln(os.Stderr, "retrying:", err)
		time.Sleep(time.Second)
	}
}

// watchCmd fetches the directory every -interval until SIGTERM, counting
// answers that are not 200 and failed requests (GET /status).
func watchCmd(args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	url := fs.String("url", "", "directory URL")
	ca := fs.String("ca", "/trust/ca.crt", "CA bundle")
	interval := fs.Duration("interval", 100*time.Millisecond, "between requests")
	statusListen := fs.String("status-listen", ":8081", "serve the counts at /status here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	t, err := transport(*ca)
	if err != nil {
		return err
	}
	rec := &recorder{base: t}
	hc := &http.Client{Transport: rec, Timeout: 5 * time.Second}
	var ok, failed atomic.Int64
	serveStatus(*statusListen, func() status {
		return status{Done: ok.Load(), Failed: failed.Load(), Requests: rec.requests.Load(), Problems: rec.list()}
	}, nil)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for ctx.Err() == nil {
		r, err := hc.Get(*url)
		if err == nil {
			_, _ = io.Copy(io.Discard, r.Body)
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				ok.Add(1)
			} else {
				failed.Add(1)
			}
		} else {
			failed.Add(1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(*interval):
		}
	}
	return nil
}
