package ca

import (
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/kacme/kacme/api/v1alpha1"
)

// TestGeneratedKeyIsDurable: after the CA key and certificate are renamed
// into place, their directory is fsynced (with the key already in it), as
// are the parents of the directories created for them; no temporary file
// is left and the key is 0600.
func TestGeneratedKeyIsDurable(t *testing.T) {
	var synced []string
	keyPresent := map[string]bool{}
	orig := syncDir
	syncDir = func(dir string) error {
		synced = append(synced, dir)
		_, err := os.Stat(filepath.Join(dir, "tls.key"))
		keyPresent[dir] = keyPresent[dir] || err == nil
		return orig(dir)
	}
	t.Cleanup(func() { syncDir = orig })
	root := t.TempDir()
	dir := filepath.Join(root, "ca", "root-ca")
	gen := func() (crypto.Signer, []*x509.Certificate, error) {
		return GenerateSelfSigned("root", v1alpha1.SelfSignedCA{})
	}
	if _, created, err := LoadOrGenerateDir("root", dir, gen); err != nil || !created {
		t.Fatalf("LoadOrGenerateDir: created=%v %v", created, err)
	}
	if !keyPresent[dir] {
		t.Fatalf("the key's directory was never fsynced after the key was renamed into it (synced: %v)", synced)
	}
	for _, parent := range []string{root, filepath.Join(root, "ca")} {
		found := false
		for _, d := range synced {
			found = found || d == parent
		}
		if !found {
			t.Errorf("%s was not fsynced after a directory was created in it (synced: %v)", parent, synced)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("left behind in %s: %v", dir, entries)
	}
	if fi, err := os.Stat(filepath.Join(dir, "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("tls.key mode %v (%v), want 0600", fi.Mode(), err)
	}
}
