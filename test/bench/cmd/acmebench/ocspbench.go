package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	xocsp "golang.org/x/crypto/ocsp"
)

// The OCSP benchmark: kacme standalone with spec.ocsp on its CA and the
// plain-HTTP PKI listener, ocspCerts issued certificates, then clients that
// POST OCSP requests for random ones of them as fast as they can.
const ocspCerts = 500

// ocspLevel is one measured level of the OCSP benchmark.
type ocspLevel struct {
	mode        string // "cached" (no nonce) or "nonce"
	concurrency int
	responses   int
	errors      int
	withNonce   int // responses that echoed the request's nonce
	latencies   []time.Duration
	measured    time.Duration
	serverCPU   float64 // seconds per response
	serverRSS   float64
	firstErr    string
}

func (l ocspLevel) throughput() float64 { return float64(l.responses) / l.measured.Seconds() }

func (l ocspLevel) pct(q float64) time.Duration {
	if len(l.latencies) == 0 {
		return 0
	}
	return l.latencies[int(float64(len(l.latencies)-1)*q)]
}

type ocspResult struct {
	version string
	levels  []ocspLevel
}

var oidOCSPNonce = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}

// ocspRequests builds one OCSP request per certificate: without a nonce,
// and (nonce) with a fresh 16-byte nonce, as openssl ocsp sends by default.
func ocspRequest(leaf, issuer *x509.Certificate, nonce bool) ([]byte, []byte, error) {
	der, err := xocsp.CreateRequest(leaf, issuer, nil)
	if err != nil || !nonce {
		return der, nil, err
	}
	var req struct {
		TBS struct {
			List       []asn1.RawValue
			Extensions []pkix.Extension `asn1:"explicit,tag:2,optional"`
		}
	}
	if _, err := asn1.Unmarshal(der, &req); err != nil {
		return nil, nil, err
	}
	n := make([]byte, 16)
	_, _ = rand.Read(n)
	v, _ := asn1.Marshal(n)
	req.TBS.Extensions = []pkix.Extension{{Id: oidOCSPNonce, Value: v}}
	der, err = asn1.Marshal(req)
	return der, v, err
}

