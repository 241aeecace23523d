package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/api/v1alpha1"
)

const clusterNS = "kacme-system"

// startKacmeCluster starts a control plane (kube-apiserver and etcd from
// KUBEBUILDER_ASSETS, as in make test) with the kacme CRDs, then "kacme
// controller" and "kacme server" as processes: the same P-256 root and
// intermediate and the same profile as the standalone run, with all ACME
// state stored as custom resources. The server's /metrics count the API
// requests it makes (kacme_kube_api_requests_total).
func startKacmeCluster(bin, dir string, httpPort int) (*server, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("kacme-cluster needs KUBEBUILDER_ASSETS (make bench sets it from hack/envtest.sh)")
	}
	env := &crenvtest.Environment{CRDDirectoryPaths: []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true, BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	s := &server{name: "kacme-cluster", cleanup: []func(){onExit(func() { _ = env.Stop() })}}
	fail := func(err error) (*server, error) {
		s.stop()
		return nil, err
	}
	user, err := env.AddUser(crenvtest.User{Name: "acmebench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fail(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fail(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
		return fail(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: storage.KubeScheme()})
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: clusterNS}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "bench-root"}, Spec: v1alpha1.CertificateAuthoritySpec{
			SelfSigned: &v1alpha1.SelfSignedCA{Subject: v1alpha1.CASubject{CommonName: "kacme bench root"}, KeyAlgorithm: v1alpha1.KeyECDSAP256}}},
		&v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "bench"}, Spec: v1alpha1.CertificateAuthoritySpec{
			Intermediate: &v1alpha1.IntermediateCA{Issuer: "bench-root", Subject: v1alpha1.CASubject{CommonName: "kacme bench"}, KeyAlgorithm: v1alpha1.KeyECDSAP256}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "bench",
			Identifiers: v1alpha1.IdentifierPolicy{AllowedCIDRs: []string{"127.0.0.0/8"}}, Validation: v1alpha1.ValidationSpec{HTTP01Port: httpPort},
			RateLimits: benchLimits()}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fail(err)
		}
	}
	port, metricsPort := freePort(), freePort()
	url := fmt.Sprintf("https://127.0.0.1:%d", port)
	s.directory, s.metricsURL = url+"/acme/directory", fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	s.processes = map[string]string{
		"kube-apiserver": filepath.Join(assets, "kube-apiserver"), "etcd": filepath.Join(assets, "etcd"),
		"kacme server": bin + " server", "kacme controller": bin + " controller",
	}
	out, _ := execOutput(bin, "version")
	s.version = strings.TrimPrefix(out, "kacme ")
	ctrlProc := &server{name: "kacme-controller"}
	ctrlArgs := []string{"controller", "--namespace", clusterNS, "--external-url", url}
	if err := startProcess(ctrlProc, bin, ctrlArgs, []string{"KUBECONFIG=" + kubeconfig}, false); err != nil {
		return fail(err)
	}
	s.controller = ctrlProc
	s.cleanup = append([]func(){ctrlProc.stop}, s.cleanup...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		var p v1alpha1.AcmeProfile
		if c.Get(ctx, client.ObjectKey{Name: "default"}, &p) == nil && meta.IsStatusConditionTrue(p.Status.Conditions, "Ready") {
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("the profile did not become ready:\n%s", ctrlProc.log.String()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var sec corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: clusterNS, Name: "bench-root-ca"}, &sec); err != nil {
		return fail(err)
	}
	s.roots = x509.NewCertPool()
	s.roots.AppendCertsFromPEM(sec.Data["ca.crt"])
	args := []string{"server", "--namespace", clusterNS, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--external-url", url, "--metrics-addr", fmt.Sprintf("127.0.0.1:%d", metricsPort)}
	args = append(args, strings.Fields(kacmeExtraArgs)...)
	err = startProcess(s, bin, args, []string{"KUBECONFIG=" + kubeconfig}, true)
	if err != nil {
		return fail(err)
	}
	s.restart = func() error {
		s.stopProcess()
		ctrlProc.stopProcess()
		env := append([]string{"KUBECONFIG=" + kubeconfig}, s.restartEnv...)
		if err := startProcess(ctrlProc, bin, ctrlArgs, env, false); err != nil {
			return err
		}
		return startProcess(s, bin, args, env, true)
	}
	fillCfg := *cfg
	fillCfg.QPS, fillCfg.Burst = 5000, 5000 // the fill writes as fast as the API server takes it
	if s.kube, err = client.New(&fillCfg, client.Options{Scheme: storage.KubeScheme()}); err != nil {
		return fail(err)
	}
	s.dashboardToken = func() (string, error) { return dashboardViewerToken(ctx, c) }
	rc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fail(err)
	}
	s.apiServerRequests = func() (map[string]float64, error) {
		raw, err := rc.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
		if err != nil {
			return nil, fmt.Errorf("the API server's metrics: %w", err)
		}
		return apiServerVerbs(raw)
	}
	s.apiServerProfile = func(seconds int) ([]byte, error) {
		pctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
		defer cancel()
		raw, err := rc.Discovery().RESTClient().Get().AbsPath("/debug/pprof/profile").
			Param("seconds", strconv.Itoa(seconds)).Timeout(time.Duration(seconds+30) * time.Second).DoRaw(pctx)
		if err != nil {
			return nil, fmt.Errorf("the API server's CPU profile: %w", err)
		}
		return raw, nil
	}
	return s, nil
}

