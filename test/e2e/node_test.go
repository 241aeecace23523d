package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
	"github.com/kacme/kacme/test/node"
)

// The real-node e2e: a single-node Kubernetes cluster (test/node) in a
// network namespace of the test's own, the image make image built, the
// Helm chart, and from pods and through Services only: (a) a Go ACME client
// in a pod gets certificates via http-01 (answered by itself behind its
// Service) and dns-01 (RFC 2136 to CoreDNS, the cluster DNS, running as a
// pod); (b) three server replicas, four clients and 300 issuances while the
// busiest server pod is deleted, without one error response; (c)
// cert-manager v1.21.2's controllers issue a Certificate through a
// ClusterIssuer whose caBundle kacme injected, and a pod serves TLS with it
// that verifies against the trust bundle kacme published; (d) helm upgrade
// to a rebuilt image keeps every account, order and certificate while the
// directory keeps answering; (e) helm uninstall leaves what
// docs/kubernetes.md says it leaves and nothing else.
const (
	release   = "kacme"
	kacmeNS   = "kacme-system"
	e2eNS     = "e2e"
	directory = "https://kacme.kacme-system.svc/acme/default/directory"
	// clientImage is test/e2e/nodeclient's image, built by the test.
	clientImage = "kacme.test/nodeclient:1"
)

// TestRealNode runs itself again inside the node's namespaces (see
// runInNode); there, realNode does the work.
func TestRealNode(t *testing.T) {
	if o, inside := node.OptionsFromEnv(); inside {
		realNode(t, o)
		return
	}
	bin, why := os.Getenv("KACME_NODE"), ""
	if bin == "" {
		why = "KACME_NODE is not set (make test-e2e sets it from hack/node.sh)"
	} else if err := node.Check(); err != nil {
		why = err.Error()
	}
	for _, env := range []string{"KACME_IMAGE_ARCHIVE", "KACME_HELM", "KACME_COREDNS"} {
		if why == "" && os.Getenv(env) == "" {
			why = env + " is not set (make test-e2e sets it)"
		}
	}
	if why != "" {
		if os.Getenv("CI") == "true" || os.Getenv("KACME_NODE_TEST") == "required" {
			t.Fatal("the real-node test cannot run: " + why)
		}
		t.Skip("the real-node test cannot run here: " + why)
	}
	runInNode(t, bin)
}

// runInNode creates the namespaces, runs this test inside them (nsenter),
// and removes everything afterwards, whatever happened inside.
func runInNode(t *testing.T, bin string) {
	ns, err := node.Create()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, err := range ns.Close() {
			t.Errorf("teardown: %v", err)
		}
	}()
	timeout := 40 * time.Minute
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d) - time.Minute // the inside fails first, and this side still cleans up
	}
	cmd := ns.Command(os.Args[0], "-test.run=^TestRealNode$", "-test.v", "-test.count=1", "-test.timeout="+timeout.String())
	cmd.Env = append(os.Environ(), ns.Environment(bin)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	// Progress lines always; everything when it failed.
	if err != nil {
		t.Fatalf("the test inside the node failed (%v):\n%s", err, out.String())
	}
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20) // a step line may list many objects
	for sc.Scan() {
		if strings.Contains(sc.Text(), "step ") {
			t.Log(strings.TrimSpace(sc.Text()))
		}
	}
	if err := sc.Err(); err != nil {
		t.Errorf("reading the inner test's output: %v", err)
	}
}

// nodeEnv is what the steps share.
type nodeEnv struct {
	t    *testing.T
	ctx  context.Context
	n    *node.Cluster
	c    client.Client
	cs   *kubernetes.Clientset
	helm string
	root string // the repository
	t0   time.Time
}

func (e *nodeEnv) step(format string, args ...any) {
	e.t.Helper()
	e.t.Logf("step %s (at %s)", fmt.Sprintf(format, args...), time.Since(e.t0).Round(100*time.Millisecond))
}

