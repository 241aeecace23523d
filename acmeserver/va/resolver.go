package va

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/kacme/kacme/acmeserver/acme"
)

// Resolver answers the lookups validation needs.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]netip.Addr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// DNSError is a lookup failure with the DNS response code.
type DNSError struct {
	Name   string
	Qtype  string
	Rcode  int
	Err    error
	Server string
}

func (e *DNSError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("DNS %s lookup of %s failed: %v", e.Qtype, e.Name, e.Err)
	}
	return fmt.Sprintf("DNS %s lookup of %s: %s", e.Qtype, e.Name, dns.RcodeToString[e.Rcode])
}

// ErrNoRecords is returned (wrapped) when a name has no records of the type.
var ErrNoRecords = errors.New("no records")

func dnsProblem(err error, name string) *acme.Problem {
	var de *DNSError
	if errors.As(err, &de) {
		return acme.ValidationProblem(acme.DNS, "%s", de.Error())
	}
	if errors.Is(err, ErrNoRecords) {
		return acme.ValidationProblem(acme.DNS, "no A or AAAA records found for %s", name)
	}
	return acme.ValidationProblem(acme.DNS, "DNS lookup of %s failed: %s", name, sanitize(err))
}

// DNSResolver queries the given servers with miekg/dns, following CNAMEs.
type DNSResolver struct {
	servers []string
	client  *dns.Client
	tcp     *dns.Client
}

// NewDNSResolver returns a resolver for servers (host:port). With no servers
// it uses the nameservers of /etc/resolv.conf.
func NewDNSResolver(servers []string, timeout time.Duration) *DNSResolver {
	if len(servers) == 0 {
		if cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf"); err == nil {
			for _, s := range cfg.Servers {
				servers = append(servers, net.JoinHostPort(s, cfg.Port))
			}
		}
	}
	per := timeout / 2
	if per <= 0 || per > 5*time.Second {
		per = 5 * time.Second
	}
	return &DNSResolver{
		servers: servers,
		client:  &dns.Client{Net: "udp", Timeout: per},
		tcp:     &dns.Client{Net: "tcp", Timeout: per},
	}
}

// isLocalhost: RFC 6761 §6.3 names always mean loopback.
func isLocalhost(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

// LookupHost returns the A and AAAA addresses of host (A first).
func (r *DNSResolver) LookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if isLocalhost(host) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
	}
	var out []netip.Addr
	var firstErr error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := r.query(ctx, host, qt)
		if err != nil {
			if firstErr == nil && !errors.Is(err, ErrNoRecords) {
				firstErr = err
			}
			continue
		}
		for _, rr := range rrs {
			switch v := rr.(type) {
			case *dns.A:
				if a, ok := netip.AddrFromSlice(v.A.To4()); ok {
					out = append(out, a)
				}
			case *dns.AAAA:
				if a, ok := netip.AddrFromSlice(v.AAAA); ok {
					out = append(out, a)
				}
			}
		}
	}
	if len(out) == 0 {
		if firstErr != nil {
			return nil, firstErr
		}
		return nil, fmt.Errorf("%s: %w", host, ErrNoRecords)
	}
	return out, nil
}

// LookupTXT returns the TXT strings at name (multi-string records concatenated).
func (r *DNSResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// query asks for qtype at name, following up to 8 CNAMEs.
func (r *DNSResolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	if len(r.servers) == 0 {
		return nil, &DNSError{Name: name, Qtype: dns.TypeToString[qtype], Err: errors.New("no resolvers configured")}
	}
	target := dns.Fqdn(name)
	for hop := 0; hop < 8; hop++ {
		resp, server, err := r.exchange(ctx, target, qtype)
		if err != nil {
			return nil, &DNSError{Name: name, Qtype: dns.TypeToString[qtype], Err: err, Server: server}
		}
		switch resp.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return nil, &DNSError{Name: target, Qtype: dns.TypeToString[qtype], Rcode: resp.Rcode, Server: server}
		default:
			return nil, &DNSError{Name: target, Qtype: dns.TypeToString[qtype], Rcode: resp.Rcode, Server: server}
		}
		// Walk the answer: records for target, or a CNAME to follow within the answer.
		var out []dns.RR
		next := ""
		cur := target
		for changed := true; changed; {
			changed = false
			for _, rr := range resp.Answer {
				if !strings.EqualFold(rr.Header().Name, cur) {
					continue
				}
				if rr.Header().Rrtype == qtype {
					out = append(out, rr)
				} else if c, ok := rr.(*dns.CNAME); ok && len(out) == 0 && qtype != dns.TypeCNAME {
					cur = c.Target
					changed = true
				}
			}
		}
		if len(out) > 0 {
			return out, nil
		}
		if cur != target {
			next = cur
		}
		if next == "" {
			return nil, fmt.Errorf("%s %s: %w", dns.TypeToString[qtype], target, ErrNoRecords)
		}
		target = next
	}
	return nil, &DNSError{Name: name, Qtype: dns.TypeToString[qtype], Err: errors.New("too many CNAMEs")}
}

func (r *DNSResolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	var lastErr error
	for _, s := range r.servers {
		resp, _, err := r.client.ExchangeContext(ctx, m, s)
		if err == nil && resp.Truncated {
			resp, _, err = r.tcp.ExchangeContext(ctx, m, s)
		}
		if err != nil {
			lastErr = err
			if ctx.Err() != nil {
				return nil, s, err
			}
			continue
		}
		if resp.Rcode == dns.RcodeServerFailure && len(r.servers) > 1 {
			lastErr = fmt.Errorf("SERVFAIL from %s", s)
			continue
		}
		return resp, s, nil
	}
	return nil, "", lastErr
}
