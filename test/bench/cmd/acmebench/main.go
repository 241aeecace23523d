// Command acmebench drives full ACME flows (new order, http-01 validation
// against a real responder on loopback, finalize, download) with the
// golang.org/x/crypto/acme client at several concurrency levels against
// kacme standalone, Pebble and step-ca in one run, and against kacme in
// cluster mode on a real kube-apiserver + etcd (counting the API requests it
// makes per issuance), and writes throughput and latency percentiles to a
// Markdown report. Run it with "make bench".
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	xacme "golang.org/x/crypto/acme"
)

// responder answers http-01 for every server under test.
type responder struct{ keys sync.Map }

func (r *responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	tok := strings.TrimPrefix(req.URL.Path, "/.well-known/acme-challenge/")
	if v, ok := r.keys.Load(tok); ok {
		_, _ = io.WriteString(w, v.(string))
		return
	}
	http.NotFound(w, req)
}

type levelResult struct {
	concurrency int
	flows       int
	errors      int
	elapsed     time.Duration
	latencies   []time.Duration
	firstErr    string
	// allFlows counts every completed flow, warm-up included: the window
	// the API requests were counted over.
	allFlows int
	// API requests to the Kubernetes API server per issuance (cluster mode).
	apiWrites, apiReads float64
	apiCounted          bool
	// allWrites, allReads: every client's API requests per issuance (the
	// controller's too), from the API server's own metrics.
	allWrites, allReads float64
	// cores is the CPU each process used during the level, in cores (cluster mode).
	cores map[string]float64
	// serverCPU and clientCPU are CPU seconds per issuance of the server
	// process and of this process (the clients and the http-01 responder),
	// over every flow since registration; serverRSS is the server's resident
	// memory at the end of the level, in MiB.
	serverCPU, clientCPU, serverRSS float64
	// hostSpeed is the host's speed just before the level (hostSpeed()).
	hostSpeed float64
	// idleCores is the CPU the other servers, waiting for their turn, used
	// during the level, in cores.
	idleCores float64
}

