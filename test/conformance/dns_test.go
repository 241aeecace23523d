package conformance

import (
	"net"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// testDNS is the resolver of the test profiles: a DNS server on loopback
// answering TXT records tests publish, or whatever a test's answer hook says
// (hostile answers).
type testDNS struct {
	port int

	mu     sync.Mutex
	txt    map[string][]string
	caa    map[string][]string           // CAA records (rdata, `0 issue "ca.example"`) by owner
	answer func(q dns.Question) *dns.Msg // nil: answer from txt
}

func startDNS(t *testing.T) *testDNS {
	t.Helper()
	// UDP and TCP on one port (Pebble's resolver asks over TCP).
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			_ = pc.Close()
			if attempt < 20 {
				continue
			}
			t.Fatal(err)
		}
		d := &testDNS{port: pc.LocalAddr().(*net.UDPAddr).Port, txt: map[string][]string{}, caa: map[string][]string{}}
		udp := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.serve)}
		tcp := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(d.serve)}
		go func() { _ = udp.ActivateAndServe() }()
		go func() { _ = tcp.ActivateAndServe() }()
		t.Cleanup(func() { _ = udp.Shutdown(); _ = tcp.Shutdown() })
		return d
	}
}

// setTXT publishes TXT values at name.
func (d *testDNS) setTXT(name string, values ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.txt[dns.CanonicalName(name)] = values
}

// setCAA publishes CAA records (rdata as in a zone file) at name.
func (d *testDNS) setCAA(name string, rdata ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.caa[dns.CanonicalName(name)] = rdata
}

// setAnswer makes every answer come from f (nil: back to the TXT records).
func (d *testDNS) setAnswer(f func(q dns.Question) *dns.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answer = f
}

func (d *testDNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	q := r.Question[0]
	d.mu.Lock()
	answer, values := d.answer, d.txt[dns.CanonicalName(q.Name)]
	caa := d.caa[dns.CanonicalName(q.Name)]
	d.mu.Unlock()
	if answer != nil {
		m := answer(q)
		if m == nil {
			return // no answer at all
		}
		m.Id, m.Response = r.Id, true
		if m.Question == nil {
			m.Question = r.Question
		}
		_ = w.WriteMsg(m)
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	if values == nil && caa == nil {
		m.Rcode = dns.RcodeNameError
	}
	for _, c := range caa {
		if rr, err := dns.NewRR(q.Name + " 5 IN CAA " + c); err == nil && q.Qtype == dns.TypeCAA {
			m.Answer = append(m.Answer, rr)
		}
	}
	for _, v := range values {
		if q.Qtype == dns.TypeTXT {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 5},
				Txt: []string{v}})
		}
	}
	_ = w.WriteMsg(m)
}
