package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

// roundRobin is a TLS reverse proxy on the ACME URL that sends each request
// to the next replica (no affinity), counts requests and badNonce answers,
// and keeps one newOrder request that succeeded, for a replay.
type roundRobin struct {
	bmu      sync.Mutex
	backends []*url.URL
	next     atomic.Uint64
	requests atomic.Int64
	badNonce atomic.Int64

	mu       sync.Mutex
	captured *captured
}

type captured struct {
	path string
	body []byte
}

type bodyKey struct{}

func startRoundRobin(t *testing.T, e *clusterEnv, backends []string) *roundRobin {
	t.Helper()
	rr := &roundRobin{}
	for _, b := range backends {
		u, _ := url.Parse(b)
		rr.backends = append(rr.backends, u)
	}
	proxy := &httputil.ReverseProxy{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.pool}, MaxIdleConnsPerHost: 64},
		Rewrite: func(pr *httputil.ProxyRequest) {
			rr.bmu.Lock()
			b := rr.backends[rr.next.Add(1)%uint64(len(rr.backends))]
			rr.bmu.Unlock()
			pr.SetURL(b)
			pr.Out.Host = pr.In.Host // the replicas check the URL against --external-url
			if pr.In.Method == http.MethodPost && strings.HasSuffix(pr.In.URL.Path, "/new-order") {
				body, _ := io.ReadAll(pr.In.Body)
				pr.Out.Body = io.NopCloser(bytes.NewReader(body))
				pr.Out = pr.Out.WithContext(context.WithValue(pr.Out.Context(), bodyKey{}, &captured{path: pr.In.URL.Path, body: body}))
			}
		},
		ModifyResponse: func(resp *http.Response) error {
			rr.requests.Add(1)
			if c, ok := resp.Request.Context().Value(bodyKey{}).(*captured); ok && resp.StatusCode == http.StatusCreated {
				rr.mu.Lock()
				if rr.captured == nil {
					rr.captured = c
				}
				rr.mu.Unlock()
			}
			if resp.StatusCode == http.StatusBadRequest {
				body, _ := io.ReadAll(resp.Body)
				resp.Body = io.NopCloser(bytes.NewReader(body))
				if bytes.Contains(body, []byte("urn:ietf:params:acme:error:badNonce")) {
					rr.badNonce.Add(1)
				}
			}
			return nil
		},
	}
	// The proxy's certificate, from the test CA (clients trust its root).
	var sec corev1.Secret
	if err := e.c.Get(context.Background(), client.ObjectKey{Namespace: clusterNS, Name: "root-ca"}, &sec); err != nil {
		t.Fatal(err)
	}
	auth, err := ca.FromTLSSecret("root", sec.Data)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.ServingCertificate(auth, e.serverURL)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", strings.TrimPrefix(e.serverURL, "https://"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second, TLSConfig: &tls.Config{Certificates: []tls.Certificate{*cert}}}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return rr
}

// drop stops sending to backend, as a Service does once a dead pod's
// endpoint is gone.
func (rr *roundRobin) drop(backend string) {
	rr.bmu.Lock()
	defer rr.bmu.Unlock()
	rr.backends = slices.DeleteFunc(rr.backends, func(u *url.URL) bool { return "https://"+u.Host == backend })
}

// startReplicas runs n server processes sharing nonces, all answering for
// e.serverURL, and waits until each serves its directory.
func startReplicas(t *testing.T, e *clusterEnv, n int) ([]*harness.Process, []string) {
	t.Helper()
	return startReplicasWith(t, e, n, nil)
}

// startReplicasWith is startReplicas with more arguments (extra(i)) for replica i.
func startReplicasWith(t *testing.T, e *clusterEnv, n int, extra func(i int) []string) ([]*harness.Process, []string) {
	t.Helper()
	var procs []*harness.Process
	var backends []string
	for i := range n {
		listen := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
		args := []string{"server", "--namespace", clusterNS,
			"--listen", listen, "--external-url", e.serverURL, "--internal-listen", fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))}
		if extra != nil {
			args = append(args, extra(i)...)
		}
		procs = append(procs, harness.Start(t, []string{"KUBECONFIG=" + e.kc.Server}, e.bin, args...))
		backends = append(backends, "https://"+listen)
	}
	hc := e.httpClient()
	for _, b := range backends {
		kenvtest.WaitFor(t, "replica "+b, func() bool {
			r, err := hc.Get(b + "/acme/directory")
			if err != nil {
				return false
			}
			r.Body.Close()
			return r.StatusCode == http.StatusOK
		})
	}
	return procs, backends
}

// registered is n Go ACME clients with an account each.
func registered(t *testing.T, e *clusterEnv, n int) []*xacme.Client {
	t.Helper()
	var out []*xacme.Client
	for range n {
		out = append(out, e.client(t))
	}
	return out
}