func realNode(t *testing.T, o node.Options) {
	ctx := context.Background()
	e := &nodeEnv{t: t, ctx: ctx, helm: os.Getenv("KACME_HELM"), root: kenvtest.RepoRoot(), t0: time.Now()}
	o.Log = testWriter{t}
	n, err := node.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	e.n = n
	t.Cleanup(e.dumpOnFailure)
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, cmapi.AddToScheme, cmacme.AddToScheme} {
		must(t, add(scheme))
	}
	e.c, err = client.New(n.Config, client.Options{Scheme: scheme})
	must(t, err)
	e.cs, err = kubernetes.NewForConfig(n.Config)
	must(t, err)
	e.step("node Ready")

	must(t, n.ImportImage(ctx, os.Getenv("KACME_IMAGE_ARCHIVE")))
	cl, err := node.BuildGo(ctx, t.TempDir(), ".", "./nodeclient", "nodeclient", "")
	must(t, err)
	must(t, n.ImportBinary(ctx, cl, clientImage, "65532:65532"))
	must(t, n.InstallDNS(ctx, os.Getenv("KACME_COREDNS"), node.Zone{Name: zone, TSIGKey: harness.TSIGName, TSIGSecret: harness.TSIGSecret}))
	e.step("images imported (kacme's from make image), CoreDNS Ready")

	e.install()
	pod, serial, requests := e.podCertificates() // renewed while the other steps run
	e.issueFromPods()
	e.replicasUnderLoad()
	e.certManager()
	e.upgrade()
	e.podCertificatesRotated(pod, serial, requests)
	e.uninstall()
}

// testWriter sends the node's progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// install: the chart with helm install --wait, then the CA and profiles the
// chart's NOTES (and docs/kubernetes.md) tell a user to apply.
func (e *nodeEnv) install() {
	e.t.Helper()
	out := e.helmRun("install", release, filepath.Join(e.root, "charts", "kacme"), "--namespace", kacmeNS, "--create-namespace",
		"--wait", "--timeout", "4m")
	if !strings.Contains(out, "kubectl apply -f config/samples/cluster/") {
		e.t.Fatalf("helm install printed no NOTES telling what to apply next:\n%s", out)
	}
	e.step("helm install --wait")
	e.kubectl("apply", "-f", filepath.Join(e.root, "config", "samples", "cluster"))
	for _, p := range []string{"default", "teams"} {
		e.waitFor("AcmeProfile "+p+" Ready", 2*time.Minute, func() error {
			var prof v1alpha1.AcmeProfile
			if err := e.c.Get(e.ctx, client.ObjectKey{Name: p}, &prof); err != nil {
				return err
			}
			if !meta.IsStatusConditionTrue(prof.Status.Conditions, "Ready") {
				return fmt.Errorf("conditions %+v", prof.Status.Conditions)
			}
			return nil
		})
	}
	e.step("config/samples/cluster applied, profiles Ready")
}

// issueFromPods is (a): a client pod gets a certificate for its own
// Service's name through http-01 (kacme dials the Service's endpoint), and
// one for a name in CoreDNS's zone through dns-01.
func (e *nodeEnv) issueFromPods() {
	e.t.Helper()
	e.kubectl("create", "namespace", e2eNS)
	e.waitTrust(e2eNS)
	must(e.t, e.c.Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e2eNS, Name: "tsig"},
		StringData: map[string]string{"secret": harness.TSIGSecret}}))
	e.apply(service(e2eNS, "web", "issue-http", 80, 8080))
	e.apply(e.clientJob(e2eNS, "issue-http", []string{"issue", "-directory", directory, "-name", "web.e2e.svc", "-challenge", "http-01"}))
	e.apply(e.clientJob(e2eNS, "issue-dns", []string{"issue", "-directory", directory, "-name", "dns01." + zone, "-challenge", "dns-01",
		"-dns-server", node.DNSIP + ":53", "-dns-zone", zone, "-tsig-key", harness.TSIGName}))
	root := e.caRoot("root")
	for job, name := range map[string]string{"issue-http": "web.e2e.svc", "issue-dns": "dns01." + zone} {
		logs := e.waitJob(e2eNS, job, 3*time.Minute)
		verifyChain(e.t, []byte(logs), root, name)
	}
	e.step("(a) a client in a pod got certificates through http-01 (its Service) and dns-01 (CoreDNS)")
}

