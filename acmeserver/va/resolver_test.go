package va

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The system nameservers are read once and again whenever the file changes.
func TestResolvConfReread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	write := func(body string, mod time.Time) {
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	c := &resolvConf{path: path}
	t0 := time.Now().Add(-time.Hour)
	write("nameserver 10.0.0.1\n", t0)
	if got := c.get(); !slices.Equal(got, []string{"10.0.0.1:53"}) {
		t.Fatalf("first read: %v", got)
	}
	got := c.get()
	got[0] = "changed by a caller"
	if got := c.get(); !slices.Equal(got, []string{"10.0.0.1:53"}) {
		t.Fatalf("second read: %v", got)
	}
	write("nameserver 10.0.0.2\nnameserver 10.0.0.3\n", t0.Add(time.Minute))
	if got := c.get(); !slices.Equal(got, []string{"10.0.0.2:53", "10.0.0.3:53"}) {
		t.Fatalf("after a change: %v", got)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got := c.get(); got != nil {
		t.Fatalf("without the file: %v", got)
	}
}
