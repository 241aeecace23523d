package standalone

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kacme/kacme/acmeserver/ca"
	"github.com/kacme/kacme/api/v1alpha1"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The shipped samples load and build a working configuration.
func TestSamplesLoad(t *testing.T) {
	t.Parallel()
	m, err := LoadDir(filepath.Join("..", "..", "config", "samples", "standalone"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := buildConfig(t.TempDir(), m, "", quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Profiles) != 2 || cfg.Profiles["default"].CA.Name != "internal" || len(cfg.Profiles["default"].CA.Chains()) != 2 {
		t.Fatalf("samples built %d profiles", len(cfg.Profiles))
	}
}

// A KubernetesSigner in a standalone configuration is refused with a
// message saying it is for cluster mode, not as an unknown kind.
func TestKubernetesSignerRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	yaml := "apiVersion: acme.kacme.io/v1alpha1\nkind: KubernetesSigner\nmetadata: {name: pods}\nspec: {certificateAuthority: default}\n"
	if err := os.WriteFile(filepath.Join(dir, "s.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "cluster mode only") {
		t.Fatalf("LoadDir = %v, want the cluster-mode-only refusal", err)
	}
}

func writeConfig(t *testing.T, yaml string) *Manifests {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Intermediates load after their issuers whatever the order in the files; a
// restart reuses the generated keys; missing issuers and cycles are errors.
func TestAuthorities(t *testing.T) {
	t.Parallel()
	m := writeConfig(t, `
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: a-leafissuer}
spec: {intermediate: {issuer: z-root}}
---
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: z-root}
spec: {selfSigned: {keyAlgorithm: Ed25519}}
`)
	data := t.TempDir()
	first := map[string]*ca.Authority{}
	if err := loadAuthorities(data, m, "", first, quiet); err != nil {
		t.Fatal(err)
	}
	if first["a-leafissuer"].Root().Equal(first["z-root"].Cert) == false {
		t.Fatal("intermediate is not signed by its issuer")
	}
	again := map[string]*ca.Authority{}
	if err := loadAuthorities(data, m, "", again, quiet); err != nil {
		t.Fatal(err)
	}
	if !again["a-leafissuer"].Cert.Equal(first["a-leafissuer"].Cert) {
		t.Fatal("a restart generated a new CA instead of reusing it")
	}
	for name, yaml := range map[string]string{
		"missing issuer": `
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: orphan}
spec: {intermediate: {issuer: nobody}}
`,
		"cycle": `
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: a}
spec: {intermediate: {issuer: b}}
---
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: b}
spec: {intermediate: {issuer: a}}
`,
		"two kinds at once": `
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: both}
spec: {selfSigned: {}, secretRef: {name: x}}
`,
	} {
		err := loadAuthorities(t.TempDir(), writeConfig(t, yaml), "", map[string]*ca.Authority{}, quiet)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// secretRef imports an existing CA from a Secret manifest.
func TestImportedAuthority(t *testing.T) {
	t.Parallel()
	key, chain, err := ca.GenerateSelfSigned("ext", v1alpha1.SelfSignedCA{})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, crtPEM, _ := ca.EncodePEM(key, chain)
	indent := func(b []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(b)), "\n", "\n    ")
	}
	m := writeConfig(t, `
apiVersion: acme.kacme.io/v1alpha1
kind: CertificateAuthority
metadata: {name: imported}
spec: {secretRef: {name: ext-ca}}
---
apiVersion: v1
kind: Secret
metadata: {name: ext-ca}
stringData:
  tls.crt: |
`+indent(crtPEM)+`
  ca.crt: |
`+indent(crtPEM)+`
  tls.key: |
`+indent(keyPEM)+`
`)
	out := map[string]*ca.Authority{}
	if err := loadAuthorities(t.TempDir(), m, "", out, quiet); err != nil {
		t.Fatal(err)
	}
	if a := out["imported"]; a == nil || !a.Cert.Equal(chain[0]) || len(a.Parents) != 0 {
		t.Fatalf("imported CA: %+v", a)
	}
}