// hostSpeed measures how fast this host runs fixed work right now: P-256
// ECDSA signatures per second on one goroutine over about 100 ms. The
// machine's speed drifts (other tenants, CPU steal); the report shows it
// per level, so a ratio between levels run at different speeds shows.
func hostSpeed() float64 {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return 0
	}
	digest := make([]byte, 32)
	start, n := time.Now(), 0
	for time.Since(start) < 100*time.Millisecond {
		if _, err := ecdsa.SignASN1(rand.Reader, key, digest); err != nil {
			return 0
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

func (l levelResult) throughput() float64 { return float64(l.flows) / l.elapsed.Seconds() }

func (l levelResult) pct(p float64) time.Duration {
	if len(l.latencies) == 0 {
		return 0
	}
	i := int(float64(len(l.latencies)-1) * p)
	return l.latencies[i]
}

func main() {
	stopOnSignal()
	kacmeBin := flag.String("kacme", "bin/kacme", "kacme binary")
	pebbleBin := flag.String("pebble", "", "pebble binary")
	stepBin := flag.String("step-ca", "", "step-ca binary")
	stepCLI := flag.String("step", "", "step CLI binary (step ca init configures step-ca)")
	out := flag.String("out", "docs/benchmarks.md", "report file")
	levelsFlag := flag.String("levels", "1,4,8,16,32,64,128", "concurrency levels")
	duration := flag.Duration("duration", 10*time.Second, "measuring time per level")
	warmup := flag.Duration("warmup", 2*time.Second, "unmeasured warm-up per level")
	only := flag.String("targets", "kacme,pebble,step-ca,kacme-cluster,pod-certificates,ocsp", "what to run (the report needs all six)")
	podRates := flag.String("pod-cert-rates", "10,25,50,100,0", "offered PodCertificateRequests per second (0: as fast as possible)")
	podDuration := flag.Duration("pod-cert-duration", 10*time.Second, "how long each pod certificate level offers requests")
	dashSamples := flag.Int("dashboard-samples", 20, "timed loads per dashboard page (0: skip the dashboard benchmark)")
	scaleN := flag.Int("scale", 0, "stored-issuances benchmark: store this many issuances in kacme standalone and measure it (0: skip; make bench-scale: 100000)")
	scaleSteady := flag.Duration("scale-steady", 10*time.Minute, "how long the stored-issuances benchmark issues at -scale-rate on the full store")
	scaleRate := flag.Float64("scale-rate", 20, "issuances per second offered in the stored-issuances benchmark's steady phase")
	scaleModes := flag.String("scale-modes", "standalone,cluster", "modes the stored-issuances benchmark runs (cluster needs KUBEBUILDER_ASSETS)")
	flag.BoolVar(&profileAPIServer, "scale-apiserver-profile", false, "cluster-mode stored-issuances benchmark: profile kube-apiserver's CPU in both 8-client minutes and report where the difference goes")
	profileClients := flag.Int("profile-clients", 32, "profile kacme standalone in one more, unreported level of this many clients (0: skip)")
	flag.StringVar(&kacmeExtraArgs, "kacme-args", "", "extra flags for kacme standalone and kacme server (e.g. --debug-addr 127.0.0.1:6060)")
	flag.Parse()
	var levels []int
	for _, s := range strings.Split(*levelsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("bad -levels %q", *levelsFlag))
		}
		levels = append(levels, n)
	}
	// step-ca always validates http-01 on port 80, so every server does here.
	const httpPort = 80
	resp := &responder{}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
	if err != nil {
		fatal(fmt.Errorf("listen on 127.0.0.1:80 for http-01 (run as root): %w", err))
	}
	go func() { _ = http.Serve(ln, resp) }()

	type target struct {
		name  string
		start func(dir string) (*server, error)
	}
	// The first three are the standalone peers, measured side by side.
	targets := []target{
		{"kacme", func(d string) (*server, error) { return startKacme(*kacmeBin, d, httpPort) }},
		{"pebble", func(d string) (*server, error) { return startPebble(*pebbleBin, d, httpPort) }},
		{"step-ca", func(d string) (*server, error) { return startStepCA(*stepBin, *stepCLI, d) }},
		{"kacme-cluster", func(d string) (*server, error) { return startKacmeCluster(*kacmeBin, d, httpPort) }},
	}
	results := map[string][]levelResult{}
	versions := map[string]string{}
	dashboards := map[string]*dashboardResult{}
	selected := func(name string) bool { return strings.Contains(","+*only+",", ","+name+",") }
	// measure runs one level against s, with the host's speed just before.
	measure := func(name string, s *server, c int) {
		speed := hostSpeed()
		fmt.Fprintf(os.Stderr, "%s: %d concurrent clients (host: %.0f P-256 signatures/s on one core)...\n", name, c, speed)
		r := runLevel(s, resp, c, *warmup, *duration)
		r.hostSpeed = speed
		fmt.Fprintf(os.Stderr, "  %d flows, %d errors, %.1f flows/s, p50 %v, p99 %v %s\n", r.flows, r.errors, r.throughput(),
			r.pct(0.5).Round(time.Millisecond), r.pct(0.99).Round(time.Millisecond), r.firstErr)
		if r.apiCounted {
			fmt.Fprintf(os.Stderr, "  API server: %.2f writes and %.2f reads per issuance (all clients: %.2f and %.2f)\n",
				r.apiWrites, r.apiReads, r.allWrites, r.allReads)
		}
		results[name] = append(results[name], r)
	}
	type started struct {
		name string
		s    *server
		dir  string
	}
	start := func(tg target) started {
		dir, _ := os.MkdirTemp("", "acmebench-"+tg.name)
		s, err := tg.start(dir)
		if err != nil {
			fatal(err)
		}
		versions[tg.name] = s.version
		return started{tg.name, s, dir}
	}
	finish := func(st started) {
		if *dashSamples > 0 && st.s.dashboardToken != nil {
			d, err := benchDashboard(st.s, resp, *dashSamples)
			if err != nil {
				st.s.stop()
				fatal(err)
			}
			dashboards[st.name] = d
		}
		st.s.stop()
		_ = os.RemoveAll(st.dir)
	}
	// The standalone servers run side by side, level by level: at each
	// level kacme and step-ca run back to back (which one first alternates)
	// and Pebble next to them, so a change in the host's speed during the
	// run reaches both sides of a ratio alike instead of whichever server
	// ran in the slow minutes. The idle servers wait between their levels.
	var peers []started
	for _, i := range []int{0, 2, 1} { // kacme, step-ca, Pebble
		if tg := targets[i]; selected(tg.name) {
			peers = append(peers, start(tg))
		}
	}
	for i, c := range levels {
		order := slices.Clone(peers)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, st := range order {
			// What the waiting servers use meanwhile is not on anybody's
			// row: it is reported, so that it shows if it is not ~0.
			others := func() (sum float64) {
				for _, o := range peers {
					if o.s != st.s {
						sum += pidCPU(o.s.pid())
					}
				}
				return sum
			}
			before, t0 := others(), time.Now()
			measure(st.name, st.s, c)
			rs := results[st.name]
			rs[len(rs)-1].idleCores = (others() - before) / time.Since(t0).Seconds()
			fmt.Fprintf(os.Stderr, "  the waiting servers used %.3f cores meanwhile\n", rs[len(rs)-1].idleCores)
		}
	}
	for _, st := range peers {
		finish(st)
	}
	if tg := targets[3]; selected(tg.name) {
		st := start(tg)
		for _, c := range levels {
			measure(st.name, st.s, c)
		}
		finish(st)
	}
	var pods *podCertResult
	if selected("pod-certificates") {
		var rates []int
		for _, f := range strings.Split(*podRates, ",") {
			r, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || r < 0 {
				fatal(fmt.Errorf("bad -pod-cert-rates %q", *podRates))
			}
			rates = append(rates, r)
		}
		if pods, err = podCertBench(*kacmeBin, rates, *podDuration); err != nil {
			fatal(err)
		}
	}
	var ocspRes *ocspResult
	if selected("ocsp") {
		if ocspRes, err = benchOCSP(*kacmeBin, resp, httpPort, []int{1, 8, 32, 128}, *warmup, *duration); err != nil {
			fatal(err)
		}
	}
	var prof *profileResult
	if *profileClients > 0 && selected("kacme") {
		if prof, err = benchProfile(*kacmeBin, resp, httpPort, *profileClients, *warmup, *duration); err != nil {
			fatal(err)
		}
	}
	var scale []*scaleResult
	if *scaleN > 0 {
		for _, mode := range strings.Split(*scaleModes, ",") {
			var r *scaleResult
			switch mode = strings.TrimSpace(mode); mode {
			case "standalone":
				r, err = benchScale(*kacmeBin, resp, *scaleN, *scaleSteady, *scaleRate, *dashSamples)
			case "cluster":
				r, err = benchScaleCluster(*kacmeBin, resp, *scaleN, *scaleSteady, *scaleRate, *dashSamples)
			default:
				err = fmt.Errorf("bad -scale-modes %q: standalone, cluster", *scaleModes)
			}
			if err != nil {
				fatal(err)
			}
			scale = append(scale, r)
		}
		if versions["kacme"] == "" {
			out, _ := exec.Command(*kacmeBin, "version").Output()
			versions["kacme"] = strings.TrimPrefix(strings.TrimSpace(string(out)), "kacme ")
		}
	}
	if len(results) == 0 && len(scale) > 0 { // make bench-scale: its own report
		report := renderScale(scale, versions["kacme"])
		if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
			fatal(err)
		}
		fmt.Print(report)
		return
	}
	report := render(levels, results, versions, *duration) + renderDashboard(dashboards, versions) + renderPodCerts(pods) + renderOCSP(ocspRes) + renderProfile(prof)
	if len(scale) > 0 {
		report += "\n" + renderScale(scale, versions["kacme"])
	} else {
		report += scalePointer
	}
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		fatal(err)
	}
	fmt.Print(report)
}

