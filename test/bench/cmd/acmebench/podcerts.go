package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

// podCertLevel is one offered rate of PodCertificateRequests.
type podCertLevel struct {
	rate      int // requests per second offered (0: as fast as 8 creators go)
	issued    int
	elapsed   time.Duration
	latencies []time.Duration // creation → Issued seen by a watch
	writes    float64         // the controller's API writes per issuance
	reads     float64         // and reads (GET, LIST)
}

// podCertResult is the pod certificate benchmark.
type podCertResult struct {
	version string
	levels  []podCertLevel
	rss     map[int]int64 // issued in total → the controller's RSS, bytes
}

// podCertBench runs "kacme controller" on a control plane (kube-apiserver +
// etcd from KUBEBUILDER_ASSETS) with a KubernetesSigner, creates
// PodCertificateRequests as a kubelet would (for 100 pods on one node) at
// increasing offered rates, and measures issuances per second, the latency
// from creation to the Issued condition (a watch), the controller's API
// requests per issuance (its rest client metrics) and its memory once
// 1,000 and 10,000 certificates are issued (nothing deletes the requests
// here: kube-controller-manager, which deletes them after 15 minutes in a
// cluster, does not run, so the controller's cache holds all of them).
func podCertBench(bin string, rates []int, perLevel time.Duration) (*podCertResult, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("the pod certificate benchmark needs KUBEBUILDER_ASSETS")
	}
	env := &crenvtest.Environment{CRDDirectoryPaths: []string{filepath.Join("config", "crd", "bases")}, ErrorIfCRDPathMissing: true, BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	defer onExit(func() { _ = env.Stop() })()
	dir, _ := os.MkdirTemp("", "acmebench-podcerts")
	defer func() { _ = os.RemoveAll(dir) }()
	user, err := env.AddUser(crenvtest.User{Name: "acmebench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: storage.KubeScheme()})
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	pods, node, err := podCertFixture(ctx, c)
	if err != nil {
		return nil, err
	}
	metricsPort := freePort()
	ctrlProc := &server{name: "kacme-controller"}
	if err := startProcess(ctrlProc, bin, []string{"controller", "--namespace", clusterNS, "--external-url", "https://127.0.0.1:1",
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metricsPort)}, []string{"KUBECONFIG=" + kubeconfig}, false); err != nil {
		return nil, err
	}
	defer ctrlProc.stop()
	res := &podCertResult{rss: map[int]int64{}}
	out, _ := execOutput(bin, "version")
	res.version = strings.TrimPrefix(out, "kacme ")
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := restRequests(metrics); err == nil {
			break
		} else if time.Now().After(deadline) {
			return nil, fmt.Errorf("the controller's metrics: %w\n%s", err, ctrlProc.log.String())
		}
	}
	w := newIssuedWatch(ctx, cs)
	defer w.stop()
	// Warm-up: the signer Ready, one request through.
	if _, err := runPodCertLevel(ctx, c, w, pods, node, 1, 1, time.Minute, metrics); err != nil {
		return nil, fmt.Errorf("warm-up: %w\n%s", err, ctrlProc.log.String())
	}
	total := 1
	for _, rate := range rates {
		fmt.Fprintf(os.Stderr, "pod certificates: offered %d/s...\n", rate)
		n := int(perLevel.Seconds()) * max(rate, 1)
		if rate == 0 {
			n = int(perLevel.Seconds()) * 100
		}
		l, err := runPodCertLevel(ctx, c, w, pods, node, rate, n, 5*time.Minute, metrics)
		if err != nil {
			return nil, fmt.Errorf("%w\n%s", err, ctrlProc.log.String())
		}
		total += l.issued
		fmt.Fprintf(os.Stderr, "  %d issued in %s: %.1f/s, p50 %s, p99 %s; %.2f writes, %.2f reads per issuance\n", l.issued, l.elapsed.Round(time.Millisecond),
			float64(l.issued)/l.elapsed.Seconds(), pctOf(l.latencies, 0.5), pctOf(l.latencies, 0.99), l.writes, l.reads)
		res.levels = append(res.levels, *l)
		if total >= 1000 && res.rss[1000] == 0 {
			res.rss[1000] = rssOf(ctrlProc.cmd.Process.Pid)
		}
	}
	for _, mark := range []int{1000, 10000} {
		if total < mark {
			if _, err := runPodCertLevel(ctx, c, w, pods, node, 0, mark-total, 10*time.Minute, metrics); err != nil {
				return nil, err
			}
			total = mark
			time.Sleep(2 * time.Second)
			res.rss[mark] = rssOf(ctrlProc.cmd.Process.Pid)
		}
	}
	return res, nil
}

