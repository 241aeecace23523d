package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/acmeserver/cluster"
	"github.com/kacme/kacme/api/v1alpha1"
	"github.com/kacme/kacme/controllers/setup"
	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/harness"
)

// TestTerminatingServerKeepsItsCache (issue 14): kacme server's context is
// cancelled at SIGTERM, while --shutdown-delay keeps the pod answering; its
// informers must keep running until Close has drained the listener, or it
// answers from a frozen cache what other replicas changed meanwhile
// ("accountDoesNotExist", "order does not exist"). Here the server's start
// context is cancelled, then a profile appears: the server must still see it.
func TestTerminatingServerKeepsItsCache(t *testing.T) {
	c, kc := startWithDefaultProfile(t)
	ctx := context.Background()
	sigterm, cancel := context.WithCancel(ctx)
	srv, err := cluster.Start(sigterm, cluster.Options{Config: restConfig(t, kc.Server), Namespace: clusterNS, Listen: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	if _, ok := srv.RA.Config().Profiles["default"]; !ok {
		t.Fatal("the server does not serve the default profile")
	}
	cancel() // SIGTERM: the pod keeps serving for its shutdown delay
	createAll(t, c, &v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "late"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root"}})
	waitProfileReady(t, c, "late")
	kenvtest.WaitFor(t, "the terminating server to see the profile created after SIGTERM", func() bool {
		_, ok := srv.RA.Config().Profiles["late"]
		return ok
	})
}

func waitProfileReady(t *testing.T, c client.Client, name string) {
	t.Helper()
	kenvtest.WaitFor(t, "profile "+name+" Ready", func() bool {
		var p v1alpha1.AcmeProfile
		return c.Get(context.Background(), client.ObjectKey{Name: name}, &p) == nil && meta.IsStatusConditionTrue(p.Status.Conditions, "Ready")
	})
}

// restConfig reads a kubeconfig written by kenvtest.StartWithKubeconfig.
func restConfig(t *testing.T, path string) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// splitReplicas sends an ACME client's requests to one replica until its
// first POST and from then on to another, as a Service does to a client whose
// connection to a terminating pod closed between two requests; before the
// first POST it runs beforePost. It records every error
// response the client saw (the Go client retries badNonce silently).
type splitReplicas struct {
	base          http.RoundTripper
	first, second string // host:port
	beforePost    func()
	mu            sync.Mutex
	posted        bool
	problems      []string
}

func (s *splitReplicas) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Host = r.URL.Host // the replicas check it against --external-url
	s.mu.Lock()
	if r.Method == http.MethodPost && !s.posted {
		if s.beforePost != nil {
			s.beforePost()
		}
		s.posted = true
	}
	r.URL.Host = s.first
	if s.posted {
		r.URL.Host = s.second
	}
	s.mu.Unlock()
	resp, err := s.base.RoundTrip(r)
	if err == nil && resp.StatusCode >= 400 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.problems = append(s.problems, fmt.Sprintf("%s %s → %d %s", r.Method, r.URL.Path, resp.StatusCode, body))
		s.mu.Unlock()
	}
	return resp, err
}

// TestTerminatingReplicaRedeemsItsNonces (issue 14): a client got a nonce
// from a replica that then terminated (SIGTERM; its listener has closed) and
// spends it at another replica, as a client whose keep-alive connection to a
// deleted pod closed does through the Service: the nonce must still be good
// (the terminating replica keeps redeeming for its peers for
// cluster.NonceGrace after the last nonce it issued), not a badNonce.
func TestTerminatingReplicaRedeemsItsNonces(t *testing.T) {
	e := newClusterEnv(t, false)
	procs, backends := startReplicas(t, e, 2)
	dying, other := strings.TrimPrefix(backends[0], "https://"), strings.TrimPrefix(backends[1], "https://")
	split := &splitReplicas{base: e.httpClient().Transport, first: dying, second: other, beforePost: func() {
		if err := procs[0].Cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Error(err)
		}
		kenvtest.WaitFor(t, "the terminating replica's listener to close", func() bool {
			conn, err := net.DialTimeout("tcp", dying, time.Second)
			if err != nil {
				return true
			}
			conn.Close()
			return false
		})
		time.Sleep(300 * time.Millisecond) // the client's next request is not instant either
	}}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cl := &xacme.Client{Key: key, DirectoryURL: e.serverURL + "/acme/directory", HTTPClient: &http.Client{Transport: split}}
	if _, err := cl.Register(context.Background(), &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	if !split.posted {
		t.Fatal("the client never posted")
	}
	if len(split.problems) > 0 {
		t.Fatalf("the client saw error responses after the replica that issued its nonce terminated:\n%s", strings.Join(split.problems, "\n"))
	}
	procs[0].Stop()
}

// TestServerReadyBeforeAnyProfile (issue 14): "helm install --wait" waits
// for the server's readiness, and the docs have the user apply a
// CertificateAuthority and an AcmeProfile after installing. The server is
// Ready once it serves (its cache synced, its HTTPS certificate loaded), with
// or without profiles; until one exists, a directory request is a problem
// document that says so.
func TestServerReadyBeforeAnyProfile(t *testing.T) {
	_, c, kc := kenvtest.StartWithKubeconfig(t)
	ctx := context.Background()
	addr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
	startControllerWith(t, restConfig(t, kc.Controller), setup.Options{Namespace: clusterNS, ExternalURL: "https://" + addr,
		ServingSecret: "kacme-serving-tls", ServingCA: "kacme-serving"})
	createAll(t, c, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "kacme-serving"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}})
	var servingCA v1alpha1.CertificateAuthority
	kenvtest.WaitFor(t, "the serving CA", func() bool {
		return c.Get(ctx, client.ObjectKey{Name: "kacme-serving"}, &servingCA) == nil && servingCA.Status.Chain != ""
	})
	srv, err := cluster.Start(ctx, cluster.Options{Config: restConfig(t, kc.Server), Namespace: clusterNS, Listen: addr,
		ExternalURL: "https://" + addr, TLSSecret: "kacme-serving-tls", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(servingCA.Status.Chain))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(path string) (int, string) {
		r, err := hc.Get("https://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		body, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(body)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz without any AcmeProfile = %d %s, want 200", code, body)
	}
	code, body := get("/acme/directory")
	if code != http.StatusNotFound || !strings.Contains(body, "urn:ietf:params:acme:error:") || !strings.Contains(body, "AcmeProfile") {
		t.Fatalf("directory without any AcmeProfile = %d %s, want 404 with a problem document naming AcmeProfile", code, body)
	}
}

