package va

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzCNAMEWalk: for any DNS message a resolver might return, following
// the answer ends (as a server that answers every query with that message
// would make it), takes at most MaxCNAMEHops CNAMEs, and returns only records
// of the asked type owned by the name the chain ended at.
func FuzzCNAMEWalk(f *testing.F) {
	seed := func(rrs ...string) {
		m := new(dns.Msg)
		m.SetQuestion("a.test.", dns.TypeA)
		for _, s := range rrs {
			r, err := dns.NewRR(s)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, r)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed("a.test. 5 IN A 127.0.0.1")
	seed("a.test. 5 IN CNAME a.test.")
	seed("a.test. 5 IN CNAME b.test.", "b.test. 5 IN CNAME a.test.")
	seed("a.test. 5 IN CNAME B.TEST.", "b.test. 5 IN TXT \"x\"", "b.test. 5 IN A 10.0.0.1")
	seed("a.test. 5 IN CNAME b.test.", "a.test. 5 IN CNAME c.test.")
	seed("a.test. 5 IN CNAME b.test.")
	f.Fuzz(func(t *testing.T, data []byte) {
		var m dns.Msg
		if err := m.Unpack(data); err != nil {
			return
		}
		for _, qtype := range []uint16{dns.TypeA, dns.TypeTXT, dns.TypeCNAME} {
			walk := newCNAMEWalk("a.test.")
			name := "a.test."
			for queries := 0; ; queries++ {
				if queries > MaxCNAMEHops+1 {
					t.Fatalf("qtype %d: %d queries without an end", qtype, queries)
				}
				out, next, err := walk.follow(m.Answer, name, qtype)
				if walk.hops > MaxCNAMEHops+1 {
					t.Fatalf("%d hops", walk.hops)
				}
				if err != nil || next == "" {
					for _, r := range out {
						if r.Header().Rrtype != qtype || !walk.visited[dns.CanonicalName(r.Header().Name)] {
							t.Fatalf("returned %s for qtype %d, not owned by a name of the chain", r, qtype)
						}
					}
					if err != nil && len(out) > 0 {
						t.Fatal("records and an error")
					}
					break
				}
				if len(out) > 0 {
					t.Fatal("records and a name to query next")
				}
				name = next
			}
		}
	})
}