// podCertFixture is a CA, a KubernetesSigner for every namespace, a node, a
// ServiceAccount, a Service and 100 pods bound to the node.
func podCertFixture(ctx context.Context, c client.Client) ([]*corev1.Pod, *corev1.Node, error) {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterNS}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "bench-root"}, Spec: v1alpha1.CertificateAuthoritySpec{
			SelfSigned: &v1alpha1.SelfSignedCA{KeyAlgorithm: v1alpha1.KeyECDSAP256}}},
		&v1alpha1.KubernetesSigner{ObjectMeta: metav1.ObjectMeta{Name: "pods"}, Spec: v1alpha1.KubernetesSignerSpec{
			CertificateAuthority: "bench-root", NamespaceSelector: &metav1.LabelSelector{},
			Identities: v1alpha1.SignerIdentities{SPIFFETrustDomain: "cluster.local", ServiceDNSNames: true}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 443}}}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return nil, nil, err
		}
	}
	var node corev1.Node
	if err := c.Get(ctx, client.ObjectKey{Name: "node-1"}, &node); err != nil {
		return nil, nil, err
	}
	var pods []*corev1.Pod
	for i := range 100 {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: fmt.Sprintf("web-%d", i), Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: "node-1", ServiceAccountName: "web", Containers: []corev1.Container{{Name: "c", Image: "example/web:1"}}}}
		if err := c.Create(ctx, p); err != nil {
			return nil, nil, err
		}
		pods = append(pods, p)
	}
	return pods, &node, nil
}

// runPodCertLevel creates n requests at rate per second (0: 8 creators as
// fast as they go) and waits for all of them to be issued.
func runPodCertLevel(ctx context.Context, c client.Client, w *issuedWatch, pods []*corev1.Pod, node *corev1.Node, rate, n int,
	timeout time.Duration, metricsURL string) (*podCertLevel, error) {
	var sa corev1.ServiceAccount
	if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "web"}, &sa); err != nil {
		return nil, err
	}
	before, err := restRequests(metricsURL)
	if err != nil {
		return nil, err
	}
	created := make(chan string, n)
	createdAt := sync.Map{}
	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	var createErr error
	var mu sync.Mutex
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				p := pods[i%len(pods)]
				key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				stub, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
				pcr := &certv1.PodCertificateRequest{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", GenerateName: p.Name + "-"},
					Spec: certv1.PodCertificateRequestSpec{SignerName: "acme.kacme.io/pods", PodName: p.Name, PodUID: p.UID,
						ServiceAccountName: "web", ServiceAccountUID: sa.UID, NodeName: "node-1", NodeUID: node.UID,
						MaxExpirationSeconds: ptr.To(int32(86400)), StubPKCS10Request: stub}}
				t0 := time.Now()
				if err := c.Create(ctx, pcr); err != nil {
					mu.Lock()
					createErr = err
					mu.Unlock()
					continue
				}
				createdAt.Store(pcr.Name, t0)
				created <- pcr.Name
			}
		}()
	}
	go func() {
		for i := range n {
			if rate > 0 {
				time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
			}
			jobs <- i
		}
		close(jobs)
	}()
	l := &podCertLevel{rate: rate}
	deadline := time.Now().Add(timeout)
	var last time.Time
	for range n {
		var name string
		select {
		case name = <-created:
		case <-time.After(time.Until(deadline)):
			return nil, fmt.Errorf("requests were not all created in %s (%v)", timeout, createErr)
		}
		at, ok := w.wait(name, time.Until(deadline))
		if !ok {
			return nil, fmt.Errorf("request %s was not issued in %s", name, timeout)
		}
		t0, _ := createdAt.Load(name)
		l.latencies = append(l.latencies, at.Sub(t0.(time.Time)))
		if at.After(last) {
			last = at
		}
		l.issued++
	}
	wg.Wait()
	l.elapsed = last.Sub(start)
	after, err := restRequests(metricsURL)
	if err != nil {
		return nil, err
	}
	sort.Slice(l.latencies, func(i, j int) bool { return l.latencies[i] < l.latencies[j] })
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		l.writes += (after[m] - before[m]) / float64(l.issued)
	}
	l.reads = (after["GET"] - before["GET"]) / float64(l.issued)
	return l, nil
}