// benchOCSP runs the OCSP benchmark at each concurrency level, without and
// with nonces.
func benchOCSP(bin string, resp *responder, httpPort int, levels []int, warmup, measure time.Duration) (*ocspResult, error) {
	dir, _ := os.MkdirTemp("", "acmebench-ocsp")
	defer func() { _ = os.RemoveAll(dir) }()
	pkiPort := freePort()
	s, err := startKacmeWith(bin, dir, httpPort, "  ocsp: {}\n", "--http-listen", fmt.Sprintf("127.0.0.1:%d", pkiPort))
	if err != nil {
		return nil, err
	}
	defer s.stop()
	fmt.Fprintf(os.Stderr, "ocsp: issuing %d certificates...\n", ocspCerts)
	var leaves []*x509.Certificate
	var issuer *x509.Certificate
	hc := s.httpClient(8)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for range 8 {
		wg.Go(func() {
			cl, err := s.register(context.Background(), hc)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			csr := benchCSR()
			for {
				mu.Lock()
				done := len(leaves) >= ocspCerts || firstErr != nil
				mu.Unlock()
				if done {
					return
				}
				chain, err := flowChain(context.Background(), cl, resp, csr, &s.orders)
				mu.Lock()
				if err != nil {
					firstErr = err
				} else if leaf, err1 := x509.ParseCertificate(chain[0]); err1 == nil && len(chain) > 1 {
					leaves = append(leaves, leaf)
					issuer, _ = x509.ParseCertificate(chain[1])
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("ocsp: issue: %w", firstErr)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/ocsp/bench", pkiPort)
	if len(leaves[0].OCSPServer) > 0 {
		return nil, fmt.Errorf("ocsp: the default profile has no includeOCSPURL, yet certificates name %v", leaves[0].OCSPServer)
	}
	plain := make([][]byte, len(leaves))
	for i, leaf := range leaves {
		if plain[i], _, err = ocspRequest(leaf, issuer, false); err != nil {
			return nil, err
		}
	}
	res := &ocspResult{version: s.version}
	for _, mode := range []string{"cached", "nonce"} {
		for _, c := range levels {
			fmt.Fprintf(os.Stderr, "ocsp %s: %d concurrent clients...\n", mode, c)
			l := runOCSPLevel(s, url, leaves, plain, issuer, mode, c, warmup, measure)
			fmt.Fprintf(os.Stderr, "  %d responses, %d errors, %.0f/s, p50 %v, p99 %v %s\n", l.responses, l.errors, l.throughput(),
				l.pct(0.5), l.pct(0.99), l.firstErr)
			res.levels = append(res.levels, l)
		}
	}
	return res, nil
}

// runOCSPLevel has c clients POST requests for random certificates for
// warmup+measure and measures the second part; every response is parsed
// and checked (signature, serial, status good, and the nonce when sent).
func runOCSPLevel(s *server, url string, leaves []*x509.Certificate, plain [][]byte, issuer *x509.Certificate, mode string, c int,
	warmup, measure time.Duration) ocspLevel {
	l := ocspLevel{mode: mode, concurrency: c, measured: measure}
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	measureFrom, stopAt := start.Add(warmup), start.Add(warmup+measure)
	var cpuBefore float64
	cpuTaken := false
	for range c {
		wg.Go(func() {
			for time.Now().Before(stopAt) {
				i := mrand.IntN(len(leaves))
				leaf, der := leaves[i], plain[i]
				var nonce []byte
				var err error
				if mode == "nonce" {
					der, nonce, err = ocspRequest(leaf, issuer, true)
				}
				t0 := time.Now()
				if err == nil {
					err = checkOCSP(hc, url, der, nonce, leaf, issuer)
				}
				end := time.Now()
				mu.Lock()
				if !cpuTaken && !t0.Before(measureFrom) {
					cpuBefore, cpuTaken = pidCPU(s.pid()), true
				}
				if !end.Before(measureFrom) && end.Before(stopAt) {
					switch {
					case err == errNoNonce:
						l.responses++
						l.latencies = append(l.latencies, end.Sub(t0))
					case err != nil:
						l.errors++
						if l.firstErr == "" {
							l.firstErr = err.Error()
						}
					default:
						l.responses++
						if nonce != nil {
							l.withNonce++
						}
						l.latencies = append(l.latencies, end.Sub(t0))
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if l.responses > 0 && cpuTaken {
		l.serverCPU = (pidCPU(s.pid()) - cpuBefore) / float64(l.responses)
	}
	l.serverRSS = rssMiB(s.pid())
	slices.Sort(l.latencies)
	return l
}

// errNoNonce: a good response that left the nonce out (the server's signing budget was spent).
var errNoNonce = fmt.Errorf("no nonce in the response")

func checkOCSP(hc *http.Client, url string, der, nonce []byte, leaf, issuer *x509.Certificate) error {
	r, err := hc.Post(url, "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return err
	}
	if r.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", r.StatusCode)
	}
	got, err := xocsp.ParseResponseForCert(body, leaf, issuer)
	if err != nil {
		return err
	}
	if got.Status != xocsp.Good || got.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		return fmt.Errorf("status %d for serial %x", got.Status, got.SerialNumber)
	}
	if nonce != nil && !bytes.Contains(got.TBSResponseData, nonce) {
		return errNoNonce
	}
	return nil
}

// renderOCSP is the report's OCSP section.
func renderOCSP(r *ocspResult) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n## OCSP responder\n\n")
	fmt.Fprintf(&b, "kacme %s standalone with `spec.ocsp: {}` on its P-256 intermediate (responses signed by the CA key, 12 h\n"+
		"validity) and the plain-HTTP PKI listener; %d certificates issued first. Each client POSTs an OCSP request for a\n"+
		"random one of them, one at a time over keep-alive connections, and checks every response (signature against the\n"+
		"issuer, serial, status good). *cached*: requests without a nonce, answered from the responses kacme signed (once per\n"+
		"certificate and state, again after half the validity); *nonce*: each request carries a fresh 16-byte nonce, as\n"+
		"`openssl ocsp` sends by default, which costs a signature per response up to kacme's budget of 500 per second and\n"+
		"is left out past it (the *nonce echoed* column). Server CPU per response is the server process's user+system time;\n"+
		"RSS at the end of the level. Neither Pebble nor step-ca runs an OCSP responder, so there is no peer row.\n\n", r.version, ocspCerts)
	b.WriteString("| mode | clients | responses | errors | responses/s | p50 | p90 | p99 | nonce echoed | server CPU / response | server RSS |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range r.levels {
		echoed := "—"
		if l.mode == "nonce" && l.responses > 0 {
			echoed = fmt.Sprintf("%.0f %%", 100*float64(l.withNonce)/float64(l.responses))
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %.0f | %s | %s | %s | %s | %.0f µs | %s |\n", l.mode, l.concurrency, l.responses, l.errors,
			l.throughput(), us(l.pct(0.5)), us(l.pct(0.9)), us(l.pct(0.99)), echoed, l.serverCPU*1e6, mib(l.serverRSS))
	}
	return b.String()
}

func us(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
