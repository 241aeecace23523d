package va

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/kacme/kacme/acmeserver/acme"
)

// CAA is what a CAA check (RFC 8659, with RFC 8657's accounturi and
// validationmethods) needs besides the name.
type CAA struct {
	// Identities are the issuer-domain-names that mean this CA (the
	// profile's caaIdentities, advertised in the directory).
	Identities []string
	// AccountURI is the ACME account's URL, which an accounturi parameter
	// must equal.
	AccountURI string
	// Method is the challenge type that validated the name, which a
	// validationmethods parameter must list.
	Method string
}

// CAALookup looks up the CAA records at a name; ordinary resolution
// (CNAMEs followed) applies (RFC 8659 §3). A name with no CAA records, or
// that does not exist, is an empty set, not an error.
type CAALookup interface {
	LookupCAA(ctx context.Context, name string) ([]*dns.CAA, error)
}

// LookupCAA implements CAALookup.
func (r *DNSResolver) LookupCAA(ctx context.Context, name string) ([]*dns.CAA, error) {
	rrs, err := r.query(ctx, name, dns.TypeCAA)
	var de *DNSError
	switch {
	case errors.Is(err, ErrNoRecords), errors.As(err, &de) && de.Err == nil && de.Rcode == dns.RcodeNameError:
		return nil, nil
	case err != nil:
		return nil, err
	}
	var out []*dns.CAA
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CAA); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// CheckCAA decides whether this CA may issue for name ("*." for a
// wildcard) under RFC 8659: the Relevant RRset is the first non-empty CAA
// set found at the name and then at each parent up to, not including, the
// root (§3); a lookup that fails before one is found refuses issuance
// (CAA-08). It returns nil when issuance is allowed, else a caa problem
// naming the record set's owner and the records, or a dns problem.
func CheckCAA(ctx context.Context, r CAALookup, name string, c CAA) *acme.Problem {
	wildcard := strings.HasPrefix(name, "*.")
	base := strings.TrimSuffix(strings.TrimPrefix(name, "*."), ".")
	labels := dns.SplitDomainName(base)
	for i := range labels {
		owner := strings.Join(labels[i:], ".")
		set, err := r.LookupCAA(ctx, owner)
		if err != nil {
			return acme.CAAProblem("CAA lookup of %s failed, so issuance is not allowed: %s", owner, caaCause(err))
		}
		if len(set) == 0 {
			continue
		}
		if ok, why := caaPermits(set, wildcard, c); !ok {
			return acme.CAAProblem("CAA records at %s forbid issuance for %s: %s", owner, name, why)
		}
		return nil
	}
	return nil // no CAA records anywhere: any CA may issue
}

func caaCause(err error) string {
	var de *DNSError
	if errors.As(err, &de) {
		return de.Error()
	}
	return sanitize(err)
}

// caaPermits applies RFC 8659 §4 to a Relevant RRset: it reports whether the
// set lets this CA issue and, if not, why (the records, as text).
func caaPermits(set []*dns.CAA, wildcard bool, c CAA) (bool, string) {
	var issue, issuewild []*dns.CAA
	for _, rr := range set {
		switch strings.ToLower(rr.Tag) {
		case "issue":
			issue = append(issue, rr)
		case "issuewild":
			issuewild = append(issuewild, rr)
		case "iodef", "issuemail", "issuevmc", "contactemail", "contactphone":
		default:
			if rr.Flag&128 != 0 {
				return false, fmt.Sprintf("%q has the issuer-critical flag and a tag kacme does not know (CAA-04)", caaText(rr))
			}
		}
	}
	props := issue
	if wildcard && len(issuewild) > 0 {
		props = issuewild // §4.3: issuewild alone governs wildcards when present
	}
	if len(props) == 0 {
		return true, "" // §4.2: no issue (issuewild) property restricts nothing
	}
	for _, rr := range props {
		if caaMatches(rr.Value, c) {
			return true, ""
		}
	}
	texts := make([]string, 0, len(props))
	for i, rr := range props {
		if i == 4 {
			texts = append(texts, fmt.Sprintf("and %d more", len(props)-4))
			break
		}
		texts = append(texts, caaText(rr))
	}
	return false, strings.Join(texts, ", ")
}

func caaText(rr *dns.CAA) string {
	return acme.Clip(fmt.Sprintf("%d %s %q", rr.Flag, rr.Tag, rr.Value))
}

// caaMatches reports whether an issue or issuewild value
// (issuer-domain-name *(";" tag "=" value), RFC 8659 §4.2) names this CA
// with parameters it satisfies: accounturi (RFC 8657 §3) equal to the
// account's URL, validationmethods (§4) listing the method used. A
// parameter that is malformed or repeated makes the property unsatisfiable;
// other parameters are ignored.
func caaMatches(value string, c CAA) bool {
	parts := strings.Split(value, ";")
	issuer := strings.TrimSpace(parts[0])
	if issuer == "" {
		return false // "issue ;": no CA may issue
	}
	known := false
	for _, id := range c.Identities {
		known = known || strings.EqualFold(strings.TrimSuffix(issuer, "."), strings.TrimSuffix(id, "."))
	}
	if !known {
		return false
	}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		tag, val, ok := strings.Cut(p, "=")
		tag, val = strings.TrimSpace(tag), strings.TrimSpace(val)
		if !ok || tag == "" || !caaTag(tag) {
			return false
		}
		ltag := strings.ToLower(tag)
		if seen[ltag] {
			return false
		}
		seen[ltag] = true
		switch ltag {
		case "accounturi":
			if val == "" || val != c.AccountURI {
				return false
			}
		case "validationmethods":
			listed := false
			for _, m := range strings.Split(val, ",") {
				if !caaTag(m) {
					return false
				}
				listed = listed || m == c.Method
			}
			if !listed {
				return false
			}
		}
	}
	return true
}

// caaTag reports whether s is 1*(ALPHA / DIGIT / "-") (RFC 8659 §4.2
// parameter tags; RFC 8657 §4 method labels).
func caaTag(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