// issuedWatch records when each PodCertificateRequest was first seen Issued.
type issuedWatch struct {
	mu     sync.Mutex
	issued map[string]time.Time
	cond   *sync.Cond
	w      watch.Interface
}

func newIssuedWatch(ctx context.Context, cs *kubernetes.Clientset) *issuedWatch {
	iw := &issuedWatch{issued: map[string]time.Time{}}
	iw.cond = sync.NewCond(&iw.mu)
	w, err := cs.CertificatesV1().PodCertificateRequests("apps").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		panic(err)
	}
	iw.w = w
	go func() {
		for ev := range w.ResultChan() {
			pcr, ok := ev.Object.(*certv1.PodCertificateRequest)
			if !ok || !meta.IsStatusConditionTrue(pcr.Status.Conditions, "Issued") {
				continue
			}
			iw.mu.Lock()
			if _, seen := iw.issued[pcr.Name]; !seen {
				iw.issued[pcr.Name] = time.Now()
			}
			iw.cond.Broadcast()
			iw.mu.Unlock()
		}
	}()
	return iw
}

func (iw *issuedWatch) stop() { iw.w.Stop() }

// wait returns when name was seen Issued.
func (iw *issuedWatch) wait(name string, d time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(d)
	timer := time.AfterFunc(d, func() { iw.mu.Lock(); iw.cond.Broadcast(); iw.mu.Unlock() })
	defer timer.Stop()
	iw.mu.Lock()
	defer iw.mu.Unlock()
	for {
		if at, ok := iw.issued[name]; ok {
			return at, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		iw.cond.Wait()
	}
}

// restRequests reads controller-runtime's rest_client_requests_total by method.
func restRequests(metricsURL string) (map[string]float64, error) {
	return metricByLabel(metricsURL, "rest_client_requests_total", "method")
}

// rssOf is a process's resident memory, bytes.
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func pctOf(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[int(float64(len(ds)-1)*p)].Round(time.Millisecond)
}

// renderPodCerts is the report section.
func renderPodCerts(r *podCertResult) string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n## Pod certificates\n\nkacme %s as the signer of PodCertificateRequests (`kacme controller`, one KubernetesSigner with SPIFFE IDs and\n"+
		"Service names) on a real kube-apiserver v1.37.2 + etcd v3.7.3. The load generator creates requests as kubelets would\n"+
		"(a fresh P-256 key each, for 100 pods on one node) at each offered rate for the level's duration (0: eight creators as fast\n"+
		"as they go), and a watch sees each request's Issued condition; latency is creation to Issued. API requests are the\n"+
		"controller's own (`rest_client_requests_total` on its /metrics): per issuance it reads the pod, its node and its\n"+
		"ServiceAccount (GET) and writes the status once (PUT).\n\n", r.version)
	b.WriteString("| offered /s | issued | issued /s | p50 | p90 | p99 | API writes / issuance | API reads / issuance |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, l := range r.levels {
		offered := strconv.Itoa(l.rate)
		if l.rate == 0 {
			offered = "max"
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f | %s | %s | %s | %.2f | %.2f |\n", offered, l.issued, float64(l.issued)/l.elapsed.Seconds(),
			pctOf(l.latencies, 0.5), pctOf(l.latencies, 0.9), pctOf(l.latencies, 0.99), l.writes, l.reads)
	}
	fmt.Fprintf(&b, "\nThe controller's memory (RSS) with 1,000 issued pod certificates: **%d MiB**; with 10,000: **%d MiB** (every request\n"+
		"stays in its cache here; in a cluster kube-controller-manager deletes each 15 minutes after its creation).\n",
		r.rss[1000]>>20, r.rss[10000]>>20)
	return b.String()
}
