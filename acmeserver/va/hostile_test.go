package va

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/api/v1alpha1"
)

// hostileDNS runs a DNS server on loopback whose answers answer builds
// (nil: no answer at all, the query times out).
func hostileDNS(t *testing.T, answer func(q dns.Question) *dns.Msg) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := answer(r.Question[0])
		if m == nil {
			return
		}
		m.Id, m.Response = r.Id, true
		if m.Question == nil {
			m.Question = r.Question
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// records answers every question with the records of rrs (any type: the
// answer walk must pick what it needs).
func records(t *testing.T, rrs ...string) func(dns.Question) *dns.Msg {
	parsed := make([]dns.RR, len(rrs))
	for i, s := range rrs {
		parsed[i] = rr(t, s)
	}
	return func(dns.Question) *dns.Msg { return &dns.Msg{Answer: parsed} }
}

// byName answers each question with the records listed for its name.
func byName(t *testing.T, m map[string][]string) func(dns.Question) *dns.Msg {
	return func(q dns.Question) *dns.Msg {
		var out dns.Msg
		for _, s := range m[strings.ToLower(q.Name)] {
			out.Answer = append(out.Answer, rr(t, s))
		}
		return &out
	}
}

// validateWithin runs a validation and fails the test if it does not end
// within limit (before the fix, a CNAME loop never ended: the test would
// otherwise hang until go test's timeout).
func validateWithin(t *testing.T, limit time.Duration, req Request) Result {
	t.Helper()
	done := make(chan Result, 1)
	go func() { done <- validate(t, req) }()
	select {
	case res := <-done:
		return res
	case <-time.After(limit):
		t.Fatalf("validation of %s did not end within %s", req.Identifier.Value, limit)
		return Result{}
	}
}

// TestHostileDNSAnswers: answers a resolver under an attacker's control can
// give end every lookup (dns-01 TXT, and the A/AAAA lookups of http-01 and
// tls-alpn-01) with a dns problem, well within the validation timeout.
func TestHostileDNSAnswers(t *testing.T) {
	t.Parallel()
	chain := map[string][]string{}
	for i := 0; i < 40; i++ { // one CNAME per answer, a new query for each: the walk is bounded across queries
		for _, p := range []string{"", "_acme-challenge."} {
			chain[fmt.Sprintf("%sc%d.chain.test.", p, i)] = []string{fmt.Sprintf("%sc%d.chain.test. 5 IN CNAME %sc%d.chain.test.", p, i, p, i+1)}
		}
	}
	cases := []struct {
		name   string
		answer func(dns.Question) *dns.Msg
		detail string
	}{
		{"self-loop", records(t, "loop.test. 5 IN CNAME loop.test.", "_acme-challenge.loop.test. 5 IN CNAME _acme-challenge.loop.test."), "CNAME loop"},
		{"two-cycle", byName(t, map[string][]string{
			"loop.test.":                 {"loop.test. 5 IN CNAME b.test.", "b.test. 5 IN CNAME loop.test."},
			"_acme-challenge.loop.test.": {"_acme-challenge.loop.test. 5 IN CNAME b.test.", "b.test. 5 IN CNAME _acme-challenge.loop.test."},
		}), "CNAME loop"},
		{"mixed-case-loop", records(t, "loop.test. 5 IN CNAME LOOP.Test.", "_acme-challenge.loop.test. 5 IN CNAME _ACME-challenge.LOOP.test."), "CNAME loop"},
		{"loop-across-queries", byName(t, map[string][]string{
			"loop.test.":                 {"loop.test. 5 IN CNAME other.test."},
			"other.test.":                {"other.test. 5 IN CNAME loop.test."},
			"_acme-challenge.loop.test.": {"_acme-challenge.loop.test. 5 IN CNAME other.test."},
		}), "CNAME loop"},
		{"endless-chain", func(q dns.Question) *dns.Msg {
			name := strings.Replace(strings.ToLower(q.Name), "loop.test.", "c0.chain.test.", 1)
			if strings.HasPrefix(q.Name, "loop") || strings.HasPrefix(q.Name, "_acme-challenge.loop") {
				return &dns.Msg{Answer: []dns.RR{rr(t, q.Name+" 5 IN CNAME "+name)}}
			}
			return byName(t, chain)(q)
		}, "more than 16 CNAMEs"},
		{"two-cnames", records(t, "loop.test. 5 IN CNAME a.test.", "loop.test. 5 IN CNAME b.test.",
			"_acme-challenge.loop.test. 5 IN CNAME a.test.", "_acme-challenge.loop.test. 5 IN CNAME b.test."), "more than one CNAME"},
		{"answer-to-another-question", func(dns.Question) *dns.Msg {
			return &dns.Msg{Question: []dns.Question{{Name: "elsewhere.test.", Qtype: dns.TypeA, Qclass: dns.ClassINET}},
				Answer: []dns.RR{rr(t, "elsewhere.test. 5 IN A 127.0.0.1")}}
		}, "does not answer the question"},
		{"silent", func(dns.Question) *dns.Msg { return nil }, "timeout"},
	}
	for _, tc := range cases {
		for _, typ := range []v1alpha1.ChallengeType{v1alpha1.ChallengeDNS01, v1alpha1.ChallengeHTTP01, v1alpha1.ChallengeTLSALPN01} {
			t.Run(tc.name+"/"+string(typ), func(t *testing.T) {
				t.Parallel()
				settings := Settings{Resolvers: []string{hostileDNS(t, tc.answer)}, Timeout: time.Second, HTTPPort: 1, TLSPort: 1}
				start := time.Now()
				res := validateWithin(t, 5*time.Second, Request{Identifier: acme.Identifier{Type: "dns", Value: "loop.test"}, Type: typ, Settings: settings})
				wantProblem(t, res, acme.DNS)
				if !strings.Contains(res.Problem.Detail, tc.detail) {
					t.Fatalf("detail %q does not say %q", res.Problem.Detail, tc.detail)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Fatalf("took %s, past the 1 s validation timeout", took)
				}
			})
		}
	}
}

// TestAnswerRecordsOfOtherNames: records owned by names the walk did not reach
// are not taken as the answer.
func TestAnswerRecordsOfOtherNames(t *testing.T) {
	t.Parallel()
	want := acme.DNS01Value(keyAuth)
	srv := hostileDNS(t, records(t, fmt.Sprintf(`_acme-challenge.unrelated.test. 5 IN TXT %q`, want), "unrelated.test. 5 IN A 127.0.0.1"))
	res := validate(t, Request{Identifier: acme.Identifier{Type: "dns", Value: "victim.test"}, Type: v1alpha1.ChallengeDNS01,
		Settings: Settings{Resolvers: []string{srv}}})
	wantProblem(t, res, acme.IncorrectResponse)
	res = validate(t, Request{Identifier: acme.Identifier{Type: "dns", Value: "victim.test"}, Type: v1alpha1.ChallengeHTTP01,
		Settings: Settings{Resolvers: []string{srv}, HTTPPort: 1}})
	wantProblem(t, res, acme.DNS)
}

// fakeNetwork dials "ip:port" of pretend hosts through loopback listeners and
// remembers every address the validator tried to reach.
type fakeNetwork struct {
	mu     sync.Mutex
	routes map[string]string // pretend address → real loopback address
	tried  []string
}

func (n *fakeNetwork) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	n.tried = append(n.tried, addr)
	real, ok := n.routes[addr]
	n.mu.Unlock()
	if !ok {
		real = addr
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

func (n *fakeNetwork) triedAny(prefixes ...string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range n.tried {
		for _, p := range prefixes {
			if strings.HasPrefix(a, p) {
				return a
			}
		}
	}
	return ""
}

// TestHTTP01NeverEchoesTheBody (SEC-04, PRB-03): whatever the target
// answered is not quoted in the problem; its length and a hash are.
func TestHTTP01NeverEchoesTheBody(t *testing.T) {
	t.Parallel()
	const secret = "AKIAIOSFODNN7EXAMPLE-instance-credentials"
	port := httpTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.Host, "other-account."):
			_, _ = io.WriteString(w, "token123.someone-elses-thumbprint")
		default:
			_, _ = io.WriteString(w, secret)
		}
	}))
	settings := Settings{HTTPPort: port, Resolvers: []string{"127.0.0.1:1"}}
	res := validate(t, Request{Identifier: acme.Identifier{Type: "dns", Value: "leak.localhost"}, Type: v1alpha1.ChallengeHTTP01, Settings: settings})
	wantProblem(t, res, acme.IncorrectResponse)
	if strings.Contains(res.Problem.Detail, "AKIA") || strings.Contains(res.Problem.Detail, "credentials") {
		t.Fatalf("the problem quotes the response body: %s", res.Problem.Detail)
	}
	if !strings.Contains(res.Problem.Detail, fmt.Sprintf("%d bytes", len(secret))) || !strings.Contains(res.Problem.Detail, "SHA-256") {
		t.Fatalf("the problem does not give the body's length and hash: %s", res.Problem.Detail)
	}
	res = validate(t, Request{Identifier: acme.Identifier{Type: "dns", Value: "other-account.localhost"}, Type: v1alpha1.ChallengeHTTP01, Settings: settings})
	wantProblem(t, res, acme.IncorrectResponse)
	if !strings.Contains(res.Problem.Detail, "another account key") || strings.Contains(res.Problem.Detail, "someone-elses") {
		t.Fatalf("SEC-01 mismatch not explained, or quoted: %s", res.Problem.Detail)
	}
}

