package conformance

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	xacme "golang.org/x/crypto/acme"

	"github.com/kacme/kacme/acmeserver/standalone"
)

// TestHealthAndGracefulShutdown: /healthz and /readyz answer 200 while the
// server serves; once Close begins, /readyz answers 503 while requests are
// still served for the shutdown delay; a request in flight when the
// listener closes (a challenge POST waiting for a slow http-01 answer)
// completes with its result; Wait returns only after the drain. Answers
// while draining close their connection.
func TestHealthAndGracefulShutdown(t *testing.T) {
	const delay = 1500 * time.Millisecond
	e := newEnv(t, func(o *standalone.Options) { o.ShutdownDelay = delay })
	status := func(path string) int {
		r, err := e.http.Get(e.srv.URL + path)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r.StatusCode
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if got := status(p); got != http.StatusOK {
			t.Fatalf("%s = %d, want 200", p, got)
		}
	}
	ctx := context.Background()
	c := e.goClient("default")
	if _, err := c.Register(ctx, &xacme.Account{}, xacme.AcceptTOS); err != nil {
		t.Fatal(err)
	}
	o, err := c.AuthorizeOrder(ctx, []xacme.AuthzID{{Type: "dns", Value: "drain.localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	z, err := c.GetAuthorization(ctx, o.AuthzURLs[0])
	if err != nil {
		t.Fatal(err)
	}
	var ch *xacme.Challenge
	for _, c := range z.Challenges {
		if c.Type == "http-01" {
			ch = c
		}
	}
	ka, _ := c.HTTP01ChallengeResponse(ch.Token)
	e.resp.set(ch.Token, ka)
	// The validation's fetch answers after the delay has passed and the
	// listener has closed: the challenge POST is in flight across both.
	e.resp.delay.Store(int64(delay + 2*time.Second))
	type result struct {
		ch  *xacme.Challenge
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		got, err := c.Accept(ctx, ch)
		accepted <- result{got, err}
	}()
	time.Sleep(300 * time.Millisecond) // the POST is being served
	closed := make(chan error, 1)
	go func() { closed <- e.srv.Close() }()
	waited := make(chan error, 1)
	go func() { waited <- e.srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	if got := status("/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d, want 503", got)
	}
	if got := status("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz while draining = %d, want 200", got)
	}
	if got := status("/acme/directory"); got != http.StatusOK {
		t.Errorf("the directory during the shutdown delay = %d, want 200 (still served)", got)
	}
	// Each answer while draining is its connection's last: the client's next
	// request opens a new connection, which a Service sends to a replica that
	// is not shutting down (a kept-alive one would stay with this one).
	if r, err := e.http.Get(e.srv.URL + "/acme/directory"); err != nil {
		t.Error(err)
	} else {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if !r.Close {
			t.Errorf("an answer while draining keeps its connection open (Connection: %q)", r.Header.Get("Connection"))
		}
	}
	time.Sleep(delay) // past the delay: the listener is closed, the POST still waits for its validation
	if got := status("/healthz"); got != 0 {
		t.Errorf("a new request after the delay was answered %d; the listener should be closed", got)
	}
	select {
	case err := <-waited:
		t.Fatalf("Wait returned (%v) before the in-flight request finished", err)
	case r := <-accepted:
		t.Fatalf("the challenge POST ended before the validation could: %+v", r)
	default:
	}
	r := <-accepted
	if r.err != nil {
		t.Fatalf("the in-flight challenge POST: %v", r.err)
	}
	if r.ch.Status != xacme.StatusValid {
		t.Fatalf("the in-flight challenge POST answered %q, want valid", r.ch.Status)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("Wait: %v", err)
	}
}
