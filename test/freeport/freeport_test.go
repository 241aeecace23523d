package freeport

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestPickBelowEphemeralAndDistinct(t *testing.T) {
	hi := ephemeralStart()
	seen := map[int]bool{}
	for range 300 {
		p, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		if hi-lowest >= 1000 && (p < lowest || p >= hi) {
			t.Fatalf("port %d outside [%d, %d)", p, lowest, hi)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
}

func TestPickSkipsBoundPort(t *testing.T) {
	// Hold a port, then check bindable refuses it (Pick relies on that).
	p, err := Pick()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if bindable(p) {
		t.Fatalf("port %d is held but reported bindable", p)
	}
}

// TestReserveAcrossProcesses runs this test binary again as a child that
// picks ports while the parent holds its own: the two never share one.
func TestReserveAcrossProcesses(t *testing.T) {
	if os.Getenv("FREEPORT_CHILD") == "1" {
		for range 500 {
			p, err := Pick()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Println(p)
		}
		return
	}
	mine := map[int]bool{}
	for range 500 {
		p, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		mine[p] = true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReserveAcrossProcesses$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FREEPORT_CHILD=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	n := 0
	for _, f := range strings.Fields(string(out)) {
		p, err := strconv.Atoi(f)
		if err != nil {
			continue // "PASS" and the like
		}
		n++
		if mine[p] {
			t.Fatalf("port %d handed to both processes", p)
		}
	}
	if n != 500 {
		t.Fatalf("child picked %d ports, want 500:\n%s", n, out)
	}
}
