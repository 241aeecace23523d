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
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kacme/kacme/acmeserver/dashboard"
	"github.com/kacme/kacme/acmeserver/metrics"
	"github.com/kacme/kacme/acmeserver/standalone"
)

var version = "dev"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
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
		fmt.Println("kacme", version)
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
		ExternalURL: *external, Log: log, Metrics: m, ShutdownDelay: *shutdownDelay})
	if err != nil {
		return err
	}
	if *debugAddr != "" {
		go func() { log.Error("debug server", "err", http.ListenAndServe(*debugAddr, nil)) }() //nolint:gosec // opt-in, loopback
	}
	if !*quiet {
		printBanner(srv, *dataDir)
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

func printBanner(srv *standalone.Server, dataDir string) {
	abs, _ := filepath.Abs(dataDir)
	p := srv.Config.Profiles[srv.Config.DefaultProfile]
	port := p.Validation.HTTPPort
	if port == 0 {
		port = 80
	}
	var profiles []string
	for name := range srv.Config.Profiles {
		profiles = append(profiles, fmt.Sprintf("%s/acme/%s/directory", srv.URL, name))
	}
	sort.Strings(profiles)
	fmt.Printf(`
kacme standalone is running.

  ACME directory : %s
  profiles       : %s
  CA root        : %s   (trust this to verify kacme and its certificates)
  data           : %s   (stop with Ctrl-C; a restart keeps everything)

Get a certificate with certbot (http-01 on port %d; names under .localhost resolve to this machine):

  REQUESTS_CA_BUNDLE=%s certbot certonly --standalone \
    --http-01-address 127.0.0.1 --http-01-port %d \
    --server %s \
    --agree-tos --register-unsafely-without-email --non-interactive \
    --config-dir %s/clients/certbot --work-dir %s/clients/certbot/work --logs-dir %s/clients/certbot/logs \
    -d app.localhost

or with lego:

  LEGO_CA_CERTIFICATES=%s lego --server %s \
    --accept-tos --email admin@example.com --path %s/clients/lego \
    --http --http.port 127.0.0.1:%d --domains app.localhost run

`, srv.DirectoryURL, strings.Join(profiles, ", "), srv.RootPath, abs, port,
		srv.RootPath, port, srv.DirectoryURL, abs, abs, abs,
		srv.RootPath, srv.DirectoryURL, abs, port)
	token := "the token in " + filepath.Join(abs, dashboard.TokenFile) + " (printed at the first start)"
	if srv.DashboardTokenCreated {
		token = srv.DashboardToken + "   (shown this once; also in " + filepath.Join(abs, dashboard.TokenFile) + ")"
	}
	fmt.Printf("Dashboard: %s   sign in with %s\n\n", srv.DashboardURL, token)
}
