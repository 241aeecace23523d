package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"
	"k8s.io/client-go/tools/clientcmd"

	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

// answers records every ACME answer the clients get: 5xx answers with their
// problem type and Retry-After, and the slowest request.
type answers struct {
	mu          sync.Mutex
	unavailable int      // 503 serverInternal with Retry-After
	bad         []string // any other 5xx, or a 5xx without Retry-After
	slowest     time.Duration
	total       atomic.Int64
	next        http.RoundTripper
}

func (a *answers) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := a.next.RoundTrip(r)
	d := time.Since(start)
	a.total.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.slowest = max(a.slowest, d)
	if err != nil || res.StatusCode < 500 {
		return res, err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	var prob struct{ Type string }
	_ = json.Unmarshal(body, &prob)
	what := fmt.Sprintf("%s %s: %d %s (Retry-After %q)", r.Method, r.URL.Path, res.StatusCode, prob.Type, res.Header.Get("Retry-After"))
	if res.StatusCode == http.StatusServiceUnavailable && prob.Type == "urn:ietf:params:acme:error:serverInternal" &&
		res.Header.Get("Retry-After") != "" {
		a.unavailable++
	} else {
		a.bad = append(a.bad, what)
	}
	return res, nil
}

// TestClusterModeAPIServerOutage (issue 5, Done #3): the kacme server reaches
// the API server through a proxy that goes down for 5 s while clients issue.
// Requests that need a write meanwhile get 503 serverInternal with
// Retry-After (not a hang: no request waits longer than the store's request
// timeout; not a crash: the process lives on), and every client completes
// by itself once the API server is back: the Go ACME client retries such
// answers after Retry-After, as cert-manager's does. Nothing is left
// processing and no order has two certificates.
func TestClusterModeAPIServerOutage(t *testing.T) {
	e := newClusterEnv(t, false)
	// The server's kubeconfig, pointed at the proxy.
	cfg, err := clientcmd.LoadFromFile(e.kc.Server)
	if err != nil {
		t.Fatal(err)
	}
	var target string
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			t.Fatal(err)
		}
		target = u.Host
	}
	px := harness.StartProxy(t, target)
	for _, c := range cfg.Clusters {
		c.Server = "https://" + px.Addr
	}
	kubeconfig := filepath.Join(t.TempDir(), "server-via-proxy.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	server := harness.Start(t, []string{"KUBECONFIG=" + kubeconfig}, e.bin, "server", "--namespace", clusterNS,
		"--listen", e.serverURL[len("https://"):], "--external-url", e.serverURL)
	rec := &answers{next: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool}}}
	hc := &http.Client{Transport: rec}
	kenvtest.WaitFor(t, "the ACME server", func() bool {
		r, err := hc.Get(e.serverURL + "/acme/directory")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	})
	resp := startResponder(t, e.httpPort)
	const clients, each = 4, 30
	var cls []*xacme.Client
	for range clients {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		cl := &xacme.Client{Key: key, DirectoryURL: e.serverURL + "/acme/directory", HTTPClient: hc}
		if _, err := cl.Register(context.Background(), &xacme.Account{}, xacme.AcceptTOS); err != nil {
			t.Fatal(err)
		}
		cls = append(cls, cl)
	}
	var done atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- issueMany(cls, resp, each, &done) }()
	kenvtest.WaitFor(t, "issuances under load", func() bool { return done.Load() >= 10 })
	px.Down()
	before := done.Load()
	t.Logf("API server unreachable after %d issuances", before)
	time.Sleep(5 * time.Second)
	if err := px.Up(); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server reachable again; %d issuances completed while it was not (the overlay and cache answer reads)", done.Load()-before)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("issuance did not resume: %d of %d done", done.Load(), clients*each)
	}
	if server.Exited() {
		t.Fatal("the server process exited")
	}
	rec.mu.Lock()
	t.Logf("%d requests; %d answered 503 serverInternal with Retry-After; slowest %s", rec.total.Load(), rec.unavailable, rec.slowest)
	if rec.unavailable == 0 {
		t.Error("no request was answered 503 while the API server was unreachable")
	}
	if len(rec.bad) > 0 {
		t.Errorf("other 5xx answers: %q", rec.bad)
		for _, l := range strings.Split(server.Output(), "\n") {
			if strings.Contains(l, `"internal error"`) {
				t.Log(l)
			}
		}
	}
	if rec.slowest > 15*time.Second {
		t.Errorf("a request took %s", rec.slowest)
	}
	rec.mu.Unlock()
	if n := oneCertificatePerOrder(t, e); n < clients*each {
		t.Fatalf("%d orders with a certificate, want at least %d", n, clients*each)
	}
	noneProcessing(t, e)
}
