package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/acmeserver/storage/embedded"
	"github.com/kacme/kacme/api/v1alpha1"
)

// The stored-issuances benchmark (issue 17): what a large store costs kacme
// standalone. It measures issuance at 8 clients on an empty store, fills the
// store with n issuances (each an order, its authorization and its
// certificate, cloned from a real issuance with fresh names, written straight
// into the bbolt file while the server is stopped), restarts the server on
// it, and reports its startup time and RSS, the dashboard's page times, and
// issuance at 8 clients for the steady duration with the RSS after it.
type scaleResult struct {
	stored                  int
	fill, startup           time.Duration
	rssRestart, rssSteady   rssSample
	emptyRate, fullRate     float64
	emptyP50, fullP50       time.Duration
	steady                  time.Duration
	dash                    *dashboardResult
	emptyErrors, fullErrors int
	fullFlows               int
	// The steady phase: offered rate, achieved rate, median, errors.
	rate, steadyRate float64
	steadyP50        time.Duration
	steadyErrors     int
	// Cluster mode: the controller's RSS beside the server's.
	cluster                 bool
	ctrlRestart, ctrlSteady rssSample
	// emptyCores, fullCores: CPU each process used in the 8-client levels,
	// in cores (cluster mode).
	emptyCores, fullCores map[string]float64
	// goMemLimit is the GOMEMLIMIT server and controller ran with on the
	// full store (0: none).
	goMemLimit int64
	// apiProfiles: the API server's CPU profiles (-scale-apiserver-profile).
	apiProfiles *apiServerProfiles
}

func benchScale(bin string, resp *responder, n int, steady time.Duration, rateHz float64, samples int) (*scaleResult, error) {
	res := &scaleResult{steady: steady, rate: rateHz}
	dir, err := os.MkdirTemp("", "acmebench-scale")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	s, err := startKacme(bin, dir, 80)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "scale: issuing at 8 clients on an empty store for %s...\n", min(steady, time.Minute))
	empty := runLevel(s, resp, 8, 2*time.Second, min(steady, time.Minute))
	res.emptyRate, res.emptyP50, res.emptyErrors = empty.throughput(), empty.pct(0.5), empty.errors
	s.stop()

	t0 := time.Now()
	fmt.Fprintf(os.Stderr, "scale: storing %d issuances...\n", n)
	dbPath := filepath.Join(dir, "data", "kacme.db")
	if err := cloneIssuances(dbPath, n); err != nil {
		return nil, err
	}
	res.fill, res.stored = time.Since(t0), n

	t0 = time.Now()
	if s, err = startKacme(bin, dir, 80); err != nil {
		return nil, err
	}
	defer s.stop()
	res.startup = time.Since(t0)
	time.Sleep(5 * time.Second)
	res.rssRestart = sampleRSS(s.pid(), dbPath)
	if err := fullStorePhases(s, resp, res, n, samples, "scale", nil); err != nil {
		return nil, err
	}
	res.rssSteady = sampleRSS(s.pid(), dbPath)
	return res, nil
}

// fullStorePhases runs what both modes measure on the full store: the
// dashboard's pages (samples > 0), a minute at 8 clients, and the steady
// phase at res.rate for res.steady.
func fullStorePhases(s *server, resp *responder, res *scaleResult, n, samples int, label string, during func(time.Time, time.Duration)) error {
	if samples > 0 {
		s.orders.Store(int64(n)) // already above what benchDashboard fills to
		dash, err := benchDashboard(s, resp, samples)
		if err != nil {
			return err
		}
		res.dash = dash
	}
	fmt.Fprintf(os.Stderr, "%s: issuing at 8 clients on the full store for %s...\n", label, min(res.steady, time.Minute))
	full := runLevelDuring(s, resp, 8, 2*time.Second, min(res.steady, time.Minute), nil, during)
	res.fullRate, res.fullP50, res.fullErrors, res.fullCores = full.throughput(), full.pct(0.5), full.errors, full.cores
	res.fullFlows = full.flows
	fmt.Fprintf(os.Stderr, "%s: issuing %g/s on the full store for %s...\n", label, res.rate, res.steady)
	st := runLevelAt(s, resp, 8, 0, res.steady, rate.NewLimiter(rate.Limit(res.rate), 1))
	res.steadyRate, res.steadyP50, res.steadyErrors = st.throughput(), st.pct(0.5), st.errors
	return nil
}

// cloneIssuances writes n copies of a stored valid order, its authorization
// and its certificate into the store file at path, each with fresh names,
// labels and serial, so that the store looks like n more issuances.
func cloneIssuances(path string, n int) error {
	st, err := embedded.Open(path)
	if err != nil {
		return err
	}
	defer st.Close()
	return cloneFrom(context.Background(), st, storage.AllNamespaces, n, 64, st.Create)
}

