package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/test/node"
)

// helmRun runs helm as the admin.
func (e *nodeEnv) helmRun(args ...string) string {
	e.t.Helper()
	cmd := exec.CommandContext(e.ctx, e.helm, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.n.Kubeconfig, "HELM_CACHE_HOME="+e.t.TempDir(), "HELM_CONFIG_HOME="+e.t.TempDir(),
		"HELM_DATA_HOME="+e.t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *nodeEnv) kubectl(args ...string) string {
	e.t.Helper()
	out, err := e.n.Kubectl(e.ctx, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *nodeEnv) apply(manifest string) {
	e.t.Helper()
	must(e.t, e.n.Apply(e.ctx, manifest))
}

func (e *nodeEnv) waitFor(what string, d time.Duration, ok func() error) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := ok()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		if gone := e.n.Exited(); len(gone) > 0 {
			e.t.Fatalf("waiting for %s: %v exited", what, gone)
		}
		time.Sleep(time.Second)
	}
}

// waitTrust waits for the server's root in ns (ConfigMap kacme-server-ca).
func (e *nodeEnv) waitTrust(ns string) {
	e.t.Helper()
	e.waitFor("ConfigMap "+ns+"/kacme-server-ca", time.Minute, func() error {
		return e.c.Get(e.ctx, client.ObjectKey{Namespace: ns, Name: "kacme-server-ca"}, &corev1.ConfigMap{})
	})
}

// caRoot is the root certificate of a CertificateAuthority's chain.
func (e *nodeEnv) caRoot(name string) []byte {
	e.t.Helper()
	var ca v1alpha1.CertificateAuthority
	must(e.t, e.c.Get(e.ctx, client.ObjectKey{Name: name}, &ca))
	return []byte(ca.Status.Chain)
}

// verifyChain checks a PEM chain (leaf first) for name against root.
func verifyChain(t *testing.T, chainPEM, root []byte, name string) {
	t.Helper()
	chain := parseChain(chainPEM)
	if len(chain) == 0 {
		t.Fatalf("no certificate for %s in:\n%s", name, chainPEM)
	}
	verify(t, chain, root, name)
}

const securityContext = `securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}`

// service is a Service name in ns for the pods labelled app=app.
func service(ns, name, app string, port, target int) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %s, namespace: %s}
spec:
  selector: {app: %s}
  ports: [{name: p, port: %d, targetPort: %d}]
`, name, ns, app, port, target)
}

// clientJob runs nodeclient with args once, trusting the server's root
// (ConfigMap kacme-server-ca at /trust) and with the TSIG secret in $TSIG_SECRET.
func (e *nodeEnv) clientJob(ns, name string, args []string) string {
	return e.clientJobWith(ns, name, args, "kacme-server-ca", "/trust")
}

func (e *nodeEnv) clientJobWith(ns, name string, args []string, configMap, mountPath string) string {
	quoted, _ := json.Marshal(args)
	env := ""
	if ns == e2eNS {
		env = `env: [{name: TSIG_SECRET, valueFrom: {secretKeyRef: {name: tsig, key: secret}}}]`
	}
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  backoffLimit: 0
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      restartPolicy: Never
      containers:
      - name: client
        image: %[3]s
        imagePullPolicy: Never
        args: %[4]s
        %[5]s
        %[6]s
        volumeMounts: [{name: ca, mountPath: %[7]s, readOnly: true}]
      volumes: [{name: ca, configMap: {name: %[8]s}}]
`, name, ns, clientImage, quoted, env, securityContext, mountPath, configMap)
}

// waitJob waits for a Job to succeed and returns its pod's logs.
func (e *nodeEnv) waitJob(ns, name string, d time.Duration) string {
	e.t.Helper()
	e.waitFor("Job "+ns+"/"+name, d, func() error {
		var j batchv1.Job
		if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: ns, Name: name}, &j); err != nil {
			return err
		}
		if j.Status.Failed > 0 {
			e.t.Fatalf("Job %s/%s failed:\n%s", ns, name, e.jobLogs(ns, name))
		}
		if j.Status.Succeeded == 0 {
			return fmt.Errorf("active %d", j.Status.Active)
		}
		return nil
	})
	return e.jobLogs(ns, name)
}

func (e *nodeEnv) jobPod(ns, name string) *corev1.Pod {
	var pods corev1.PodList
	if err := e.c.List(e.ctx, &pods, client.InNamespace(ns), client.MatchingLabels{"batch.kubernetes.io/job-name": name}); err != nil || len(pods.Items) == 0 {
		return nil
	}
	return &pods.Items[0]
}

