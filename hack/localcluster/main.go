// Command localcluster is "make run-local": kacme's cluster mode without a
// cluster. It starts a local control plane (the kube-apiserver and etcd that
// hack/envtest.sh builds for the tests), installs the CRDs, the generated
// RBAC and the samples in config/samples/cluster, runs "kacme controller" and
// "kacme server" as users bound to exactly that RBAC, prints what to try, and
// stops everything on Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crenvtest "sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kacme/kacme/api/v1alpha1"
	kenvtest "github.com/kacme/kacme/test/envtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "run-local:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("kacme", "bin/kacme", "kacme binary")
	dir := flag.String("dir", "bin/local", "kubeconfigs, logs and the root CA go here")
	listen := flag.String("listen", "127.0.0.1:9443", "kacme server listen address")
	metricsAddr := flag.String("metrics", "127.0.0.1:9090", "kacme server metrics address (/metrics)")
	samples := flag.String("samples", "config/samples/cluster", "manifests applied after the CRDs")
	flag.Parse()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set (make run-local sets it from hack/envtest.sh)")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	env := &crenvtest.Environment{CRDDirectoryPaths: []string{"config/crd/bases"}, ErrorIfCRDPathMissing: true, BinaryAssetsDirectory: assets}
	fmt.Println("starting kube-apiserver and etcd …")
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("start the control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()
	c, err := client.New(cfg, client.Options{Scheme: kenvtest.Scheme()})
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kenvtest.OperatorNamespace}}); err != nil {
		return err
	}
	kubeconfigs, err := writeKubeconfigs(ctx, env, c, *dir)
	if err != nil {
		return err
	}
	if err := applyDir(ctx, c, *samples); err != nil {
		return err
	}
	url := "https://" + *listen
	stopCtrl, err := start(*bin, *dir, "controller", kubeconfigs["kacme-controller"], "--namespace", kenvtest.OperatorNamespace, "--external-url", url)
	if err != nil {
		return err
	}
	defer stopCtrl()
	fmt.Println("waiting for the CertificateAuthorities and AcmeProfiles to become Ready …")
	if err := waitReady(ctx, c); err != nil {
		return err
	}
	stopServer, err := start(*bin, *dir, "server", kubeconfigs["kacme-server"], "--namespace", kenvtest.OperatorNamespace, "--listen", *listen, "--external-url", url, "--metrics-addr", *metricsAddr)
	if err != nil {
		return err
	}
	defer stopServer()
	var root corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: kenvtest.OperatorNamespace, Name: "root-ca"}, &root); err != nil {
		return err
	}
	caPath, _ := filepath.Abs(filepath.Join(*dir, "ca.crt"))
	if err := os.WriteFile(caPath, root.Data["ca.crt"], 0o644); err != nil {
		return err
	}
	var eab corev1.Secret
	_ = c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "payments-eab"}, &eab)
	kubectl := os.Getenv("KACME_KUBECTL")
	if kubectl == "" {
		kubectl = "kubectl"
	}
	printInstructions(url, caPath, kubeconfigs["admin"], *dir, kubectl, string(eab.Data["key"]), *metricsAddr)
	sig, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-sig.Done()
	fmt.Println("\nstopping …")
	return nil
}

// writeKubeconfigs adds the admin, kacme-server and kacme-controller users
// (the last two bound to the generated RBAC) and writes a kubeconfig for each
// into dir; it returns their paths by user name.
func writeKubeconfigs(ctx context.Context, env *crenvtest.Environment, c client.Client, dir string) (map[string]string, error) {
	kubeconfigs := map[string]string{}
	for _, u := range []crenvtest.User{{Name: "admin", Groups: []string{"system:masters"}}, {Name: "kacme-server"}, {Name: "kacme-controller"}} {
		if u.Name != "admin" {
			if err := kenvtest.BindGeneratedRBAC(ctx, c, strings.TrimPrefix(u.Name, "kacme-"), u.Name); err != nil {
				return nil, err
			}
		}
		au, err := env.AddUser(u, nil)
		if err != nil {
			return nil, err
		}
		kc, err := au.KubeConfig()
		if err != nil {
			return nil, err
		}
		path, _ := filepath.Abs(filepath.Join(dir, strings.TrimPrefix(u.Name, "kacme-")+".kubeconfig"))
		if err := os.WriteFile(path, kc, 0o600); err != nil {
			return nil, err
		}
		kubeconfigs[u.Name] = path
	}
	return kubeconfigs, nil
}