// cloneFrom finds a valid single-name issuance in r and writes n clones of
// it with create, from workers goroutines.
func cloneFrom(ctx context.Context, r storage.Reader, ns string, n, workers int, create func(context.Context, storage.Object) error) error {
	var orders v1alpha1.AcmeOrderList
	if err := r.List(ctx, ns, &orders, storage.ListOptions{}); err != nil {
		return err
	}
	var tmpl *v1alpha1.AcmeOrder
	for i := range orders.Items {
		if o := &orders.Items[i]; o.Status.Status == acme.StatusValid && len(o.Status.Authorizations) == 1 {
			tmpl = o
			break
		}
	}
	if tmpl == nil {
		return fmt.Errorf("scale: no valid order to clone among %d", len(orders.Items))
	}
	var az v1alpha1.AcmeChallenge
	var cert v1alpha1.AcmeCertificate
	if err := r.Get(ctx, tmpl.Namespace, tmpl.Status.Authorizations[0], &az); err != nil {
		return err
	}
	if err := r.Get(ctx, tmpl.Namespace, tmpl.Status.Certificate, &cert); err != nil {
		return err
	}
	var next, done atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	stop := make(chan struct{})
	go func() { // progress, for fills that take minutes
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "scale: %d of %d stored\n", done.Load(), n)
			}
		}
	}()
	defer close(stop)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := cloneOne(ctx, create, tmpl, &az, &cert); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

func cloneOne(ctx context.Context, create func(context.Context, storage.Object) error, tmpl *v1alpha1.AcmeOrder, az *v1alpha1.AcmeChallenge, cert *v1alpha1.AcmeCertificate) error {
	orderName := acme.NewID()
	azName := orderName + "-0"
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[0] &= 0x7f
	serial := strings.TrimLeft(hex.EncodeToString(b[:]), "0")
	fresh := func(m *map[string]string) {
		out := map[string]string{}
		for k, v := range *m {
			out[k] = v
		}
		if _, ok := out[v1alpha1.LabelOrder]; ok {
			out[v1alpha1.LabelOrder] = orderName
		}
		*m = out
	}
	o := tmpl.DeepCopy()
	o.Name, o.ResourceVersion, o.UID, o.CreationTimestamp = orderName, "", "", metav1.Time{}
	fresh(&o.Labels)
	o.Status.Authorizations, o.Status.Certificate = []string{azName}, serial
	for i := range o.Status.Offered {
		o.Status.Offered[i].Name = azName
	}
	a := az.DeepCopy()
	a.Name, a.ResourceVersion, a.UID, a.OwnerReferences, a.CreationTimestamp = azName, "", "", nil, metav1.Time{}
	fresh(&a.Labels)
	a.Spec.Order = orderName
	c := cert.DeepCopy()
	c.Name, c.ResourceVersion, c.UID, c.CreationTimestamp = serial, "", "", metav1.Time{}
	fresh(&c.Labels)
	c.Spec.Order, c.Spec.Serial = orderName, serial
	for _, obj := range []storage.Object{o, a, c} {
		if err := create(ctx, obj); err != nil {
			return err
		}
	}
	return nil
}

// renderScale renders the stored-issuances results of each mode run.
func renderScale(rs []*scaleResult, version string) string {
	if len(rs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Stored issuances\n\nGenerated by `make bench-scale` (test/bench/cmd/acmebench -scale) on %s; load average (1, 5, 15 min) at the end: %s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), loadAvg())
	cluster := false
	for _, r := range rs {
		b.WriteString("\n")
		b.WriteString(renderScaleMode(r, version))
		cluster = cluster || r.cluster
	}
	if !cluster {
		b.WriteString("\nCluster mode at this size was not measured in this run (-scale-modes).\n")
	}
	return b.String()
}

