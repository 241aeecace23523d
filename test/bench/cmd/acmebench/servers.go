package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kacme/kacme/test/freeport"
)

var kacmeExtraArgs string

// server is one ACME server under test, started as its own process.
type server struct {
	name      string
	version   string
	directory string
	roots     *x509.CertPool
	cmd       *exec.Cmd
	log       *bytes.Buffer
	// metricsURL serves kacme_kube_api_requests_total (cluster mode).
	metricsURL string
	// apiServerRequests reads the API server's own request counts by verb
	// (apiserver_request_total: every client's requests; cluster mode).
	apiServerRequests func() (map[string]float64, error)
	// apiServerProfile reads the API server's CPU profile over seconds
	// (cluster mode).
	apiServerProfile func(seconds int) ([]byte, error)
	// cleanup runs after the process stopped (other processes, the control plane).
	cleanup []func()
	// processes whose CPU time is reported per issuance, by name: command-line prefixes.
	processes map[string]string
	// orders counts the orders created on the server (every flow that got past new-order).
	orders atomic.Int64
	// dashboardToken signs in to /dashboard/.
	dashboardToken func() (string, error)
	// Cluster mode: the controller process, a client of the API server
	// with the bench's admin rights, and a restart of server and controller
	// (the control plane and what it stores stay).
	controller *server
	kube       client.Client
	restart    func() error
	// restartEnv is more environment for the processes restart starts.
	restartEnv []string
	// startWait bounds how long a start waits for the directory (default
	// 60 s; a server listing 100,000 stored issuances takes longer).
	startWait time.Duration
}

func (s *server) stop() {
	defer func() {
		for _, f := range s.cleanup {
			f()
		}
		if dir := os.Getenv("ACMEBENCH_SERVER_LOGS"); dir != "" && s.log != nil {
			// For investigating a server's errors: its output, kept.
			_ = os.WriteFile(filepath.Join(dir, s.name+".log"), s.log.Bytes(), 0o644)
		}
	}()
	s.stopProcess()
}

// stopProcess stops the server's process (not what cleanup stops).
func (s *server) stopProcess() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	if d := os.Getenv("ACMEBENCH_LOGDIR"); d != "" {
		_ = os.WriteFile(filepath.Join(d, s.name+".log"), s.log.Bytes(), 0o644)
	}
}

func freePort() int {
	p, err := freeport.Pick()
	if err != nil {
		panic(err)
	}
	return p
}

func execOutput(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).Output()
	return string(bytes.TrimSpace(out)), err
}

// startProcess starts s and, with waitDirectory, waits until it serves its directory.
func startProcess(s *server, bin string, args []string, env []string, waitDirectory bool) error {
	s.log = &bytes.Buffer{}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.Env = append(os.Environ(), env...)
	// Should acmebench die, so does the server (fatal and signals also stop
	// the control planes: onExit).
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	if !waitDirectory {
		return nil
	}
	wait := s.startWait
	if wait <= 0 {
		wait = 60 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if s.roots == nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.roots}}}
		r, err := client.Get(s.directory)
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.stop()
	return fmt.Errorf("%s did not serve its directory %s:\n%s", s.name, s.directory, s.log.String())
}

// startKacme runs kacme standalone with a P-256 CA validating http-01 on httpPort.
func startKacme(bin, dir string, httpPort int) (*server, error) {
	return startKacmeWith(bin, dir, httpPort, "")
}