// TestHTTP01RedirectAddressPolicy (SEC-04): a redirect may not lead to a
// loopback, link-local or unspecified address unless the identifier's own
// first hop went to that class; refused hops are never dialled.
func TestHTTP01RedirectAddressPolicy(t *testing.T) {
	t.Parallel()
	var port int
	port = httpTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch to := r.URL.Query().Get("to"); {
		case to != "":
			http.Redirect(w, r, fmt.Sprintf("http://%s/.well-known/acme-challenge/token123", to), http.StatusFound)
		case r.URL.Path == "/.well-known/acme-challenge/token123":
			host := r.Host
			if i := strings.LastIndex(host, ":"); i > 0 {
				host = host[:i]
			}
			target := map[string]string{
				"metadata.localhost": "169.254.169.254", "unspecified.localhost": "0.0.0.0:%d", "unspecified6.localhost": "[::]:%d",
				"10.0.0.5": "127.0.0.1:%d", "10.0.0.6": "[::ffff:127.0.0.1]:%d", "10.0.0.7": "10.0.0.8:%d", "10.0.0.9": "[fe80::1]:%d",
				"loopback.localhost": "127.0.0.1:%d", "127.0.0.1": "127.0.0.2:%d",
			}[host]
			if target == "" {
				_, _ = io.WriteString(w, keyAuth)
				return
			}
			if strings.Contains(target, "%d") {
				target = fmt.Sprintf(target, port)
			}
			http.Redirect(w, r, "/.well-known/acme-challenge/token123?to="+target, http.StatusFound)
		default:
			_, _ = io.WriteString(w, keyAuth)
		}
	}))
	p := fmt.Sprint(port)
	for _, tc := range []struct {
		id      acme.Identifier
		typ     acme.ProblemType
		refused string // an address prefix that must never be dialled
	}{
		{acme.Identifier{Type: "dns", Value: "metadata.localhost"}, acme.Connection, "169.254.169.254:"},
		{acme.Identifier{Type: "dns", Value: "unspecified.localhost"}, acme.Connection, "0.0.0.0:"},
		{acme.Identifier{Type: "dns", Value: "unspecified6.localhost"}, acme.Connection, "[::]:"},
		{acme.Identifier{Type: "ip", Value: "10.0.0.5"}, acme.Connection, "127.0.0.1:"},
		{acme.Identifier{Type: "ip", Value: "10.0.0.6"}, acme.Connection, "[::ffff:127.0.0.1]:"},
		{acme.Identifier{Type: "ip", Value: "10.0.0.9"}, acme.Connection, "[fe80::1]:"},
		{acme.Identifier{Type: "ip", Value: "10.0.0.7"}, "", ""},            // ordinary to ordinary: followed
		{acme.Identifier{Type: "dns", Value: "loopback.localhost"}, "", ""}, // a .localhost name is loopback: loopback is its own class
		{acme.Identifier{Type: "ip", Value: "127.0.0.1"}, "", ""},           // an identifier that is itself loopback
		{acme.Identifier{Type: "dns", Value: "plain.localhost"}, "", ""},    // no redirect at all
	} {
		t.Run(tc.id.Value, func(t *testing.T) {
			t.Parallel()
			netw := &fakeNetwork{routes: map[string]string{
				"10.0.0.5:" + p: "127.0.0.1:" + p, "10.0.0.6:" + p: "127.0.0.1:" + p, "10.0.0.7:" + p: "127.0.0.1:" + p,
				"10.0.0.8:" + p: "127.0.0.1:" + p, "10.0.0.9:" + p: "127.0.0.1:" + p, "127.0.0.2:" + p: "127.0.0.1:" + p,
			}}
			v := New()
			v.Dialer = netw
			res := v.Validate(context.Background(), Request{Identifier: tc.id, Type: v1alpha1.ChallengeHTTP01, Token: "token123", KeyAuthorization: keyAuth,
				Settings: Settings{HTTPPort: port, Resolvers: []string{"127.0.0.1:1"}, Timeout: 3 * time.Second}})
			wantProblem(t, res, tc.typ)
			if tc.refused != "" {
				if !strings.Contains(res.Problem.Detail, "refused redirect") {
					t.Fatalf("detail %q does not say the redirect was refused", res.Problem.Detail)
				}
				if a := netw.triedAny(tc.refused); a != "" {
					t.Fatalf("dialled %s although the policy refuses it", a)
				}
			}
		})
	}
}

