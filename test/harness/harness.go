// Package harness holds what the process-level tests share: free loopback
// ports, processes that live as long as a test, the kacme binary, and BIND 9
// on loopback with nsupdate hooks for the dns-01 clients.
//
// Set KACME_INTEROP=required (make test does) to fail instead of skip when a
// tool is missing.
package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kenvtest "github.com/kacme/kacme/test/envtest"
	"github.com/kacme/kacme/test/freeport"
)

// FreePort returns a loopback port free for both TCP and UDP, picked outside
// the kernel's ephemeral range (see package freeport for why).
func FreePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Pick()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Need skips (or, with KACME_INTEROP=required, fails) the test unless every
// tool is installed.
func Need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err2 := os.Stat("/usr/sbin/" + tool); err2 == nil {
				continue
			}
			if os.Getenv("KACME_INTEROP") == "required" {
				t.Fatalf("%s is not installed (make test installs it with apt-get when run as root)", tool)
			}
			t.Skipf("%s is not installed; set KACME_INTEROP=required to fail instead", tool)
		}
	}
}

// Process is a command started by a test.
type Process struct {
	Cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
}

// Write collects the process's output (safe for concurrent use).
func (p *Process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.Write(b)
}

// Output is what the process printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop interrupts the process and waits for it (killing it after 10 s).
func (p *Process) Stop() {
	_ = p.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Start runs a command until the test ends (or Stop) and shows the end of
// its output if the test failed.
func Start(t *testing.T, env []string, name string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p, p
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- %s %s output ---\n%s", filepath.Base(name), strings.Join(args, " "), Tail(p.Output(), 8000))
		}
	})
	return p
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// BuildKacme builds cmd/kacme into a temporary directory.
func BuildKacme(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kacme")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kacme")
	cmd.Dir = kenvtest.RepoRoot() // kacme's own module, also when the test is in another (test/e2e)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build kacme: %v\n%s", err, out)
	}
	return bin
}

// DNS is a BIND 9 primary for Zone on 127.0.0.1:Port that accepts RFC 2136
// updates signed with the TSIG key; every name in the zone has A 127.0.0.1.
type DNS struct {
	Port  int
	Zone  string
	Hooks map[string]string // certbot-auth, certbot-cleanup, lego-exec: scripts that nsupdate the zone
}

// TSIG key the hooks sign updates with.
const (
	TSIGName   = "kacme-key"
	TSIGSecret = "a2FjbWUtaW50ZXJvcC10c2lnLXNlY3JldC0wMTIzNDU2Nzg5" // base64
)

// StartBIND starts named for zone in dir and writes the client hooks.
func StartBIND(t *testing.T, dir, zone string) *DNS {
	t.Helper()
	Need(t, "named", "nsupdate", "dig")
	d := &DNS{Port: FreePort(t), Zone: zone}
	bd := filepath.Join(dir, "bind")
	must(t, os.MkdirAll(bd, 0o755))
	zoneFile := fmt.Sprintf(`$TTL 5
@ IN SOA ns.%[1]s. admin.%[1]s. 1 60 60 3600 5
@ IN NS ns.%[1]s.
ns IN A 127.0.0.1
@ IN A 127.0.0.1
* IN A 127.0.0.1
`, zone)
	must(t, os.WriteFile(filepath.Join(bd, zone+".zone"), []byte(zoneFile), 0o644))
	conf := fmt.Sprintf(`key "%[1]s" { algorithm hmac-sha256; secret "%[2]s"; };
options {
  directory "%[3]s";
  listen-on port %[4]d { 127.0.0.1; };
  listen-on-v6 { none; };
  pid-file "%[3]s/named.pid";
  session-keyfile "%[3]s/session.key";
  recursion no;
  dnssec-validation no;
  allow-query { any; };
};
controls { };
zone "%[5]s" { type primary; file "%[3]s/%[5]s.zone"; allow-update { key "%[1]s"; }; };
`, TSIGName, TSIGSecret, bd, d.Port, zone)
	must(t, os.WriteFile(filepath.Join(bd, "named.conf"), []byte(conf), 0o644))
	named, err := exec.LookPath("named")
	if err != nil {
		named = "/usr/sbin/named"
	}
	Start(t, nil, named, "-g", "-c", filepath.Join(bd, "named.conf"))
	d.waitServing(t, "BIND")
	d.writeHooks(t, dir)
	return d
}

// waitServing waits until the server answers for ns.<zone> (A 127.0.0.1).
func (d *DNS) waitServing(t *testing.T, what string) {
	t.Helper()
	kenvtest.WaitFor(t, what, func() bool {
		out, err := exec.Command("dig", "+short", "+time=1", "+tries=1", "-p", fmt.Sprint(d.Port), "@127.0.0.1", "ns."+d.Zone, "A").Output()
		return err == nil && strings.TrimSpace(string(out)) == "127.0.0.1"
	})
}

