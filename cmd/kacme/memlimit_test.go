package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestSetMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "memory.max")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("GOMEMLIMIT", "")
	_ = os.Unsetenv("GOMEMLIMIT")
	if got := setMemoryLimit(write("1073741824\n")); got != 1073741824/10*9 || debug.SetMemoryLimit(-1) != got {
		t.Fatalf("1 GiB limit: set %d (runtime %d)", got, debug.SetMemoryLimit(-1))
	}
	debug.SetMemoryLimit(math.MaxInt64)
	for _, s := range []string{"max\n", "", "garbage"} {
		if got := setMemoryLimit(write(s)); got != 0 {
			t.Fatalf("memory.max %q: set %d, want none", s, got)
		}
	}
	if got := setMemoryLimit(filepath.Join(dir, "missing")); got != 0 {
		t.Fatalf("no cgroup file: set %d", got)
	}
	t.Setenv("GOMEMLIMIT", "100MiB")
	if got := setMemoryLimit(write("1073741824")); got != 0 {
		t.Fatalf("with GOMEMLIMIT set: set %d, want none", got)
	}
}