// TestHTTP01HostileTargets: targets that stall, dribble or flood end in a
// problem within the validation timeout.
func TestHTTP01HostileTargets(t *testing.T) {
	t.Parallel()
	port := httpTarget(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.Host, "dribble."): // a byte a second, forever
			for i := 0; i < 60 && r.Context().Err() == nil; i++ {
				_, _ = w.Write([]byte("x"))
				w.(http.Flusher).Flush()
				time.Sleep(time.Second)
			}
		case strings.HasPrefix(r.Host, "stall."):
			select {
			case <-r.Context().Done():
			case <-time.After(time.Minute):
			}
		case strings.HasPrefix(r.Host, "headers."):
			for i := 0; i < 2000; i++ {
				w.Header().Add(fmt.Sprintf("X-Filler-%d", i), strings.Repeat("y", 64))
			}
			_, _ = io.WriteString(w, keyAuth)
		case strings.HasPrefix(r.Host, "huge."):
			w.Header().Set("Content-Length", "10000000000")
			_, _ = io.WriteString(w, strings.Repeat("z", 64<<10))
		}
	}))
	for name, typ := range map[string]acme.ProblemType{
		"dribble.localhost": acme.IncorrectResponse, "stall.localhost": acme.Connection,
		"headers.localhost": acme.Connection, "huge.localhost": acme.IncorrectResponse,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			res := validateWithin(t, 5*time.Second, Request{Identifier: acme.Identifier{Type: "dns", Value: name}, Type: v1alpha1.ChallengeHTTP01,
				Settings: Settings{HTTPPort: port, Resolvers: []string{"127.0.0.1:1"}, Timeout: 2 * time.Second}})
			if res.Problem == nil {
				t.Fatal("validation passed")
			}
			if res.Problem.Type != typ && !(name == "dribble.localhost" && res.Problem.Type == acme.Connection) {
				t.Fatalf("problem %s (%s), want %s", res.Problem.Type, res.Problem.Detail, typ)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("took %s, past the 2 s timeout", took)
			}
		})
	}
}