// scalePointer ends a report without the stored-issuances benchmark.
const scalePointer = "\n## 100,000 stored issuances\n\n`make bench-scale` stores 100,000 issuances in kacme standalone and in cluster mode and reports the\n" +
	"memory of server (and controller) after a restart and after 10 minutes of steady issuance, the dashboard's page times\n" +
	"and the issuance rate at that size: [benchmarks-scale.md](benchmarks-scale.md) (a separate run of about an hour).\n"

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "acmebench:", err)
	runExitFns()
	os.Exit(1)
}

// runLevel runs c workers; each registers an account, then repeats full flows.
func runLevel(s *server, resp *responder, c int, warmup, measure time.Duration) levelResult {
	return runLevelAt(s, resp, c, warmup, measure, nil)
}

// runLevelAt is runLevel with the flows' starts limited to lim's rate (nil:
// as fast as the c clients go): a fixed offered load.
func runLevelAt(s *server, resp *responder, c int, warmup, measure time.Duration, lim *rate.Limiter) levelResult {
	return runLevelDuring(s, resp, c, warmup, measure, lim, nil)
}

// runLevelDuring is runLevelAt that also runs during (when not nil) once
// every client is registered, with the start and length of the measuring
// window; the level ends when during has returned too.
func runLevelDuring(s *server, resp *responder, c int, warmup, measure time.Duration, lim *rate.Limiter,
	during func(from time.Time, measure time.Duration)) levelResult {
	hc := s.httpClient(c)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	res := levelResult{concurrency: c}
	var errs atomic.Int64
	start := time.Now()
	measureFrom, stopAt := start.Add(warmup), start.Add(warmup+measure)
	ready := make(chan struct{})
	var registered sync.WaitGroup
	registered.Add(c)
	for i := 0; i < c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := s.register(ctx, hc)
			registered.Done()
			if err != nil {
				mu.Lock()
				res.firstErr = "register: " + err.Error()
				mu.Unlock()
				errs.Add(1)
				return
			}
			<-ready
			csr := benchCSR()
			for time.Now().Before(stopAt) {
				if lim != nil {
					if err := lim.Wait(ctx); err != nil || !time.Now().Before(stopAt) {
						break
					}
				}
				t0 := time.Now()
				err := flow(ctx, cl, resp, csr, &s.orders)
				end := time.Now()
				d := end.Sub(t0)
				mu.Lock()
				if err == nil {
					res.allFlows++
				}
				// A flow belongs to the level by when it ended: a success
				// counts when it ends inside the measuring window, a failure
				// whenever it ends after the warm-up (so flows that hang
				// past the window show up as errors, not as nothing).
				if end.Before(measureFrom) {
					mu.Unlock()
					continue
				}
				if err != nil {
					res.errors++
					if res.firstErr == "" {
						res.firstErr = err.Error()
					}
				} else if end.Before(stopAt) {
					res.flows++
					res.latencies = append(res.latencies, d)
				}
				mu.Unlock()
			}
		}()
	}
	registered.Wait()
	// Registration is not measured: restart the clock once every client has
	// an account, and count API requests and CPU from here.
	serverBefore, clientBefore := pidCPU(s.pid()), selfCPU()
	var apiBefore, allBefore, cpuBefore map[string]float64
	if s.metricsURL != "" {
		var err error
		if apiBefore, err = apiRequests(s.metricsURL); err != nil {
			fatal(err)
		}
		if allBefore, err = s.apiServerRequests(); err != nil {
			fatal(err)
		}
		cpuBefore = procCPU(s.processes)
		cpuBefore["load generator"] = selfCPU()
	}
	start = time.Now()
	measureFrom, stopAt = start.Add(warmup), start.Add(warmup+measure)
	close(ready)
	if during != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			during(measureFrom, measure)
		}()
	}
	wg.Wait()
	if res.allFlows > 0 {
		res.serverCPU = (pidCPU(s.pid()) - serverBefore) / float64(res.allFlows)
		res.clientCPU = (selfCPU() - clientBefore) / float64(res.allFlows)
	}
	res.serverRSS = rssMiB(s.pid())
	if apiBefore != nil {
		after, err := apiRequests(s.metricsURL)
		if err != nil {
			fatal(err)
		}
		res.apiWrites, res.apiReads = apiPerFlow(apiBefore, after, res.allFlows)
		res.apiCounted = true
		allAfter, err := s.apiServerRequests()
		if err != nil {
			fatal(err)
		}
		res.allWrites, res.allReads = apiPerFlow(allBefore, allAfter, res.allFlows)
		cpuAfter := procCPU(s.processes)
		cpuAfter["load generator"] = selfCPU()
		wall := time.Since(start).Seconds()
		res.cores = map[string]float64{}
		for name, v := range cpuAfter {
			res.cores[name] = (v - cpuBefore[name]) / wall
		}
	}
	res.elapsed = measure
	res.errors += int(errs.Load())
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	return res
}