// printInstructions says what runs where and how to try it.
func printInstructions(url, caPath, adminKubeconfig, dir, kubectl, eabKey, metricsAddr string) {
	fmt.Printf(`
kacme runs in cluster mode on a local control plane (kube-apiserver v1.37.2 + etcd v3.7.3):
  directory      %[1]s/acme/directory   (profiles: default, teams)
  root CA        %[2]s
  kubeconfig     %[3]s   (controller and server run as users bound to config/rbac)
  logs           %[4]s/controller.log, %[4]s/server.log
  metrics        http://%[8]s/metrics   (health: %[1]s/readyz)

Try it:
  export KUBECONFIG=%[3]s
  %[5]s get acme -A
  LEGO_CA_CERTIFICATES=%[2]s lego --server %[1]s/acme/default/directory --accept-tos --email you@example.org \
    --path /tmp/lego-local --http --http.port 127.0.0.1:5002 --domains web.localhost run
  %[5]s get acmeorders,acmechallenges,acmecertificates -n %[6]s -o wide

  # the pre-registered team account (namespace team-a, EAB key minted by the controller):
  LEGO_CA_CERTIFICATES=%[2]s lego --server %[1]s/acme/teams/directory --accept-tos --email you@example.org \
    --path /tmp/lego-team --eab --kid team-a-payments --hmac %[7]s \
    --http --http.port 127.0.0.1:5002 --domains payments.localhost run
  %[5]s get acmeaccounts,acmeorders,acmecertificates -n team-a

Ctrl-C stops the server, the controller and the control plane.
`, url, caPath, adminKubeconfig, dir, kubectl, kenvtest.OperatorNamespace, eabKey, metricsAddr)
}

// start runs "kacme <cmd>" with its output in <dir>/<cmd>.log.
func start(bin, dir, cmd, kubeconfig string, args ...string) (func(), error) {
	log, err := os.Create(filepath.Join(dir, cmd+".log"))
	if err != nil {
		return nil, err
	}
	p := exec.Command(bin, append([]string{cmd}, args...)...)
	p.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	p.Stdout, p.Stderr = log, log
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("start kacme %s: %w", cmd, err)
	}
	done := make(chan struct{})
	go func() { _ = p.Wait(); close(done) }()
	return func() {
		_ = p.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
		_ = log.Close()
	}, nil
}

// applyDir creates every object in the YAML files of dir.
func applyDir(ctx context.Context, c client.Client, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	// Namespaces first, so that namespaced samples can go in any file order.
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		docs, err := kenvtest.DecodeManifests(data)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		objs = append(objs, docs...)
	}
	for _, first := range []bool{true, false} {
		for _, u := range objs {
			if (u.GetKind() == "Namespace") != first {
				continue
			}
			if err := onThisMachine(u); err != nil {
				return err
			}
			if err := c.Create(ctx, u); err != nil {
				return fmt.Errorf("apply %s %s: %w", u.GetKind(), u.GetName(), err)
			}
		}
	}
	return nil
}

// onThisMachine adapts the cluster samples to a control plane without nodes:
// the ACME clients run on this machine, unprivileged, so profiles validate
// http-01 on port 5002 and tls-alpn-01 on 5001, and allow names under
// localhost (always this machine) and loopback addresses; the team account
// may also order payments.localhost.
func onThisMachine(u *unstructured.Unstructured) error {
	switch u.GetKind() {
	case "AcmeProfile":
		if err := unstructured.SetNestedField(u.Object, int64(5002), "spec", "validation", "http01Port"); err != nil {
			return err
		}
		if err := unstructured.SetNestedField(u.Object, int64(5001), "spec", "validation", "tlsALPN01Port"); err != nil {
			return err
		}
		return appendStrings(u, "localhost", "spec", "identifiers", "allowedDNSSuffixes")
	case "AcmeAccount":
		if u.GetName() == "payments" {
			return appendStrings(u, "payments.localhost", "spec", "allowedIdentifiers")
		}
	}
	return nil
}

// appendStrings adds v to the string list at path when there is one.
func appendStrings(u *unstructured.Unstructured, v string, path ...string) error {
	list, found, err := unstructured.NestedStringSlice(u.Object, path...)
	if err != nil || !found {
		return err
	}
	return unstructured.SetNestedStringSlice(u.Object, append(list, v), path...)
}

// waitReady waits until every CertificateAuthority and AcmeProfile is Ready.
func waitReady(ctx context.Context, c client.Client) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var cas v1alpha1.CertificateAuthorityList
		var profiles v1alpha1.AcmeProfileList
		if c.List(ctx, &cas) == nil && c.List(ctx, &profiles) == nil {
			ready := true
			for _, ca := range cas.Items {
				ready = ready && meta.IsStatusConditionTrue(ca.Status.Conditions, "Ready")
			}
			for _, p := range profiles.Items {
				ready = ready && meta.IsStatusConditionTrue(p.Status.Conditions, "Ready")
			}
			if ready && len(cas.Items) > 0 && len(profiles.Items) > 0 {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("CertificateAuthorities and AcmeProfiles did not become Ready within 60 s (see the controller log)")
}