// apiServerVerbs sums apiserver_request_total by verb, in the words
// apiPerFlow counts (create, update, patch, delete, get, list).
func apiServerVerbs(metrics []byte) (map[string]float64, error) {
	words := map[string]string{"POST": "create", "PUT": "update", "PATCH": "patch", "APPLY": "patch", "DELETE": "delete",
		"DELETECOLLECTION": "delete", "GET": "get", "LIST": "list"}
	byVerb, err := sumByLabel(bytes.NewReader(metrics), "apiserver_request_total", "verb")
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for verb, n := range byVerb {
		if w, ok := words[verb]; ok {
			out[w] += n
		}
	}
	return out, nil
}

// dashboardViewerToken creates a ServiceAccount that may list the kacme
// resources in every namespace (and nothing else) and returns a token for
// it: what an operator signs in to the dashboard with.
func dashboardViewerToken(ctx context.Context, c client.Client) (string, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: clusterNS, Name: "dashboard-viewer"}}
	objs := []client.Object{
		sa,
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "kacme-dashboard-viewer"}, Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{v1alpha1.GroupVersion.Group}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}}}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kacme-dashboard-viewer"},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "kacme-dashboard-viewer"},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: clusterNS}}},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return "", err
		}
	}
	tr := &authnv1.TokenRequest{}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// apiRequests reads kacme_kube_api_requests_total from a /metrics page, by verb.
func apiRequests(metricsURL string) (map[string]float64, error) {
	return metricByLabel(metricsURL, "kacme_kube_api_requests_total", "verb")
}

// metricByLabel sums a counter of a /metrics page by the value of one label.
func metricByLabel(metricsURL, name, label string) (map[string]float64, error) {
	r, err := http.Get(metricsURL) //nolint:gosec // loopback URL built by this program
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	return sumByLabel(r.Body, name, label)
}

// sumByLabel sums counter name of a metrics text by the value of one label.
func sumByLabel(body io.Reader, name, label string) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") {
			continue
		}
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, name+"{"), "} ")
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		for _, kv := range strings.Split(labels, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok && k == label {
				out[strings.Trim(v, `"`)] += n
			}
		}
	}
	return out, sc.Err()
}

// apiPerFlow turns two readings into writes and reads per completed flow.
func apiPerFlow(before, after map[string]float64, flows int) (writes, reads float64) {
	if flows == 0 {
		return 0, 0
	}
	d := func(v string) float64 { return after[v] - before[v] }
	writes = d("create") + d("update") + d("patch") + d("delete")
	reads = d("get") + d("list")
	return writes / float64(flows), reads / float64(flows)
}

// procCPU sums user+system CPU seconds of the processes whose command line
// starts with one of the given executables (kube-apiserver, etcd, kacme …),
// by name, from /proc.
func procCPU(exes map[string]string) map[string]float64 {
	out := map[string]float64{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid := e.Name()
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		for name, prefix := range exes {
			if !strings.HasPrefix(strings.Join(args, " "), prefix) {
				continue
			}
			n, _ := strconv.Atoi(pid)
			out[name] += pidCPU(n)
		}
	}
	return out
}

// pid is the server process's ID (0 when it is not running).
func (s *server) pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// pidCPU is a process's user+system CPU seconds, from /proc/<pid>/stat.
func pidCPU(pid int) float64 {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if pid <= 0 || err != nil {
		return 0
	}
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+2:]
	}
	f := strings.Fields(rest)
	if len(f) <= 12 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// selfCPU is this process's (the load generator's) CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// benchLimit is every rate limit of the benchmarked profiles: kacme's
// defaults (1000 orders per account per hour, ...) would refuse a load
// generator's single client within seconds; limits stay on, so each new
// order still pays for counting, but nothing is refused.
const benchLimit = 100000000

func benchLimits() v1alpha1.RateLimitSpec {
	n := int32(benchLimit)
	return v1alpha1.RateLimitSpec{NewOrdersPerAccount: &n, PendingAuthorizationsPerAccount: &n, NewAccountsPerIP: &n}
}
