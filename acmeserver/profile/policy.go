package profile

import (
	"net/netip"
	"strings"

	"github.com/kacme/kacme/acmeserver/acme"
	"github.com/kacme/kacme/api/v1alpha1"
)

// Allows reports why the profile would refuse an order for id (nil: it
// would take it): syntax, then the identifier policy.
func (p *Profile) Allows(id acme.Identifier) *acme.Problem {
	n, pr := acme.NormalizeIdentifier(id)
	if pr != nil {
		return pr
	}
	return p.CheckPolicy(n)
}

// CheckPolicy applies the profile's identifier policy to a normalised
// identifier; a refusal is rejectedIdentifier naming the identifier.
func (p *Profile) CheckPolicy(id acme.Identifier) *acme.Problem {
	reject := func(format string, args ...any) *acme.Problem {
		pr := acme.RejectedIdentifierProblem(format, args...)
		idc := id
		pr.Identifier = &idc
		return pr
	}
	switch id.Type {
	case acme.IdentifierIP:
		a := netip.MustParseAddr(id.Value)
		for _, pfx := range p.AllowedCIDRs {
			if pfx.Contains(a) {
				return nil
			}
		}
		return reject("ip address %s is not allowed by this profile", id.Value)
	case acme.IdentifierDNS:
		name := id.Value
		wildcard := strings.HasPrefix(name, "*.")
		base := strings.TrimPrefix(name, "*.")
		if wildcard {
			if p.Spec.Identifiers.DisallowWildcards {
				return reject("wildcard names are not allowed by this profile")
			}
			if !p.Offers(v1alpha1.ChallengeDNS01) && !p.Offers(v1alpha1.ChallengeDNSAccount01) {
				return reject("wildcard names need dns-01 or dns-account-01, which this profile does not offer")
			}
		}
		for _, d := range p.Spec.Identifiers.DeniedNames {
			d = strings.ToLower(strings.TrimSuffix(d, "."))
			if sub, ok := strings.CutPrefix(d, "*."); ok {
				if base == sub || strings.HasSuffix(base, "."+sub) {
					return reject("%s is denied by this profile", name)
				}
			} else if base == d || name == d {
				return reject("%s is denied by this profile", name)
			}
		}
		sfx := p.Spec.Identifiers.AllowedDNSSuffixes
		if len(sfx) == 0 {
			return nil
		}
		for _, s := range sfx {
			if base == s || strings.HasSuffix(base, "."+s) {
				return nil
			}
		}
		return reject("%s is not under a domain this profile allows (%s)", name, strings.Join(sfx, ", "))
	}
	return reject("unsupported identifier")
}
