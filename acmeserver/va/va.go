// Package va validates ACME challenges. It is stateless: (identifier,
// challenge type, token, key authorization, settings) in; validation records
// or a problem out. Every host lookup goes through the profile's resolvers.
package va

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Settings are the per-profile validation settings.
type Settings struct {
	HTTPPort      int
	TLSPort       int
	Resolvers     []string
	Timeout       time.Duration
	ServiceRoutes []v1alpha1.ServiceRoute
	// CAAIdentities, when not empty, turn on the CAA check of dns
	// identifiers once their challenge has succeeded (CheckCAA): the
	// issuer-domain-names that mean this CA.
	CAAIdentities []string
}

// Services finds the Kubernetes Service a name maps to and its ready
// endpoints (cluster mode), so http-01 reaches them directly.
type Services interface {
	// Endpoints returns the endpoints ("ip:port", or "name:port" for FQDN
	// EndpointSlices) serving host on port; ok is false when host maps to no Service.
	Endpoints(ctx context.Context, host string, port int, routes []v1alpha1.ServiceRoute) (eps []string, ok bool, err error)
}

// Request is one validation to perform.
type Request struct {
	Identifier       acme.Identifier
	Type             v1alpha1.ChallengeType
	Token            string
	KeyAuthorization string
	Settings         Settings
	// AccountURI is the URL of the account whose challenge this is (the
	// CAA accounturi parameter, RFC 8657 §3).
	AccountURI string
}

// Result of a validation: records always, a problem when it failed.
type Result struct {
	Records []v1alpha1.ValidationRecord
	Problem *acme.Problem
}

// Validator performs validations; RA depends on this interface.
type Validator interface {
	Validate(ctx context.Context, req Request) Result
}

// ContextDialer dials a connection.
type ContextDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// ResolverFactory builds a resolver for a set of servers (host:port).
type ResolverFactory func(servers []string, timeout time.Duration) Resolver

// VA is the default Validator.
type VA struct {
	// NewResolver builds the resolver used for a request; defaults to DNS over miekg/dns.
	NewResolver ResolverFactory
	// Dialer dials validation connections (default net.Dialer; tests replace it).
	Dialer ContextDialer
	// Services, when set, routes http-01 for names that map to a Service to
	// its endpoints.
	Services Services
}

// New returns a VA using real DNS resolvers.
func New() *VA {
	return &VA{NewResolver: func(servers []string, timeout time.Duration) Resolver {
		return NewDNSResolver(servers, timeout)
	}, Dialer: &net.Dialer{}}
}

// Validate implements Validator.
func (v *VA) Validate(ctx context.Context, req Request) Result {
	timeout := req.Settings.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := v.NewResolver(req.Settings.Resolvers, timeout)
	var out Result
	switch req.Type {
	case v1alpha1.ChallengeHTTP01:
		out = v.validateHTTP01(ctx, res, req)
	case v1alpha1.ChallengeDNS01, v1alpha1.ChallengeDNSAccount01:
		out = v.validateDNS01(ctx, res, req)
	case v1alpha1.ChallengeTLSALPN01:
		out = v.validateTLSALPN01(ctx, res, req)
	default:
		return Result{Problem: acme.MalformedProblem("unsupported challenge type %q", req.Type)}
	}
	// CAA, at validation time, within the same deadline and through the same
	// resolvers (RFC 8659 applies to domain names, not IP addresses).
	if out.Problem == nil && len(req.Settings.CAAIdentities) > 0 && req.Identifier.Type == acme.IdentifierDNS {
		out.Problem = CheckCAA(ctx, res, req.Identifier.Value, CAA{Identities: req.Settings.CAAIdentities,
			AccountURI: req.AccountURI, Method: string(req.Type)})
	}
	return out
}

func (v *VA) dialer() ContextDialer {
	if v.Dialer == nil {
		return &net.Dialer{}
	}
	return v.Dialer
}

// resolveTarget resolves the identifier to addresses (an ip identifier is its own address).
func resolveTarget(ctx context.Context, res Resolver, id acme.Identifier, rec *v1alpha1.ValidationRecord) ([]netip.Addr, *acme.Problem) {
	if id.Type == acme.IdentifierIP {
		a, err := netip.ParseAddr(id.Value)
		if err != nil {
			return nil, acme.MalformedProblem("invalid ip identifier")
		}
		rec.AddressesResolved = []string{a.String()}
		return []netip.Addr{a}, nil
	}
	addrs, err := res.LookupHost(ctx, id.Value)
	if err != nil {
		return nil, dnsProblem(err, id.Value)
	}
	for _, a := range addrs {
		rec.AddressesResolved = append(rec.AddressesResolved, a.String())
	}
	return addrs, nil
}

// dialFirst connects to the first address that answers (Boulder tries AAAA
// then A; kacme tries every resolved address in resolver order) and returns
// the address used.
func (v *VA) dialFirst(ctx context.Context, addrs []netip.Addr, port int) (net.Conn, string, error) {
	var lastErr error
	for _, a := range addrs {
		addr := net.JoinHostPort(a.String(), fmt.Sprint(port))
		c, err := v.dialer().DialContext(ctx, "tcp", addr)
		if err == nil {
			return c, a.String(), nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no addresses")
	}
	return nil, "", lastErr
}

// dialEndpoints connects to the first endpoint that answers and returns the
// "address:port" used; endpoint names (FQDN EndpointSlices) are resolved
// through the profile's resolvers, and every endpoint's addresses pass allow
// (the hop's address policy).
func (v *VA) dialEndpoints(ctx context.Context, res Resolver, eps []string,
	allow func([]netip.Addr) ([]netip.Addr, error)) (net.Conn, string, error) {
	var lastErr error
	for _, ep := range eps {
		host, port, err := net.SplitHostPort(ep)
		if err != nil {
			return nil, "", err
		}
		addrs := []netip.Addr{}
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = append(addrs, a)
		} else if addrs, err = res.LookupHost(ctx, host); err != nil {
			lastErr = err
			continue
		}
		if addrs, err = allow(addrs); err != nil {
			lastErr = err
			continue
		}
		for _, a := range addrs {
			target := net.JoinHostPort(a.String(), port)
			c, err := v.dialer().DialContext(ctx, "tcp", target)
			if err == nil {
				return c, target, nil
			}
			lastErr = err
			if ctx.Err() != nil {
				return nil, "", err
			}
		}
	}
	if lastErr == nil {
		lastErr = errors.New("the Service has no ready endpoints")
	}
	return nil, "", lastErr
}

func connectionProblem(err error, what string) *acme.Problem {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return acme.ValidationProblem(acme.Connection, "%s: timeout", what)
	}
	return acme.ValidationProblem(acme.Connection, "%s: %s", what, sanitize(err))
}

// sanitize keeps error text short and free of internal detail beyond the peer address.
func sanitize(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Op + ": " + oe.Err.Error()
	}
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