func (e *nodeEnv) jobLogs(ns, name string) string {
	if p := e.jobPod(ns, name); p != nil {
		return e.podLogs(ns, p.Name)
	}
	return "(no pod)"
}

func (e *nodeEnv) jobPodIP(ns, name string) string {
	e.t.Helper()
	var ip string
	e.waitFor("Job "+ns+"/"+name+"'s pod IP", 2*time.Minute, func() error {
		p := e.jobPod(ns, name)
		if p == nil || p.Status.PodIP == "" {
			return fmt.Errorf("no pod IP yet")
		}
		ip = p.Status.PodIP
		return nil
	})
	return ip
}

func (e *nodeEnv) podIP(ns, selector string) string {
	e.t.Helper()
	pods, err := e.cs.CoreV1().Pods(ns).List(e.ctx, metav1.ListOptions{LabelSelector: selector})
	must(e.t, err)
	for _, p := range pods.Items {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			return p.Status.PodIP
		}
	}
	e.t.Fatalf("no pod with %s in %s", selector, ns)
	return ""
}

// podLogs reads a pod's log through the API server (which asks the kubelet).
func (e *nodeEnv) podLogs(ns, name string) string {
	b, err := e.cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(e.ctx)
	if err != nil {
		return fmt.Sprintf("(logs of %s/%s: %v)", ns, name, err)
	}
	return string(b)
}

// loadStatus is nodeclient's /status.
type loadStatus struct {
	Done     int64    `json:"done"`
	Requests int64    `json:"requests"`
	Failed   int64    `json:"failed"`
	Problems []string `json:"problems"`
	Finished bool     `json:"finished"`
}

func getStatus(t *testing.T, podIP string) loadStatus {
	t.Helper()
	var st loadStatus
	hc := &http.Client{Timeout: 5 * time.Second}
	r, err := hc.Get("http://" + podIP + ":8081/status")
	if err != nil {
		t.Fatalf("status of the client pod %s: %v", podIP, err)
	}
	defer r.Body.Close()
	must(t, json.NewDecoder(r.Body).Decode(&st))
	return st
}

// The route label holds braces ("/acme/{profile}/new-order").
var requestsLine = regexp.MustCompile(`^kacme_http_requests_total\{.*\} ([0-9.e+]+)$`)

// busiestServer is the server pod that answered the most ACME requests
// (its metrics), and every pod's count.
func (e *nodeEnv) busiestServer() (string, map[string]int) {
	e.t.Helper()
	var pods corev1.PodList
	must(e.t, e.c.List(e.ctx, &pods, client.InNamespace(kacmeNS), client.MatchingLabels{"app.kubernetes.io/component": "server"}))
	counts := map[string]int{}
	best, most := "", -1
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		r, err := hc.Get("http://" + p.Status.PodIP + ":9090/metrics")
		if err != nil {
			e.t.Fatalf("metrics of %s: %v", p.Name, err)
		}
		sum := 0.0
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if m := requestsLine.FindStringSubmatch(sc.Text()); m != nil {
				v, _ := strconv.ParseFloat(m[1], 64)
				sum += v
			}
		}
		r.Body.Close()
		counts[p.Name] = int(sum)
		if int(sum) > most {
			best, most = p.Name, int(sum)
		}
	}
	if best == "" {
		e.t.Fatal("no running server pod")
	}
	return best, counts
}

func chartAppVersion(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "charts", "kacme", "Chart.yaml"))
	must(t, err)
	m := regexp.MustCompile(`(?m)^appVersion:\s*"?([^"\s]+)"?`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no appVersion in Chart.yaml")
	}
	return string(m[1])
}

func firstLine(s string) string { l, _, _ := strings.Cut(strings.TrimSpace(s), "\n"); return l }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dumpOnFailure puts the cluster's state into a failed test's output: pods,
// events, every container's log (the kubelet's files) and the components'.
func (e *nodeEnv) dumpOnFailure() {
	if !e.t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, args := range [][]string{{"get", "pods", "-A", "-o", "wide"}, {"get", "events", "-A", "--sort-by=.lastTimestamp"}} {
		out, _ := e.n.Kubectl(ctx, args...)
		e.t.Logf("--- kubectl %s ---\n%s", strings.Join(args, " "), lastLines(out, 120))
	}
	_ = filepath.WalkDir(filepath.Join(os.Getenv(node.EnvDir), "pod-logs"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".log") {
			return nil
		}
		data, _ := os.ReadFile(p)
		e.t.Logf("--- %s ---\n%s", strings.TrimPrefix(p, os.Getenv(node.EnvDir)+"/pod-logs/"), lastLines(string(data), 60))
		return nil
	})
	e.t.Log(e.n.Logs(30))
}

func tlsConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