// httpClient is the ACME clients' HTTP client for c concurrent clients.
func (s *server) httpClient(c int) *http.Client {
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.roots}, MaxIdleConnsPerHost: c + 4}}
}

// register creates an ACME account with a new P-256 key.
func (s *server) register(ctx context.Context, hc *http.Client) (*xacme.Client, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &xacme.Client{Key: key, DirectoryURL: s.directory, HTTPClient: hc, UserAgent: "kacme-acmebench"}
	_, err := cl.Register(ctx, &xacme.Account{}, xacme.AcceptTOS)
	return cl, err
}

// benchCSR is a CSR for the flows' identifier, 127.0.0.1, with a new P-256 key.
func benchCSR() []byte {
	certKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}, certKey)
	return csr
}

// flow is one full issuance: order → authz → http-01 → finalize → download.
// orders counts the orders the server created.
func flow(ctx context.Context, cl *xacme.Client, resp *responder, csr []byte, orders *atomic.Int64) error {
	_, err := flowChain(ctx, cl, resp, csr, orders)
	return err
}

// flowChain is flow, returning the certificate chain (DER, leaf first).
func flowChain(ctx context.Context, cl *xacme.Client, resp *responder, csr []byte, orders *atomic.Int64) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	o, err := cl.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "ip", Value: "127.0.0.1"}})
	if err != nil {
		return nil, fmt.Errorf("order: %w", err)
	}
	orders.Add(1)
	for _, u := range o.AuthzURLs {
		z, err := cl.GetAuthorization(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("authz: %w", err)
		}
		if z.Status == xacme.StatusValid {
			continue
		}
		var ch *xacme.Challenge
		for _, c := range z.Challenges {
			if c.Type == "http-01" {
				ch = c
			}
		}
		if ch == nil {
			return nil, errors.New("no http-01 challenge")
		}
		ka, _ := cl.HTTP01ChallengeResponse(ch.Token)
		resp.keys.Store(ch.Token, ka)
		if _, err := cl.Accept(ctx, ch); err != nil {
			return nil, fmt.Errorf("accept: %w", err)
		}
		_, err = cl.WaitAuthorization(ctx, u)
		resp.keys.Delete(ch.Token)
		if err != nil {
			return nil, fmt.Errorf("wait authz: %w", err)
		}
	}
	ready, err := cl.WaitOrder(ctx, o.URI)
	if err != nil {
		return nil, fmt.Errorf("wait order: %w", err)
	}
	finalize := ready.FinalizeURL
	if finalize == "" {
		finalize = o.FinalizeURL
	}
	ders, _, err := cl.CreateOrderCert(ctx, finalize, csr, true)
	if err != nil {
		// Pebble answers finalize without Location, so x/crypto/acme cannot
		// poll a "processing" order by itself; poll the known order URL.
		if !strings.Contains(err.Error(), `unsupported protocol scheme ""`) {
			return nil, fmt.Errorf("finalize: %w", err)
		}
		done, err := cl.WaitOrder(ctx, o.URI)
		if err != nil {
			return nil, fmt.Errorf("wait issuance: %w", err)
		}
		if ders, err = cl.FetchCert(ctx, done.CertURL, true); err != nil {
			return nil, fmt.Errorf("fetch: %w", err)
		}
	}
	return ders, nil
}

