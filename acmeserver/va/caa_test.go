package va

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/api/v1alpha1"
)

// TestCheckCAA (CAA-01 … CAA-08) against a DNS server on loopback: which
// record set applies (the name, else the closest parent with one; CNAMEs
// followed), issue and issuewild, the critical flag, accounturi and
// validationmethods, and lookups that fail.
func TestCheckCAA(t *testing.T) {
	t.Parallel()
	caa := func(owner, rdata string) dns.RR { return rr(t, owner+" 5 IN CAA "+rdata) }
	srv := dnsServer(t, map[string][]dns.RR{
		"allow.test.":       {caa("allow.test.", `0 issue "kacme.test"`)},
		"other.test.":       {caa("other.test.", `0 issue "other-ca.test"`)},
		"semicolon.test.":   {caa("semicolon.test.", `0 issue ";"`)},
		"iodef.test.":       {caa("iodef.test.", `0 iodef "mailto:caa@example.test"`)},
		"parent.test.":      {caa("parent.test.", `0 issue "other-ca.test"`)},
		"parentok.test.":    {caa("parentok.test.", `0 issue "kacme.test"`)},
		"sub.parentok.test": {},
		"wild.test.":        {caa("wild.test.", `0 issue "kacme.test"`), caa("wild.test.", `0 issuewild ";"`)},
		"issueonly.test.":   {caa("issueonly.test.", `0 issue "kacme.test"`)},
		"wildok.test.":      {caa("wildok.test.", `0 issue ";"`), caa("wildok.test.", `0 issuewild "kacme.test"`)},
		"crit.test.":        {caa("crit.test.", `128 tbs "unknown"`), caa("crit.test.", `0 issue "kacme.test"`)},
		"noncrit.test.":     {caa("noncrit.test.", `0 tbs "unknown"`), caa("noncrit.test.", `0 issue "kacme.test"`)},
		"acct.test.":        {caa("acct.test.", `0 issue "kacme.test; accounturi=https://acme.test/acct/1"`)},
		"otheracct.test.":   {caa("otheracct.test.", `0 issue "kacme.test; accounturi=https://acme.test/acct/2"`)},
		"twoacct.test.": {caa("twoacct.test.",
			`0 issue "kacme.test; accounturi=https://acme.test/acct/1; accounturi=https://acme.test/acct/1"`)},
		"anyof.test.": {caa("anyof.test.", `0 issue "kacme.test; accounturi=https://acme.test/acct/2"`),
			caa("anyof.test.", `0 issue "kacme.test; accounturi=https://acme.test/acct/1"`)},
		"methods.test.":          {caa("methods.test.", `0 issue "kacme.test; validationmethods=dns-01,http-01"`)},
		"dnsonly.test.":          {caa("dnsonly.test.", `0 issue "kacme.test; validationmethods=dns-01"`)},
		"badmethods.test.":       {caa("badmethods.test.", `0 issue "kacme.test; validationmethods=http_01"`)},
		"unknownparam.test.":     {caa("unknownparam.test.", `0 issue "kacme.test; policy=ev"`)},
		"badparam.test.":         {caa("badparam.test.", `0 issue "kacme.test; =x"`)},
		"case.test.":             {caa("case.test.", `0 issue "KACME.Test."`)},
		"alias.test.":            {rr(t, `alias.test. 5 IN CNAME target.elsewhere.test.`)},
		"target.elsewhere.test.": {caa("target.elsewhere.test.", `0 issue "other-ca.test"`)},
		"loop.test.":             {rr(t, `loop.test. 5 IN CNAME loop.test.`)},
	}, map[string]bool{"broken.test.": true, "servfail-parent.test.": true})
	res := NewDNSResolver([]string{srv}, 2*time.Second)
	c := CAA{Identities: []string{"kacme.test"}, AccountURI: "https://acme.test/acct/1", Method: "http-01"}
	for name, allowed := range map[string]bool{
		"allow.test": true, "other.test": false, "semicolon.test": false, "iodef.test": true,
		"nothing.test": true, "a.b.c.nothing.test": true, // NXDOMAIN up to the root: no CAA anywhere
		"sub.parent.test": false, "x.y.parent.test": false, "sub.parentok.test": true, // CAA-01: a parent's set applies
		"wild.test": true, "*.wild.test": false, "*.issueonly.test": true, "*.wildok.test": true, "wildok.test": false, // CAA-03
		"crit.test": false, "noncrit.test": true, // CAA-04
		"acct.test": true, "otheracct.test": false, "twoacct.test": false, "anyof.test": true, // CAA-05
		"methods.test": true, "dnsonly.test": false, "badmethods.test": false, // CAA-06
		"unknownparam.test": true, "badparam.test": false, "case.test": true,
		"alias.test":  false,                                  // aliases followed
		"broken.test": false, "x.servfail-parent.test": false, // CAA-08: a failed lookup refuses
		"loop.test": false,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := CheckCAA(context.Background(), res, name, c)
			switch {
			case allowed && p != nil:
				t.Fatalf("refused: %s", p.Detail)
			case !allowed && p == nil:
				t.Fatal("allowed")
			case !allowed && (p.Type != acme.CAA || p.Status != 403):
				t.Fatalf("problem %s %d, want caa 403", p.Type, p.Status)
			}
		})
	}
	// The detail names the owner and the record that forbade it.
	p := CheckCAA(context.Background(), res, "www.sub.parent.test", c)
	if p == nil || !strings.Contains(p.Detail, "parent.test") || !strings.Contains(p.Detail, `issue "other-ca.test"`) {
		t.Fatalf("detail %v", p)
	}
	// Without identities nothing matches an issue property.
	if p := CheckCAA(context.Background(), res, "allow.test", CAA{}); p == nil {
		t.Fatal("a CA with no identities matched an issue property")
	}
}

