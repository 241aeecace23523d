package nonce

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Peers maps the prefix of another replica's nonces to the address of its
// internal endpoint (host:port).
type Peers interface {
	Address(ctx context.Context, prefix string) (string, bool)
}

// RedeemPath is the internal endpoint a replica redeems its own nonces at for
// its peers.
const RedeemPath = "/internal/nonce/redeem"

// Routed is the Service of one of several replicas: it issues nonces with
// its own prefix and redeems a nonce at the replica that issued it (locally,
// or over that replica's internal endpoint), so a nonce from any replica is
// good exactly once at any replica and a replayed one is refused everywhere.
// Requests between replicas carry an HMAC-SHA256 of the nonce under Key.
type Routed struct {
	Local  *InMemory
	Peers  Peers
	Key    []byte
	Client *http.Client
	// Timeout bounds a redemption at a peer (default 2 s); a peer that does
	// not answer makes the nonce bad (the client retries with a fresh one).
	Timeout time.Duration
	// last is when Nonce last issued one (Unix nanoseconds).
	last atomic.Int64
}

// Nonce implements Source.
func (r *Routed) Nonce() (string, error) {
	r.last.Store(time.Now().UnixNano())
	return r.Local.Nonce()
}

// LastIssued is when this replica last issued a nonce (zero: never). A
// terminating replica keeps redeeming its nonces for its peers for a while
// after it (cluster.NonceGrace): the client that got one in its last answer
// from this replica spends it at another.
func (r *Routed) LastIssued() time.Time {
	if n := r.last.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Redeem implements Redeemer.
func (r *Routed) Redeem(ctx context.Context, n string) bool {
	if len(n) <= prefixLen {
		return false
	}
	prefix := n[:prefixLen]
	if prefix == r.Local.Prefix() {
		return r.Local.Redeem(ctx, n)
	}
	addr, ok := r.Peers.Address(ctx, prefix)
	if !ok {
		return false
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+RedeemPath, bytes.NewBufferString(n))
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "HMAC-SHA256 "+r.mac(n))
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1024))
	return resp.StatusCode == http.StatusNoContent
}

func (r *Routed) mac(n string) string {
	m := hmac.New(sha256.New, r.Key)
	m.Write([]byte(n))
	return hex.EncodeToString(m.Sum(nil))
}

// Handler serves RedeemPath for the peers: 204 when the nonce was good and is
// now used, 409 when not, 401 without a valid HMAC.
func (r *Routed) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+RedeemPath, func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(io.LimitReader(req.Body, 512))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		n := string(body)
		got, ok := bytes.CutPrefix([]byte(req.Header.Get("Authorization")), []byte("HMAC-SHA256 "))
		if !ok || !hmac.Equal(got, []byte(r.mac(n))) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if !r.Local.Redeem(req.Context(), n) {
			w.WriteHeader(http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