// Resolver is the address kacme's dns-01 validation queries.
func (d *DNS) Resolver() string { return fmt.Sprintf("127.0.0.1:%d", d.Port) }

// LegoEnv configures lego's exec DNS provider to use the hook.
func (d *DNS) LegoEnv() []string {
	return []string{"EXEC_PATH=" + d.Hooks["lego-exec"], "EXEC_POLLING_INTERVAL=1", "EXEC_PROPAGATION_TIMEOUT=30", "EXEC_SEQUENCE_INTERVAL=1"}
}

// LegoArgs select lego's exec DNS provider checking propagation on this server.
func (d *DNS) LegoArgs() []string {
	return []string{"--dns", "exec", "--dns.resolvers", d.Resolver(), "--dns.disable-cp"}
}

// writeHooks writes the nsupdate hooks certbot and lego call for dns-01;
// updates go over TCP with a 30 s timeout, so a BIND slowed by a busy
// machine (make test runs packages in parallel) is waited for, not missed.
func (d *DNS) writeHooks(t *testing.T, dir string) {
	t.Helper()
	nsupdate := func(op string) string {
		return fmt.Sprintf(`nsupdate -v -t 30 -y hmac-sha256:%s:%s <<EOF
server 127.0.0.1 %d
zone %s
update %s $NAME 5 IN TXT "$VALUE"
send
EOF
`, TSIGName, TSIGSecret, d.Port, d.Zone, op)
	}
	d.Hooks = map[string]string{}
	scripts := map[string]string{
		"certbot-auth":    "#!/bin/sh\nset -e\nNAME=_acme-challenge.$CERTBOT_DOMAIN.\nVALUE=$CERTBOT_VALIDATION\n" + nsupdate("add"),
		"certbot-cleanup": "#!/bin/sh\nset -e\nNAME=_acme-challenge.$CERTBOT_DOMAIN.\nVALUE=$CERTBOT_VALIDATION\n" + nsupdate("delete"),
		"lego-exec": "#!/bin/sh\nset -e\nNAME=$2\nVALUE=$3\ncase \"$1\" in\npresent)\n" + nsupdate("add") +
			";;\ncleanup)\n" + nsupdate("delete") + ";;\nesac\n",
	}
	for name, body := range scripts {
		p := filepath.Join(dir, name+".sh")
		must(t, os.WriteFile(p, []byte(body), 0o755))
		d.Hooks[name] = p
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Tool is the path of a pinned tool that make test builds with
// hack/tools.sh <name> and passes in the environment variable env. Without
// it the test skips, or fails when KACME_INTEROP=required.
func Tool(t *testing.T, env, name string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		if os.Getenv("KACME_INTEROP") == "required" {
			t.Fatalf("%s is not set (make test sets it from hack/tools.sh %s)", env, name)
		}
		t.Skipf("%s is not set; run make test", env)
	}
	return p
}

// StartCoreDNS starts CoreDNS (the binary in KACME_COREDNS, built by
// hack/tools.sh coredns) as the authority for zone on 127.0.0.1 with its
// dynupdate plugin: RFC 2136 updates of TXT records anywhere in the zone,
// signed with the TSIG key TSIGName/TSIGSecret (hmac-sha256), as a cluster
// DNS serving a writable zone would. Without KACME_COREDNS the test skips,
// or fails when KACME_INTEROP=required.
func StartCoreDNS(t *testing.T, dir, zone string) *DNS {
	t.Helper()
	bin := Tool(t, "KACME_COREDNS", "coredns")
	Need(t, "dig")
	d := &DNS{Port: FreePort(t), Zone: zone}
	zoneFile := fmt.Sprintf(`$ORIGIN %[1]s.
@  5 IN SOA ns.%[1]s. admin.%[1]s. 1 60 60 3600 5
@  5 IN NS ns.%[1]s.
ns 5 IN A 127.0.0.1
`, zone)
	must(t, os.WriteFile(filepath.Join(dir, zone+".zone"), []byte(zoneFile), 0o644))
	corefile := fmt.Sprintf(`%[1]s:%[2]d {
    bind 127.0.0.1
    tsig {
        secret %[3]s. %[4]s
        require_opcode UPDATE
    }
    dynupdate {
        file %[5]s
        allow %[3]s. * TXT
    }
    errors
}
`, zone, d.Port, TSIGName, TSIGSecret, filepath.Join(dir, zone+".zone"))
	must(t, os.WriteFile(filepath.Join(dir, "Corefile"), []byte(corefile), 0o644))
	Start(t, nil, bin, "-conf", filepath.Join(dir, "Corefile"))
	d.waitServing(t, "CoreDNS")
	return d
}
