// Command node (make node) brings up a real single-node Kubernetes cluster
// in network and mount namespaces of its own (test/node), installs kacme
// into it the way docs/kubernetes.md says — the image from make image, helm
// install --wait, config/samples/cluster — with CoreDNS as the cluster DNS
// (and a zone accepting RFC 2136 updates for dns-01), prints how to use it,
// and keeps it running until Ctrl-C, when it removes all of it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kacme/kacme/test/node"
)

func main() {
	bin := flag.String("bin", "", "directory of the node's binaries (hack/node.sh prints it)")
	image := flag.String("image", "bin/kacme-image.tar", "kacme's image (OCI archive, make image)")
	helm := flag.String("helm", "", "helm binary (hack/tools.sh helm)")
	coredns := flag.String("coredns", "", "CoreDNS binary (hack/tools.sh coredns)")
	flag.Parse()
	if o, inside := node.OptionsFromEnv(); inside {
		os.Exit(inner(o, *image, *helm, *coredns))
	}
	if *bin == "" || *helm == "" || *coredns == "" {
		fmt.Fprintln(os.Stderr, "node: -bin, -helm and -coredns are required (make node passes them)")
		os.Exit(2)
	}
	ns, err := node.Create()
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		os.Exit(1)
	}
	self, _ := os.Executable()
	cmd := ns.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), ns.Environment(*bin)...)
	cmd.Env = append(cmd.Env, "KACME_NODE_PID="+fmt.Sprint(ns.Pid()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Ctrl-C or SIGTERM: the inside stops the node first, then Close
	// removes what is left.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	rc := 0
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		rc = 1
	} else {
		go func() {
			for s := range sigs {
				_ = cmd.Process.Signal(s)
			}
		}()
		if err := cmd.Wait(); err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			rc = 1
		}
	}
	for _, err := range ns.Close() {
		fmt.Fprintln(os.Stderr, "node: teardown:", err)
		rc = 1
	}
	if rc == 0 {
		fmt.Println("node: removed everything it made")
	}
	os.Exit(rc)
}

func inner(o node.Options, image, helm, coredns string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	o.Log = os.Stderr
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "node:", err)
		return 1
	}
	root, err := node.RepoRoot()
	if err != nil {
		return fail(err)
	}
	c, err := node.Start(ctx, o)
	if err != nil {
		return fail(err)
	}
	defer c.Stop()
	if err := c.ImportImage(ctx, image); err != nil {
		return fail(err)
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	tsig := base64.StdEncoding.EncodeToString(secret)
	if err := c.InstallDNS(ctx, coredns, node.Zone{Name: "internal.example", TSIGKey: "kacme-key", TSIGSecret: tsig}); err != nil {
		return fail(err)
	}
	fmt.Fprintln(os.Stderr, "node: helm install kacme charts/kacme --namespace kacme-system --create-namespace --wait")
	h := exec.CommandContext(ctx, helm, "install", "kacme", filepath.Join(root, "charts", "kacme"), "--namespace", "kacme-system",
		"--create-namespace", "--wait", "--timeout", "4m")
	h.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	if out, err := h.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("helm install: %v\n%s", err, out))
	}
	if _, err := c.Kubectl(ctx, "apply", "-f", filepath.Join(root, "config", "samples", "cluster")); err != nil {
		return fail(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, _ := c.Kubectl(ctx, "get", "acmeprofiles", "-o", "jsonpath={range .items[*]}{.status.conditions[?(@.type=='Ready')].status}{end}")
		if out == "TrueTrue" {
			break
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("the sample profiles did not become Ready (%q)", out))
		}
		time.Sleep(time.Second)
	}
	fmt.Printf(`
kacme is running on a real single-node Kubernetes v1.37.2 (node %s, %s) in network and
mount namespaces of their own, installed with its Helm chart from the image make image built,
with config/samples/cluster applied (profiles "default" and "teams"). Nothing runs or is
configured in this machine's own network namespace.

In another terminal, as root, enter the node's namespaces:

  nsenter -t %s -n -m env KUBECONFIG=%s PATH=%s:$PATH bash

then, for example:

  kubectl get pods -A
  kubectl get certificateauthorities,acmeprofiles
  kubectl get acme -A          # every account, order, challenge and certificate

ACME clients in pods use https://kacme.kacme-system.svc/acme/default/directory and trust the
ConfigMap kacme-server-ca (key ca.crt) in their namespace. The cluster DNS (CoreDNS, %s)
serves internal.example and accepts RFC 2136 updates signed with TSIG key kacme-key
(hmac-sha256), secret %s — the setup docs/cert-manager.md describes.

Ctrl-C stops the cluster and removes everything it made.
`, node.NodeName, node.NodeIP, os.Getenv("KACME_NODE_PID"), c.Kubeconfig, o.Bin, node.DNSIP, tsig)
	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "node: stopping")
	return 0
}
