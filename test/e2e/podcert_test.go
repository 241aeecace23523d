package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// podCertNS is the namespace of docs/pod-certificates/app.yaml.
const podCertNS = "shop"

// podCertDoc reads a manifest of docs/pod-certificates with the changes the
// test makes: the image (the test's own) and, in the signer, a lifetime of
// an hour renewed as early as Kubernetes allows (notBefore backdated 4
// minutes, beginRefreshAt 10 minutes after it), so that a rotation happens
// within the test.
func (e *nodeEnv) podCertDoc(name string) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.root, "docs", "pod-certificates", name))
	must(e.t, err)
	s := strings.ReplaceAll(string(b), "registry.example/web:1", clientImage)
	if name == "signer.yaml" {
		s = strings.Replace(s, "  maxLifetime: 24h\n", "  maxLifetime: 1h\n  refreshAfterPercent: 1\n  backdate: 4m\n", 1)
	}
	return s
}

// podCertificates is the first half of the pod certificate test: the
// KubernetesSigner and the application of docs/pod-certificates start, the
// kubelet gets the pod its certificate from kacme, and a client pod
// verifies it through the Service against the mounted ClusterTrustBundle.
// It returns the pod and the serial it served.
func (e *nodeEnv) podCertificates() (*corev1.Pod, string, []string) {
	e.t.Helper()
	e.apply(e.podCertDoc("signer.yaml"))
	e.apply(e.podCertDoc("app.yaml"))
	must(e.t, e.n.WaitDeployment(e.ctx, podCertNS, "web", 3*time.Minute))
	pod := e.onlyPod(podCertNS, "app=web")
	serial := e.checkPodCert("check-web")
	var names []string
	for _, r := range e.podCertRequests(pod) {
		names = append(names, r.Name)
	}
	e.step("pod certificates: pod %s started with a certificate from acme.kacme.io/pods (serial %s, requests %v); a pod verified it through the Service against the ClusterTrustBundle", pod.Name, serial, names)
	return pod, serial, names
}

// podCertRequests are the PodCertificateRequests of pod.
func (e *nodeEnv) podCertRequests(pod *corev1.Pod) []certv1.PodCertificateRequest {
	e.t.Helper()
	var list certv1.PodCertificateRequestList
	must(e.t, e.c.List(e.ctx, &list, client.InNamespace(pod.Namespace)))
	var out []certv1.PodCertificateRequest
	for _, r := range list.Items {
		if r.Spec.PodUID == pod.UID {
			out = append(out, r)
		}
	}
	return out
}

// podCertificatesRotated is the second half: the kubelet has renewed the
// certificate (a second PodCertificateRequest issued), the pod serves the new
// one, and it never restarted.
func (e *nodeEnv) podCertificatesRotated(pod *corev1.Pod, first string, firstRequests []string) {
	e.t.Helper()
	// The kubelet renews at beginRefreshAt (10 minutes after notBefore)
	// plus up to 5 minutes of jitter, on a pass every minute or two.
	e.waitFor("the kubelet to renew the pod's certificate", 15*time.Minute, func() error {
		for _, r := range e.podCertRequests(pod) {
			if !slices.Contains(firstRequests, r.Name) && meta.IsStatusConditionTrue(r.Status.Conditions, "Issued") {
				return nil
			}
		}
		return fmt.Errorf("no renewal issued yet")
	})
	var second string
	e.waitFor("the pod to serve the renewed certificate", 2*time.Minute, func() error {
		name := fmt.Sprintf("check-web-%d", time.Now().UnixNano()%1e6)
		if second = e.checkPodCert(name); second == first {
			return fmt.Errorf("still serial %s", second)
		}
		return nil
	})
	now := e.onlyPod(podCertNS, "app=web")
	if now.UID != pod.UID || now.Status.ContainerStatuses[0].RestartCount != 0 {
		e.t.Fatalf("the pod was replaced or restarted: %s/%s restarts %d", now.Name, now.UID, now.Status.ContainerStatuses[0].RestartCount)
	}
	e.step("pod certificates: the kubelet renewed the certificate (serial %s, then %s) and the pod served the new one without a restart", first, second)
}

var serialRE = regexp.MustCompile(`serial ([0-9a-f]+)\)`)

// checkPodCert runs docs/pod-certificates/client.yaml and returns the
// serial it verified; the certificate must name the Service and the pod's
// SPIFFE ID.
func (e *nodeEnv) checkPodCert(name string) string {
	e.t.Helper()
	e.apply(strings.Replace(e.podCertDoc("client.yaml"), "name: check-web\n", "name: "+name+"\n", 1))
	logs := e.waitJob(podCertNS, name, 3*time.Minute)
	for _, want := range []string{"verified web.shop.svc", "web.shop.svc.cluster.local", "spiffe://cluster.local/ns/shop/sa/web"} {
		if !strings.Contains(logs, want) {
			e.t.Fatalf("%s: no %q in:\n%s", name, want, logs)
		}
	}
	m := serialRE.FindStringSubmatch(logs)
	if m == nil {
		e.t.Fatalf("%s: no serial in:\n%s", name, logs)
	}
	return m[1]
}

// onlyPod is the one pod in ns matching selector.
func (e *nodeEnv) onlyPod(ns, selector string) *corev1.Pod {
	e.t.Helper()
	var pods corev1.PodList
	sel, err := labels.Parse(selector)
	must(e.t, err)
	must(e.t, e.c.List(e.ctx, &pods, client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}))
	if len(pods.Items) != 1 {
		e.t.Fatalf("%d pods %s in %s, want 1", len(pods.Items), selector, ns)
	}
	return &pods.Items[0]
}
