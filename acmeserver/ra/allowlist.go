package ra

import (
	"net/netip"
	"strings"

	"github.com/kacme/kacme/acmeserver/acme"
)

// checkAccountAllowList applies an account's spec.allowedIdentifiers to a
// normalised identifier; a refusal is rejectedIdentifier naming it.
func checkAccountAllowList(allowed []string, id acme.Identifier) *acme.Problem {
	if len(allowed) == 0 {
		return nil
	}
	for _, pat := range allowed {
		if allowListMatches(strings.ToLower(strings.TrimSuffix(pat, ".")), id) {
			return nil
		}
	}
	pr := acme.RejectedIdentifierProblem("%s is not among the identifiers this account may order", id.Value)
	idc := id
	pr.Identifier = &idc
	return pr
}

func allowListMatches(pat string, id acme.Identifier) bool {
	if id.Type == acme.IdentifierIP {
		a := netip.MustParseAddr(id.Value)
		if pfx, err := netip.ParsePrefix(pat); err == nil {
			return pfx.Contains(a)
		}
		if b, err := netip.ParseAddr(pat); err == nil {
			return b.Unmap() == a
		}
		return false
	}
	if sub, ok := strings.CutPrefix(pat, "*."); ok {
		base := strings.TrimPrefix(id.Value, "*.")
		return strings.HasSuffix(base, "."+sub) || (strings.HasPrefix(id.Value, "*.") && base == sub)
	}
	return id.Value == pat
}
