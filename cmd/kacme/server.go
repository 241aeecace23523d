package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/kacme/kacme/acmeserver/cluster"
)

// runServer runs the ACME server on the custom-resource store of the cluster
// in KUBECONFIG (or in-cluster).
func runServer(args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	namespace := fs.String("namespace", envOr("POD_NAMESPACE", "kacme-system"), "namespace of the ACME state objects and the CA Secrets")
	listen := fs.String("listen", ":8443", "HTTPS listen address")
	external := fs.String("external-url", "", "base URL clients use (default https://<listen>)")
	httpListen := fs.String("http-listen", "", "also serve CRLs, CA certificates and OCSP (only those) over plain HTTP here (in a pod, :8080 behind the Service's port 80)")
	pkiURL := fs.String("pki-url", "", "base URL issued certificates name for their CRL (<url>/crl/<ca>), OCSP responder (<url>/ocsp/<ca>) and issuer certificate (<url>/ca/<ca>) (default http://<--http-listen>, with the --external-url host when it listens on every interface; else the external URL)")
	tlsSecret := fs.String("tls-secret", "", "serve HTTPS with this kubernetes.io/tls Secret in --namespace (kept by kacme controller --serving-secret); default: issue one from the default profile's CA")
	internalListen := fs.String("internal-listen", "", "run as one of several replicas: serve the nonce endpoint for peer replicas here (plain HTTP, HMAC-authenticated; e.g. :8444)")
	internalAdvertise := fs.String("internal-advertise", "", "address peers dial for --internal-listen (default: its listen address; in a pod $(POD_IP):8444)")
	internalSecret := fs.String("internal-secret", "kacme-internal", "Secret in --namespace with the peers' HMAC key (created by kacme controller)")
	podName := fs.String("pod-name", os.Getenv("POD_NAME"), "the server's Pod (default $POD_NAME); with --pod-uid it owns the replica's nonce Lease, which then goes with the Pod")
	podUID := fs.String("pod-uid", os.Getenv("POD_UID"), "the server's Pod UID (default $POD_UID)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://<addr>/metrics, including the Kubernetes API requests this process makes")
	debugAddr := fs.String("debug-addr", "", "serve Go pprof on this loopback address (e.g. 127.0.0.1:6060)")
	shutdownDelay := fs.Duration("shutdown-delay", 0, "on SIGTERM, fail /readyz and keep serving this long before draining (in a pod: long enough for the endpoints to drop it, e.g. 5s)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	useForControllerRuntime(log)
	if *debugAddr != "" {
		go func() { log.Error("debug server", "err", http.ListenAndServe(*debugAddr, nil)) }() //nolint:gosec // opt-in, loopback
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubernetes configuration: %w", err)
	}
	cfg.QPS, cfg.Burst = 200, 400 // the request path writes; controller-runtime's defaults (20/30) would throttle it
	m := serveMetrics(*metricsAddr, log)
	cfg.Wrap(m.WrapTransport)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := cluster.Start(ctx, cluster.Options{Config: cfg, Namespace: *namespace, Listen: *listen, ExternalURL: *external, TLSSecret: *tlsSecret,
		InternalListen: *internalListen, InternalAdvertise: *internalAdvertise, InternalSecret: *internalSecret, PodName: *podName, PodUID: *podUID, Log: log, Metrics: m, ShutdownDelay: *shutdownDelay,
		HTTPListen: *httpListen, PKIURL: *pkiURL})
	if err != nil {
		return err
	}
	log.Info("kacme server is running", "directory", srv.URL+"/acme/directory", "namespace", *namespace, "version", version, "revision", revision)
	go func() {
		<-ctx.Done()
		log.Info("shutting down: draining requests", "delay", *shutdownDelay)
		_ = srv.Close()
	}()
	return srv.Wait()
}

// useForControllerRuntime makes controller-runtime (the manager, its cache
// and client) log through log: unset, its messages are lost and it prints a
// stack trace saying so.
func useForControllerRuntime(log *slog.Logger) {
	ctrl.SetLogger(logr.FromSlogHandler(log.Handler()))
}