// startKacmeWith is startKacme with more of the bench CA's spec (caSpec:
// YAML lines indented by two) and more command-line arguments.
func startKacmeWith(bin, dir string, httpPort int, caSpec string, extra ...string) (*server, error) {
	cfg := filepath.Join(dir, "config")
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		return nil, err
	}
	yaml := fmt.Sprintf(`apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: bench-root}
spec:
  selfSigned: {subject: {commonName: kacme bench root}, keyAlgorithm: ECDSAP256}
---
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: bench}
spec:
  intermediate: {issuer: bench-root, subject: {commonName: kacme bench}, keyAlgorithm: ECDSAP256}
%[3]s---
apiVersion: acme.kacme.io/v1alpha1
kind: AcmeProfile
metadata: {name: default}
spec:
  certificateAuthority: bench
  identifiers: {allowedCIDRs: ["127.0.0.0/8"]}
  validation: {http01Port: %[1]d}
  # One load-generating client places thousands of orders an hour: the limits
  # stay on (their counting is measured) but far above the load.
  rateLimits: {newOrdersPerAccount: %[2]d, pendingAuthorizationsPerAccount: %[2]d, newAccountsPerIP: %[2]d}
`, httpPort, benchLimit, caSpec)
	if err := os.WriteFile(filepath.Join(cfg, "kacme.yaml"), []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	port := freePort()
	data := filepath.Join(dir, "data")
	s := &server{name: "kacme", directory: fmt.Sprintf("https://127.0.0.1:%d/acme/directory", port)}
	out, _ := exec.Command(bin, "version").Output()
	s.version = strings.TrimPrefix(string(bytes.TrimSpace(out)), "kacme ")
	go func() {
		// ca.crt appears once the CA is generated; read it for TLS trust.
		for i := 0; i < 600; i++ {
			if b, err := os.ReadFile(filepath.Join(data, "ca.crt")); err == nil && len(b) > 0 {
				p := x509.NewCertPool()
				p.AppendCertsFromPEM(b)
				s.roots = p
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	s.dashboardToken = func() (string, error) {
		b, err := os.ReadFile(filepath.Join(data, "dashboard-token"))
		return strings.TrimSpace(string(b)), err
	}
	args := []string{"standalone", "--quiet", "--log-level", "warn", "--data-dir", data, "--config-dir", cfg,
		"--listen", fmt.Sprintf("127.0.0.1:%d", port)}
	args = append(args, extra...)
	args = append(args, strings.Fields(kacmeExtraArgs)...)
	err := startProcess(s, bin, args, nil, true)
	return s, err
}

// selfSigned writes a TLS certificate for 127.0.0.1 and returns its pool.
func selfSigned(certPath, keyPath string) (*x509.CertPool, error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	c, _ := x509.ParseCertificate(der)
	p := x509.NewCertPool()
	p.AddCert(c)
	return p, nil
}

// startPebble runs Pebble with real validation; its random pre-validation
// sleep and random nonce rejection are turned off so it is measured as fast
// as it can go.
func startPebble(bin, dir string, httpPort int) (*server, error) {
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pool, err := selfSigned(certPath, keyPath)
	if err != nil {
		return nil, err
	}
	port, mgmt := freePort(), freePort()
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", port), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate": certPath, "privateKey": keyPath, "httpPort": httpPort, "tlsPort": freePort(),
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, err
	}
	s := &server{name: "pebble", version: "v2.10.1", roots: pool, directory: fmt.Sprintf("https://127.0.0.1:%d/dir", port)}
	err = startProcess(s, bin, []string{"-config", cfgPath}, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0",
		"PEBBLE_AUTHZREUSE=0", "PEBBLE_CHAIN_LENGTH=2"}, true)
	return s, err
}

// startStepCA runs step-ca as "step ca init --acme" configures it: a P-256
// root and intermediate, the JWK and ACME provisioners, and step-ca's default
// database (badgerv2). A benchmark that configured it below its defaults
// (an earlier version of this one ran it on bbolt, where each nonce is its
// own fsynced transaction) would flatter kacme. step-ca validates http-01 on
// port 80.
func startStepCA(bin, stepCLI, dir string) (*server, error) {
	port := freePort()
	stepPath := filepath.Join(dir, "step")
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("acmebench"), 0o600); err != nil {
		return nil, err
	}
	init := exec.Command(stepCLI, "ca", "init", "--name", "step bench", "--dns", "127.0.0.1", "--dns", "localhost",
		"--address", fmt.Sprintf("127.0.0.1:%d", port), "--provisioner", "admin", "--password-file", pw,
		"--provisioner-password-file", pw, "--acme", "--deployment-type", "standalone")
	init.Env = append(os.Environ(), "STEPPATH="+stepPath)
	if out, err := init.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("step ca init: %w\n%s", err, out)
	}
	cfg, err := os.ReadFile(filepath.Join(stepPath, "config", "ca.json"))
	if err != nil {
		return nil, err
	}
	var parsed struct {
		DB struct{ Type string } `json:"db"`
	}
	if err := json.Unmarshal(cfg, &parsed); err != nil || parsed.DB.Type != "badgerv2" {
		return nil, fmt.Errorf("step ca init wrote database type %q (want its default, badgerv2): %v", parsed.DB.Type, err)
	}
	rootPEM, err := os.ReadFile(filepath.Join(stepPath, "certs", "root_ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	s := &server{name: "step-ca", version: "v0.30.2", roots: pool, directory: fmt.Sprintf("https://127.0.0.1:%d/acme/acme/directory", port)}
	return s, startProcess(s, bin, []string{"--password-file", pw, filepath.Join(stepPath, "config", "ca.json")},
		[]string{"STEPPATH=" + stepPath}, true)
}