// TestValidateChecksCAA: a dns-01 validation that succeeds still ends in
// caa when the profile checks CAA and the records name another CA; not when
// it does not check, and an IP identifier has no CAA to check.
func TestValidateChecksCAA(t *testing.T) {
	t.Parallel()
	want := acme.DNS01Value(keyAuth)
	srv := dnsServer(t, map[string][]dns.RR{
		"_acme-challenge.caa.test.": {rr(t, fmt.Sprintf(`_acme-challenge.caa.test. 5 IN TXT %q`, want))},
		"caa.test.":                 {rr(t, `caa.test. 5 IN CAA 0 issue "other-ca.test"`)},
	}, nil)
	req := Request{Identifier: acme.Identifier{Type: "dns", Value: "caa.test"}, Type: v1alpha1.ChallengeDNS01,
		Settings: Settings{Resolvers: []string{srv}}}
	wantProblem(t, validate(t, req), "")
	req.Settings.CAAIdentities = []string{"kacme.test"}
	res := validate(t, req)
	wantProblem(t, res, acme.CAA)
	if len(res.Records) != 1 {
		t.Fatalf("the validation's records are kept with the caa problem: %+v", res.Records)
	}
	req.Settings.CAAIdentities = []string{"other-ca.test"}
	wantProblem(t, validate(t, req), "")
}

// TestCheckCAAHostile: a resolver that never answers, 40 CAA records,
// a 100-label name and an answer for another name each end in a
// bounded time: refused (caa) when nothing could be learned, with a detail
// that lists at most a few records.
func TestCheckCAAHostile(t *testing.T) {
	t.Parallel()
	c := CAA{Identities: []string{"kacme.test"}, Method: "http-01"}
	silent := NewDNSResolver([]string{hostileDNS(t, func(dns.Question) *dns.Msg { return nil })}, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if p := CheckCAA(ctx, silent, "a.test", c); p == nil || p.Type != acme.CAA || time.Since(start) > 3*time.Second {
		t.Fatalf("a resolver that never answers: %v after %s", p, time.Since(start))
	}
	var flood []string
	for i := range 40 {
		flood = append(flood, fmt.Sprintf(`flood.test. 5 IN CAA 0 issue "ca%d.test"`, i))
	}
	many := NewDNSResolver([]string{hostileDNS(t, func(q dns.Question) *dns.Msg {
		if q.Qtype != dns.TypeCAA {
			return &dns.Msg{}
		}
		var m dns.Msg
		for _, s := range flood {
			m.Answer = append(m.Answer, rr(t, s))
		}
		return &m
	})}, 2*time.Second)
	p := CheckCAA(context.Background(), many, "flood.test", c)
	if p == nil || len(p.Detail) > 600 || !strings.Contains(p.Detail, "and 36 more") {
		t.Fatalf("40 records naming other CAs: %v", p)
	}
	deep := strings.Repeat("a.", 100) + "test"
	nx := NewDNSResolver([]string{hostileDNS(t, func(dns.Question) *dns.Msg { return &dns.Msg{MsgHdr: dns.MsgHdr{Rcode: dns.RcodeNameError}} })}, 2*time.Second)
	if p := CheckCAA(context.Background(), nx, deep, c); p != nil {
		t.Fatalf("a 100-label name with no CAA anywhere: %v", p)
	}
	other := NewDNSResolver([]string{hostileDNS(t, func(q dns.Question) *dns.Msg {
		return &dns.Msg{Question: []dns.Question{{Name: "elsewhere.test.", Qtype: q.Qtype, Qclass: dns.ClassINET}},
			Answer: []dns.RR{rr(t, `elsewhere.test. 5 IN CAA 0 issue "kacme.test"`)}}
	})}, 2*time.Second)
	if p := CheckCAA(context.Background(), other, "a.test", c); p == nil || p.Type != acme.CAA {
		t.Fatalf("an answer to another question: %v", p)
	}
}