// TestNonceLeaseOwnedByItsPod (issue 14): a replica's nonce Lease names its
// Pod as owner, so that the garbage collector removes the Lease with the Pod
// even when the replica could not (killed, or at helm uninstall, where the
// replica's RBAC goes before it has stopped: the real-node e2e found four
// Leases left).
func TestNonceLeaseOwnedByItsPod(t *testing.T) {
	c, kc := startWithDefaultProfile(t)
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: clusterNS, Name: "kacme-server-0"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: "ghcr.io/kacme/kacme:test"}}}}
	createAll(t, c, pod)
	srv, err := cluster.Start(ctx, cluster.Options{Config: restConfig(t, kc.Server), Namespace: clusterNS, Listen: "127.0.0.1:0",
		InternalListen: "127.0.0.1:0", PodName: pod.Name, PodUID: string(pod.UID), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Close() }()
	admin, err := client.New(restConfig(t, kc.Admin), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var leases coordinationv1.LeaseList
	if err := admin.List(ctx, &leases, client.InNamespace(clusterNS), client.MatchingLabels{"app.kubernetes.io/component": "nonce-peer"}); err != nil {
		t.Fatal(err)
	}
	if len(leases.Items) != 1 {
		t.Fatalf("%d nonce Leases, want 1", len(leases.Items))
	}
	if refs := leases.Items[0].OwnerReferences; len(refs) != 1 || refs[0].UID != pod.UID || refs[0].Kind != "Pod" {
		t.Fatalf("nonce Lease owners = %+v, want the Pod %s", refs, pod.Name)
	}
}

// startWithDefaultProfile starts an API server and the controller, and
// waits for a self-signed CA "root" and its profile "default" to be Ready.
func startWithDefaultProfile(t *testing.T) (client.Client, kenvtest.Kubeconfigs) {
	t.Helper()
	_, c, kc := kenvtest.StartWithKubeconfig(t)
	startController(t, restConfig(t, kc.Controller), nil)
	createAll(t, c, &v1alpha1.CertificateAuthority{ObjectMeta: metav1.ObjectMeta{Name: "root"},
		Spec: v1alpha1.CertificateAuthoritySpec{SelfSigned: &v1alpha1.SelfSignedCA{}}},
		&v1alpha1.AcmeProfile{ObjectMeta: metav1.ObjectMeta{Name: "default"}, Spec: v1alpha1.AcmeProfileSpec{CertificateAuthority: "root"}})
	waitProfileReady(t, c, "default")
	return c, kc
}
