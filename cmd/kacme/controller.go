package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kacme/kacme/acmeserver/storage"
	"github.com/kacme/kacme/controllers/acmeaccount"
	"github.com/kacme/kacme/controllers/acmeprofile"
	"github.com/kacme/kacme/controllers/cabundle"
	"github.com/kacme/kacme/controllers/certificateauthority"
	"github.com/kacme/kacme/controllers/retention"
	"github.com/kacme/kacme/controllers/serving"
	"github.com/kacme/kacme/controllers/trustbundle"
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*servingSecret == "") != (*servingCA == "") {
		return errors.New("--serving-secret and --serving-ca go together")
	}
	if u, err := url.Parse(*external); *external == "" || err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
		return errors.New("--external-url must be https://host[:port]")
	}
	ctrl.SetLogger(log)
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes configuration: %w", err)
	}
	scheme := storage.KubeScheme()
	if err := cmapi.AddToScheme(scheme); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress:  *probeAddr,
		LeaderElection:          *leaderElect,
		LeaderElectionID:        "kacme-controller.acme.kacme.io",
		LeaderElectionNamespace: *namespace,
		Cache:                   cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.ConfigMap{}: trustbundle.CacheOptions()}},
	})
	if err != nil {
		return err
	}
	if *probeAddr != "" {
		// Live while the process serves; ready once the informers have synced.
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("informers", func(req *http.Request) error {
			if !mgr.GetCache().WaitForCacheSync(req.Context()) {
				return errors.New("informer caches have not synced")
			}
			return nil
		}); err != nil {
			return err
		}
	}
	rec := mgr.GetEventRecorder("kacme-controller")
	if err := (&certificateauthority.Reconciler{Client: mgr.GetClient(), Namespace: *namespace, Recorder: rec}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&acmeprofile.Reconciler{Client: mgr.GetClient(), Namespace: *namespace, Recorder: rec, ExternalURL: *external}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&acmeaccount.Reconciler{Client: mgr.GetClient(), Recorder: rec, Namespace: *namespace}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&trustbundle.Reconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(mgr); err != nil {
		return err
	}
	if *servingSecret != "" {
		var names []string
		for _, n := range strings.Split(*servingNames, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		if err := (&serving.Reconciler{Client: mgr.GetClient(), Recorder: rec, Namespace: *namespace, SecretName: *servingSecret,
			CAName: *servingCA, ExternalURL: *external, DNSNames: names}).SetupWithManager(mgr); err != nil {
			return err
		}
	}
	if err := cabundle.SetupWhenInstalled(mgr, cabundle.Reconciler{Client: mgr.GetClient(), Recorder: rec, ServingCA: *servingCA},
		time.Minute, log.WithName("cabundle")); err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		return serving.EnsureInternalKey(ctx, mgr.GetClient(), *namespace, *internalSecret)
	})); err != nil {
		return err
	}
	if err := mgr.Add(&retention.Sweeper{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Log: log.WithName("retention")}); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
