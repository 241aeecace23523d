package freeport

import (
	"fmt"
	"net"
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
