// Package lint checks that make lint enforces the package layering
// docs/architecture.md states: each depguard rule in .golangci.yml fails a
// module laid out like kacme's with one wrong import, and lets the right
// ones through.
package lint

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// fixture is one importing file: where it is, what it imports, and the
// depguard rule that must refuse it ("" = allowed).
type fixture struct {
	dir, imports, rule string
}

var fixtures = []fixture{
	{"api/v1alpha1", "github.com/kacme/kacme/acmeserver/ca", "api-is-a-leaf"},
	{"acmeserver/acme", "github.com/kacme/kacme/api/v1alpha1", "acme-is-a-leaf"},
	{"acmeserver/cluster", "github.com/kacme/kacme/controllers/certificateauthority", "server-never-imports-controllers"},
	{"acmeserver/ca/kubeca", "github.com/kacme/kacme/controllers/certificateauthority", "server-never-imports-controllers"},
	{"controllers/acmeprofile", "github.com/kacme/kacme/acmeserver/ra", "controllers-use-no-request-path"},
	{"controllers/retention", "github.com/kacme/kacme/acmeserver/wfe", "controllers-use-no-request-path"},
	{"acmeserver/wfe", "github.com/kacme/kacme/acmeserver/va", "wfe-never-writes-or-signs"},
	{"acmeserver/wfe", "github.com/kacme/kacme/acmeserver/storage/kube", "wfe-never-writes-or-signs"},
	{"acmeserver/ra", "github.com/kacme/kacme/acmeserver/wfe", "ra-has-no-transport"},
	{"acmeserver/ra", "github.com/kacme/kacme/acmeserver/storage/embedded", "ra-has-no-transport"},
	{"acmeserver/profile", "github.com/kacme/kacme/acmeserver/nonce", "ra-has-no-transport"},
	{"acmeserver/va", "sigs.k8s.io/controller-runtime/pkg/client", "only-backends-talk-to-the-api-server"},
	{"acmeserver/server", "sigs.k8s.io/controller-runtime/pkg/client", "only-backends-talk-to-the-api-server"},
	// Allowed: the arrows the architecture draws.
	{"controllers/acmeprofile", "github.com/kacme/kacme/acmeserver/profile", ""},
	{"controllers/serving", "github.com/kacme/kacme/acmeserver/ca/kubeca", ""},
	{"acmeserver/ca/kubeca", "sigs.k8s.io/controller-runtime/pkg/client", ""},
	{"acmeserver/storage/kube", "sigs.k8s.io/controller-runtime/pkg/client", ""},
	{"acmeserver/wfe", "github.com/kacme/kacme/acmeserver/jws", ""},
	{"acmeserver/ra", "github.com/kacme/kacme/acmeserver/storage", ""},
	{"acmeserver/cluster", "github.com/kacme/kacme/acmeserver/server", ""},
}

func TestLayeringRulesRefuseWrongImports(t *testing.T) {
	lint := os.Getenv("KACME_GOLANGCI_LINT")
	if lint == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KACME_GOLANGCI_LINT is not set (make test sets it to the pinned golangci-lint)")
		}
		t.Skip("KACME_GOLANGCI_LINT is not set; make test sets it")
	}
	_, self, _, _ := runtime.Caller(0)
	config := filepath.Join(filepath.Dir(self), "..", "..", ".golangci.yml")
	root := t.TempDir()
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, path), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module github.com/kacme/kacme\n\ngo 1.26\n\nrequire sigs.k8s.io/controller-runtime v0.0.0\n\nreplace sigs.k8s.io/controller-runtime => ./stub/controller-runtime\n")
	write("stub/controller-runtime/go.mod", "module sigs.k8s.io/controller-runtime\n\ngo 1.26\n")
	write("stub/controller-runtime/pkg/client/client.go", "package client\n")
	stubs := map[string]bool{}
	for i, f := range fixtures {
		if imp, ok := strings.CutPrefix(f.imports, "github.com/kacme/kacme/"); ok && !stubs[imp] {
			stubs[imp] = true
			write(filepath.Join(imp, "stub.go"), "package "+filepath.Base(imp)+"\n")
		}
		write(filepath.Join(f.dir, "fixture"+itoa(i)+".go"), "package "+filepath.Base(f.dir)+"\n\nimport _ \""+f.imports+"\"\n")
	}
	cmd := exec.Command(lint, "run", "--allow-parallel-runners", "--config", config, "--enable-only", "depguard", "./...")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("golangci-lint passed a tree with wrong imports:\n%s", out)
	}
	for i, f := range fixtures {
		file := filepath.Join(f.dir, "fixture"+itoa(i)+".go") + ":"
		var line string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, file) || strings.Contains(l, "/"+file) {
				line = l
			}
		}
		switch {
		case f.rule == "" && line != "":
			t.Errorf("%s importing %s is allowed by the architecture, but: %s", f.dir, f.imports, line)
		case f.rule != "" && !strings.Contains(line, "'"+f.rule+"'"):
			t.Errorf("%s importing %s: want depguard rule %q, got %q", f.dir, f.imports, f.rule, line)
		}
	}
	if t.Failed() {
		t.Logf("golangci-lint output:\n%s", out)
	}
}

func itoa(i int) string { return string(rune('a'+i/26)) + string(rune('a'+i%26)) }
