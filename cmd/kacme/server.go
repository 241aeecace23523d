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
	tlsSecret := fs.String("tls-secret", "", "serve HTTPS with this kubernetes.io/tls Secret in --namespace (kept by kacme controller --serving-secret); default: issue one from the default profile's CA")
	internalListen := fs.String("internal-listen", "", "run as one of several replicas: serve the nonce endpoint for peer replicas here (plain HTTP, HMAC-authenticated; e.g. :8444)")
	internalAdvertise := fs.String("internal-advertise", "", "address peers dial for --internal-listen (default: its listen address; in a pod $(POD_IP):8444)")
	internalSecret := fs.String("internal-secret", "kacme-internal", "Secret in --namespace with the peers' HMAC key (created by kacme controller)")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://<addr>/metrics, including the Kubernetes API requests this process makes")
	debugAddr := fs.String("debug-addr", "", "serve Go pprof on this loopback address (e.g. 127.0.0.1:6060)")
	shutdownDelay := fs.Duration("shutdown-delay", 0, "on SIGTERM, fail /readyz and keep serving this long before draining (in a pod: long enough for the endpoints to drop it, e.g. 5s)")
	if err := fs.Parse(args); err != nil {
		return err
	}
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
		InternalListen: *internalListen, InternalAdvertise: *internalAdvertise, InternalSecret: *internalSecret, Log: log, Metrics: m, ShutdownDelay: *shutdownDelay})
	if err != nil {
		return err
	}
	log.Info("kacme server is running", "directory", srv.URL+"/acme/directory", "namespace", *namespace)
	go func() {
		<-ctx.Done()
		log.Info("shutting down: draining requests", "delay", *shutdownDelay)
		_ = srv.Close()
	}()
	return srv.Wait()
}