// issueMany has the clients issue each certificates concurrently (http-01
// through resp), counting completed issuances in done. It may run outside
// the test's goroutine.
func issueMany(clients []*xacme.Client, resp *responder, each int, done *atomic.Int64) error {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for c, cl := range clients {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("r%d-%d.localhost", c, i)
				var o *xacme.Order
				err := retryTransient(func() (err error) { o, err = authorizeHTTP01(ctx, cl, resp, name); return err })
				if err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
					return
				}
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{name}}, key)
				err = retryTransient(func() error {
					// A finalize whose answer was lost may have issued: look first.
					if cur, err := cl.GetOrder(ctx, o.URI); err == nil && cur.Status == xacme.StatusValid {
						_, err = cl.FetchCert(ctx, cur.CertURL, true)
						return err
					}
					_, _, err := cl.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
					var ae *xacme.Error
					if errors.As(err, &ae) && ae.ProblemType == "urn:ietf:params:acme:error:orderNotReady" {
						// The Go client retried a finalize whose first answer
						// was a 5xx although the order had been completed (the
						// response, not the write, was lost): look again, as
						// clients that poll the order do.
						if cur, gerr := cl.GetOrder(ctx, o.URI); gerr == nil && cur.Status == xacme.StatusValid {
							_, err = cl.FetchCert(ctx, cur.CertURL, true)
						}
					}
					return err
				})
				if err != nil {
					errs <- fmt.Errorf("%s: finalize: %w", name, err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// retryTransient retries op after a 5xx answer or a transport error, as
// ACME clients do. The Go client retries those itself on every request but
// one: the HEAD newNonce it sends when it holds no nonce.
func retryTransient(op func() error) error {
	var err error
	for attempt := range 6 {
		if err = op(); err == nil {
			return nil
		}
		var ae *xacme.Error
		if errors.As(err, &ae) && ae.StatusCode < 500 {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
	return err
}

// oneCertificatePerOrder checks that no order has two certificates and
// returns how many orders have one.
func oneCertificatePerOrder(t *testing.T, e *clusterEnv) int {
	t.Helper()
	var certs v1alpha1.AcmeCertificateList
	if err := e.c.List(context.Background(), &certs, client.InNamespace(clusterNS)); err != nil {
		t.Fatal(err)
	}
	perOrder := map[string]int{}
	for _, c := range certs.Items {
		perOrder[c.Spec.Order]++
		if perOrder[c.Spec.Order] > 1 {
			t.Fatalf("order %s has %d certificates", c.Spec.Order, perOrder[c.Spec.Order])
		}
	}
	return len(perOrder)
}

// TestClusterModeReplicas (issue 5, Done #1): three server processes behind a
// round-robin proxy, concurrent clients complete 200 issuances, badNonce
// answers stay under 1 % of the requests, a newOrder request replayed to each
// replica is refused with badNonce, and no order has two certificates.
func TestClusterModeReplicas(t *testing.T) {
	e := newClusterEnv(t, false)
	_, backends := startReplicas(t, e, 3)
	hc := e.httpClient()
	rr := startRoundRobin(t, e, backends)
	resp := startResponder(t, e.httpPort)
	const clients, each = 8, 25
	var done atomic.Int64
	if err := issueMany(registered(t, e, clients), resp, each, &done); err != nil {
		t.Fatal(err)
	}
	total, bad := rr.requests.Load(), rr.badNonce.Load()
	t.Logf("%d issuances through 3 replicas: %d requests, %d badNonce", clients*each, total, bad)
	if bad*100 >= total {
		t.Fatalf("badNonce on %d of %d requests (want < 1 %%)", bad, total)
	}

	// The captured newOrder, replayed to every replica directly: badNonce each time.
	rr.mu.Lock()
	replay := rr.captured
	rr.mu.Unlock()
	if replay == nil {
		t.Fatal("no successful newOrder request was captured")
	}
	for _, b := range backends {
		req, _ := http.NewRequest(http.MethodPost, b+replay.path, bytes.NewReader(replay.body))
		req.Host = strings.TrimPrefix(e.serverURL, "https://")
		req.Header.Set("Content-Type", "application/jose+json")
		r, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte("urn:ietf:params:acme:error:badNonce")) {
			t.Fatalf("replayed newOrder at %s: %d %s", b, r.StatusCode, body)
		}
	}

	if n := oneCertificatePerOrder(t, e); n != clients*each {
		t.Fatalf("%d orders with a certificate, want %d", n, clients*each)
	}
}

// TestClusterModeReplicaKilled (issue 5, Done #2): one of three replicas is
// killed with SIGKILL in the middle of the load; every client still completes
// (retrying as RFC 8555 clients do: the Go client retries 5xx answers and
// badNonce, retryTransient the rest), and afterwards no challenge is left
// processing.
func TestClusterModeReplicaKilled(t *testing.T) {
	e := newClusterEnv(t, false)
	procs, backends := startReplicas(t, e, 3)
	rr := startRoundRobin(t, e, backends)
	resp := startResponder(t, e.httpPort)
	const clients, each = 8, 25
	var done atomic.Int64
	errc := make(chan error, 1)
	cls := registered(t, e, clients)
	go func() { errc <- issueMany(cls, resp, each, &done) }()
	for done.Load() < clients*each/3 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := procs[0].Cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	t.Logf("killed replica %s after %d issuances", backends[0], done.Load())
	time.Sleep(2 * time.Second) // requests still reach it (502) until its endpoint is gone
	rr.drop(backends[0])
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := oneCertificatePerOrder(t, e); n != clients*each {
		t.Fatalf("%d orders with a certificate, want %d", n, clients*each)
	}
	noneProcessing(t, e)
	t.Logf("%d requests, %d badNonce", rr.requests.Load(), rr.badNonce.Load())
}

// noneProcessing fails the test if a challenge is left processing.
func noneProcessing(t *testing.T, e *clusterEnv) {
	t.Helper()
	var chs v1alpha1.AcmeChallengeList
	if err := e.c.List(context.Background(), &chs); err != nil {
		t.Fatal(err)
	}
	for _, az := range chs.Items {
		for _, c := range az.Status.Challenges {
			if c.Status == "processing" {
				t.Errorf("authorization %s/%s left with a processing challenge", az.Namespace, az.Name)
			}
		}
	}
}
