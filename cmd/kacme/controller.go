package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kacme/kacme/controllers/setup"
)

// runController runs the reconcilers against the cluster from KUBECONFIG or
// the in-cluster configuration.
func runController(args []string, log logr.Logger) error {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	namespace := fs.String("namespace", envOr("POD_NAMESPACE", "kacme-system"), "namespace of the CA Secrets (the operator's namespace)")
	external := fs.String("external-url", "", "base URL of the ACME server as clients see it (https://host[:port]); shown in AcmeProfile status")
	leaderElect := fs.Bool("leader-elect", false, "elect a leader so that only one replica reconciles")
	metricsAddr := fs.String("metrics-bind-address", "0", "serve controller metrics here (0 disables)")
	probeAddr := fs.String("health-probe-bind-address", "", "serve /healthz and /readyz here")
	servingSecret := fs.String("serving-secret", "", "keep the ACME server's HTTPS certificate in this kubernetes.io/tls Secret in --namespace (kacme server --tls-secret)")
	servingCA := fs.String("serving-ca", "", "CertificateAuthority that issues the --serving-secret certificate; its root is also injected into annotated cert-manager issuers")
	servingNames := fs.String("serving-dns-names", "", "comma-separated DNS names of the serving certificate besides localhost and the --external-url host (e.g. the Service's cluster names)")
	internalSecret := fs.String("internal-secret", "kacme-internal", "create this Secret in --namespace with the HMAC key ACME server replicas authenticate each other with (kacme server --internal-secret)")
	eabNamespaces := fs.String("eab-namespaces", "", "comma-separated namespaces where pre-registered AcmeAccounts may have their EAB Secrets minted and read (the chart's namespaced mode, where the controller has Secret rights only there); empty: every namespace")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*servingSecret == "") != (*servingCA == "") {
		return errors.New("--serving-secret and --serving-ca go together")
	}
	if u, err := url.Parse(*external); *external == "" || err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
		return errors.New("--external-url must be https://host[:port]")
	}
	eab := splitList(*eabNamespaces)
	if err := setup.CheckEABNamespaces(eab); err != nil {
		return err
	}
	ctrl.SetLogger(log)
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes configuration: %w", err)
	}
	mgr, err := setup.NewManager(cfg, setup.Options{Namespace: *namespace, ExternalURL: *external, LeaderElect: *leaderElect,
		MetricsAddr: *metricsAddr, ProbeAddr: *probeAddr, ServingSecret: *servingSecret, ServingCA: *servingCA,
		ServingDNSNames: splitList(*servingNames), InternalSecret: *internalSecret, EABNamespaces: eab, Log: log})
	if err != nil {
		return err
	}
	log.Info("kacme controller is starting", "namespace", *namespace, "version", version, "revision", revision)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
