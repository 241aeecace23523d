package nonce

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type peerMap map[string]string

func (p peerMap) Address(_ context.Context, prefix string) (string, bool) {
	a, ok := p[prefix]
	return a, ok
}

// TestRouted: a nonce issued by one of three replicas is good exactly once at
// any of them; a replay is refused at every replica, the issuer included.
func TestRouted(t *testing.T) {
	peers := peerMap{}
	key := []byte("0123456789abcdef0123456789abcdef")
	var replicas []*Routed
	for _, p := range []string{"AAAA", "BBBB", "CCCC"} {
		local, err := NewInMemory(p, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r := &Routed{Local: local, Peers: peers, Key: key}
		srv := httptest.NewServer(r.Handler())
		t.Cleanup(srv.Close)
		peers[p] = strings.TrimPrefix(srv.URL, "http://")
		replicas = append(replicas, r)
	}
	for i, issuer := range replicas {
		n, err := issuer.Nonce()
		if err != nil {
			t.Fatal(err)
		}
		at := replicas[(i+1)%3]
		if !at.Redeem(t.Context(), n) {
			t.Fatalf("nonce of replica %d refused at replica %d", i, (i+1)%3)
		}
		for j, r := range replicas {
			if r.Redeem(t.Context(), n) {
				t.Fatalf("replayed nonce of replica %d accepted at replica %d", i, j)
			}
		}
	}
	// Unknown replica, garbage, and a request to the internal endpoint without the key.
	if replicas[0].Redeem(t.Context(), "ZZZZ"+strings.Repeat("a", 40)) || replicas[0].Redeem(t.Context(), "BBB") {
		t.Fatal("nonce of an unknown replica or a short one accepted")
	}
	n, _ := replicas[1].Nonce()
	resp, err := http.Post("http://"+peers["BBBB"]+RedeemPath, "text/plain", strings.NewReader(n))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !replicas[1].Redeem(t.Context(), n) {
		t.Fatalf("unauthenticated redemption answered %d (and must not burn the nonce)", resp.StatusCode)
	}
}
