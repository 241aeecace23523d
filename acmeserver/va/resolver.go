package va

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/kacme/kacme/acmeserver/acme"
)

// Resolver answers the lookups validation needs.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]netip.Addr, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
	CAALookup
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
		servers = systemServers.get()
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

// resolvConf is the nameservers of /etc/resolv.conf, read again when the
// file's modification time or size changes (a validation stats the file
// instead of parsing it).
type resolvConf struct {
	path    string
	mu      sync.Mutex
	mod     time.Time
	size    int64
	servers []string
}

var systemServers = &resolvConf{path: "/etc/resolv.conf"}

func (c *resolvConf) get() []string {
	fi, err := os.Stat(c.path)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.servers == nil || !fi.ModTime().Equal(c.mod) || fi.Size() != c.size {
		c.servers, c.mod, c.size = nil, fi.ModTime(), fi.Size()
		if cfg, err := dns.ClientConfigFromFile(c.path); err == nil {
			for _, s := range cfg.Servers {
				c.servers = append(c.servers, net.JoinHostPort(s, cfg.Port))
			}
		}
	}
	return slices.Clone(c.servers)
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

// MaxCNAMEHops bounds the CNAMEs followed for one lookup, within one answer
// and across the queries that continue a chain (RFC 1034 §3.6.2 leaves the
// limit to the resolver; recursive resolvers stop around 8–16).
const MaxCNAMEHops = 16

// Errors of a CNAME walk that cannot end in records: a name seen before, or
// too long a chain. Both are DNS errors of the validation (type dns).
var (
	ErrCNAMELoop     = errors.New("CNAME loop")
	ErrTooManyCNAMEs = fmt.Errorf("more than %d CNAMEs", MaxCNAMEHops)
)

// cnameWalk follows one lookup's CNAME chain across answers: every name it
// has visited, and how many hops it has taken, so that a loop within an
// answer, across queries, or an endless chain stops instead of spinning.
type cnameWalk struct {
	visited map[string]bool
	hops    int
}

func newCNAMEWalk(name string) *cnameWalk {
	return &cnameWalk{visited: map[string]bool{dns.CanonicalName(name): true}}
}

// follow walks answer from name (already visited): it returns the records
// of qtype owned by the end of the chain, or, when the answer stops at a
// CNAME target it holds nothing for, that target to query next ("" when
// name itself has nothing). Names compare case-insensitively (RFC 4343).
func (w *cnameWalk) follow(answer []dns.RR, name string, qtype uint16) (out []dns.RR, next string, err error) {
	cur := dns.CanonicalName(name)
	for {
		var cname *dns.CNAME
		for _, rr := range answer {
			if dns.CanonicalName(rr.Header().Name) != cur {
				continue
			}
			switch v := rr.(type) {
			case *dns.CNAME:
				if qtype != dns.TypeCNAME {
					if cname != nil && dns.CanonicalName(cname.Target) != dns.CanonicalName(v.Target) {
						return nil, "", fmt.Errorf("%s has more than one CNAME (RFC 2181 §10.1)", cur)
					}
					cname = v
				}
			default:
				if rr.Header().Rrtype == qtype {
					out = append(out, rr)
				}
			}
		}
		if len(out) > 0 || cname == nil {
			if len(out) == 0 && cur != dns.CanonicalName(name) {
				return nil, cur, nil
			}
			return out, "", nil
		}
		if w.hops++; w.hops > MaxCNAMEHops {
			return nil, "", ErrTooManyCNAMEs
		}
		target := dns.CanonicalName(cname.Target)
		if w.visited[target] {
			return nil, "", fmt.Errorf("%w: %s → %s", ErrCNAMELoop, cur, target)
		}
		w.visited[target] = true
		cur = target
	}
}

// query asks for qtype at name, following CNAMEs within each answer and, when
// an answer stops at a CNAME target, with a new query for it; a loop or more
// than MaxCNAMEHops CNAMEs in all is a DNS error. It stops at ctx's deadline.
func (r *DNSResolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	if len(r.servers) == 0 {
		return nil, &DNSError{Name: name, Qtype: dns.TypeToString[qtype], Err: errors.New("no resolvers configured")}
	}
	target := dns.Fqdn(name)
	walk := newCNAMEWalk(target)
	for {
		if err := ctx.Err(); err != nil {
			return nil, &DNSError{Name: name, Qtype: dns.TypeToString[qtype], Err: err}
		}
		resp, server, err := r.exchange(ctx, target, qtype)
		if err != nil {
			return nil, &DNSError{Name: name, Qtype: dns.TypeToString[qtype], Err: err, Server: server}
		}
		if resp.Rcode != dns.RcodeSuccess {
			return nil, &DNSError{Name: target, Qtype: dns.TypeToString[qtype], Rcode: resp.Rcode, Server: server}
		}
		out, next, err := walk.follow(resp.Answer, target, qtype)
		if err != nil {
			return nil, &DNSError{Name: name, Qtype: dns.TypeToString[qtype], Err: err, Server: server}
		}
		if len(out) > 0 {
			return out, nil
		}
		if next == "" {
			return nil, fmt.Errorf("%s %s: %w", dns.TypeToString[qtype], target, ErrNoRecords)
		}
		target = next
	}
}

func (r *DNSResolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	var lastErr error
	for _, s := range r.servers {
		resp, err := exchangeOne(ctx, r.client, m, s)
		if err == nil && resp.Truncated {
			resp, err = exchangeOne(ctx, r.tcp, m, s)
		}
		if err == nil {
			err = checkQuestion(resp, m.Question[0])
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

// exchangeOne sends m to server over c's transport. The read ends at the
// earlier of c's timeout and ctx's deadline (miekg/dns), and at once when ctx
// is cancelled (shutdown), which miekg/dns alone does not do.
func exchangeOne(ctx context.Context, c *dns.Client, m *dns.Msg, server string) (*dns.Msg, error) {
	conn, err := c.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	resp, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return resp, err
}

// checkQuestion refuses an answer to another question than the one asked
// (RFC 1035 §4.1.2: the response copies the question).
func checkQuestion(resp *dns.Msg, q dns.Question) error {
	if len(resp.Question) != 1 || resp.Question[0].Qtype != q.Qtype || dns.CanonicalName(resp.Question[0].Name) != dns.CanonicalName(q.Name) {
		return errors.New("the response does not answer the question asked")
	}
	return nil
}
