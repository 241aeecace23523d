// Command kacme is the kacme binary. Subcommands:
//
//	kacme standalone   run the CA and ACME server on one machine (embedded store)
//	kacme server       run the ACME server on a cluster's custom resources
//	kacme controller   run the reconcilers against a cluster
//	kacme version      print the version
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with --debug-addr
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/standalone"
)

// version is the release (the chart's appVersion) and revision the commit,
// set by make (-X main.version, -X main.revision).
var (
	version  = "dev"
	revision = "unknown"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	setMemoryLimit(cgroupMemoryMax)
	switch os.Args[1] {
	case "standalone":
		if err := runStandalone(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "kacme:", err)
			os.Exit(1)
		}
	case "server":
		if err := runServer(os.Args[2:], slog.New(slog.NewJSONHandler(os.Stderr, nil))); err != nil {
			fmt.Fprintln(os.Stderr, "kacme:", err)
			os.Exit(1)
		}
	case "controller":
		log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
		if err := runController(os.Args[2:], logr.FromSlogHandler(log.Handler())); err != nil {
			fmt.Fprintln(os.Stderr, "kacme:", err)
			os.Exit(1)
		}
	case "version", "--version":
		fmt.Printf("kacme %s (revision %s)\n", version, revision)
	case "help", "-h", "--help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "kacme: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: kacme <command> [flags]

commands:
  standalone   run the CA and ACME server on this machine (embedded store)
  server       run the ACME server on the cluster's custom resources (KUBECONFIG or in-cluster)
  controller   run the CertificateAuthority, AcmeProfile and AcmeAccount reconcilers (KUBECONFIG or in-cluster)
  version      print the version

Run "kacme standalone -h" for its flags.
`)
}

func runStandalone(args []string) error {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "kacme-data", "directory for the store, CA keys and ca.crt")
	configDir := fs.String("config-dir", "", "directory of AcmeProfile, CertificateAuthority, AcmeAccount and Secret manifests (default: built-in profile)")
	listen := fs.String("listen", "127.0.0.1:8443", "HTTPS listen address")
	external := fs.String("external-url", "", "base URL clients use (default https://<listen>)")
	httpListen := fs.String("http-listen", "", "also serve CRLs, CA certificates and OCSP (only those) over plain HTTP here, as relying parties fetch them (e.g. 127.0.0.1:8080; make run uses that)")
	pkiURL := fs.String("pki-url", "", "base URL issued certificates name for their CRL (<url>/crl/<ca>), OCSP responder (<url>/ocsp/<ca>) and issuer certificate (<url>/ca/<ca>) (default http://<--http-listen>, else the external URL)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	quiet := fs.Bool("quiet", false, "do not print the getting-started banner")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://<addr>/metrics (e.g. 127.0.0.1:9090)")
	debugAddr := fs.String("debug-addr", "", "serve Go pprof on this loopback address (e.g. 127.0.0.1:6060)")
	shutdownDelay := fs.Duration("shutdown-delay", 0, "on SIGTERM, fail /readyz and keep serving this long before draining")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := serveMetrics(*metricsAddr, log)
	srv, err := standalone.Start(ctx, standalone.Options{DataDir: *dataDir, ConfigDir: *configDir, Listen: *listen,
		ExternalURL: *external, Log: log, Metrics: m, ShutdownDelay: *shutdownDelay, HTTPListen: *httpListen, PKIURL: *pkiURL})
	if err != nil {
		return err
	}
	if *debugAddr != "" {
		go func() { log.Error("debug server", "err", http.ListenAndServe(*debugAddr, nil)) }() //nolint:gosec // opt-in, loopback
	}
	if !*quiet {
		fmt.Print(srv.Banner(*dataDir))
	}
	go func() {
		<-ctx.Done()
		log.Info("shutting down")
		_ = srv.Close()
	}()
	return srv.Wait()
}

// serveMetrics serves kacme's metrics on addr; "" serves nothing and
// returns nil (which records nothing).
func serveMetrics(addr string, log *slog.Logger) *metrics.Metrics {
	if addr == "" {
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ms := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { log.Error("metrics server", "err", ms.ListenAndServe()) }()
	return m
}
