// Package embeddedtest opens embedded stores for tests.
package embeddedtest

import (
	"path/filepath"
	"testing"

	"github.com/kacme/kacme/acmeserver/storage/embedded"
)

// Open opens a store in a fresh temporary directory with o, closed when
// the test ends.
func Open(t testing.TB, o embedded.Options) *embedded.Store {
	t.Helper()
	s, err := embedded.OpenWith(filepath.Join(t.TempDir(), "kacme.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