func render(levels []int, results map[string][]levelResult, versions map[string]string, d time.Duration) string {
	var b strings.Builder
	cpu := "unknown"
	if out, err := exec.Command("sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").Output(); err == nil {
		cpu = strings.TrimSpace(string(out))
	}
	fmt.Fprintf(&b, "# Benchmarks\n\nGenerated by `make bench` (test/bench/cmd/acmebench) on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "Machine: %d CPUs (%s), %s/%s, %s. Every server and the load generator share this machine.\n\n", runtime.NumCPU(), cpu, runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(&b, "A flow is one full issuance with golang.org/x/crypto/acme: new order for the ip identifier 127.0.0.1, fetch the\n"+
		"authorization, answer http-01 (validated for real against a responder on 127.0.0.1:80), wait for the authorization,\n"+
		"finalize with a P-256 CSR and download the chain. Each client registers its account before measuring starts. Each level\n"+
		"runs a warm-up, then %s of measurement; a flow counts when it ends inside the measurement (a failure ending later\n"+
		"counts as an error: the client's timeout is 60 s); latency is per flow.\n\n", d)
	fmt.Fprintf(&b, "Servers: kacme %s (standalone, bbolt store, P-256 intermediate CA); Pebble %s (in-memory, `PEBBLE_VA_NOSLEEP=1`, no random nonce rejection);\n"+
		"step-ca %s as `step ca init --acme` configures it (its default badgerv2 store, ACME provisioner, P-256 intermediate).\n\n", versions["kacme"], versions["pebble"], versions["step-ca"])
	b.WriteString("Server CPU is the server process's user+system time (from /proc) per issuance; client CPU is this load generator's\n" +
		"(the ACME clients and the http-01 responder); both over every flow from registration to the end of the level. RSS is\n" +
		"the server's resident memory at the end of the level.\n\n" +
		"The three servers run side by side, level by level: at each level kacme and step-ca run back to back (which one\n" +
		"first alternates from level to level) and Pebble next to them, so that a change in the host's speed during the run\n" +
		"reaches both sides of a ratio alike. The host column is how fast the machine ran fixed work just before the level\n" +
		"(P-256 ECDSA signatures per second on one core, over 100 ms): this machine's speed drifts, by 2× at times.\n\n")
	b.WriteString("| server | clients | flows | errors | flows/s | p50 | p90 | p99 | server CPU / issuance | client CPU / issuance | server RSS | host |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	names := []string{"kacme", "pebble", "step-ca"}
	peak := map[string]float64{}
	median8 := map[string]time.Duration{}
	rate8, cpu32 := map[string]float64{}, map[string]float64{}
	peakHost, host8 := map[string]float64{}, map[string]float64{}
	var speeds []float64
	maxIdle := 0.0
	for _, n := range names {
		for _, r := range results[n] {
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %.1f | %s | %s | %s | %.2f ms | %.2f ms | %s | %.0f/s |\n", n, r.concurrency, r.flows, r.errors, r.throughput(),
				ms(r.pct(0.5)), ms(r.pct(0.9)), ms(r.pct(0.99)), r.serverCPU*1000, r.clientCPU*1000, mib(r.serverRSS), r.hostSpeed)
			if r.throughput() > peak[n] {
				peak[n], peakHost[n] = r.throughput(), r.hostSpeed
			}
			if r.concurrency == 8 {
				median8[n], rate8[n], host8[n] = r.pct(0.5), r.throughput(), r.hostSpeed
			}
			if r.hostSpeed > 0 {
				speeds = append(speeds, r.hostSpeed)
			}
			maxIdle = max(maxIdle, r.idleCores)
			if r.concurrency == 32 {
				cpu32[n] = r.serverCPU
			}
		}
	}
	b.WriteString("\n## Summary\n\n| server | peak flows/s | flows/s at 8 clients | median latency at 8 clients | server CPU / issuance at 32 clients |\n|---|---:|---:|---:|---:|\n")
	for _, n := range names {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %s | %.2f ms |\n", n, peak[n], rate8[n], ms(median8[n]), cpu32[n]*1000)
	}
	if peak["step-ca"] > 0 {
		fmt.Fprintf(&b, "\nkacme peak throughput is **%.2f×** step-ca's (target ≥ 2.5×)", peak["kacme"]/peak["step-ca"])
		if rate8["step-ca"] > 0 {
			fmt.Fprintf(&b, "; at 8 clients %.2f×", rate8["kacme"]/rate8["step-ca"])
		}
		if median8["step-ca"] > 0 && median8["kacme"] > 0 {
			fmt.Fprintf(&b, ", and kacme's median latency is %s against step-ca's %s (target: below)", ms(median8["kacme"]), ms(median8["step-ca"]))
		}
		fmt.Fprintf(&b, ". kacme's server CPU per issuance at 32 clients: %.2f ms (target ≤ 2.5 ms).\n", cpu32["kacme"]*1000)
		if len(speeds) > 0 {
			fmt.Fprintf(&b, "\nHost speed over these levels: %.0f to %.0f P-256 signatures/s (median %.0f); in the levels the ratios compare, "+
				"kacme's peak %.0f/s and step-ca's %.0f/s, at 8 clients %.0f/s and %.0f/s.\n",
				slices.Min(speeds), slices.Max(speeds), median(speeds), peakHost["kacme"], peakHost["step-ca"], host8["kacme"], host8["step-ca"])
			fmt.Fprintf(&b, "The servers waiting for their turn used at most %.3f cores during any level.\n", maxIdle)
			if spread := slices.Max(speeds) / slices.Min(speeds); spread > 1.25 {
				fmt.Fprintf(&b, "\n**The host's speed varied %.1f× across these levels** (a 100 ms sample before each level; it may also change within one):\n"+
					"a level run in a slow minute is not comparable with one run in a fast minute, so the ratios above carry that noise,\n"+
					"in either direction. Compare several runs before reading a change into them.\n", spread)
			}
		}
	}
	fmt.Fprintf(&b, "\nLoad average (1, 5, 15 min) when the report was written: %s.\n", loadAvg())
	if rs := results["kacme-cluster"]; len(rs) > 0 {
		fmt.Fprintf(&b, "\n## Cluster mode\n\nkacme %s in cluster mode: `kacme server` and `kacme controller` on a real kube-apiserver %s + etcd %s\n"+
			"(built by hack/envtest.sh, on this machine too), every order, authorization, challenge and certificate stored as a custom resource;\n"+
			"same flows, same CA and profile as above. API requests are counted by the server's own client\n"+
			"(`kacme_kube_api_requests_total` on its /metrics) from the moment every client is registered to the end of the level,\n"+
			"divided by the flows completed in that time (writes: create, update, patch, delete; reads: get, list). The last two\n"+
			"columns count every client's requests (the controller's, leases) from the API server's own `apiserver_request_total`.\n\n",
			versions["kacme-cluster"], "v1.37.2", "v3.7.3")
		b.WriteString("| clients | flows | errors | flows/s | p50 | p90 | p99 | API writes / issuance | API reads / issuance | all clients: writes | all clients: reads |\n" +
			"|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		peakC, maxW, maxR, maxAll := 0.0, 0.0, 0.0, 0.0
		for _, r := range rs {
			fmt.Fprintf(&b, "| %d | %d | %d | %.1f | %s | %s | %s | %.2f | %.2f | %.2f | %.2f |\n", r.concurrency, r.flows, r.errors, r.throughput(),
				ms(r.pct(0.5)), ms(r.pct(0.9)), ms(r.pct(0.99)), r.apiWrites, r.apiReads, r.allWrites, r.allReads)
			peakC = max(peakC, r.throughput())
			maxW, maxR, maxAll = max(maxW, r.apiWrites), max(maxR, r.apiReads), max(maxAll, r.allWrites)
		}
		procs := []string{"kube-apiserver", "etcd", "kacme server", "kacme controller", "load generator"}
		b.WriteString("\nCPU used during each level, in cores (the machine has " + strconv.Itoa(runtime.NumCPU()) + "), from /proc:\n\n| clients | " +
			strings.Join(procs, " | ") + " | total |\n|---:|" + strings.Repeat("---:|", len(procs)+1) + "\n")
		for _, r := range rs {
			total := 0.0
			fmt.Fprintf(&b, "| %d |", r.concurrency)
			for _, p := range procs {
				fmt.Fprintf(&b, " %.2f |", r.cores[p])
				total += r.cores[p]
			}
			fmt.Fprintf(&b, " %.2f |\n", total)
		}
		fmt.Fprintf(&b, "\nPeak **%.1f issuances/s** (target ≥ 90); at most **%.2f API writes** (target ≤ 4) and **%.2f API reads** (target 0) per issuance\n"+
			"by the server (every client together: at most %.2f writes per issuance).\n"+
			"The writes of one single-name issuance: create the order, create its authorization (an AcmeChallenge holding every\n"+
			"challenge's data) with the validation outcome when the client answers, create the AcmeCertificate, mark the order\n"+
			"valid (docs/architecture.md: the authorization is derived from the order until then).\n",
			peakC, maxW, maxR, maxAll)
		b.WriteString(cpuBudget(rs, procs))
	}
	b.WriteString("\nHow each server answers: kacme validates asynchronously but holds the challenge request until the validation has\n" +
		"ended (up to 5 s), and signs inside the finalize request, so clients rarely poll; step-ca validates and issues inside\n" +
		"the request; Pebble answers `processing` with `Retry-After`, and the client waits that long before polling again,\n" +
		"which sets its latency.")
	pebbleFrom := 0
	for _, r := range results["pebble"] {
		if r.errors > 0 {
			pebbleFrom = r.concurrency
			break
		}
	}
	if pebbleFrom > 0 {
		fmt.Fprintf(&b, " Pebble's errors (from %d clients on in this run; the level varies between runs, 16 to 128 so far) are\n"+
			"Pebble stopping to answer: a goroutine dump of v2.10.1 taken while it hung (run with ACMEBENCH_SERVER_LOGS=<dir>\n"+
			"and send it SIGQUIT) shows every request waiting for its MemoryStore's read lock behind a newOrder that waited over a\n"+
			"minute for the write lock (which goroutine held the lock was not identified); each newOrder also scans every stored\n"+
			"authorization under that read lock (FindValidAuthorization, called even with PEBBLE_AUTHZREUSE=0). Pebble is a test\n"+
			"server, and its numbers stop there.", pebbleFrom)
	}
	b.WriteString("\n")
	for _, n := range append(names, "kacme-cluster") {
		for _, r := range results[n] {
			if r.firstErr != "" {
				fmt.Fprintf(&b, "\nFirst error, %s at %d clients: `%s`\n", n, r.concurrency, strings.ReplaceAll(r.firstErr, "`", "'"))
			}
		}
	}
	return b.String()
}

// mib formats a size in MiB ("-" when unknown).
func mib(n float64) string {
	if n <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", n)
}

// median of a non-empty list.
func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// cpuBudget says what one issuance costs each process at the cluster run's
// fastest level, and what rate that cost allows on this machine's cores: the
// API server, etcd, kacme and the load generator share them.
func cpuBudget(rs []levelResult, procs []string) string {
	var best *levelResult
	for i := range rs {
		if best == nil || rs[i].throughput() > best.throughput() {
			best = &rs[i]
		}
	}
	if best == nil || best.throughput() == 0 {
		return ""
	}
	var parts []string
	total := 0.0
	for _, p := range procs {
		ms := best.cores[p] / best.throughput() * 1000
		total += ms
		parts = append(parts, fmt.Sprintf("%s %.1f ms", p, ms))
	}
	cores := float64(runtime.NumCPU())
	return fmt.Sprintf("\nCPU per issuance at %d clients: %s; **%.1f ms** in all, so %d cores allow at most %.0f issuances/s "+
		"with this split (90/s needs ≤ %.1f ms for every process together).\n",
		best.concurrency, strings.Join(parts, ", "), total, int(cores), cores*1000/total, cores*1000/90)
}