// replicasUnderLoad is (b): three server replicas; four clients in a pod,
// each keeping its connections, issue 300 certificates while the server pod
// that served the most requests is deleted; not one error response.
func (e *nodeEnv) replicasUnderLoad() {
	e.t.Helper()
	e.helmRun("upgrade", release, filepath.Join(e.root, "charts", "kacme"), "--namespace", kacmeNS, "--reuse-values",
		"--set", "server.replicas=3", "--wait", "--timeout", "4m")
	e.step("server scaled to 3 replicas (helm upgrade --set server.replicas=3)")
	// The clients issue until told to stop: at least 300 certificates, and
	// 100 more after the deleted pod is gone (its shutdown delay, drain and
	// nonce grace all fall inside the run).
	const atLeast = 300
	e.apply(service(e2eNS, "load", "load", 80, 8080))
	e.apply(e.clientJob(e2eNS, "load", []string{"load", "-directory", directory, "-name", "load.e2e.svc", "-clients", "4",
		"-total", "0", "-linger", "120s"}))
	podIP := e.jobPodIP(e2eNS, "load")
	var st loadStatus
	waitDone := func(what string, n int64) {
		e.waitFor(what, 10*time.Minute, func() error {
			st = getStatus(e.t, podIP)
			if st.Finished {
				e.t.Fatalf("the load ended early: %d issued; problems:\n%s", st.Done, strings.Join(st.Problems, "\n"))
			}
			if st.Done < n {
				return fmt.Errorf("%d issued, %d problems", st.Done, len(st.Problems))
			}
			return nil
		})
	}
	waitDone("the first 100 issuances", 100)
	busiest, counts := e.busiestServer()
	var victim corev1.Pod
	must(e.t, e.c.Get(e.ctx, client.ObjectKey{Namespace: kacmeNS, Name: busiest}, &victim))
	must(e.t, e.c.Delete(e.ctx, &victim))
	e.step("deleted the busiest server pod %s (ACME requests per pod %v) after %d issuances", busiest, counts, st.Done)
	e.waitFor("the deleted pod to be gone", 2*time.Minute, func() error {
		var p corev1.Pod
		err := e.c.Get(e.ctx, client.ObjectKey{Namespace: kacmeNS, Name: busiest}, &p)
		if apierrors.IsNotFound(err) || (err == nil && p.UID != victim.UID) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	gone := getStatus(e.t, podIP).Done
	e.step("the deleted pod is gone after %d issuances", gone)
	waitDone("100 more issuances and 300 in all", max(gone+100, atLeast))
	r, err := http.Post("http://"+podIP+":8081/stop", "text/plain", nil)
	must(e.t, err)
	r.Body.Close()
	e.waitFor("the load to stop", 2*time.Minute, func() error {
		if st = getStatus(e.t, podIP); !st.Finished {
			return fmt.Errorf("%d issued", st.Done)
		}
		return nil
	})
	if len(st.Problems) > 0 || st.Done < atLeast {
		e.t.Fatalf("%d issued; error responses and failures:\n%s", st.Done, strings.Join(st.Problems, "\n"))
	}
	_, counts = e.busiestServer()
	must(e.t, e.n.WaitDeployment(e.ctx, kacmeNS, "kacme-server", 3*time.Minute))
	e.step("(b) %d issuances from 4 clients over 3 replicas (the busiest deleted mid-run), %d requests, no error response; the replacement and the others served %v",
		st.Done, st.Requests, counts)
}

// certManager is (c): cert-manager's controllers (in this process, inside
// the node) and docs/cert-manager/*.yaml as they are.
func (e *nodeEnv) certManager() {
	e.t.Helper()
	e.kubectl("apply", "--server-side", "-f", kenvtest.CertManagerCRDs(e.t))
	e.kubectl("create", "namespace", cmNS)
	must(e.t, e.c.Create(e.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: cmNS, Name: "kacme-tsig"},
		StringData: map[string]string{"secret": harness.TSIGSecret}}))
	startCertManager(e.t, e.n.Kubeconfig, node.DNSIP+":53")
	for _, f := range []string{"kacme.yaml", "clusterissuer.yaml", "certificates.yaml"} {
		e.kubectl("apply", "-f", filepath.Join(e.root, "docs", "cert-manager", f))
	}
	root := waitBundle(e.t, e.c, "apps")
	var ci cmapi.ClusterIssuer
	e.waitFor("the ClusterIssuer's injected caBundle", 2*time.Minute, func() error {
		if err := e.c.Get(e.ctx, client.ObjectKey{Name: "kacme"}, &ci); err != nil {
			return err
		}
		if !bytes.HasPrefix(ci.Spec.ACME.CABundle, root) {
			return fmt.Errorf("caBundle %q", ci.Spec.ACME.CABundle)
		}
		return nil
	})
	web := waitIssued(e.t, e.c, "apps", "web", nil)
	verify(e.t, web, root, "web."+zone)
	e.step("cert-manager issued apps/web through the ClusterIssuer")
	e.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: apps}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: %s
        imagePullPolicy: Never
        args: [serve-tls, -cert, /tls/tls.crt, -key, /tls/tls.key, -listen, ":8443"]
        readinessProbe: {tcpSocket: {port: 8443}, periodSeconds: 1}
        %s
        volumeMounts: [{name: tls, mountPath: /tls, readOnly: true}]
      volumes: [{name: tls, secret: {secretName: web-tls}}]