func renderScaleMode(r *scaleResult, version string) string {
	var b strings.Builder
	if r.cluster {
		fmt.Fprintf(&b, "## %d issuances in cluster mode\n\n", r.stored)
		fmt.Fprintf(&b, "kacme %s in cluster mode (`kacme server` and `kacme controller` on kube-apiserver v1.37.2 + etcd v3.7.3 from\n"+
			"hack/envtest.sh), same CA and profile as above. Issuance at 8 clients on an empty store; then %d issuances (an order,\n"+
			"its authorization and its certificate each, cloned from a real issuance with fresh names) are created through the API\n"+
			"server (in %s) while kacme runs; server and controller are restarted (they list everything again), and 5 s after the\n"+
			"server answers its directory both RSS are read; then the dashboard's pages are timed; issuance at 8 clients runs for\n"+
			"a minute on the full store, then at a steady offered %g issuances/s for %s, after which the RSS are read again.\n",
			version, r.stored, r.fill.Round(time.Second), r.rate, r.steady)
		if r.goMemLimit > 0 {
			fmt.Fprintf(&b, "From the restart on, server and controller run as in containers with `limits.memory: %s` (what\n"+
				"docs/kubernetes.md recommends at this size): kacme gives the Go runtime a soft memory limit of 90 %% of its container's\n"+
				"limit by itself, here GOMEMLIMIT=%d (%s) as there is no container. Without any limit the Go heap may grow to\n"+
				"twice what is live before a collection.\n", "1Gi", r.goMemLimit, mib(float64(r.goMemLimit)/(1<<20)))
		}
		fmt.Fprintf(&b, "CPU per issuance is each process's user+system time during the 8-client level, divided by the flows completed.\n")
		if r.apiProfiles != nil {
			b.WriteString("In this run the API server's CPU was profiled (pprof, 100 samples/s) during both 8-client minutes, which costs it\n" +
				"a little CPU in both alike.\n")
		}
		b.WriteString("\n")
	} else {
		fmt.Fprintf(&b, "## %d issuances in standalone mode\n\n", r.stored)
		fmt.Fprintf(&b, "kacme %s standalone, same CA and profile as above. Issuance at 8 clients on an empty store; then %d issuances\n"+
			"(an order, its authorization and its certificate each, cloned from a real issuance with fresh names) are written into\n"+
			"the stopped server's bbolt file (in %s); the server is started on it again, and after 5 s idle its RSS is read; then\n"+
			"the dashboard's pages are timed; issuance at 8 clients runs for a minute on the full store (the rate compared with the\n"+
			"empty store's), then at a steady offered %g issuances/s for %s, after which the RSS is read again.\n"+
			"RSS is the kernel's VmRSS: the anonymous part (heap, stacks) and the file-backed part (the store file's pages the\n"+
			"process has mapped, and the binary).\n\n",
			version, r.stored, r.fill.Round(time.Second), r.rate, r.steady)
	}
	b.WriteString("| measure | empty store | full store | target |\n|---|---:|---:|---|\n")
	fmt.Fprintf(&b, "| flows/s at 8 clients | %.1f | %.1f (%+.0f%%) | within 10%% |\n", r.emptyRate, r.fullRate, 100*(r.fullRate/r.emptyRate-1))
	fmt.Fprintf(&b, "| p50 at 8 clients | %s | %s | |\n", ms(r.emptyP50), ms(r.fullP50))
	fmt.Fprintf(&b, "| errors | %d | %d | 0 |\n", r.emptyErrors, r.fullErrors)
	fmt.Fprintf(&b, "| start until the directory answers | | %s | |\n", r.startup.Round(time.Millisecond))
	fmt.Fprintf(&b, "| steady phase: flows/s (offered %g), p50, errors | | %.1f, %s, %d | |\n", r.rate, r.steadyRate, ms(r.steadyP50), r.steadyErrors)
	fmt.Fprintf(&b, "| server RSS after the restart | | %s | ≤ 1024 MiB |\n", r.rssRestart)
	fmt.Fprintf(&b, "| server RSS after %s of issuing | | %s | ≤ 1024 MiB |\n", r.steady, r.rssSteady)
	if r.cluster {
		fmt.Fprintf(&b, "| controller RSS after the restart | | %s | ≤ 1024 MiB |\n", r.ctrlRestart)
		fmt.Fprintf(&b, "| controller RSS after %s of issuing | | %s | ≤ 1024 MiB |\n", r.steady, r.ctrlSteady)
	}
	for _, name := range []string{"kube-apiserver", "etcd", "kacme server", "kacme controller", "load generator"} {
		e, f := r.emptyCores[name], r.fullCores[name]
		if e == 0 || f == 0 || r.emptyRate == 0 || r.fullRate == 0 {
			continue
		}
		fmt.Fprintf(&b, "| CPU per issuance at 8 clients: %s | %.1f ms | %.1f ms | |\n", name, 1000*e/r.emptyRate, 1000*f/r.fullRate)
	}
	if r.dash != nil {
		for _, p := range r.dash.pages {
			fmt.Fprintf(&b, "| dashboard %s p95 | | %s | ≤ 100 ms |\n", p.name, ms(p.pct(0.95)))
		}
	}
	if r.apiProfiles != nil {
		b.WriteString(r.apiProfiles.rendered)
	}
	return b.String()
}

// rssSample is a server's resident memory: the total, its anonymous part
// (heap, stacks) and its file-backed part (the store file's mapped pages,
// the binary), with the store file's size beside them.
type rssSample struct{ total, anon, file, dbFile float64 }

func sampleRSS(pid int, dbPath string) rssSample {
	s := rssSample{total: rssMiB(pid), anon: procStatusMiB(pid, "RssAnon"), file: procStatusMiB(pid, "RssFile")}
	if fi, err := os.Stat(dbPath); err == nil {
		s.dbFile = float64(fi.Size()) / (1 << 20)
	}
	return s
}

func (s rssSample) String() string {
	if s.dbFile == 0 {
		return fmt.Sprintf("%s (anonymous %s, file-backed %s)", mib(s.total), mib(s.anon), mib(s.file))
	}
	return fmt.Sprintf("%s (anonymous %s, file-backed %s; store file %s)", mib(s.total), mib(s.anon), mib(s.file), mib(s.dbFile))
}