`, clientImage, securityContext) + "---\n" + service("apps", "web", "web", 443, 8443))
	must(e.t, e.n.WaitDeployment(e.ctx, "apps", "web", 2*time.Minute))
	e.apply(e.clientJobWith("apps", "check-web", []string{"fetch", "-url", "https://web.apps.svc", "-server-name", "web." + zone, "-ca", "/bundle/ca.crt"},
		"internal-ca-bundle", "/bundle"))
	logs := e.waitJob("apps", "check-web", 3*time.Minute)
	if !strings.Contains(logs, "verified web."+zone) {
		e.t.Fatalf("check-web: %s", logs)
	}
	e.step("(c) a pod serves apps/web-tls; a pod verified it against ConfigMap apps/internal-ca-bundle: %s", firstLine(logs))
}

// upgrade is (d): helm upgrade to a rebuilt image.
func (e *nodeEnv) upgrade() {
	e.t.Helper()
	version := chartAppVersion(e.t, e.root)
	tag := version + "-e2e"
	bin, err := node.BuildGo(e.ctx, e.t.TempDir(), "", "./cmd/kacme", "kacme", "-X main.version="+version+" -X main.revision=e2e-upgrade")
	must(e.t, err)
	must(e.t, e.n.ImportBinary(e.ctx, bin, "ghcr.io/kacme/kacme:"+tag, "65532:65532"))
	e.apply(fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: watch, namespace: %s}
spec:
  selector: {matchLabels: {app: watch}}
  template:
    metadata: {labels: {app: watch}}
    spec:
      containers:
      - name: watch
        image: %s
        imagePullPolicy: Never
        args: [watch, -url, "https://kacme.kacme-system.svc/acme/directory", -interval, 100ms]
        readinessProbe: {tcpSocket: {port: 8081}, periodSeconds: 1}
        %s
        volumeMounts: [{name: trust, mountPath: /trust, readOnly: true}]
      volumes: [{name: trust, configMap: {name: kacme-server-ca}}]
`, e2eNS, clientImage, securityContext))
	must(e.t, e.n.WaitDeployment(e.ctx, e2eNS, "watch", 2*time.Minute))
	watchIP := e.podIP(e2eNS, "app=watch")
	e.waitFor("the directory watcher's first answers", time.Minute, func() error {
		if st := getStatus(e.t, watchIP); st.Done < 5 {
			return fmt.Errorf("%d answers", st.Done)
		}
		return nil
	})
	before := e.acmeObjects()
	acct, order := e.certManagerAccount()
	e.helmRun("upgrade", release, filepath.Join(e.root, "charts", "kacme"), "--namespace", kacmeNS, "--reuse-values",
		"--set", "image.tag="+tag, "--wait", "--timeout", "5m")
	for _, dep := range []string{"kacme-server", "kacme-controller"} {
		must(e.t, e.n.WaitDeployment(e.ctx, kacmeNS, dep, 3*time.Minute))
	}
	var pods corev1.PodList
	must(e.t, e.c.List(e.ctx, &pods, client.InNamespace(kacmeNS)))
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if img := p.Spec.Containers[0].Image; img != "ghcr.io/kacme/kacme:"+tag {
			e.t.Fatalf("pod %s runs %s after the upgrade", p.Name, img)
		}
		if logs := e.podLogs(kacmeNS, p.Name); !strings.Contains(logs, `"revision":"e2e-upgrade"`) && !strings.Contains(logs, `revision="e2e-upgrade"`) &&
			!strings.Contains(logs, "revision=e2e-upgrade") {
			e.t.Fatalf("pod %s does not say it runs the rebuilt binary:\n%s", p.Name, lastLines(logs, 20))
		}
	}
	time.Sleep(2 * time.Second)
	st := getStatus(e.t, watchIP)
	if st.Failed > 0 || len(st.Problems) > 0 {
		e.t.Fatalf("the directory did not answer %d times during the upgrade (%d answered):\n%s", st.Failed, st.Done, strings.Join(st.Problems, "\n"))
	}
	after := e.acmeObjects()
	for uid, what := range before {
		if _, ok := after[uid]; !ok {
			e.t.Errorf("%s is gone after the upgrade", what)
		}
	}
	// The account and its order and certificate, through the new servers.
	e.checkAccount(acct, order)
	e.step("(d) helm upgrade to %s: %d ACME objects kept, the directory answered %d times without a failure, cert-manager's account, order and certificate served",
		tag, len(before), st.Done)
}
